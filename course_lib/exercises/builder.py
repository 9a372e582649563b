"""Build the learner's exercise notebooks from the lessons, and check a learner's answers.

    python -m course_lib.exercises build [--force] [LESSON ...]
    python -m course_lib.exercises check [LESSON ...]
    python -m course_lib.exercises progress [LESSON ...]

A lesson marks each solution between two comment lines; its ``# HINT:`` line is for the
learner, and the cell after the solution calls a checker of :mod:`course_lib.exercises.checks`::

    # BEGIN SOLUTION
    def my_ratio(logp_new, logp_old):
        # HINT: r = π_new / π_old; compute it from the log-probabilities with a single exp.
        return jnp.exp(logp_new - logp_old)
    # END SOLUTION

``build`` writes ``notebooks/exercises/NN_name.ipynb`` for every lesson that has solutions:
the same cells, outputs and execution counts, plus a first markdown cell that explains the
exercises, with each solution replaced by a stub that keeps the function's signature (and
docstring) and raises ``NotImplementedError`` with the hint::

    def my_ratio(logp_new, logp_old):
        raise NotImplementedError(
            "hint: r = π_new / π_old; compute it from the log-probabilities with a single exp."
        )

A solution block may hold functions (stubbed), imports (kept) and assignments such as
``answer = "b"`` (the value becomes ``...``).

Beside each exercise notebook ``build`` writes its *reference*,
``notebooks/exercises/.reference/NN_name.ipynb``: the expected outputs (the solution's), and a
label for every code cell that names its exercise and lesson section. A learner's save
rewrites the outputs stored in the notebook they edit, so ``check`` never compares a notebook
with itself: it runs the reference's cells with the learner's answer cells put in, under
nbval, and each failure is named by exercise (``exercise my_ratio (§ 6 · Exercises)``).

``build`` never overwrites an exercise notebook that was changed since it wrote it (it keeps
the hash of what it wrote in ``notebooks/exercises/.built.json``) unless given ``--force``;
it says which file it left alone. LESSON is a number (``3``, ``03``), a name
(``03_ratio_and_surrogate``) or, for ``check``, the path of an exercise notebook.
"""

from __future__ import annotations

import argparse
import ast
import copy
import io
import json
import re
import subprocess
import sys
import tempfile
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

from course_lib.workspace import (
    WORKSPACE,
    read_record,
    write_record,
    write_unless_edited,
)

ROOT = Path(__file__).resolve().parents[2]
LESSONS = ROOT / "notebooks"
EXERCISES = LESSONS / "exercises"
RECORD = ".built.json"
REFERENCE = ".reference"
LABEL = "course_check"
"""Cell metadata key of a reference's code cells: the name a check reports for the cell."""
ANSWERS = "course_answers"
"""Cell metadata key of a reference's answer cells: the names the learner writes there."""
BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
HINT = re.compile(r"^\s*#\s*HINT:\s?(.*)$")
CHECK_CALL = re.compile(r"\bcheck_\w+\s*\(")
HEADER_ID = "exercise-notebook-header"
DISCUSSION = "exercise-discussion"
"""Cell tag of a lesson cell that discusses an exercise's answer: the exercise notebook shows a
pointer to the lesson instead (markdown) or drops the outputs (code); the reference keeps it."""
ANSWER_COMMENT = "# YOUR ANSWER: replace the `raise NotImplementedError(...)` by your code."

__all__ = [
    "Exercise",
    "ExerciseError",
    "build",
    "build_notebook",
    "check",
    "check_notebook",
    "exercise_lessons",
    "find_exercises",
    "main",
    "reference_notebook",
    "render",
    "restore_solutions",
    "stub_block",
]


class ExerciseError(ValueError):
    """A lesson's exercise markup cannot be turned into an exercise."""


@dataclass(frozen=True)
class Exercise:
    """One solution block of a lesson and the check cell after it.

    Attributes:
      lesson: the lesson's file name, e.g. ``03_ratio_and_surrogate.ipynb``.
      cell: index of the solution cell in the lesson's ``cells``.
      check_cell: index of the code cell after it, the one calling a checker.
      names: the functions (and assigned names) the block defines, in order.
      hints: the hint of each name (same order).
      solution: the block's source between the markers.
      checker: the name of the ``course_lib.exercises.checks`` function the check cell calls.
    """

    lesson: str
    cell: int
    check_cell: int
    names: tuple[str, ...]
    hints: tuple[str, ...]
    solution: str
    checker: str


# ------------------------------------------------------------------------------------------
# Notebook text
# ------------------------------------------------------------------------------------------


def _source(cell: dict) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else src


def _split_lines(text: str) -> list[str]:
    """nbformat's on-disk form of a multi-line string: a list of lines with their newlines."""
    return text.splitlines(keepends=True)


def render(nb: dict) -> str:
    """The notebook as nbformat writes it (sorted keys, indent 1, UTF-8, final newline)."""
    return json.dumps(nb, sort_keys=True, indent=1, ensure_ascii=False) + "\n"


# ------------------------------------------------------------------------------------------
# Solution blocks → stubs
# ------------------------------------------------------------------------------------------


def _blocks(source: str, where: str) -> list[tuple[int, int]]:
    """(begin, end) line indices of each solution block in a cell's source."""
    lines = source.split("\n")
    blocks, start = [], None
    for i, line in enumerate(lines):
        text = line.strip()
        if text == BEGIN:
            if start is not None:
                raise ExerciseError(f"{where}: '{BEGIN}' inside another solution block")
            if line != text:
                raise ExerciseError(f"{where}: '{BEGIN}' must start at column 0")
            start = i
        elif text == END:
            if start is None:
                raise ExerciseError(f"{where}: '{END}' without '{BEGIN}'")
            blocks.append((start, i))
            start = None
    if start is not None:
        raise ExerciseError(f"{where}: '{BEGIN}' without '{END}'")
    return blocks


def _header_end(lines: list[str], node: ast.FunctionDef | ast.AsyncFunctionDef) -> tuple[int, int]:
    """(line index, column) of the ':' that ends a function's signature."""
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    text = "\n".join(lines[start:node.end_lineno]) + "\n"
    depth, seen_def = 0, False
    for tok in tokenize.generate_tokens(io.StringIO(text).readline):
        if tok.type == tokenize.NAME and tok.string == "def" and depth == 0:
            seen_def = True
        elif tok.type == tokenize.OP:
            if tok.string in "([{":
                depth += 1
            elif tok.string in ")]}":
                depth -= 1
            elif tok.string == ":" and depth == 0 and seen_def:
                return start + tok.start[0] - 1, tok.start[1]
    raise ExerciseError(f"cannot find the end of the signature of {node.name}")


def _raise_lines(hint: str, indent: str) -> list[str]:
    """``raise NotImplementedError("hint: ...")``, wrapped to a readable width."""
    message = "hint: " + hint
    pieces = textwrap.wrap(message, width=78 - len(indent), drop_whitespace=False,
                           break_long_words=False, break_on_hyphens=False)
    literals = [json.dumps(p, ensure_ascii=False) for p in pieces]
    return ([f"{indent}raise NotImplementedError("]
            + [f"{indent}    {lit}" for lit in literals] + [f"{indent})"])


def stub_block(block: str, where: str = "solution") -> tuple[str, tuple[str, ...],
                                                            tuple[str, ...]]:
    """Turn a solution block into its stub; return ``(stub, names, hints)``.

    Functions keep their decorators, signature and docstring and raise ``NotImplementedError``
    with their hint; imports are kept; ``name = value`` becomes ``name = ...``. Every name
    needs a hint: a ``# HINT:`` line inside the function, or one outside every function that
    serves the whole block.
    """
    lines = block.split("\n")
    try:
        tree = ast.parse(block)
    except SyntaxError as err:
        raise ExerciseError(f"{where}: the solution does not parse ({err.msg}, line "
                            f"{err.lineno})") from None
    hint_at = {i + 1: m.group(1).strip() for i, line in enumerate(lines)
               if (m := HINT.match(line))}
    spans = []
    for node in tree.body:
        first = node.decorator_list[0].lineno if getattr(node, "decorator_list", None) \
            else node.lineno
        spans.append((first, node.end_lineno))
    shared = [h for n, h in sorted(hint_at.items())
              if not any(a <= n <= b for a, b in spans)]
    out: list[str] = []
    names: list[str] = []
    hints: list[str] = []
    for node, (first, last) in zip(tree.body, spans, strict=True):
        own = [h for n, h in sorted(hint_at.items()) if first <= n <= last]
        hint = " ".join(own or shared)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            if not hint:
                raise ExerciseError(f"{where}: add a '# HINT: ...' line to the solution of "
                                    f"{node.name}() (it becomes the stub's error message)")
            row, col = _header_end(lines, node)
            header = lines[first - 1:row] + [lines[row][:col + 1]]
            first_stmt = node.body[0]
            on_own_line = first_stmt.lineno > row + 1
            indent = " " * (first_stmt.col_offset if on_own_line else node.col_offset + 4)
            doc = ([indent + ast.get_source_segment(block, first_stmt)]
                   if _is_docstring(first_stmt) else [])
            out += header + doc + _raise_lines(hint, indent)
            names.append(node.name)
            hints.append(hint)
        elif isinstance(node, ast.Import | ast.ImportFrom):
            out += lines[first - 1:last]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            if not hint:
                raise ExerciseError(f"{where}: add a '# HINT: ...' line to the solution block")
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            text = " = ".join(ast.get_source_segment(block, t) for t in targets)
            if isinstance(node, ast.AnnAssign):
                text += ": " + ast.get_source_segment(block, node.annotation)
            out += [f"# hint: {hint}", f"{text} = ...  # your answer"]
            assigned = [n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)]
            names += assigned
            hints += [hint] * len(assigned)
        else:
            raise ExerciseError(f"{where}: a solution block may hold functions, imports and "
                                f"assignments, not a {type(node).__name__} statement (line "
                                f"{node.lineno})")
        out.append("")
    if not names:
        raise ExerciseError(f"{where}: the solution block defines nothing")
    while out and not out[-1]:
        out.pop()
    return "\n".join(out), tuple(names), tuple(hints)


def _is_docstring(node: ast.stmt) -> bool:
    return (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str))


def _student_source(source: str, where: str) -> tuple[str, list[tuple[str, tuple, tuple]]]:
    """The cell's source with each solution block replaced by its stub."""
    lines = source.split("\n")
    blocks = _blocks(source, where)
    out, found, pos = [], [], 0
    for begin, end in blocks:
        stub, names, hints = stub_block("\n".join(lines[begin + 1:end]), where)
        out += lines[pos:begin] + [ANSWER_COMMENT] + stub.split("\n")
        found.append(("\n".join(lines[begin + 1:end]), names, hints))
        pos = end + 1
    out += lines[pos:]
    return "\n".join(out), found


# ------------------------------------------------------------------------------------------
# Lessons → exercise notebooks
# ------------------------------------------------------------------------------------------


def _checker_called(source: str) -> str | None:
    match = CHECK_CALL.search(source)
    return match.group(0).rstrip("( ").strip() if match else None


def find_exercises(nb: dict, lesson: str) -> list[Exercise]:
    """Every solution block of a lesson, checked for the markup the builder needs."""
    from course_lib.exercises.checks import CHECKERS

    cells = nb["cells"]
    exercises = []
    for i, cell in enumerate(cells):
        if cell["cell_type"] != "code":
            continue
        source = _source(cell)
        where = f"{lesson}, cell {i}"
        if not _blocks(source, where):
            continue
        _, found = _student_source(source, where)
        nxt = next((j for j in range(i + 1, len(cells)) if cells[j]["cell_type"] == "code"),
                   None)
        checker = _checker_called(_source(cells[nxt])) if nxt is not None else None
        if checker is None:
            raise ExerciseError(f"{where}: the code cell after a solution must call a checker "
                                "of course_lib.exercises.checks (e.g. `_ = check_ratio(my_ratio)`)")
        if checker not in CHECKERS:
            raise ExerciseError(f"{where}: the check cell calls {checker}(), which "
                                "course_lib.exercises.checks does not define")
        for solution, names, hints in found:
            exercises.append(Exercise(lesson, i, nxt, names, hints, solution, checker))
    return exercises


def _header_cell(lesson: str, n: int) -> dict:
    number = lesson.split("_", 1)[0]
    exercises = f"{n} exercise{'s' if n != 1 else ''}"
    text = (
        f"# Exercises of lesson {lesson.removesuffix('.ipynb')}\n"
        "\n"
        f"This is the lesson [`{lesson}`](../{lesson}) with the solutions of its {exercises}\n"
        "taken out. Run the notebook from the top. Each exercise cell (look for `YOUR ANSWER`)\n"
        "holds a function that raises `NotImplementedError` with a hint: replace the `raise` by\n"
        "your code and run the cell, then the check cell under it. The check prints one line:\n"
        "`✓ name: passed on N hidden cases`, or `✗ name: ...` and what is wrong. The stored\n"
        "outputs and hints of this notebook give no answer away.\n"
        "\n"
        "To see where you stand, save the notebook and run in a terminal, in the course folder:\n"
        "\n"
        f"    make check-exercises LESSON={number}\n"
        "\n"
        "It runs this notebook's cells with your answers in a fresh kernel (the check cells and\n"
        "the expected outputs are kept apart from this notebook: saving it cannot change them) and\n"
        "prints one line per exercise: passed, failed with the checker's line, or not started.\n"
        "Without `LESSON=` it covers every lesson. For the strict check, which compares every\n"
        f"output with the solution's under nbval, run `make check-exercises-nbval LESSON={number}`.\n"
        "This notebook was generated by\n"
        "`python -m course_lib.exercises build`, which never overwrites it once you have edited it."
    )
    return {"cell_type": "markdown", "id": HEADER_ID, "metadata": {},
            "source": _split_lines(text)}


def _pass_lines_only(cell: dict) -> None:
    """Rewrite a check cell's stored pass lines to :func:`~.verdict.pass_line`'s form: a
    lesson stored before pass lines stopped giving answers away (``✓ name: correct on 7 cases
    (… the value …)``) still builds an exercise notebook that shows none."""
    from course_lib.exercises.checks.verdict import PASS, pass_line

    for output in cell.get("outputs", []):
        if output.get("output_type") != "stream":
            continue
        lines = []
        for line in "".join(output.get("text", [])).splitlines(keepends=True):
            body = line.rstrip("\n")
            if body.startswith(PASS + " ") and ":" in body:
                name, detail = body[len(PASS) + 1:].split(":", 1)
                line = pass_line(name.strip(), detail) + line[len(body):]
            lines.append(line)
        output["text"] = lines


def _hide_discussions(nb: dict, lesson: str) -> None:
    """The cells tagged ``exercise-discussion``: a pointer to the lesson instead of markdown,
    no outputs for code."""
    for cell in nb["cells"]:
        if DISCUSSION not in cell.get("metadata", {}).get("tags", []):
            continue
        if cell["cell_type"] == "markdown":
            cell["source"] = _split_lines(
                f"*The lesson [`{lesson}`](../{lesson}) discusses this exercise's answer here: "
                "read it once your check passes.*")
        elif cell["cell_type"] == "code":
            cell["outputs"] = []


def build_notebook(lesson_path: Path, hide: bool = True) -> tuple[dict, list[Exercise]]:
    """The exercise notebook of a lesson (a new dict) and its exercises.

    Its check cells store only pass lines that give nothing away, and with ``hide`` (the
    learner's notebook) the cells tagged ``exercise-discussion`` are hidden; without it (what
    the reference is made from) they keep the lesson's text and outputs.
    """
    lesson = lesson_path.name
    nb = json.loads(lesson_path.read_text(encoding="utf-8"))
    exercises = find_exercises(nb, lesson)
    if not exercises:
        raise ExerciseError(f"{lesson} has no '{BEGIN}' block")
    out = copy.deepcopy(nb)
    for i in sorted({e.cell for e in exercises}):
        cell = out["cells"][i]
        student, _ = _student_source(_source(cell), f"{lesson}, cell {i}")
        cell["source"] = _split_lines(student)
    for i in sorted({e.check_cell for e in exercises}):
        _pass_lines_only(out["cells"][i])
    if hide:
        _hide_discussions(out, lesson)
    out["cells"].insert(0, _header_cell(lesson, len(exercises)))
    out["metadata"]["course_exercises"] = {"lesson": lesson}
    return out, exercises


def restore_solutions(exercise_nb: dict, lesson_nb: dict) -> dict:
    """Put the lesson's solutions back into an exercise notebook (for tests): the result is
    the lesson, when the exercise notebook was built from it and not edited since."""
    out = copy.deepcopy(exercise_nb)
    out["cells"] = [c for c in out["cells"] if c.get("id") != HEADER_ID]
    by_id = {c.get("id"): c for c in lesson_nb["cells"]}
    for cell in out["cells"]:
        original = by_id.get(cell.get("id"))
        if original is not None and (BEGIN in _source(original) or DISCUSSION in
                                     original.get("metadata", {}).get("tags", [])):
            cell["source"] = copy.deepcopy(original["source"])
            if "outputs" in original:
                cell["outputs"] = copy.deepcopy(original["outputs"])
    out["metadata"] = copy.deepcopy(out["metadata"])
    out["metadata"].pop("course_exercises", None)
    return out


def _heading(cell: dict) -> str | None:
    """The last markdown heading of a cell, without its ``#`` marks."""
    if cell["cell_type"] != "markdown":
        return None
    found = [line.lstrip("#").strip() for line in _source(cell).splitlines()
             if line.startswith("#")]
    return found[-1] if found else None


def reference_notebook(exercise_nb: dict, exercises: list[Exercise]) -> dict:
    """The expected outputs of an exercise notebook, with a label on every code cell.

    A copy of ``exercise_nb`` (built, so its outputs are the solution's) without images (nbval
    does not compare them). Every code cell gets ``metadata.course_check``: ``exercise NAME
    (§ SECTION)`` for an answer cell and its check cell, ``cell [K] (§ SECTION)`` for the
    others, K being the cell's prompt number after a Run All. Answer cells also get
    ``metadata.course_answers``: the names the learner writes there.
    """
    out = copy.deepcopy(exercise_nb)
    offset = 1 if out["cells"] and out["cells"][0].get("id") == HEADER_ID else 0
    answers: dict[int, tuple[str, ...]] = {}
    checked: dict[int, tuple[str, ...]] = {}
    for e in exercises:
        answers[e.cell + offset] = answers.get(e.cell + offset, ()) + e.names
        checked[e.check_cell + offset] = checked.get(e.check_cell + offset, ()) + e.names
    section, prompt = "top", 0
    for i, cell in enumerate(out["cells"]):
        section = _heading(cell) or section
        if cell["cell_type"] != "code":
            continue
        prompt += 1
        names = answers.get(i) or checked.get(i)
        what = f"exercise {', '.join(names)}" if names else f"cell [{prompt}]"
        cell["metadata"] = {**cell.get("metadata", {}), LABEL: f"{what} (§ {section})"}
        if i in answers:
            cell["metadata"][ANSWERS] = list(answers[i])
        for output in cell.get("outputs", []):
            for mime in ("image/png", "image/jpeg"):
                output.get("data", {}).pop(mime, None)
    return out


def check_notebook(learner_nb: dict, reference_nb: dict) -> dict:
    """The notebook a check runs: the reference with the learner's answers put in.

    Every reference cell keeps its source and its expected outputs, except answer cells,
    which take the source of the learner's cell with the same id. Code cells the learner
    added run where they were added, their outputs not compared (``nbval-ignore-output``).
    An answer cell the learner deleted keeps the stub, so its check fails.
    """
    learner = {c.get("id"): c for c in learner_nb["cells"]}
    reference_ids = {c.get("id") for c in reference_nb["cells"]}
    added: dict[str | None, list[dict]] = {}
    previous = None
    for cell in learner_nb["cells"]:
        if cell.get("id") in reference_ids:
            previous = cell.get("id")
        elif cell["cell_type"] == "code":
            extra = copy.deepcopy(cell)
            extra["outputs"] = []
            tags = extra.setdefault("metadata", {}).setdefault("tags", [])
            tags.append("nbval-ignore-output")
            extra["metadata"][LABEL] = "a cell you added"
            added.setdefault(previous, []).append(extra)
    out = copy.deepcopy(reference_nb)
    cells = list(added.get(None, []))
    for cell in out["cells"]:
        mine = learner.get(cell.get("id"))
        if ANSWERS in cell.get("metadata", {}) and mine is not None:
            cell["source"] = copy.deepcopy(mine["source"])
        cells.append(cell)
        cells += added.get(cell.get("id"), [])
    out["cells"] = cells
    return out


def exercise_lessons(lesson_dir: Path = LESSONS) -> list[Path]:
    """The lessons (``NN_*.ipynb`` directly in ``lesson_dir``) that contain a solution block."""
    return [p for p in sorted(lesson_dir.glob("[0-9][0-9]_*.ipynb"))
            if BEGIN in p.read_text(encoding="utf-8")]


def _select(names: list[str], lesson_dir: Path) -> list[Path]:
    if not names:
        return exercise_lessons(lesson_dir)
    chosen = []
    for name in names:
        stem = Path(name).name.removesuffix(".ipynb")
        number = f"{int(stem):02d}_" if stem.isdigit() else None
        matches = [p for p in sorted(lesson_dir.glob("[0-9][0-9]_*.ipynb"))
                   if p.stem == stem or (number and p.name.startswith(number))]
        if len(matches) != 1:
            raise ExerciseError(f"no single lesson matches {name!r} in {lesson_dir}")
        chosen.append(matches[0])
    return chosen


def build(lessons: list[str] | None = None, force: bool = False,
          lesson_dir: Path = LESSONS, out_dir: Path = EXERCISES) -> list[tuple[str, str]]:
    """Write the exercise notebooks and their references; return ``(status, message)`` per lesson.

    ``status`` is ``"wrote"``, ``"up to date"``, ``"left alone"`` (the notebook exists and
    differs from what this builder last wrote, i.e. a learner edited it, and ``force`` is
    False) or ``"skipped"`` (the lesson's exercise markup is incomplete; the message says
    what to fix). Lessons named explicitly raise :class:`ExerciseError` instead of being
    skipped. A reference is always brought up to date: no learner edits it.
    """
    paths = _select(list(lessons or []), lesson_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = read_record(out_dir, RECORD)
    report = []
    for path in paths:
        try:
            nb, exercises = build_notebook(path)
        except ExerciseError as err:
            if lessons:
                raise
            report.append(("skipped", f"skipped: {err}"))
            continue
        reference = out_dir / REFERENCE / path.name
        reference.parent.mkdir(exist_ok=True)
        expected = render(reference_notebook(build_notebook(path, hide=False)[0], exercises))
        if not reference.exists() or reference.read_text(encoding="utf-8") != expected:
            reference.write_text(expected, encoding="utf-8")
        target = out_dir / path.name
        status = write_unless_edited(target, render(nb), record, path.name, force)
        report.append((status, {
            "wrote": f"wrote {_shown(target)} ({len(exercises)} exercises)",
            "up to date": f"up to date: {_shown(target)}",
            "left alone": (f"left alone: {_shown(target)} (changed since it was built, e.g. by "
                           "your answers; rebuild it with --force, after saving your work "
                           "elsewhere)"),
        }[status]))
    write_record(out_dir, RECORD, record)
    return report


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------

NBVAL_ARGS = ["--nbval", "--nbval-current-env", "--nbval-cell-timeout=300",
              "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg")]


def _learner_notebooks(names: list[str], out_dir: Path) -> list[Path]:
    """The exercise notebooks a learner checks: paths as given; lessons (number or name) in
    their working copy (``my_notebooks/exercises/``, see ``make lab``) when there is one, else
    in ``out_dir``."""
    work = WORKSPACE / "exercises"
    where = work if out_dir == EXERCISES and work.is_dir() else out_dir
    if not names:
        return sorted(where.glob("[0-9][0-9]_*.ipynb"))
    paths = []
    for name in names:
        path = Path(name)
        if path.suffix == ".ipynb" and path.exists():
            paths.append(path)
        else:
            paths.append(where / _select([name], LESSONS)[0].name)
    return paths


def check(lessons: list[str] | None = None, out_dir: Path = EXERCISES) -> int:
    """Check a learner's saved exercise notebooks; return the exit status (0: all right).

    Each notebook is merged with its reference (:func:`check_notebook`) into a temporary
    folder, and nbval runs the result: every output is compared with the solution's, and a
    failure is reported by exercise name and section.
    """
    paths = _learner_notebooks(list(lessons or []), out_dir)
    missing = [p for p in paths if not p.exists()]
    references = [out_dir / REFERENCE / p.name for p in paths]
    if missing or not paths:
        print("no exercise notebook " + ", ".join(_shown(p) for p in missing)
              + ": run `python -m course_lib.exercises build` first")
        return 2
    if absent := [r for r in references if not r.exists()]:
        print("no reference for " + ", ".join(_shown(r) for r in absent)
              + ": run `python -m course_lib.exercises build` first")
        return 2
    with tempfile.TemporaryDirectory(prefix="course-check-") as tmp:
        merged = []
        for path, reference in zip(paths, references, strict=True):
            nb = check_notebook(json.loads(path.read_text(encoding="utf-8")),
                                json.loads(reference.read_text(encoding="utf-8")))
            merged.append(Path(tmp) / path.name)
            merged[-1].write_text(render(nb), encoding="utf-8")
        print("checking " + ", ".join(_shown(p) for p in paths)
              + " against the solutions' outputs", flush=True)
        cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p",
               "course_lib.exercises", "-o", "addopts=", "--rootdir", tmp, "-q",
               *NBVAL_ARGS, *map(str, merged)]
        return subprocess.run(cmd, cwd=tmp, check=False).returncode


def pytest_collection_modifyitems(items) -> None:
    """pytest hook (``-p course_lib.exercises``): name nbval's cells by their reference label,
    so a failure reads ``03_ratio_and_surrogate.ipynb::exercise my_ratio (§ ...)``, not
    ``Cell 13``. Each labelled cell item is built again under its label, numbered as its
    prompt after a Run All (nbval counts from 0)."""
    for k, item in enumerate(items):
        label = getattr(item, "cell", {}).get("metadata", {}).get(LABEL)
        if label:
            named = type(item).from_parent(item.parent, name=label, cell_num=item.cell_num + 1,
                                           cell=item.cell, options=item.options)
            named.reportinfo = lambda named=named: (named.path, 0, named.nodeid)
            items[k] = named


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m course_lib.exercises",
                                     description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="write notebooks/exercises/ from the lessons")
    b.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    b.add_argument("--force", action="store_true",
                   help="overwrite exercise notebooks even if they were edited")
    b.add_argument("--lesson-dir", type=Path, default=LESSONS, help=argparse.SUPPRESS)
    b.add_argument("--out-dir", type=Path, default=None, help=argparse.SUPPRESS)
    c = sub.add_parser("check", help="check your saved exercise notebooks against the solutions")
    c.add_argument("lessons", nargs="*",
                   help="lesson numbers or names, or exercise notebook paths (default: all)")
    c.add_argument("--out-dir", type=Path, default=EXERCISES, help=argparse.SUPPRESS)
    g = sub.add_parser("progress", help="one line per exercise: passed, failed (and why) or "
                                        "not started, and a total")
    g.add_argument("lessons", nargs="*",
                   help="lesson numbers or names, or exercise notebook paths (default: all)")
    g.add_argument("--out-dir", type=Path, default=EXERCISES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            out_dir = args.out_dir or args.lesson_dir / "exercises"
            report = build(args.lessons, args.force, args.lesson_dir, out_dir)
            for _, message in report:
                print(message)
            return 1 if any(status == "skipped" for status, _ in report) else 0
        if args.command == "progress":
            from course_lib.exercises.progress import progress

            return progress(args.lessons, args.out_dir)
        return check(args.lessons, args.out_dir)
    except ExerciseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
