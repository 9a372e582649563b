"""``make check-exercises``: the progress table (issue 16), on a fresh build and after edits.

A fresh build lists every exercise as not started without running anything; a right answer
passes, a wrong one fails with the checker's line, and an untouched one stays not started. The
verdict comes from a fresh run of the reference's check cells, so a saved notebook whose check
cell was edited to print a pass line does not pass.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from course_lib.exercises import builder as ex
from course_lib.exercises import progress as pg

ROOT = Path(__file__).resolve().parents[1]


def _code(i, src, outputs=()):
    return {"cell_type": "code", "execution_count": i, "id": f"c{i}", "metadata": {},
            "outputs": list(outputs), "source": src.splitlines(keepends=True)}


def _stream(text):
    return [{"name": "stdout", "output_type": "stream", "text": [text]}]


def _lesson(tmp_path: Path) -> Path:
    """A lesson with two exercises (the ratio, the surrogate), executed."""
    nb = {"cells": [
        {"cell_type": "markdown", "id": "m0", "metadata": {}, "source": ["# A lesson\n"]},
        _code(1, "import jax\nimport jax.numpy as jnp"),
        _code(2, "# BEGIN SOLUTION\ndef my_ratio(logp_new, logp_old):\n"
                 "    # HINT: one exponential of a difference.\n"
                 "    return jnp.exp(logp_new - logp_old)\n# END SOLUTION"),
        _code(3, "from course_lib.exercises.checks import check_ratio\n\n_ = check_ratio(my_ratio)",
              _stream("✓ ratio: passed on 7 hidden cases\n")),
        _code(4, "# BEGIN SOLUTION\ndef my_surrogate(logp_new, logp_old, advantages):\n"
                 "    # HINT: the ratio with π_old held fixed, times A, averaged.\n"
                 "    r = jnp.exp(logp_new - jax.lax.stop_gradient(logp_old))\n"
                 "    return jnp.mean(r * advantages)\n# END SOLUTION"),
        _code(5, "from course_lib.exercises.checks import check_surrogate\n\n"
                 "_ = check_surrogate(my_surrogate)",
              _stream("✓ surrogate: passed on 8 hidden cases\n")),
    ], "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                   "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}
    lessons = tmp_path / "notebooks"
    lessons.mkdir(exist_ok=True)
    path = lessons / "03_mini.ipynb"
    path.write_text(ex.render(nb), encoding="utf-8")
    ex.build(lesson_dir=lessons, out_dir=lessons / "exercises")
    return lessons / "exercises" / path.name


def _answer(built: Path, name: str, body: str, saved: Path | None = None) -> Path:
    nb = json.loads(built.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        if f"def {name}(" in ex._source(cell) and "check_" not in ex._source(cell):
            cell["source"] = body.splitlines(keepends=True)
    target = saved or built
    target.write_text(ex.render(nb), encoding="utf-8")
    return target


def _table(built: Path) -> str:
    return pg.format_table(pg.notebook_rows(built, built.parent / ex.REFERENCE / built.name))


def test_a_fresh_build_lists_every_exercise_as_not_started_without_running(tmp_path,
                                                                          monkeypatch):
    built = _lesson(tmp_path)
    monkeypatch.setattr(pg, "_execute", lambda *a, **k: pytest.fail("nothing should run"))
    table = _table(built)
    assert table.splitlines()[1:] == [
        "03      my_ratio      not started",
        "03      my_surrogate  not started",
        "total: 0 passed, 0 failed, 2 not started (2 exercises)",
    ], table


def test_the_committed_exercise_notebooks_fresh_are_all_not_started(tmp_path, capsys):
    out = tmp_path / "exercises"
    shutil.copytree(ROOT / "notebooks" / "exercises", out)
    assert pg.progress(out_dir=out) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].split() == ["lesson", "exercise", "status"]
    assert all(line.endswith("not started") for line in lines[1:-1])
    n = len(lines) - 2
    assert lines[-1] == f"total: 0 passed, 0 failed, {n} not started ({n} exercises)"
    assert n >= 20


RIGHT = "def my_ratio(logp_new, logp_old):\n    return jnp.exp(logp_new - logp_old)\n"
WRONG = "def my_ratio(logp_new, logp_old):\n    return jnp.exp(logp_old - logp_new)\n"


@pytest.mark.slow
def test_after_a_right_and_a_wrong_edit_the_table_says_passed_and_failed_with_the_line(
        tmp_path):
    built = _lesson(tmp_path)
    _answer(built, "my_ratio", RIGHT)
    lines = _table(built).splitlines()
    assert lines[1] == "03      my_ratio      passed     ✓ ratio: passed on 7 hidden cases"
    assert lines[2] == "03      my_surrogate  not started"
    assert lines[3] == "total: 1 passed, 0 failed, 1 not started (2 exercises)"

    _answer(built, "my_ratio", WRONG)
    _answer(built, "my_surrogate",
            "def my_surrogate(logp_new, logp_old, advantages):\n"
            "    return jnp.mean(jnp.exp(logp_new - logp_old) * advantages)\n")
    lines = _table(built).splitlines()
    assert lines[1].startswith("03      my_ratio      failed     ✗ ratio: your ratio is inverted")
    assert lines[2].startswith("03      my_surrogate  failed     ✗ surrogate: the value is "
                               "right but the gradient also flows through logp_old")
    assert lines[3] == "total: 0 passed, 2 failed, 0 not started (2 exercises)"


@pytest.mark.slow
def test_a_check_cell_edited_to_print_a_pass_line_does_not_pass(tmp_path):
    built = _lesson(tmp_path)
    _answer(built, "my_ratio", WRONG)
    nb = json.loads(built.read_text(encoding="utf-8"))
    check = next(c for c in nb["cells"] if "check_ratio(" in ex._source(c))
    check["source"] = ["print('✓ ratio: passed on 7 hidden cases')"]
    built.write_text(ex.render(nb), encoding="utf-8")
    assert "03      my_ratio      failed     ✗ ratio: your ratio is inverted" in _table(built)


@pytest.mark.slow
def test_make_check_exercises_runs_the_progress_command(tmp_path):
    built = _lesson(tmp_path)
    _answer(built, "my_ratio", RIGHT)
    run = subprocess.run([sys.executable, "-m", "course_lib.exercises", "progress", str(built),
                          "--out-dir", str(built.parent)], capture_output=True, text=True,
                         check=False, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == ("total: 1 passed, 0 failed, 1 not started "
                                                   "(2 exercises)")
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "check-exercises: $(STAMP)\n\t$(PY) -m course_lib.exercises progress $(LESSON)" \
        in makefile
