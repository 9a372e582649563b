"""Servers and a browser for the browser tests: JupyterLab or Voilà on 127.0.0.1 with a random
port and token, Debian's chromium driven by the ``playwright`` package, and teardown that stops
every process a server started (its kernels included) even when a test fails.
"""

from __future__ import annotations

import contextlib
import html
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
"""Flags for a root user in a container with no network but the local server."""


def find_chromium() -> str | None:
    """``$CHROMIUM``, else ``chromium`` on PATH, else None."""
    path = os.environ.get("CHROMIUM") or shutil.which("chromium")
    return path if path and os.access(path, os.X_OK) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


MARKER_VARIABLE = "COURSE_BROWSER_TEST_SERVER"
"""Set in each server's environment, which its kernels inherit: teardown finds them all by it."""


def processes_marked(marker: str) -> list[int]:
    """PIDs whose environment has ``MARKER_VARIABLE=marker``."""
    needle = f"{MARKER_VARIABLE}={marker}".encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ:
            pids.append(int(entry.name))
    return pids


def _stop(proc: subprocess.Popen, marker: str) -> None:
    """SIGTERM the server's process group, then SIGKILL every process still marked."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=15)
    for pid in processes_marked(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Server:
    """A running Jupyter server: ``url(path)`` adds the token; ``log()`` is what it printed."""

    def __init__(self, base: str, token: str, log_path: Path) -> None:
        self.base, self.token, self.log_path = base, token, log_path

    def url(self, path: str = "") -> str:
        sep = "&" if "?" in path else "?"
        return f"{self.base}/{path.lstrip('/')}{sep}token={self.token}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def processes(self) -> list[int]:
        """The server's processes and its kernels' (alive ones)."""
        return processes_marked(self.token)


def lab_argv(workdir: Path, port: int, token: str) -> list[str]:
    """``jupyter lab`` serving ``workdir`` the way ``make lab`` does."""
    return [str(BIN / "jupyter"), "lab", "--no-browser", f"--notebook-dir={workdir}",
            "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
            f"--IdentityProvider.token={token}",
            *(["--allow-root"] if os.geteuid() == 0 else [])]


def voila_argv(notebook: Path, port: int, token: str) -> list[str]:
    """``voila`` serving one notebook the way ``make present`` does."""
    return [str(BIN / "voila"), str(notebook), "--no-browser", "--Voila.ip=127.0.0.1",
            f"--Voila.port={port}", "--Voila.port_retries=0", f"--token={token}"]


@contextlib.contextmanager
def jupyter_server(make_argv, workdir: Path, ready_path: str,
                   timeout: float = 120.0) -> Iterator[Server]:
    """Run ``make_argv(port, token)`` in ``workdir`` with a free port and a random token; yield
    once ``ready_path`` answers 200; stop it and every kernel it started on exit."""
    port, token = free_port(), secrets.token_hex(16)
    # The user's Jupyter config, JupyterLab settings and saved workspaces stay out of it (and
    # untouched): each server starts as a learner's first launch does.
    home = workdir.parent / f"{workdir.name}-jupyter-{port}"
    env = dict(os.environ, PYTHONUNBUFFERED="1", JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), **{MARKER_VARIABLE: token})
    argv = make_argv(port, token)
    log_path = home / f"{Path(argv[0]).name}.log"
    home.mkdir(parents=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, cwd=workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", token, log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"{argv[0]} exited with {proc.returncode}:\n{server.log()}")
            try:
                with urllib.request.urlopen(server.url(ready_path), timeout=5) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{argv[0]} not ready after {timeout} s:\n{server.log()}")
            time.sleep(0.5)
        yield server
    finally:
        _stop(proc, token)


@contextlib.contextmanager
def chromium_page(chromium: str, profile: Path, viewport=(1400, 1000)):
    """A playwright page in a fresh chromium profile; the browser is closed on exit."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile), executable_path=chromium, headless=True, args=list(CHROMIUM_FLAGS),
            viewport={"width": viewport[0], "height": viewport[1]},
        )
        try:
            yield context.pages[0] if context.pages else context.new_page()
        finally:
            context.close()


def html_text(fragment: str) -> str:
    """The text a browser shows for an HTML fragment, whitespace collapsed (for comparisons)."""
    return squash(html.unescape(re.sub(r"<[^>]+>", " ", fragment)))


def squash(text: str) -> str:
    return " ".join(text.replace("\xa0", " ").split())
