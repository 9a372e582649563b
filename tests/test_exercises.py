"""The exercises (DESIGN §5): built notebooks in sync, solutions pass, stubs and wrong answers fail.

* the committed ``notebooks/exercises/`` are exactly what the builder writes from the lessons;
* with the solutions put back an exercise notebook IS its lesson (which ``make test`` runs
  under nbval), and every solution prints its check cell's stored pass line;
* with the stubs left in, every check prints a fail line (so the nbval comparison fails);
* for every checker, plausible wrong answers fail with a specific diagnosis and right answers
  pass;
* the builder leaves an edited exercise notebook alone (byte for byte) unless ``--force``;
* end to end, real nbval passes a built notebook with the right answer and fails it with a
  stub or a wrong answer, at the check cells only.
"""

from __future__ import annotations

import ast
import contextlib
import functools
import inspect
import io
import json
import math
import re
import shutil
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import pytest

from course_lib.core.distributions import categorical_kl, categorical_log_prob
from course_lib.exercises import builder as ex
from course_lib.exercises import checks
from course_lib.exercises.checks.l06_trpo import accept

ROOT = Path(__file__).resolve().parents[1]
LESSONS = ROOT / "notebooks"
EXERCISES = LESSONS / "exercises"


def _converted() -> list[Path]:
    return list(ex.exercise_lessons(LESSONS))


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _all_exercises() -> list[ex.Exercise]:
    return [e for p in _converted() for e in ex.find_exercises(_load(p), p.name)]


EXERCISE_LIST = _all_exercises()
EXERCISE_IDS = [f"{e.lesson[:2]}-{e.names[0]}" for e in EXERCISE_LIST]


# ------------------------------------------------------------------------------------------
# (a) the committed exercise notebooks are what the builder writes
# ------------------------------------------------------------------------------------------


def test_committed_exercise_notebooks_are_exactly_what_the_builder_writes(tmp_path):
    report = ex.build(lesson_dir=LESSONS, out_dir=tmp_path)
    skipped = {re.search(r"(\d\d_\w+)\.ipynb", m).group(1)
               for status, m in report if status == "skipped"}
    assert not skipped, f"lessons with broken exercise markup: {report}"
    built = sorted(p.name for p in tmp_path.glob("*.ipynb"))
    committed = sorted(p.name for p in EXERCISES.glob("*.ipynb"))
    assert built == committed, "run `make exercises` (python -m course_lib.exercises build)"
    for name in built:
        assert (EXERCISES / name).read_bytes() == (tmp_path / name).read_bytes(), (
            f"notebooks/exercises/{name} is out of date: run `make exercises`")
        reference = Path(ex.REFERENCE) / name
        assert (EXERCISES / reference).read_bytes() == (tmp_path / reference).read_bytes(), (
            f"notebooks/exercises/{reference} is out of date: run `make exercises`")
    assert _load(EXERCISES / ex.RECORD) == _load(tmp_path / ex.RECORD), (
        "notebooks/exercises/.built.json must record the committed notebooks (else a "
        "learner's first build would take them for edited ones)")


def test_the_course_has_at_least_12_exercises_covering_the_syllabus():
    assert len(EXERCISE_LIST) >= 12
    used = {e.checker for e in EXERCISE_LIST}
    for required in ["check_ratio", "check_surrogate", "check_categorical_kl", "check_sampled_kl",
                     "check_fvp", "check_cg_two_steps", "check_step_scale", "check_gae"]:
        assert required in used, required


def test_make_tests_lesson_glob_does_not_collect_the_exercise_notebooks():
    top_level = {p.resolve() for p in LESSONS.glob("*.ipynb")}
    assert not any(p.resolve() in top_level for p in EXERCISES.glob("*.ipynb"))


@pytest.mark.parametrize("lesson", _converted(), ids=lambda p: p.stem)
def test_restoring_the_solutions_gives_back_the_lesson(lesson):
    """So the exercise notebook with solutions passes nbval exactly when the lesson does."""
    exercise_nb = _load(EXERCISES / lesson.name)
    assert ex.restore_solutions(exercise_nb, _load(lesson)) == _load(lesson)


@pytest.mark.parametrize("lesson", _converted(), ids=lambda p: p.stem)
def test_exercise_functions_are_used_only_by_check_cells_and_later_exercises(lesson):
    """Otherwise a stub would break a lesson cell that is not a check (a traceback, not ✗)."""
    nb = _load(lesson)
    exs = ex.find_exercises(nb, lesson.name)
    names = {n for e in exs for n in e.names}
    allowed = {e.cell for e in exs} | {e.check_cell for e in exs}
    for i, cell in enumerate(nb["cells"]):
        if cell["cell_type"] != "code" or i in allowed:
            continue
        used = {n.id for n in ast.walk(ast.parse(_code(cell))) if isinstance(n, ast.Name)}
        assert not used & names, f"{lesson.name} cell {i} uses {used & names}"


# ------------------------------------------------------------------------------------------
# (b) solutions pass, (c) stubs fail: the check cell's checker call, run in-process
# ------------------------------------------------------------------------------------------


def _code(cell: dict) -> str:
    """A code cell's source without IPython magics (none of the exercise cells has any).

    A cell that parses as it is is kept whole: a line of it may start with ``%`` (the string
    formatting operator continuing the line above), which is no magic."""
    source = ex._source(cell)
    try:
        ast.parse(source)
    except SyntaxError:
        return "\n".join(line for line in source.split("\n")
                         if not line.lstrip().startswith(("%", "!")))
    return source


@functools.cache
def _imports(lesson: str) -> dict:
    """The lesson's namespace as far as its imports go (every import of every code cell)."""
    ns: dict = {}
    for cell in _load(LESSONS / lesson)["cells"]:
        if cell["cell_type"] == "code":
            tree = ast.parse(_code(cell))
            body = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
            exec(compile(ast.Module(body=body, type_ignores=[]), lesson, "exec"), ns)  # noqa: S102
    return ns


def _run_check(exercise: ex.Exercise, stubbed: bool) -> str:
    """Define this exercise's (and earlier exercises') functions, run its checker call."""
    nb = _load(LESSONS / exercise.lesson)
    ns = dict(_imports(exercise.lesson))
    for e in ex.find_exercises(nb, exercise.lesson):
        if e.cell > exercise.cell:
            break
        code = ex.stub_block(e.solution)[0] if stubbed and e.cell == exercise.cell \
            else e.solution
        exec(compile(code, f"{e.lesson} cell {e.cell}", "exec"), ns)  # noqa: S102
    tree = ast.parse(_code(nb["cells"][exercise.check_cell]))
    call = next(n for n in ast.walk(tree) if isinstance(n, ast.Call)
                and isinstance(n.func, ast.Name) and n.func.id == exercise.checker)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = eval(compile(ast.Expression(call), "check", "eval"), ns)
    assert result is (out.getvalue().startswith(checks.PASS))
    return out.getvalue()


def _stored_output(exercise: ex.Exercise) -> str:
    cell = _load(LESSONS / exercise.lesson)["cells"][exercise.check_cell]
    return "".join("".join(o["text"]) for o in cell["outputs"] if o["output_type"] == "stream")


@pytest.mark.parametrize("exercise", EXERCISE_LIST, ids=EXERCISE_IDS)
def test_solution_prints_the_stored_pass_line(exercise):
    stored = _stored_output(exercise)
    assert stored.startswith(checks.PASS) and stored.count("\n") == 1, (
        f"the check cell's stored output must be the checker's one pass line, got {stored!r}")
    assert _run_check(exercise, stubbed=False) == stored


@pytest.mark.parametrize("exercise", EXERCISE_LIST, ids=EXERCISE_IDS)
def test_stub_prints_a_fail_line_with_its_hint(exercise):
    line = _run_check(exercise, stubbed=True)
    assert line.startswith(checks.FAIL) and line.count("\n") == 1
    assert "your function raised NotImplementedError: hint: " in line
    assert exercise.hints[0][:30] in line
    assert line != _stored_output(exercise)


@pytest.mark.parametrize("exercise", EXERCISE_LIST, ids=EXERCISE_IDS)
def test_exercise_notebook_holds_the_stub_and_the_solutions_outputs(exercise):
    built = _load(EXERCISES / exercise.lesson)
    lesson = _load(LESSONS / exercise.lesson)
    cell = built["cells"][exercise.cell + 1]  # + 1: the header cell
    source = ex._source(cell)
    assert ex.BEGIN not in source and "raise NotImplementedError(" in source
    for name in exercise.names:
        assert f"def {name}(" in source
    assert built["cells"][exercise.check_cell + 1] == lesson["cells"][exercise.check_cell]


# ------------------------------------------------------------------------------------------
# (d) plausible wrong answers fail with a diagnosis; right answers pass
# ------------------------------------------------------------------------------------------


def _sg(x):
    return jax.lax.stop_gradient(x)


def _kl(p, q):
    return categorical_kl(p, q)


def _naive_kl(p, q):
    pp, qq = jax.nn.softmax(p, axis=-1), jax.nn.softmax(q, axis=-1)
    return jnp.sum(pp * (jnp.log(pp) - jnp.log(qq)), axis=-1)


def _single_where_kl(p, q):
    lp, lq = jax.nn.log_softmax(p, axis=-1), jax.nn.log_softmax(q, axis=-1)
    pp = jnp.exp(lp)
    return jnp.sum(jnp.where(pp > 0, pp * (lp - lq), 0.0), axis=-1)


def _sampled_kl(key, old, new, n, *, sample_from_new=False, sign=1.0):
    old_rep, new_rep = jnp.tile(old, (n, 1)), jnp.tile(new, (n, 1))
    actions = jax.random.categorical(key, new_rep if sample_from_new else old_rep)
    actions = actions.astype(jnp.int32)
    log_ratio = categorical_log_prob(old_rep, actions) - categorical_log_prob(new_rep, actions)
    return sign * jnp.mean(log_ratio)


@functools.cache
def _jitted_mean_kl(logits_fn):
    return jax.jit(lambda p, q: jnp.mean(_kl(logits_fn(p), logits_fn(q))))


def _radius(logits_fn, params, direction, target, *, reverse=False, normalise=True):
    u = direction / jnp.linalg.norm(direction) if normalise else direction
    mean_kl = _jitted_mean_kl(logits_fn)

    def kl(r):
        new = params + r * u
        return float(mean_kl(new, params) if reverse else mean_kl(params, new))

    lo, hi = 0.0, 1e-3
    while kl(hi) < target:
        lo, hi = hi, 2.0 * hi
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if kl(mid) >= target else (mid, hi)
    return hi


def _gae(rewards, values, next_values, terminated, truncated, gamma, lam, *, cut_truncated=True,
         bootstrap_truncated=True, lam_in_recursion=True):
    advantages, next_adv = [], 0.0
    for t in reversed(range(rewards.shape[0])):
        end = jnp.maximum(terminated[t], truncated[t]) if cut_truncated else terminated[t]
        stop = terminated[t] if bootstrap_truncated else jnp.maximum(terminated[t], truncated[t])
        delta = rewards[t] + gamma * (1.0 - stop) * next_values[t] - values[t]
        next_adv = delta + gamma * (lam if lam_in_recursion else 1.0) * (1.0 - end) * next_adv
        advantages.append(next_adv)
    return jnp.stack(advantages[::-1])


def _cg(a, b, *, iters=2, update_residual=True, conjugate=True):
    x, r, p = jnp.zeros_like(b), b, b
    for _ in range(iters):
        ap = a @ p
        alpha = (r @ r) / (p @ ap)
        x = x + alpha * p
        r_new = r - alpha * ap if update_residual else r
        beta = (r_new @ r_new) / (r @ r)
        p = r_new + beta * p if conjugate else r_new
        r = r_new
    return x


def _clipped(new, old, a, eps, *, stop=True):
    r = jnp.exp(new - (_sg(old) if stop else old))
    return jnp.mean(jnp.minimum(r * a, jnp.clip(r, 1.0 - eps, 1.0 + eps) * a))


def _beta(beta, kl, target, *, down=0.5, up=2.0):
    return beta * down if kl < target / 1.5 else (beta * up if kl > 1.5 * target else beta)


# checker name → (right answer or None when a lesson's solution is the right answer,
#                 [(wrong answer, words its fail line must contain)])
def _trpo_step(surrogate_fn, kl_fn, params, delta, **wrong):
    from course_lib.exercises.checks.l06_trpo_step import library_trpo_step

    return library_trpo_step(surrogate_fn, kl_fn, params, delta, **wrong)


def _ppo_update(*args, **wrong):
    from course_lib.exercises.checks.l07_ppo_update import variant_update

    return variant_update(*args, **wrong)


class Several(tuple):
    """The answers of an exercise whose checker takes several functions (lesson 08's)."""


def _gaussian(log_prob=None, entropy=None, kl=None) -> Several:
    """Lesson 08's three functions, the library's where not given."""
    from course_lib.core import distributions as D

    return Several((log_prob or D.gaussian_log_prob, entropy or D.gaussian_entropy,
                    kl or D.gaussian_kl))


def _variance_kl(pm, ps, qm, qs):
    vp, vq = jnp.exp(2.0 * ps), jnp.exp(2.0 * qs)
    return jnp.sum(qs - ps + (vp + (pm - qm) ** 2) / (2.0 * vq) - 0.5, -1)


CASES = {
    "check_predict_alpha": (lambda a, k, t: a * math.sqrt(t / k), [
        (lambda a, k, t: a * t / k, "square root"),
        (lambda a, k, t: a * math.sqrt(k / t), "upside down"),
    ]),
    "check_gae": (_gae, [
        (functools.partial(_gae, bootstrap_truncated=False), "truncation as a termination"),
        (functools.partial(_gae, cut_truncated=False), "runs across a truncation"),
        (lambda r, v, nv, te, tr, g, lam: _gae(r, v, jnp.append(v[1:], nv[-1]), te, tr, g, lam),
         "values[t + 1]"),
        (lambda r, v, nv, te, tr, g, lam: _gae(r, v, nv, te, tr, g, lam) + v, "λ-returns"),
        (functools.partial(_gae, lam_in_recursion=False), "γλ"),
        (lambda *args: (_gae(*args), args[0]), "tuple"),
    ]),
    "check_categorical_kl": (_kl, [
        (lambda p, q: _kl(q, p), "reversed"),
        (_naive_kl, "nan or inf"),
        (_single_where_kl, "gradient"),
        (lambda p, q: jnp.sum(_kl(p, q)), "one KL per row"),
        (lambda p, q: _kl(_sg(p), q), "gradient with respect to p_logits is wrong"),
    ]),
    "check_sampled_kl": (_sampled_kl, [
        (lambda k, o, n_, n: _sampled_kl(k, n_, o, n), "KL(new‖old)"),
        (functools.partial(_sampled_kl, sign=-1.0), "wrong sign"),
        (functools.partial(_sampled_kl, sample_from_new=True), "new policy"),
        (lambda k, o, n_, n: jnp.mean(_kl(o, n_)), "does not change with the key"),
        (lambda k, o, n_, n: _sampled_kl(k, o, n_, n) * 2.0, "exact KL(old‖new)"),
    ]),
    "check_radius_for_kl": (_radius, [
        (functools.partial(_radius, reverse=True), "KL(new‖old)"),
        (functools.partial(_radius, normalise=False), "units of ‖direction‖"),
    ]),
    "check_ratio": (lambda n, o: jnp.exp(n - o), [
        (lambda n, o: jnp.exp(o - n), "inverted"),
        (lambda n, o: n - o, "log r"),
        (lambda n, o: jnp.exp(n) / jnp.exp(o), "underflow"),
        (lambda n, o: jnp.mean(jnp.exp(n - o)), "one ratio per sample"),
    ]),
    "check_surrogate": (lambda n, o, a: jnp.mean(jnp.exp(n - _sg(o)) * a), [
        (lambda n, o, a: jnp.mean(jnp.exp(n - o) * a), "stop_gradient"),
        (lambda n, o, a: jnp.mean(jnp.exp(o - n) * a), "inverted"),
        (lambda n, o, a: jnp.sum(jnp.exp(n - _sg(o)) * a), "MEAN"),
        (lambda n, o, a: jnp.mean((n - o) * a), "log r"),
        (lambda n, o, a: jnp.exp(n - _sg(o)) * a, "one number"),
    ]),
    "check_in_trust_region": (lambda o, n, d: bool(jnp.mean(_kl(o, n)) <= d), [
        (lambda o, n, d: bool(jnp.mean(_kl(n, o)) <= d), "KL(new‖old)"),
        (lambda o, n, d: bool(jnp.max(_kl(o, n)) <= d), "largest per-state KL"),
        (lambda o, n, d: bool(jnp.sum(_kl(o, n)) <= d), "SUM"),
        (lambda o, n, d: jnp.mean(_kl(o, n)), "True or False"),
    ]),
    "check_fvp": (lambda k, p, v: jax.jvp(jax.grad(k), (p,), (v,))[1], [
        (lambda k, p, v: jax.jvp(jax.grad(k), (p,), (v,))[0], "gradient of kl_fn"),
        (lambda k, p, v: jax.jvp(jax.grad(k), (p,), (v,))[1] + 0.1 * v, "damping"),
        (lambda k, p, v: jax.jvp(k, (p,), (v,))[1], "shape"),
    ]),
    "check_step_scale": (lambda d, f, delta: jnp.sqrt(2 * delta / jnp.vdot(d, f(d))), [
        (lambda d, f, delta: jnp.sqrt(delta / jnp.vdot(d, f(d))), "dropped the 2"),
        (lambda d, f, delta: jnp.sqrt(2 * delta / jnp.vdot(d, d)), "Euclidean length"),
        (lambda d, f, delta: d * jnp.sqrt(2 * delta / jnp.vdot(d, f(d))), "scalar α"),
    ]),
    "check_cg_two_steps": (_cg, [
        (functools.partial(_cg, update_residual=False), "residual is never updated"),
        (functools.partial(_cg, conjugate=False), "steepest descent"),
        (functools.partial(_cg, iters=1), "one CG iteration"),
    ]),
    "check_clipped_surrogate": (_clipped, [
        (functools.partial(_clipped, stop=False), "stop_gradient"),
        (lambda n, o, a, e: jnp.mean(a * jnp.minimum(jnp.exp(n - _sg(o)), 1 + e)),
         "wrong side for A < 0"),
        (lambda n, o, a, e: jnp.mean(jnp.maximum(
            jnp.exp(n - _sg(o)) * a, jnp.clip(jnp.exp(n - _sg(o)), 1 - e, 1 + e) * a)), "max"),
        (lambda n, o, a, e: _clipped(o, n, a, e), "inverted"),
        (lambda n, o, a, e: jnp.mean(jnp.exp(n - _sg(o)) * a), "never clip"),
        (lambda n, o, a, e: jnp.mean(jnp.clip(jnp.exp(n - _sg(o)), 1 - e, 1 + e) * a),
         "dropped the min"),
    ]),
    "check_k3": (lambda n, o: jnp.mean(jnp.expm1(n - _sg(o)) - (n - _sg(o))), [
        (lambda n, o: jnp.mean(jnp.expm1(n - o) - (n - o)), "stop_gradient"),
        (lambda n, o: jnp.mean(jnp.exp(n - _sg(o)) - 1.0 - (n - _sg(o))), "expm1"),
        (lambda n, o: jnp.mean(_sg(o) - n), "k1"),
        (lambda n, o: jnp.mean(0.5 * (n - _sg(o)) ** 2), "k2"),
        (lambda n, o: jnp.mean(jnp.expm1(_sg(o) - n) - (_sg(o) - n)), "reversed"),
    ]),
    "check_trpo_step": (_trpo_step, [
        (functools.partial(_trpo_step, line_search=False), "skips the line search"),
        (functools.partial(_trpo_step, sign=-1.0), "CG with the wrong sign"),
        (functools.partial(_trpo_step, natural=False), "plain gradient"),
        (functools.partial(_trpo_step, two=1.0), "√(δ / dᵀFd)"),
    ]),
    "check_ppo_update": (_ppo_update, [
        (functools.partial(_ppo_update, combine=jnp.maximum), "the max of r·A"),
        (functools.partial(_ppo_update, early_stop=False), "no early stopping"),
        (functools.partial(_ppo_update, clip=False), "no clip"),
    ]),
    "check_gaussian_policy": (_gaussian(), [
        (_gaussian(log_prob=lambda m, s, a: jnp.sum(-0.5 * ((a - m) * jnp.exp(-s)) ** 2 - s, -1)),
         "−½·log 2π is missing"),
        (_gaussian(log_prob=lambda m, s, a: -0.5 * ((a - m) * jnp.exp(-s)) ** 2 - s
                   - 0.5 * math.log(2 * math.pi)), "sum over the action dimensions"),
        (_gaussian(entropy=lambda m, s: jnp.mean(s + 0.5 * (1 + math.log(2 * math.pi)), -1)),
         "their SUM"),
        (_gaussian(kl=lambda pm, ps, qm, qs: _gaussian()[2](qm, qs, pm, ps)), "KL(q‖p)"),
        (_gaussian(kl=_variance_kl), "underflows to 0 in float32"),
    ]),
    "check_prediction": (lambda: 0.28, [
        (lambda: 0.04, "the measurement is"),
        (lambda: 2.0, "the α² law"),
        (lambda: "abc", "as a number"),
        (lambda: -1.0, "the measurement is"),
        (lambda: float("nan"), "finite number"),
    ]),
    "check_line_search_accept": (lambda k, i, d: k <= d and i > 0, [
        (lambda k, i, d: k <= d, "makes the surrogate worse"),
        (lambda k, i, d: k < d and i > 0, "exactly δ"),
        (lambda k, i, d: k <= d and i >= 0, "exactly 0"),
        (lambda k, i, d: not (k > d) and not (i <= 0), "NaN"),
        (lambda k, i, d: float(k <= d and i > 0), "True or False"),
    ]),
    "check_adapt_beta": (_beta, [
        (functools.partial(_beta, down=2.0, up=0.5), "wrong way"),
        (lambda b, k, t: b / 2 if k < t else (b * 2 if k > t else b), "whenever the KL differs"),
        (functools.partial(_beta, down=1 / 1.5, up=1.5), "halved or doubled"),
    ]),
    "check_group_advantages": (
        lambda r: (r - r.mean(1, keepdims=True)) / (r.std(1, keepdims=True) + 1e-8), [
            (lambda r: r - r.mean(1, keepdims=True), "did not scale"),
            (lambda r: (r - r.mean()) / (r.std() + 1e-8), "whole batch"),
            (lambda r: (r - r.mean(1, keepdims=True)) / r.std(1, keepdims=True), "add a small"),
            (lambda r: (r - r.mean(0, keepdims=True)) / (r.std(0, keepdims=True) + 1e-8),
             "axis 0"),
        ]),
    "check_kl_penalised_rewards": (
        lambda r, lp, lr, b: (-b * (lp - lr)).at[:, -1].add(r), [
            (lambda r, lp, lr, b: (b * (lp - lr)).at[:, -1].add(r), "wrong sign"),
            (lambda r, lp, lr, b: -b * (lp - lr) + r[:, None], "at every token"),
            (lambda r, lp, lr, b: (-b * (lp - lr)).at[:, 0].add(r), "first token"),
            (lambda r, lp, lr, b: jnp.zeros_like(lp).at[:, -1].set(r - b * (lp - lr).sum(1)),
             "whole answer's KL"),
            (lambda r, lp, lr, b: -b * (lp - lr), "left out"),
            (lambda r, lp, lr, b: (-(lp - lr)).at[:, -1].add(r), "forgot β"),
        ]),
    "check_diagnosis": ("b", [
        ("a", "(a) is not it"),
        ("d", "(d) is not it"),
        (..., "no answer yet"),
        ("z", "one of the letters"),
    ]),
}


def test_the_kl_blowup_diagnosis_of_lesson_09():
    ok, line = _line(functools.partial(checks.check_diagnosis, question="kl_blowup"), "(b)")
    assert ok and line == "✓ diagnosis: passed", line  # the stored pass line names no option
    for wrong in "acd":
        ok, line = _line(functools.partial(checks.check_diagnosis, question="kl_blowup"), wrong)
        assert not ok and f"({wrong}) is not it" in line, line


def _line(checker, answer) -> tuple[bool, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ok = checker(*answer) if isinstance(answer, Several) else checker(answer)
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("\n"), f"not one line: {text!r}"
    assert "Traceback" not in text
    return ok, text.strip()


def test_every_checker_has_wrong_answers():
    assert set(CASES) == set(checks.CHECKERS)
    assert all(len(wrongs) >= 2 for _, wrongs in CASES.values())


WRONG = [(name, i) for name, (_, wrongs) in CASES.items() for i in range(len(wrongs))]


@pytest.mark.parametrize(("name", "index"), WRONG, ids=[f"{n}-{i}" for n, i in WRONG])
def test_a_plausible_wrong_answer_fails_with_its_diagnosis(name, index):
    answer, words = CASES[name][1][index]
    ok, line = _line(checks.CHECKERS[name], answer)
    assert not ok and line.startswith(checks.FAIL), line
    assert words in line, line


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_right_answer_passes(name):
    ok, line = _line(checks.CHECKERS[name], CASES[name][0])
    assert ok and line.startswith(checks.PASS), line


@pytest.mark.parametrize("name", sorted(set(CASES) - {"check_diagnosis"}))
def test_an_exception_in_the_learners_code_is_one_line_not_a_traceback(name):
    def broken(*args):
        raise ValueError("boom\nsecond line")

    checker = checks.CHECKERS[name]
    required = [p for p in inspect.signature(checker).parameters.values()
                if p.default is inspect.Parameter.empty]
    several = len(required) > 1
    ok, line = _line(checker, Several([broken] * len(required)) if several else broken)
    assert not ok and line.endswith("your function raised ValueError: boom second line"), line
    ok, line = _line(checker, Several([...] * len(required)) if several else ...)
    assert not ok and "not answered yet" in line


def test_a_function_returning_none_is_told_to_return():
    ok, line = _line(checks.check_ratio, lambda n, o: None)
    assert not ok and "forget the `return`" in line


def test_the_line_search_checker_agrees_with_the_library_line_search():
    args = [(0.005, 0.1, 0.01), (0.02, 0.1, 0.01), (0.005, -0.1, 0.01), (0.005, 0.0, 0.01),
            (0.01, 0.1, 0.01), (float("nan"), 0.1, 0.01), (0.005, float("nan"), 0.01)]
    from course_lib import backtracking_line_search

    for kl, imp, delta in args:
        _, info = backtracking_line_search(
            lambda p, imp=imp: jnp.where(p[0] > 0, jnp.float32(imp), 0.0),
            lambda p, kl=kl: jnp.where(p[0] > 0, jnp.float32(kl), 0.0),
            jnp.zeros(1), jnp.ones(1), delta, max_backtracks=1)
        assert bool(info.accepted) == accept(kl, imp, delta), (kl, imp, delta)


# ------------------------------------------------------------------------------------------
# The stub builder
# ------------------------------------------------------------------------------------------


SOLUTION = '''\
import math

@functools.lru_cache(maxsize=None)
def scaled(x: float,
           factor: float = 2.0,
           *, name="x") -> float:
    """Multiply x by factor."""
    # HINT: multiply.
    return x * factor

def other(a, b=(1, 2)):  # a comment on the signature line
    # HINT: add them,
    # HINT: then stop.
    return a + b[0]

answer = "b"
'''


def test_a_stub_keeps_signatures_and_docstrings_and_raises_the_hint():
    stub, names, hints = ex.stub_block("# HINT: for the answer.\n" + SOLUTION)
    assert names == ("scaled", "other", "answer")
    assert hints == ("multiply.", "add them, then stop.", "for the answer.")
    ns = {"functools": functools}
    exec(stub, ns)  # noqa: S102
    sol = {"functools": functools}
    exec(SOLUTION, sol)  # noqa: S102
    for name in ("scaled", "other"):
        assert inspect.signature(ns[name]) == inspect.signature(sol[name])
        with pytest.raises(NotImplementedError, match="hint: "):
            ns[name](1.0)
    assert ns["scaled"].__wrapped__.__doc__ == "Multiply x by factor."
    assert ns["answer"] is Ellipsis
    assert "import math" in stub and "return" not in stub


def test_a_long_hint_is_wrapped_without_changing_a_character():
    hint = "loop backwards over t:   δ_t = r_t + γ·V(s_{t+1}) − V(s_t), \"quoted\" " * 4
    stub, _, _ = ex.stub_block(f"def f(x):\n    # HINT: {hint}\n    return x\n")
    assert max(len(line) for line in stub.split("\n")) <= 90
    ns = {}
    exec(stub, ns)  # noqa: S102
    with pytest.raises(NotImplementedError) as err:
        ns["f"](0)
    assert str(err.value) == "hint: " + hint.strip()


@pytest.mark.parametrize(("block", "words"), [
    ("def f(x):\n    return x\n", "HINT"),
    ("# HINT: h\nprint(1)\n", "not a Expr"),
    ("# HINT: h\ndef f(:\n", "does not parse"),
    ("# HINT: h\nimport math\n", "defines nothing"),
])
def test_a_bad_solution_block_is_refused_with_a_reason(block, words):
    with pytest.raises(ex.ExerciseError, match=words):
        ex.stub_block(block)


def _mini_lesson(tmp_path: Path, solution: str, check_line: str) -> Path:
    """A lesson with one exercise, its check cell storing ``check_line`` as output."""
    def code(i, src, outputs=()):
        return {"cell_type": "code", "execution_count": i, "id": f"c{i}", "metadata": {},
                "outputs": list(outputs), "source": src.splitlines(keepends=True)}

    nb = {"cells": [
        {"cell_type": "markdown", "id": "m0", "metadata": {}, "source": ["# A lesson\n"]},
        code(1, "import jax.numpy as jnp"),
        code(2, "# BEGIN SOLUTION\n" + solution + "# END SOLUTION"),
        code(3, "from course_lib.exercises.checks import check_ratio\n\n_ = check_ratio(my_ratio)",
             [{"name": "stdout", "output_type": "stream", "text": [check_line]}]),
    ], "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python",
                                   "name": "python3"}},
        "nbformat": 4, "nbformat_minor": 5}
    lessons = tmp_path / "notebooks"
    lessons.mkdir(exist_ok=True)
    path = lessons / "01_mini.ipynb"
    path.write_text(ex.render(nb), encoding="utf-8")
    return path


RATIO_SOLUTION = ("def my_ratio(logp_new, logp_old):\n"
                  "    # HINT: one exp of a difference.\n"
                  "    return jnp.exp(logp_new - logp_old)\n")


def _pass_line() -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        checks.check_ratio(lambda n, o: jnp.exp(n - o))
    return out.getvalue()


# ------------------------------------------------------------------------------------------
# (e) an edited exercise notebook survives a rebuild; --force overwrites it
# ------------------------------------------------------------------------------------------


def test_an_edited_exercise_notebook_survives_a_rebuild_and_force_overwrites_it(tmp_path,
                                                                                capsys):
    lessons = tmp_path / "notebooks"
    lessons.mkdir()
    shutil.copy(LESSONS / "03_ratio_and_surrogate.ipynb", lessons)
    out = lessons / "exercises"
    target = out / "03_ratio_and_surrogate.ipynb"
    assert ex.main(["build", "--lesson-dir", str(lessons)]) == 0
    assert "wrote" in capsys.readouterr().out
    fresh = target.read_bytes()
    assert ex.main(["build", "--lesson-dir", str(lessons), "3"]) == 0
    assert "up to date" in capsys.readouterr().out
    assert target.read_bytes() == fresh

    # a learner answers exercise 1 (and saves the notebook with another indentation)
    nb = json.loads(fresh)
    cell = next(c for c in nb["cells"] if "def my_ratio" in ex._source(c))
    cell["source"] = ["def my_ratio(logp_new, logp_old):\n",
                      "    return jnp.exp(logp_new - logp_old)"]
    edited = json.dumps(nb, indent=2, ensure_ascii=False).encode()
    target.write_bytes(edited)
    # ... and the lesson changes too
    lesson = _load(lessons / "03_ratio_and_surrogate.ipynb")
    lesson["cells"][0]["source"].append("\nA new sentence.")
    (lessons / "03_ratio_and_surrogate.ipynb").write_text(ex.render(lesson), encoding="utf-8")

    assert ex.main(["build", "--lesson-dir", str(lessons)]) == 0
    printed = capsys.readouterr().out
    assert "left alone" in printed and "03_ratio_and_surrogate.ipynb" in printed
    assert target.read_bytes() == edited

    assert ex.main(["build", "--force", "--lesson-dir", str(lessons)]) == 0
    assert "wrote" in capsys.readouterr().out
    assert target.read_text(encoding="utf-8") == ex.render(
        ex.build_notebook(lessons / "03_ratio_and_surrogate.ipynb")[0])


def test_an_unedited_exercise_notebook_follows_its_lesson(tmp_path):
    lesson = _mini_lesson(tmp_path, RATIO_SOLUTION, _pass_line())
    out = tmp_path / "exercises"
    assert [s for s, _ in ex.build(lesson_dir=lesson.parent, out_dir=out)] == ["wrote"]
    nb = _load(lesson)
    nb["cells"][0]["source"] = ["# A lesson, revised\n"]
    lesson.write_text(ex.render(nb), encoding="utf-8")
    assert [s for s, _ in ex.build(lesson_dir=lesson.parent, out_dir=out)] == ["wrote"]
    assert "revised" in (out / lesson.name).read_text(encoding="utf-8")


def test_a_lesson_whose_exercise_has_no_checker_is_skipped_and_reported(tmp_path, capsys):
    lesson = _mini_lesson(tmp_path, RATIO_SOLUTION, _pass_line())
    nb = _load(lesson)
    nb["cells"][3]["source"] = ["assert my_ratio(0.0, 0.0) == 1.0"]
    lesson.write_text(ex.render(nb), encoding="utf-8")
    assert ex.main(["build", "--lesson-dir", str(lesson.parent)]) == 1
    assert "must call a checker" in capsys.readouterr().out
    with pytest.raises(ex.ExerciseError, match="must call a checker"):
        ex.build(["01"], lesson_dir=lesson.parent, out_dir=tmp_path / "exercises")


# ------------------------------------------------------------------------------------------
# End to end: real nbval on built exercise notebooks
# ------------------------------------------------------------------------------------------


def _run_and_save(exercise: Path, answers: dict[str, str], saved: Path) -> Path:
    """What a learner does: write answers into the answer cells (``{function: body}``), run
    the whole notebook in a kernel, save it with its outputs."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(exercise, as_version=4)
    for cell in nb.cells:
        for name, body in answers.items():
            if f"def {name}(" in cell.source and ex.ANSWER_COMMENT in cell.source:
                cell.source = body
    saved.parent.mkdir(parents=True, exist_ok=True)
    NotebookClient(nb, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(saved.parent)}}).execute()
    nbformat.write(nb, saved)
    return saved


def _check(*args: str) -> subprocess.CompletedProcess:
    """The documented check, ``python -m course_lib.exercises check ...``."""
    return subprocess.run([sys.executable, "-m", "course_lib.exercises", "check", *args],
                          capture_output=True, text=True, check=False, timeout=900)


def _failed(run: subprocess.CompletedProcess) -> list[str]:
    return re.findall(r"^FAILED \S+\.ipynb::(.+?)(?: - |$)", run.stdout, flags=re.MULTILINE)


WRONG_RATIO = "def my_ratio(logp_new, logp_old):\n    return jnp.exp(logp_old - logp_new)\n"
RIGHT_RATIO = "def my_ratio(logp_new, logp_old):\n    return jnp.exp(logp_new - logp_old)\n"


@pytest.mark.slow
def test_a_saved_wrong_answer_fails_the_check_and_a_saved_right_one_passes(tmp_path):
    """The learner's loop: answer, run, save (the saved outputs are now the learner's own),
    check. The check compares with the reference, so saving a wrong answer does not help."""
    lesson = _mini_lesson(tmp_path, RATIO_SOLUTION, _pass_line())
    out = tmp_path / "notebooks" / "exercises"
    ex.build(lesson_dir=lesson.parent, out_dir=out)
    built = out / lesson.name
    mine = tmp_path / "my_notebooks" / "exercises"
    wrong = _run_and_save(built, {"my_ratio": WRONG_RATIO}, mine / "wrong" / lesson.name)
    assert "your ratio is inverted" in wrong.read_text(encoding="utf-8")  # saved as the output
    right = _run_and_save(built, {"my_ratio": RIGHT_RATIO}, mine / "right" / lesson.name)
    stub = _run_and_save(built, {}, mine / "stub" / lesson.name)

    for path, failed in [(wrong, ["exercise my_ratio (§ A lesson)"]), (right, []),
                         (stub, ["exercise my_ratio (§ A lesson)"])]:
        run = _check(str(path), "--out-dir", str(out))
        assert (run.returncode != 0, _failed(run)) == (bool(failed), failed), run.stdout[-3000:]
    assert "✗ ratio: your ratio is inverted" in _check(str(wrong), "--out-dir", str(out)).stdout


@pytest.mark.slow
def test_the_check_of_lesson_03_names_the_wrong_exercise_after_a_save(tmp_path):
    """Lesson 03 as a learner works it: one wrong answer and the others right, saved; then all
    right. Only the wrong exercise fails, named by function and section."""
    lesson = _load(LESSONS / "03_ratio_and_surrogate.ipynb")
    found = ex.find_exercises(lesson, "03_ratio_and_surrogate.ipynb")
    solutions = {e.names[0]: e.solution for e in found}
    assert set(solutions) == {"my_ratio", "my_surrogate", "predicted_true_gain"}
    path = EXERCISES / "03_ratio_and_surrogate.ipynb"

    saved = _run_and_save(path, {**solutions, "my_ratio": WRONG_RATIO}, tmp_path / "a" / path.name)
    run = _check(str(saved))
    assert run.returncode != 0 and _failed(run) == ["exercise my_ratio (§ Exercises)"], \
        run.stdout[-3000:]

    saved = _run_and_save(path, solutions, tmp_path / "b" / path.name)
    run = _check(str(saved))
    assert run.returncode == 0 and _failed(run) == [], run.stdout[-3000:]


def _reference_and_learner() -> tuple[dict, dict]:
    path = EXERCISES / "03_ratio_and_surrogate.ipynb"
    return _load(EXERCISES / ex.REFERENCE / path.name), _load(path)


def _cell(nb: dict, text: str) -> dict:
    return next(c for c in nb["cells"] if text in ex._source(c))


def test_the_checked_notebook_takes_only_the_answer_cells_from_the_learner():
    reference, learner = _reference_and_learner()
    _cell(learner, "def my_ratio(")["source"] = [RIGHT_RATIO]
    # a learner who rewrites a check cell, or its stored output, changes nothing
    check_cell = _cell(learner, "_ = check_ratio(my_ratio)")
    check_cell["source"] = ["print('✓ ratio: correct on 7 cases')"]
    check_cell["outputs"] = []
    merged = ex.check_notebook(learner, reference)
    assert ex._source(_cell(merged, "def my_ratio(")) == RIGHT_RATIO
    assert _cell(merged, "_ = check_ratio(my_ratio)") == _cell(reference, "_ = check_ratio(")
    assert [c["id"] for c in merged["cells"]] == [c["id"] for c in reference["cells"]]


def test_a_cell_the_learner_added_runs_in_place_without_compared_outputs():
    reference, learner = _reference_and_learner()
    at = learner["cells"].index(_cell(learner, "def my_ratio("))
    learner["cells"].insert(at, {"cell_type": "code", "id": "mine", "metadata": {},
                                 "execution_count": 3, "source": ["helper = 2"],
                                 "outputs": [{"output_type": "stream", "name": "stdout",
                                              "text": ["x"]}]})
    merged = ex.check_notebook(learner, reference)
    mine = merged["cells"][merged["cells"].index(_cell(merged, "def my_ratio(")) - 1]
    assert mine["id"] == "mine" and mine["outputs"] == []
    assert "nbval-ignore-output" in mine["metadata"]["tags"]


def test_a_deleted_answer_cell_keeps_the_stub_so_its_check_fails():
    reference, learner = _reference_and_learner()
    learner["cells"].remove(_cell(learner, "def my_ratio("))
    merged = ex.check_notebook(learner, reference)
    assert "raise NotImplementedError" in ex._source(_cell(merged, "def my_ratio("))


def test_every_code_cell_of_a_reference_is_named_and_answers_are_marked():
    for e in EXERCISE_LIST:
        reference = _load(EXERCISES / ex.REFERENCE / e.lesson)
        labels = [c["metadata"][ex.LABEL] for c in reference["cells"] if c["cell_type"] == "code"]
        answer = reference["cells"][e.cell + 1]  # after the header cell
        check = reference["cells"][e.check_cell + 1]
        assert answer["metadata"][ex.ANSWERS] == list(e.names)
        assert answer["metadata"][ex.LABEL] == check["metadata"][ex.LABEL]
        assert check["metadata"][ex.LABEL].startswith(f"exercise {e.names[0]}")
        assert len(set(labels)) == len(labels) - sum(  # answer and check cells share a name
            1 for c in reference["cells"] if ex.ANSWERS in c.get("metadata", {}))
        assert not any("image/png" in o.get("data", {}) for c in reference["cells"]
                       for o in c.get("outputs", []))
