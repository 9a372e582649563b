"""Execute lessons in place and store them the way nbval expects (DESIGN §6).

    python scripts/execute_notebooks.py notebooks/01_the_cliff.ipynb [...]

Each notebook runs top to bottom in a fresh kernel from its own folder; on success it is
written back with outputs and execution counts, minus widget state. A failing notebook
is left untouched and the script exits non-zero.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import nbformat
from nbconvert.preprocessors import ExecutePreprocessor


def execute(path: Path, timeout: int = 600) -> float:
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    ExecutePreprocessor(timeout=timeout, kernel_name="python3").preprocess(
        nb, {"metadata": {"path": str(path.parent)}}
    )
    elapsed = time.perf_counter() - start
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
