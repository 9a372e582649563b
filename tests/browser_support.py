"""Servers and a browser for the browser tests: the README's ``make lab`` and ``make present``
on 127.0.0.1 with a random port and token, Debian's chromium driven by the ``playwright``
package, and teardown that stops every process a server or the browser started (kernels
included) even when a test fails.
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
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

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


def _processes_whose(part: str, needle: bytes) -> list[int]:
    """PIDs (other than this one) whose /proc/PID/``part`` (NUL-separated) has ``needle``."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            fields = (entry / part).read_bytes().split(b"\0")
        except OSError:
            continue
        if any(needle in field for field in fields):
            pids.append(int(entry.name))
    return pids


def processes_marked(marker: str) -> list[int]:
    """PIDs whose environment has ``MARKER_VARIABLE=marker``."""
    return _processes_whose("environ", f"{MARKER_VARIABLE}={marker}".encode())


def processes_mentioning(text: str) -> list[int]:
    """PIDs with ``text`` in an argument of their command line."""
    return _processes_whose("cmdline", text.encode())


def kill_marked(marker: str) -> None:
    """SIGKILL every process whose environment has ``MARKER_VARIABLE=marker``."""
    for pid in processes_marked(marker):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


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
    kill_marked(marker)


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


def make_argv(target: str, *variables: str) -> list[str]:
    return ["make", "-s", "--no-print-directory", "-C", str(ROOT), target, *variables]


def lab_argv(notebook_dir: Path, port: int, token: str) -> list[str]:
    """``make lab`` serving ``notebook_dir`` on a given port with a given token."""
    flags = f"--no-browser --ServerApp.port={port} --ServerApp.port_retries=0 " \
            f"--IdentityProvider.token={token}"
    return make_argv("lab", f"NOTEBOOK_DIR={notebook_dir}", f"LAB_ARGS={flags}")


def present_argv(lesson: str, port: int, token: str, *variables: str) -> list[str]:
    """``make present NB=lesson``, the lecture mode, on a given port with a given token (and
    make ``variables`` such as ``VOILA_CULL_S=5``)."""
    flags = f"--no-browser --Voila.port={port} --Voila.port_retries=0 --token={token}"
    return make_argv("present", f"NB={lesson}", f"VOILA_ARGS={flags}", *variables)


@contextlib.contextmanager
def jupyter_server(command, ready_path: str, home: Path, cwd: Path = ROOT,
                   timeout: float = 120.0) -> Iterator[Server]:
    """Run ``command(port, token)`` (an argv) in ``cwd`` with a free port and a random token; yield once
    ``ready_path`` answers 200; stop it and every kernel it started on exit. ``home`` (a fresh
    directory) receives its log, Jupyter config, runtime files, settings and workspaces."""
    port, token = free_port(), secrets.token_hex(16)
    # The user's Jupyter config, JupyterLab settings and saved workspaces stay out of it (and
    # untouched): each server starts as a learner's first launch does.
    env = dict(os.environ, PYTHONUNBUFFERED="1", JUPYTER_CONFIG_DIR=str(home / "config"),
               JUPYTER_RUNTIME_DIR=str(home / "runtime"),
               JUPYTERLAB_SETTINGS_DIR=str(home / "settings"),
               JUPYTERLAB_WORKSPACES_DIR=str(home / "workspaces"), **{MARKER_VARIABLE: token})
    argv = command(port, token)
    log_path = home / "server.log"
    home.mkdir(parents=True, exist_ok=True)
    with log_path.open("w") as log:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
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
def chromium_page(chromium: str, profile: Path, viewport=(1200, 950)):
    """A playwright page in a fresh chromium profile; on exit the browser is closed and any of
    its processes still alive are killed."""
    from playwright.sync_api import sync_playwright

    marker = secrets.token_hex(16)
    try:
        with sync_playwright() as pw:
            context = pw.chromium.launch_persistent_context(
                str(profile), executable_path=chromium, headless=True,
                args=list(CHROMIUM_FLAGS), env={**os.environ, MARKER_VARIABLE: marker},
                viewport={"width": viewport[0], "height": viewport[1]},
            )
            try:
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()
    finally:
        kill_marked(marker)


def html_text(fragment: str) -> str:
    """The text a browser shows for an HTML fragment, whitespace collapsed (for comparisons)."""
    return squash(html.unescape(re.sub(r"<[^>]+>", " ", fragment)))


def squash(text: str) -> str:
    return " ".join(text.split())  # str.split() also splits at no-break spaces
