"""How lessons behave outside a live notebook page, headless: what a saved panel output keeps
(``course_lib.widgets.lab.drop_widget_views``, the server's pre-save hook), what lecture mode
hides (``note``), and that a progress bar leaves no output pointing at a closed widget."""

from __future__ import annotations

import base64
import copy
import json
import re
from pathlib import Path

import nbformat
import pytest
from jupyter_server.utils import import_item
from nbclient import NotebookClient

from course_lib.widgets.l07_ppo_clip import clip_panel
from course_lib.widgets.lab import WIDGET_VIEW, drop_widget_views, in_lecture_mode, note
from course_lib.widgets.panel import STATIC_NOTE

ROOT = Path(__file__).resolve().parents[1]


def _notebook_with(outputs: list[dict]) -> dict:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("panel", execution_count=1),
                nbformat.v4.new_markdown_cell("text")]
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
    nb = json.loads(nbformat.writes(nb))
    nb["cells"][0]["outputs"] = outputs
    return nb


@pytest.fixture(scope="module")
def panel():
    return clip_panel(eps=0.2)


def test_a_panel_carries_a_static_picture_with_the_line_that_says_how_to_get_its_sliders_back(
        panel):
    data = panel._repr_mimebundle_()
    assert WIDGET_VIEW in data
    page = data["text/html"]
    src = re.search(r'<img src="data:image/png;base64,([^"]+)"', page).group(1)
    assert base64.b64decode(src) == panel.png() == data["image/png"]
    assert panel.readout.value in page
    assert STATIC_NOTE in page
    assert STATIC_NOTE == "Static picture: run this cell again (Shift+Enter) to move the sliders."
    assert data["text/plain"] == "Panel(eps)"


def test_a_saved_panel_output_keeps_its_picture_and_loses_its_widget_view(panel):
    data = {k: (base64.b64encode(v).decode() if isinstance(v, bytes) else v)
            for k, v in panel._repr_mimebundle_().items()}
    bar = {"output_type": "display_data", "metadata": {},
           "data": {WIDGET_VIEW: {"model_id": "abc", "version_major": 2, "version_minor": 0}}}
    text = {"output_type": "stream", "name": "stdout", "text": "hello\n"}
    shown = {"output_type": "execute_result", "execution_count": 1, "metadata": {},
             "data": data}
    model = {"type": "notebook", "content": _notebook_with([bar, text, shown])}
    drop_widget_views(model)
    nb = model["content"]
    outputs = nb["cells"][0]["outputs"]
    assert outputs[0] == text                      # the widget-only output is gone
    assert set(outputs[1]["data"]) == {"text/html", "image/png", "text/plain"}
    assert STATIC_NOTE in outputs[1]["data"]["text/html"]
    assert "widgets" not in nb["metadata"]
    nbformat.validate(nbformat.from_dict(nb))


def test_the_save_hook_leaves_other_files_alone():
    for model in ({"type": "file", "content": "x", "format": "text"},
                  {"type": "directory", "content": None},
                  {"type": "notebook", "content": None}):
        before = copy.deepcopy(model)
        drop_widget_views(model, path="x", contents_manager=None)
        assert model == before


def test_the_lab_server_config_names_the_save_hook_and_culls_idle_kernels():
    config = json.loads((ROOT / "jupyter" / "jupyter_server_config.json").read_text())
    assert import_item(config["ContentsManager"]["pre_save_hook"]) is drop_widget_views
    assert config["MappingKernelManager"] == {
        "cull_idle_timeout": 1800, "cull_interval": 300, "cull_connected": False}


def test_the_stored_lesson_07_has_no_widget_views_and_its_panels_say_how_to_get_them_back():
    nb = nbformat.read(ROOT / "notebooks" / "07_ppo_clip.ipynb", as_version=4)
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert [o for o in outputs if WIDGET_VIEW in o.get("data", {})] == []
    panels = [o for o in outputs if o.get("data", {}).get("text/plain") == "Panel(eps)"]
    assert len(panels) == 2
    assert all(STATIC_NOTE in o.data["text/html"] for o in panels)


@pytest.mark.parametrize("variable", ["VOILA_KERNEL_ID", "VOILA_SERVER_URL", "VOILA_BASE_URL"])
def test_note_prints_in_a_notebook_and_not_in_lecture_mode(monkeypatch, capsys, variable):
    for name in ("VOILA_KERNEL_ID", "VOILA_SERVER_URL", "VOILA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert not in_lecture_mode()
    note("redraw:", 12, "ms")
    assert capsys.readouterr().out == "redraw: 12 ms\n"
    monkeypatch.setenv(variable, "x")
    assert in_lecture_mode()
    note("redraw:", 12, "ms")
    assert capsys.readouterr().out == ""


def _run_in_a_kernel(source: str) -> list[dict]:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    NotebookClient(nb, timeout=120, kernel_name="python3").execute()
    return nb.cells[0].outputs


def test_a_progress_bar_in_a_kernel_leaves_no_widget_behind():
    """tqdm's notebook bar with ``leave=False`` closes its widget and left the output pointing
    at it: Voilà showed "Error displaying widget: model not found" there."""
    outputs = _run_in_a_kernel(
        "from course_lib.rl.train import _progress, _tracked\n"
        "with _progress(3, 'ppo CartPole-v1', disable=False) as bar:\n"
        "    bar.update(3)\n"
        "print(sum(_tracked(range(4), 4, 'ppo', disable=False)))\n"
    )
    assert [o for o in outputs if WIDGET_VIEW in o.get("data", {})] == []
    assert [o.get("text") for o in outputs if o.output_type == "stream"] == ["6\n"]
    assert [o.output_type for o in outputs] == ["display_data", "display_data", "stream"]
    assert all(o.data == {"text/plain": ""} for o in outputs[:2])
