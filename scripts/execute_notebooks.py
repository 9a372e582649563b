"""Execute lessons in place and store them the way nbval expects (DESIGN §6).

    python scripts/execute_notebooks.py notebooks/01_the_cliff.ipynb [...]

Each notebook runs top to bottom in a fresh kernel from its own folder; on success it is
written back with outputs and execution counts, minus widget state and widget views, as
JupyterLab saves a lesson (``course_lib.widgets.lab.drop_widget_views``, the server's
pre-save hook): a panel is stored as its picture, its readout and the line that says how to
get its sliders back. A failing notebook is left untouched and the script exits non-zero.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import nbformat
from jupyter_client.kernelspec import KernelSpecManager
from nbconvert.preprocessors import ExecutePreprocessor

from course_lib.widgets.lab import drop_widget_views


def kernelspec() -> dict:
    """The ``python3`` kernelspec as JupyterLab writes it, so opening a lesson changes nothing."""
    spec = KernelSpecManager().get_kernel_spec("python3")
    return {"display_name": spec.display_name, "language": spec.language, "name": "python3"}


def execute(path: Path, timeout: int = 600) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(path.parent)}}
    )
    elapsed = time.perf_counter() - start
    nb.metadata["kernelspec"] = kernelspec()
    drop_widget_views({"type": "notebook", "content": nb})
    nbformat.write(nb, path)
    subprocess.run(
        [sys.executable, "-m", "nbstripout", "--keep-output", "--keep-count",
         "--extra-keys", "metadata.widgets", str(path)],
        check=True,
    )
    return elapsed


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__)
        return 2
    for p in paths:
        seconds = execute(Path(p))
        print(f"{p}: executed in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
