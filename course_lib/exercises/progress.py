"""The learner's progress table: every exercise, passed, failed (with the checker's line) or
not started.

    python -m course_lib.exercises progress [LESSON ...]      (make check-exercises)

For each exercise notebook a learner has (``my_notebooks/exercises/`` after ``make lab``, else
``notebooks/exercises/``), an exercise whose answer cell still holds the builder's stub is *not
started*. When a notebook has a started exercise, the notebook a check runs
(:func:`~course_lib.exercises.builder.check_notebook`: the reference's cells with the learner's
answer cells put in, so a save cannot fake a pass) is executed once in a fresh kernel, and each
exercise's status is the line its check cell printed: ``✓ ...`` passed, ``✗ ...`` failed. A
notebook with nothing started is not run, so the table of a fresh build prints at once::

    lesson  exercise                 status
    03      my_ratio                 passed     ✓ ratio: passed on 7 hidden cases
    03      my_surrogate             failed     ✗ surrogate: the value is right but ...
    03      my_clipped_term          not started
    total: 1 passed, 1 failed, 1 not started (3 exercises)
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from course_lib.exercises import builder as b
from course_lib.exercises.checks.verdict import FAIL, PASS

__all__ = ["Row", "format_table", "notebook_rows", "progress"]

NOT_STARTED = "not started"


@dataclass(frozen=True)
class Row:
    """One exercise of the table: its lesson number, name, status and the checker's line."""

    lesson: str
    name: str
    status: str  # "passed", "failed" or "not started"
    line: str = ""


def _norm(source: str) -> str:
    return "\n".join(line.rstrip() for line in source.strip().splitlines())


def _exercises(reference: dict) -> list[tuple[str, int, int]]:
    """(name, answer cell index, check cell index) of every exercise of a reference."""
    cells = reference["cells"]
    out = []
    for i, cell in enumerate(cells):
        names = cell.get("metadata", {}).get(b.ANSWERS)
        if not names:
            continue
        label = cell["metadata"].get(b.LABEL)
        check = next((j for j in range(i + 1, len(cells))
                      if cells[j]["cell_type"] == "code"
                      and cells[j].get("metadata", {}).get(b.LABEL) == label), None)
        out.append((", ".join(names), i, check))
    return out


def _verdict_line(cell: dict) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            return (f"{FAIL} the check cell raised {output.get('ename', 'an error')}: "
                    f"{output.get('evalue', '')}".strip())
        for line in "".join(output.get("text", [])).splitlines():
            if line.startswith((PASS + " ", FAIL + " ")):
                return line
    return None


def _execute(nb: dict, timeout: int) -> dict:
    import nbformat
    from nbclient import NotebookClient

    node = nbformat.reads(json.dumps(nb), as_version=4)
    with tempfile.TemporaryDirectory(prefix="course-progress-") as tmp:
        client = NotebookClient(node, timeout=timeout, kernel_name="python3",
                                allow_errors=True, resources={"metadata": {"path": tmp}})
        client.execute()
    return json.loads(nbformat.writes(node))


def notebook_rows(learner_path: Path, reference_path: Path, timeout: int = 300) -> list[Row]:
    """The rows of one exercise notebook (runs it only when an exercise is started)."""
    lesson = learner_path.name[:2]
    reference = json.loads(reference_path.read_text(encoding="utf-8"))
    learner = json.loads(learner_path.read_text(encoding="utf-8"))
    mine = {c.get("id"): c for c in learner["cells"]}
    found = _exercises(reference)
    started = {}
    for name, i, _ in found:
        cell = reference["cells"][i]
        own = mine.get(cell.get("id"))
        started[name] = own is not None and _norm(b._source(own)) != _norm(b._source(cell))
    if not any(started.values()):
        return [Row(lesson, name, NOT_STARTED) for name, _, _ in found]
    ran = _execute(b.check_notebook(learner, reference), timeout)
    by_id = {c.get("id"): c for c in ran["cells"]}
    rows = []
    for name, _, check in found:
        if not started[name]:
            rows.append(Row(lesson, name, NOT_STARTED))
            continue
        cell = by_id.get(reference["cells"][check].get("id")) if check is not None else None
        line = _verdict_line(cell) if cell is not None else None
        if line is None:
            rows.append(Row(lesson, name, "failed",
                            f"{FAIL} the check printed nothing: did an earlier cell fail?"))
        else:
            rows.append(Row(lesson, name, "passed" if line.startswith(PASS) else "failed",
                            line))
    return rows


def format_table(rows: list[Row]) -> str:
    width = max([len("exercise")] + [len(r.name) for r in rows]) + 2
    out = [f"{'lesson':8s}{'exercise':{width}s}status"]
    for r in rows:
        status = f"{r.status:11s}{r.line}" if r.line else r.status
        out.append(f"{r.lesson:8s}{r.name:{width}s}{status}".rstrip())
    counts = {s: sum(r.status == s for r in rows) for s in ("passed", "failed", NOT_STARTED)}
    out.append(f"total: {counts['passed']} passed, {counts['failed']} failed, "
               f"{counts[NOT_STARTED]} not started ({len(rows)} exercises)")
    return "\n".join(out)


def progress(lessons: list[str] | None = None, out_dir: Path = b.EXERCISES,
             timeout: int = 300) -> int:
    """Print the progress table of the learner's exercise notebooks; return 0 (2 when there is
    nothing to read: no exercise notebook or no reference, run ``build`` first)."""
    paths = b._learner_notebooks(list(lessons or []), out_dir)
    missing = [p for p in paths if not p.exists()]
    if missing or not paths:
        print("no exercise notebook " + ", ".join(b._shown(p) for p in missing)
              + ": run `python -m course_lib.exercises build` first")
        return 2
    rows: list[Row] = []
    for path in paths:
        reference = out_dir / b.REFERENCE / path.name
        if not reference.exists():
            print(f"no reference for {b._shown(path)}: run `python -m course_lib.exercises "
                  "build` first")
            return 2
        rows += notebook_rows(path, reference, timeout)
    print(format_table(rows), flush=True)
    return 0
