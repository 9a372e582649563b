"""The learner's working copy (``make lab`` opens ``my_notebooks/``): running and saving lessons
there never blocks a ``git pull`` of the course, and a course update never loses a learner's work."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from course_lib import workspace as ws

ROOT = Path(__file__).resolve().parents[1]


def _nb(text: str) -> str:
    return json.dumps({"cells": [{"cell_type": "markdown", "id": "a", "metadata": {},
                                  "source": [text]}], "metadata": {}, "nbformat": 4,
                       "nbformat_minor": 5}, indent=1) + "\n"


def _course(tmp_path: Path) -> Path:
    course = tmp_path / "notebooks"
    (course / "exercises" / ".reference").mkdir(parents=True)
    (course / "01_a.ipynb").write_text(_nb("lesson 1"))
    (course / "02_b.ipynb").write_text(_nb("lesson 2"))
    (course / "exercises" / "01_a.ipynb").write_text(_nb("exercises 1"))
    (course / "exercises" / ".reference" / "01_a.ipynb").write_text(_nb("reference"))
    return course


def test_the_first_sync_copies_lessons_and_exercises_but_not_references(tmp_path):
    course, mine = _course(tmp_path), tmp_path / "mine"
    assert ws.sync(mine, course) == [f"copied 3 notebooks of the course into {mine}"]
    copied = sorted(p.relative_to(mine).as_posix() for p in mine.rglob("*.ipynb"))
    assert copied == ["01_a.ipynb", "02_b.ipynb", "exercises/01_a.ipynb"]
    assert (mine / "01_a.ipynb").read_text() == (course / "01_a.ipynb").read_text()
    assert ws.sync(mine, course) == []


def test_an_unsaved_copy_follows_the_course_and_a_saved_one_is_kept(tmp_path):
    course, mine = _course(tmp_path), tmp_path / "mine"
    ws.sync(mine, course)
    learners = _nb("lesson 1, run and saved by the learner")
    (mine / "01_a.ipynb").write_text(learners)
    (course / "01_a.ipynb").write_text(_nb("lesson 1, revised"))
    (course / "02_b.ipynb").write_text(_nb("lesson 2, revised"))
    (course / "03_c.ipynb").write_text(_nb("lesson 3"))

    said = ws.sync(mine, course)
    assert (mine / "01_a.ipynb").read_text() == learners
    assert (mine / "02_b.ipynb").read_text() == _nb("lesson 2, revised")
    assert (mine / "03_c.ipynb").read_text() == _nb("lesson 3")
    assert said == [f"copied 1 notebooks of the course into {mine}",
                    f"updated {mine / '02_b.ipynb'} (you had not saved it since it was copied)",
                    (f"kept your {mine / '01_a.ipynb'}; the course has a newer version: "
                    f"{course / '01_a.ipynb'}")]


def test_a_file_saved_with_another_indentation_counts_as_unsaved(tmp_path):
    course, mine = _course(tmp_path), tmp_path / "mine"
    ws.sync(mine, course)
    text = (mine / "02_b.ipynb").read_text()
    (mine / "02_b.ipynb").write_text(json.dumps(json.loads(text), indent=4))
    (course / "02_b.ipynb").write_text(_nb("lesson 2, revised"))
    ws.sync(mine, course)
    assert (mine / "02_b.ipynb").read_text() == _nb("lesson 2, revised")


def test_the_working_copy_is_ignored_by_git_and_is_what_make_lab_opens():
    ignored = subprocess.run(["git", "check-ignore", "-q", "my_notebooks/01_the_cliff.ipynb"],
                             cwd=ROOT, check=False)
    assert ignored.returncode == 0, "my_notebooks/ must be in .gitignore"
    dry = subprocess.run(["make", "-n", "-s", "lab"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    assert "-m course_lib.workspace my_notebooks" in dry
    assert "--notebook-dir=my_notebooks" in dry


def test_committed_lessons_carry_the_kernel_metadata_a_learners_kernel_writes():
    """So that merely opening and saving a lesson does not show it as changed in notebooks/."""
    from jupyter_client.kernelspec import KernelSpecManager

    spec = KernelSpecManager().get_kernel_spec("python3")
    for path in sorted(ws.COURSE.glob(ws.PATTERNS[0])) + sorted(ws.COURSE.glob(ws.PATTERNS[1])):
        kernelspec = json.loads(path.read_text(encoding="utf-8"))["metadata"]["kernelspec"]
        assert kernelspec == {"display_name": spec.display_name, "language": spec.language,
                              "name": "python3"}, path.name
