"""The exercise notebooks give no answer away (issue 16): stored outputs and hints.

* every stored output of an exercise notebook from its first exercise on is a pass line of the
  one form :func:`course_lib.exercises.checks.verdict.pass_line` prints (the exercise's name and
  its number of hidden cases: no value, no option letter, nothing derived from the answer);
* a cell of a lesson that discusses an answer (tag ``exercise-discussion``) is hidden in the
  exercise notebook, and kept in its reference;
* no hint holds a line of its solution, or spells a call (``jnp.minimum(...)``) of one;
* the pass line is the same for every checker whatever the detail it used to print.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from course_lib.exercises import builder as ex
from course_lib.exercises.checks import CHECKERS
from course_lib.exercises.checks.verdict import PASS_LINE, pass_line

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "notebooks"
EXERCISES = LESSONS / "exercises"
BUILT = sorted(EXERCISES.glob("[0-9][0-9]_*.ipynb"))
EXERCISE_LIST = [e for p in ex.exercise_lessons(LESSONS)
                 for e in ex.find_exercises(json.loads(p.read_text(encoding="utf-8")), p.name)]
IDS = [f"{e.lesson[:2]}-{e.names[0]}" for e in EXERCISE_LIST]
CODE_CALL = re.compile(r"\b(?:jnp|jax|np|numpy|cl)\.[\w.]+\(")


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _text(output: dict) -> str:
    if "text" in output:
        return "".join(output["text"])
    return "".join("".join(v) if isinstance(v, list) else str(v)
                   for v in output.get("data", {}).values())


def _first_answer_cell(nb: dict) -> int:
    return next(i for i, c in enumerate(nb["cells"]) if ex.ANSWER_COMMENT in ex._source(c))


@pytest.mark.parametrize("path", BUILT, ids=[p.stem[:2] for p in BUILT])
def test_stored_outputs_after_the_first_exercise_are_bare_pass_lines(path):
    nb = _load(path)
    assert nb["cells"][0]["id"] == ex.HEADER_ID
    for i, cell in enumerate(nb["cells"][_first_answer_cell(nb):]):
        for output in cell.get("outputs", []):
            assert output.get("output_type") == "stream", (
                f"{path.name}: cell {i} after the first exercise stores a "
                f"{output.get('output_type')} output (a figure or value may give an answer away)")
            for line in _text(output).splitlines():
                assert PASS_LINE.match(line), (
                    f"{path.name}: a stored output line is not a bare pass line: {line!r}")


@pytest.mark.parametrize("path", BUILT, ids=[p.stem[:2] for p in BUILT])
def test_discussions_of_answers_are_hidden_in_the_exercise_notebook_only(path):
    lesson = _load(LESSONS / path.name)
    built = {c["id"]: c for c in _load(path)["cells"]}
    reference = {c["id"]: c for c in _load(EXERCISES / ex.REFERENCE / path.name)["cells"]}
    for cell in lesson["cells"]:
        if ex.DISCUSSION not in cell.get("metadata", {}).get("tags", []):
            continue
        assert ex._source(reference[cell["id"]]) == ex._source(cell)
        if cell["cell_type"] == "markdown":
            assert "discusses this exercise" in ex._source(built[cell["id"]])
        else:  # a code cell that explains an answer runs in the exercise notebook, unshown
            assert built[cell["id"]]["outputs"] == [] and cell["outputs"]


def _code_lines(solution: str) -> list[str]:
    out = []
    for line in solution.splitlines():
        code = line.split("#", 1)[0].strip()
        code = re.sub(r"^return\s+", "", code)
        if len(code.replace(" ", "")) >= 8 and not code.startswith(("def ", "for ", "if ")):
            out.append(code.replace(" ", ""))
    return out


@pytest.mark.parametrize("exercise", EXERCISE_LIST, ids=IDS)
def test_no_hint_holds_its_solutions_code(exercise):
    for hint in exercise.hints:
        flat = hint.replace(" ", "")
        for code in _code_lines(exercise.solution):
            assert code not in flat, f"the hint of {exercise.names} spells the solution: {code}"
        assert not CODE_CALL.search(hint), (
            f"the hint of {exercise.names} spells a call ({CODE_CALL.search(hint).group(0)}...): "
            "say what to compute and where the lesson shows it, not the code")
        for value in re.findall(r"=\s*(['\"][^'\"]*['\"])", exercise.solution):
            assert value not in hint, f"the hint of {exercise.names} gives the answer {value}"


@pytest.mark.parametrize("path", BUILT, ids=[p.stem[:2] for p in BUILT])
def test_hints_in_the_stubs_are_the_rewritten_ones(path):
    nb = _load(path)
    for cell in nb["cells"]:
        source = ex._source(cell)
        if ex.ANSWER_COMMENT in source:
            assert not CODE_CALL.search(source.split(ex.ANSWER_COMMENT, 1)[1].split("raise", 1)[1])


@pytest.mark.parametrize(("detail", "line"), [
    (7, "✓ ratio: passed on 7 hidden cases"),
    (1, "✓ ratio: passed on 1 hidden case"),
    ("correct on 80 cases (A = -5, ε = 0.2: r = 0.5 → -4.0, r = 4 → -20.0)",
     "✓ ratio: passed on 80 hidden cases"),
    ("correct on 9 rollouts", "✓ ratio: passed on 9 hidden cases"),
    ("(b) is right: because", "✓ ratio: passed"),
    (None, "✓ ratio: passed"),
])
def test_a_pass_line_keeps_only_the_count(detail, line):
    assert pass_line("ratio", detail) == line
    assert PASS_LINE.match(line)


def test_a_lesson_stored_with_old_pass_lines_builds_an_exercise_notebook_without_them(tmp_path):
    """A lesson executed before this change (e.g. one merged from another branch) still builds
    an exercise notebook and a reference whose pass lines give nothing away."""
    lesson = json.loads((LESSONS / "03_ratio_and_surrogate.ipynb").read_text(encoding="utf-8"))
    for cell in lesson["cells"]:
        for output in cell.get("outputs", []):
            if "".join(output.get("text", [])).startswith("✓ surrogate"):
                output["text"] = ["✓ surrogate: correct on 7 cases (r = 0.5 → -4.0)\n"]
    (tmp_path / "03_ratio_and_surrogate.ipynb").write_text(ex.render(lesson), encoding="utf-8")
    ex.build(lesson_dir=tmp_path, out_dir=tmp_path / "exercises")
    for nb in (tmp_path / "exercises" / "03_ratio_and_surrogate.ipynb",
               tmp_path / "exercises" / ex.REFERENCE / "03_ratio_and_surrogate.ipynb"):
        text = nb.read_text(encoding="utf-8")
        assert "✓ surrogate: passed on 7 hidden cases" in text and "-4.0)" not in text


def _asked(exercise) -> tuple[str, ...]:
    """The checker and the question it is asked (checkers such as check_prediction and
    check_diagnosis take the question's name as a string)."""
    lesson = json.loads((LESSONS / exercise.lesson).read_text(encoding="utf-8"))
    source = ex._source(lesson["cells"][exercise.check_cell])
    call = source[source.index(exercise.checker + "("):]
    return (exercise.checker, *re.findall(r"[\"']([\w ]+)[\"']", call.split("\n")[0]))


def test_no_two_exercises_ask_the_same_computation():
    asked = [_asked(e) for e in EXERCISE_LIST]
    assert len(asked) == len(set(asked)), "an exercise checker is asked the same question twice"
    unused = set(CHECKERS) - {e.checker for e in EXERCISE_LIST}
    assert not unused, f"checkers no lesson asks for: {sorted(unused)}"


def test_the_capstones_are_in_their_lessons():
    where = {e.checker: e.lesson[:2] for e in EXERCISE_LIST}
    assert where.get("check_trpo_step") == "06" and where.get("check_ppo_update") == "07"
    assert where.get("check_gaussian_policy") == "08"
