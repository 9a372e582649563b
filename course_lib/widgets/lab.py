"""How a lesson behaves in JupyterLab, in lecture mode (Voilà) and in a stored notebook.

* :func:`in_lecture_mode` says whether the kernel runs under Voilà (``make present``), which
  shows every output of every cell with the code hidden; :func:`note` prints a line meant for
  the notebook reader only (a check's verdict, a timing), so lecture mode stays clean.
* :func:`drop_widget_views` is the Jupyter server's ``ContentsManager.pre_save_hook``
  (``jupyter/jupyter_server_config.json``) and what ``scripts/execute_notebooks.py`` applies:
  a saved output keeps its static representations (a panel's picture and the line that says
  how to get its sliders back, see ``Panel.static_html``) and loses the widget view, whose
  model dies with the kernel. A reloaded or reopened lesson then shows that line, never
  "Error displaying widget: model not found".
"""

from __future__ import annotations

import os
import sys
from typing import Any

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"

VOILA_VARIABLES = ("VOILA_KERNEL_ID", "VOILA_SERVER_URL", "VOILA_BASE_URL")
"""Set by Voilà in the environment of the kernels it starts (``voila.utils.ENV_VARIABLE``)."""


def in_lecture_mode() -> bool:
    """True in a kernel that Voilà started (lecture mode), False in JupyterLab and headless."""
    return any(name in os.environ for name in VOILA_VARIABLES)


def note(*parts: Any, sep: str = " ") -> None:
    """Print a line for the notebook reader; lecture mode (Voilà) shows nothing."""
    if not in_lecture_mode():
        print(*parts, sep=sep, file=sys.stdout)


def drop_widget_views(model: dict, **_kwargs: Any) -> None:
    """Remove widget views (and saved widget state) from a notebook model about to be saved.

    Signature of ``ContentsManager.pre_save_hook``: ``model`` is the contents model
    (``model["content"]`` the notebook as a dict), edited in place; other models pass
    through. An output left with no data at all (a widget with no static form) is removed.
    """
    if model.get("type") != "notebook" or not isinstance(model.get("content"), dict):
        return
    nb = model["content"]
    nb.get("metadata", {}).pop("widgets", None)
    for cell in nb.get("cells", []):
        if cell.get("cell_type") != "code":
            continue
        kept = []
        for output in cell.get("outputs", []):
            data = output.get("data")
            if isinstance(data, dict) and WIDGET_VIEW in data:
                del data[WIDGET_VIEW]
                if not data:
                    continue
            kept.append(output)
        cell["outputs"] = kept
