"""Build the learner's exercise notebooks from the lessons, and check a learner's answers.

    python -m course_lib.exercises build [--force] [LESSON ...]
    python -m course_lib.exercises check [LESSON ...]

A lesson marks each solution between two comment lines; its ``# HINT:`` line is for the
learner, and the cell after the solution calls a checker of :mod:`course_lib.checks`::

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

The stored outputs stay the solution's, so the check cell's stored output is the checker's
pass line and ``pytest --nbval`` on the exercise notebook passes exactly when the learner's
answers are right. A solution block may hold functions (stubbed), imports (kept) and
assignments such as ``answer = "b"`` (the value becomes ``...``).

``build`` never overwrites an exercise notebook that was changed since it wrote it (it keeps
the hash of what it wrote in ``notebooks/exercises/.built.json``) unless given ``--force``;
it says which file it left alone. ``check`` runs nbval on exercise notebooks, as a learner
would. LESSON is a number (``3``, ``03``), a name (``03_ratio_and_surrogate``) or a path.
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import io
import json
import re
import subprocess
import sys
import textwrap
import tokenize
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "notebooks"
EXERCISES = LESSONS / "exercises"
RECORD = ".built.json"
BEGIN = "# BEGIN SOLUTION"
END = "# END SOLUTION"
HINT = re.compile(r"^\s*#\s*HINT:\s?(.*)$")
CHECK_CALL = re.compile(r"\bcheck_\w+\s*\(")
HEADER_ID = "exercise-notebook-header"
ANSWER_COMMENT = "# YOUR ANSWER: replace the `raise NotImplementedError(...)` by your code."

__all__ = [
    "Exercise",
    "ExerciseError",
    "build",
    "build_notebook",
    "exercise_lessons",
    "find_exercises",
    "main",
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
      checker: the name of the ``course_lib.checks`` function the check cell calls.
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


def content_hash(text: str) -> str:
    """Hash of a notebook's JSON content (insensitive to line endings and indentation)."""
    canonical = json.dumps(json.loads(text), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
    from course_lib.checks import CHECKERS

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
                                "of course_lib.checks (e.g. `_ = check_ratio(my_ratio)`)")
        if checker not in CHECKERS:
            raise ExerciseError(f"{where}: the check cell calls {checker}(), which "
                                "course_lib.checks does not define")
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
        "`✓ ... correct on N cases`, or `✗ ...` and what is wrong.\n"
        "\n"
        "To check all the exercises of this notebook at once, run in a terminal, in the course\n"
        "folder:\n"
        "\n"
        f"    python -m course_lib.exercises check {number}\n"
        "\n"
        "It runs the notebook with nbval, which passes exactly when all your answers are right\n"
        "(the outputs stored here are the solution's). This notebook was generated by\n"
        "`python -m course_lib.exercises build`, which never overwrites it once you have edited it."
    )
    return {"cell_type": "markdown", "id": HEADER_ID, "metadata": {},
            "source": _split_lines(text)}


def build_notebook(lesson_path: Path) -> tuple[dict, list[Exercise]]:
    """The exercise notebook of a lesson (a new dict) and its exercises."""
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
        if original is not None and BEGIN in _source(original):
            cell["source"] = copy.deepcopy(original["source"])
    out["metadata"] = copy.deepcopy(out["metadata"])
    out["metadata"].pop("course_exercises", None)
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


def _read_record(out_dir: Path) -> dict[str, str]:
    path = out_dir / RECORD
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else {}


def build(lessons: list[str] | None = None, force: bool = False,
          lesson_dir: Path = LESSONS, out_dir: Path = EXERCISES) -> list[tuple[str, str]]:
    """Write the exercise notebooks; return ``(status, message)`` per lesson.

    ``status`` is ``"wrote"``, ``"up to date"``, ``"left alone"`` (the notebook exists and
    differs from what this builder last wrote, i.e. a learner edited it, and ``force`` is
    False) or ``"skipped"`` (the lesson's exercise markup is incomplete; the message says
    what to fix). Lessons named explicitly raise :class:`ExerciseError` instead of being
    skipped.
    """
    paths = _select(list(lessons or []), lesson_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    record = _read_record(out_dir)
    report = []
    for path in paths:
        try:
            nb, exercises = build_notebook(path)
        except ExerciseError as err:
            if lessons:
                raise
            report.append(("skipped", f"skipped: {err}"))
            continue
        text = render(nb)
        target = out_dir / path.name
        shown = _shown(target)
        if target.exists():
            current = target.read_text(encoding="utf-8")
            if current == text:
                record[path.name] = content_hash(text)
                report.append(("up to date", f"up to date: {shown}"))
                continue
            edited = (content_hash(current) if _is_json(current) else None) \
                != record.get(path.name)
            if edited and not force:
                report.append(("left alone", (
                    f"left alone: {shown} (changed since it was built, e.g. by your answers; "
                    "rebuild it with --force, after saving your work elsewhere)")))
                continue
        target.write_text(text, encoding="utf-8")
        record[path.name] = content_hash(text)
        report.append(("wrote", f"wrote {shown} ({len(exercises)} exercises)"))
    (out_dir / RECORD).write_text(json.dumps(record, indent=1, sort_keys=True) + "\n",
                                  encoding="utf-8")
    return report


def _shown(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)


def _is_json(text: str) -> bool:
    try:
        json.loads(text)
    except ValueError:
        return False
    return True


# ------------------------------------------------------------------------------------------
# Command line
# ------------------------------------------------------------------------------------------

NBVAL_ARGS = ["--nbval", "--nbval-current-env", "--nbval-cell-timeout=300",
              "--nbval-sanitize-with", str(ROOT / "tests" / "nbval_sanitize.cfg")]


def check(lessons: list[str] | None = None, out_dir: Path = EXERCISES) -> int:
    """Run nbval on exercise notebooks, as a learner checks their answers; the exit status."""
    if lessons:
        paths = [out_dir / p.name for p in _select(lessons, LESSONS)]
    else:
        paths = sorted(out_dir.glob("[0-9][0-9]_*.ipynb"))
    missing = [p for p in paths if not p.exists()]
    if missing or not paths:
        print("no exercise notebook " + ", ".join(_shown(p) for p in missing)
              + ": run `python -m course_lib.exercises build` first")
        return 2
    cmd = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *NBVAL_ARGS,
           *map(str, paths)]
    return subprocess.run(cmd, cwd=ROOT, check=False).returncode


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
    c = sub.add_parser("check", help="run nbval on exercise notebooks (your answers)")
    c.add_argument("lessons", nargs="*", help="lesson numbers or names (default: all)")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            out_dir = args.out_dir or args.lesson_dir / "exercises"
            report = build(args.lessons, args.force, args.lesson_dir, out_dir)
            for _, message in report:
                print(message)
            return 1 if any(status == "skipped" for status, _ in report) else 0
        return check(args.lessons)
    except ExerciseError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
