"""What a classroom needs from the environment, checked without a browser: JupyterLab's news
prompt and update check are off, a saved lesson keeps its panels' pictures but not their
widget views, idle kernels are culled, and the repository is ready for Binder (repo2docker)."""

from __future__ import annotations

import json
import re
import shutil
import tomllib
import urllib.request

import pytest
import yaml
from browser_support import ROOT, jupyter_server, lab_argv


def _get(server, path: str) -> str:
    with urllib.request.urlopen(server.url(path), timeout=30) as r:
        return r.read().decode()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    work = tmp_path_factory.mktemp("lab")
    shutil.copy(ROOT / "notebooks" / "00_start_here.ipynb", work)
    with jupyter_server(lambda port, token: lab_argv(work, port, token), "api/status",
                        home=tmp_path_factory.mktemp("lab-home")) as server:
        yield server


def test_lab_front_end_never_fetches_news_nor_checks_for_updates(lab):
    reply = json.loads(_get(lab, "lab/api/settings/@jupyterlab/apputils-extension:notification"))
    defaults = {k: v.get("default") for k, v in reply["schema"]["properties"].items()}
    assert defaults["fetchNews"] == "false"
    assert defaults["checkForUpdates"] is False


def test_lab_server_has_no_news_feed_and_no_update_checker(lab):
    page = _get(lab, "lab")
    config = json.loads(re.search(
        r'<script id="jupyter-config-data" type="application/json">(.*?)</script>', page, re.DOTALL
    ).group(1))
    assert config["news"] == {"disabled": True}
    assert json.loads(_get(lab, "lab/api/update")) == {"notification": None}
    assert json.loads(_get(lab, "lab/api/news")) == {"news": []}


def _send(server, path: str, method: str, body: dict | None = None) -> dict:
    request = urllib.request.Request(server.url(path), method=method,
                                     data=json.dumps(body or {}).encode(),
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as r:
        return json.loads(r.read() or b"{}")


def test_lab_saves_a_panel_as_its_picture_without_the_widget_view(lab):
    """The server's pre-save hook: a reopened lesson shows the panel's picture and the line that
    says how to get its sliders back, never "Error displaying widget: model not found"."""
    view = {"model_id": "0123", "version_major": 2, "version_minor": 0}
    page = "<img src='data:image/png;base64,iVBO'/><p>Static picture: run this cell again</p>"
    cell = {"cell_type": "code", "execution_count": 1, "id": "c1", "metadata": {},
            "source": "panel", "outputs": [
                {"output_type": "execute_result", "execution_count": 1, "metadata": {},
                 "data": {"application/vnd.jupyter.widget-view+json": view,
                          "text/html": page, "text/plain": "Panel(eps)"}},
                {"output_type": "display_data", "metadata": {},
                 "data": {"application/vnd.jupyter.widget-view+json": view}}]}
    nb = {"nbformat": 4, "nbformat_minor": 5, "cells": [cell],
          "metadata": {"widgets": {"application/vnd.jupyter.widget-state+json": {}}}}
    _send(lab, "api/contents/saved.ipynb", "PUT",
          {"type": "notebook", "format": "json", "content": nb})
    saved = _send(lab, "api/contents/saved.ipynb?content=1", "GET")["content"]
    assert saved["cells"][0]["outputs"] == [
        {"output_type": "execute_result", "execution_count": 1, "metadata": {},
         "data": {"text/html": page, "text/plain": "Panel(eps)"}}]
    assert "widgets" not in saved["metadata"]


def test_lab_culls_kernels_idle_for_30_minutes_with_no_page_connected(lab):
    kernel = _send(lab, "api/kernels", "POST")
    try:
        log = lab.log()
        assert "Culling kernels with idle durations > 1800 seconds at 300 second intervals" in log
        assert "Culling kernels even with connected clients" not in log
    finally:
        _send(lab, f"api/kernels/{kernel['id']}", "DELETE")


# ------------------------------------------------------------------------------------------
# Binder (repo2docker reads environment.yml, then runs postBuild in the built environment)
# ------------------------------------------------------------------------------------------


def test_binder_uses_the_root_environment_yml():
    # A binder/ or .binder/ folder would make repo2docker ignore the files at the root.
    assert not (ROOT / "binder").exists() and not (ROOT / ".binder").exists()
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    assert "python=3.12" in env["dependencies"]


def test_binder_post_build_installs_the_quiet_lab_settings():
    post_build = ROOT / "postBuild"
    assert post_build.stat().st_mode & 0o111, "postBuild must be executable"
    lines = [line.strip() for line in post_build.read_text().splitlines()]
    assert lines[0].startswith("#!")
    assert "set -euo pipefail" in lines
    assert "python scripts/install_lab_settings.py" in lines


def test_binder_links_in_the_readme_open_lessons_of_this_repository():
    repository = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]
    slug = repository["Repository"].removeprefix("https://github.com/")
    readme = (ROOT / "README.md").read_text()
    links = re.findall(r"https://mybinder\.org/v2/gh/[^)\s`]+", readme)
    assert len(links) >= 2, "README needs the Binder badges"
    for url in links:
        match = re.fullmatch(
            rf"https://mybinder\.org/v2/gh/{re.escape(slug)}/main"
            r"\?urlpath=(lab/tree|voila/render)/notebooks/(\d\d_\w+\.ipynb)", url)
        assert match, url
        assert (ROOT / "notebooks" / match.group(2)).exists(), url
    assert {re.search(r"urlpath=(\w+)", u).group(1) for u in links} == {"lab", "voila"}
