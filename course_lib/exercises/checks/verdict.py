"""The verdict machinery every lesson's checkers share, and the cases two lessons share.

A checker's ``body`` returns how many hidden cases it passed (an ``int``, or a text such as
``"correct on 7 cases"`` that names the count) or raises :class:`Wrong`; :func:`verdict` turns
that into the ONE line the notebook prints: :func:`pass_line` (``✓ name: passed on 7 hidden
cases``), which gives no answer away (no value, no option, nothing derived from the answer; the
exercise notebooks store it), or ``✗ name: what is wrong``.
:func:`call` and :func:`grad` run the learner's function and turn its exceptions into fail
lines; :func:`compare` runs it on hidden :class:`Case` s, compares with a reference and names
the plausible wrong answer it matches.

Also here, because two lessons' checkers use them: the KL logit cases (lessons 02 and 04,
:func:`kl_logit_cases`, :data:`ZERO_P_HINT`), the small policy network (lessons 02 and 05,
:func:`policy_problem`), the stop-gradient test and the underflow hint (lessons 03 and 07,
:func:`stop_gradient_check`, :data:`UNDERFLOW_HINT`), and the trust-region step cases
(lessons 04 and 05, :func:`step_cases`, :func:`scale_variants`, :func:`spd`).
"""

from __future__ import annotations

import functools
import math
import re
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.core.distributions import categorical_kl

__all__ = [
    "FAIL",
    "PASS",
    "PASS_LINE",
    "UNDERFLOW_HINT",
    "ZERO_P_HINT",
    "Case",
    "PolicyProblem",
    "Wrong",
    "as_array",
    "as_bool",
    "call",
    "close",
    "compare",
    "describe_value",
    "f32",
    "fmt",
    "grad",
    "kl_logit_cases",
    "kl_rows",
    "log_softmax",
    "pass_line",
    "policy_problem",
    "scale_variants",
    "shape_words",
    "spd",
    "step_cases",
    "stop_gradient_check",
    "tanh_logits",
    "trained_greedy",
    "verdict",
]


PASS = "✓"
FAIL = "✗"


PASS_LINE = re.compile(r"^✓ (?P<name>[^:\n]+): passed(?: on (?P<n>\d+) hidden cases?)?$")
"""The only pass line a checker prints: the exercise's name and the number of hidden cases."""
_COUNT = re.compile(r"\b(\d+)\s+(?:hidden\s+)?(?:cases?|rollouts?|updates?|batches?|seeds?)\b")


def pass_line(name: str, detail: int | str | None = None) -> str:
    """The pass line of exercise ``name``: ``✓ name: passed on N hidden cases``.

    ``detail`` is the number of hidden cases, or a checker's older pass text (``"correct on 7
    cases (…)"``) from which only the count is kept: whatever else it said (a value, the right
    option, …) is dropped, because the exercise notebooks store this line. Without a count the
    line is ``✓ name: passed``.
    """
    if isinstance(detail, bool):
        detail = None
    if isinstance(detail, int):
        n = detail
    else:
        found = _COUNT.search(str(detail or ""))
        n = int(found.group(1)) if found else None
    if n is None:
        return f"{PASS} {name}: passed"
    return f"{PASS} {name}: passed on {n} hidden case{'' if n == 1 else 's'}"


class Wrong(Exception):
    """The learner's answer is wrong; the message is the text of the fail line."""


def _one_line(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def verdict(name: str, fn: Any, body: Callable[[], int | str], *,
            callable_fn: bool = True) -> bool:
    """Run ``body`` (which returns its number of hidden cases, or raises ``Wrong``); print one
    line: :func:`pass_line`, or ``✗ name: what is wrong``."""
    try:
        if callable_fn and not callable(fn):
            raise Wrong(f"expected your function, got {describe_value(fn)}")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            detail = body()
    except Wrong as wrong:
        print(f"{FAIL} {name}: {_one_line(str(wrong))}")
        return False
    except Exception as err:  # noqa: BLE001 (a checker never shows a traceback)
        print(f"{FAIL} {name}: could not check your answer ({type(err).__name__}: "
              f"{_one_line(str(err), 160)})")
        return False
    print(pass_line(name, detail))
    return True


def describe_value(value: Any) -> str:
    if value is Ellipsis:
        return "... (not answered yet)"
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


def call(fn: Callable, *args: Any) -> Any:
    """Call the learner's function; an exception becomes a fail line that names it."""
    try:
        return fn(*args)
    except Wrong:
        raise
    except Exception as err:  # noqa: BLE001 (any error of the learner's code is a verdict)
        message = _one_line(str(err), 220)
        raise Wrong(f"your function raised {type(err).__name__}"
                    + (f": {message}" if message else "")) from None


def grad(fn: Callable, *args: Any, argnums: int = 0) -> np.ndarray:
    """``jax.grad`` of the learner's scalar function, as float64; failures become fail lines."""
    try:
        return np.asarray(jax.grad(fn, argnums=argnums)(*args), np.float64)
    except Wrong:
        raise
    except Exception as err:  # noqa: BLE001 (any error of the learner's code is a verdict)
        raise Wrong(
            f"jax.grad could not differentiate your function ({type(err).__name__}: "
            f"{_one_line(str(err), 120)}); write it with jax.numpy so it can be differentiated"
        ) from None


def as_array(out: Any) -> np.ndarray:
    """The learner's output as a float64 array, or a fail line saying what it was."""
    if out is None:
        raise Wrong("your function returned None: did you forget the `return`?")
    if isinstance(out, tuple | list | dict):
        raise Wrong(f"your function returned a {type(out).__name__} of {len(out)} values; "
                    "return a single array")
    try:
        return np.asarray(out, np.float64)
    except Exception:  # noqa: BLE001 (whatever it was, it is not numbers)
        raise Wrong(f"your function returned a {type(out).__name__}, not numbers") from None


def as_bool(out: Any, what: str) -> bool:
    if isinstance(out, bool | np.bool_):
        return bool(out)
    arr = np.asarray(out) if hasattr(out, "dtype") else None
    if arr is not None and arr.shape == () and arr.dtype == np.bool_:
        return bool(arr)
    kind = (f"an array of dtype {arr.dtype} and shape {arr.shape}" if arr is not None
            else describe_value(out))
    raise Wrong(f"return True or False ({what}), not {kind}")


def fmt(x: Any) -> str:
    a = np.asarray(x, np.float64)
    if a.ndim == 0:
        return f"{float(a):.4g}"
    flat = a.ravel()
    body = ", ".join(f"{v:.4g}" for v in flat[:4])
    return f"[{body}{', …' if flat.size > 4 else ''}]"


def close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    return got.shape == want.shape and bool(
        np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True))


def shape_words(shape: tuple) -> str:
    return "a scalar, shape ()" if shape == () else f"shape {shape}"


class Case(NamedTuple):
    label: str
    args: tuple


def compare(
    fn: Callable,
    cases: Sequence[Case],
    reference: Callable[..., Any] | list,
    *,
    rtol: float,
    atol: float,
    wrong: Sequence[tuple[Callable[..., Any] | list, str]] = (),
    shape_hint: str = "",
    nan_hint: str = "",
    scale_hint: str = "",
) -> None:
    """Run ``fn`` on every case and compare with ``reference``; raise ``Wrong`` with a diagnosis.

    ``reference`` is a function of a case's arguments, or the list of expected outputs.
    ``wrong`` lists plausible wrong answers (a function implemented here, or its list of
    outputs) with their diagnosis: when the learner's outputs match one of them on every case,
    its message is the verdict. The hints complete the generic verdicts: a wrong shape
    (``shape_hint``), nan/inf where the reference is finite (``nan_hint``), the right answer
    times a constant (``scale_hint``).
    """
    got = [as_array(call(fn, *case.args)) for case in cases]
    want = [np.asarray(w, np.float64) for w in (
        reference if isinstance(reference, list) else [reference(*c.args) for c in cases])]
    for case, g, w in zip(cases, got, want, strict=True):
        if g.shape != w.shape:
            hint = f" ({shape_hint})" if shape_hint else ""
            raise Wrong(f"for {case.label} your function returned {shape_words(g.shape)}; "
                        f"expected {shape_words(w.shape)}{hint}")
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True))
           if not close(g, w, rtol, atol)]
    if not bad:
        return
    for variant, message in wrong:
        try:
            outs = [np.asarray(o, np.float64) for o in (
                variant if isinstance(variant, list) else [variant(*c.args) for c in cases])]
        except Exception:  # noqa: BLE001, S112 (this wrong answer cannot even run on these cases)
            continue
        if all(close(g, o, rtol, atol) for g, o in zip(got, outs, strict=True)):
            raise Wrong(message)
    if scale_hint:
        factor = _common_factor(got, want)
        if factor is not None:
            raise Wrong(f"your result is {factor:.3g} × the right one: {scale_hint}")
    i = bad[0]
    case, g, w = cases[i], got[i], want[i]
    if not np.isfinite(g).all() and np.isfinite(w).all():
        raise Wrong(f"your function returned nan or inf for {case.label}"
                    + (f": {nan_hint}" if nan_hint else ""))
    if g.ndim == 0 or g.size <= 4:
        detail = f"got {fmt(g)}, expected {fmt(w)}"
    else:
        j = int(np.argmax(~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)))
        detail = f"at index {np.unravel_index(j, g.shape)}: got {fmt(g.ravel()[j])}, " \
                 f"expected {fmt(w.ravel()[j])}"
    raise Wrong(f"wrong for {case.label}: {detail}")


def _common_factor(got: list[np.ndarray], want: list[np.ndarray]) -> float | None:
    """The constant c with got = c · want on every case (c ≠ 1), if there is one."""
    g = np.concatenate([x.ravel() for x in got])
    w = np.concatenate([x.ravel() for x in want])
    ok = np.abs(w) > 1e-6 * max(np.abs(w).max(initial=0.0), 1e-30)
    if not ok.any() or not np.isfinite(g).all():
        return None
    c = float(np.median(g[ok] / w[ok]))
    if abs(c - 1.0) < 1e-3 or not np.allclose(g, c * w, rtol=1e-3, atol=1e-6 * np.abs(w).max()):
        return None
    return c


def f32(x: Any) -> jax.Array:
    return jnp.asarray(np.asarray(x, np.float32))


def log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    m = np.max(z, axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def kl_rows(p_logits: Any, q_logits: Any) -> np.ndarray:
    """KL(p‖q) per row in float64 numpy (0 where p = 0), for the wrong-answer variants."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    p = np.exp(lp)
    terms = np.where(p > 0, p * (np.where(p > 0, lp, 0.0) - np.where(p > 0, lq, 0.0)), 0.0)
    return terms.sum(axis=-1)


def kl_logit_cases(seed: int) -> list[Case]:
    """Pairs of ``[B, A]`` logits: random, with zero probabilities, identical, extreme."""
    rng = np.random.default_rng(seed)
    cases = []
    for b, a, scale, noise in [(4, 3, 1.0, 1.0), (16, 3, 1.5, 0.3), (8, 5, 2.0, 1.5)]:
        p = rng.normal(0.0, scale, (b, a))
        cases.append(Case(f"random logits [{b}, {a}]", (f32(p), f32(p + rng.normal(0, noise,
                                                                                   (b, a))))))
    p = np.array([[0.0, 1.0, -np.inf], [0.5, -np.inf, -np.inf], [0.0, 0.0, 0.0]])
    q = np.array([[0.3, -0.2, 1.0], [0.0, 2.0, 1.0], [1.0, -1.0, 0.0]])
    cases.append(Case("rows where p has zero-probability actions",
                      (f32(p), f32(q))))
    p = rng.normal(size=(3, 4))
    cases.append(Case("identical logits (KL = 0)", (f32(p), f32(p))))
    p = np.array([[0.0, -200.0], [0.0, 0.0]])
    q = np.array([[0.0, 0.0], [0.0, -200.0]])
    cases.append(Case("extreme logits (a probability of e^-200)", (f32(p), f32(q))))
    return cases


ZERO_P_HINT = ("use jax.nn.log_softmax, never the log of a probability (−inf once it "
               "underflows), and where p = 0 set both log-probabilities to 0 before "
               "subtracting (0·(−inf) = nan)")


def tanh_logits(p: jax.Array, obs: jax.Array, hidden: int, actions: int) -> jax.Array:
    """Logits ``[B, actions]`` of a one-hidden-layer tanh network whose weights and biases are
    the flat vector ``p`` (``O·hidden + hidden + hidden·actions + actions``), on ``obs [B, O]``:
    the small policy of the checkers' hidden problems."""
    o, h, a = obs.shape[1], hidden, actions
    w1, b1 = p[:o * h].reshape(o, h), p[o * h:o * h + h]
    w2, b2 = p[o * h + h:o * h + h + h * a].reshape(h, a), p[o * h + h + h * a:]
    return jnp.tanh(obs @ w1 + b1[None, :]) @ w2 + b2[None, :]


def trained_greedy(config: Any, seed: int, *, threshold: float, cases: str, agent: str,
                   hint: str = "") -> None:
    """The capstones' second check: train ``config`` (the learner's code plugged in) on
    ``seed``, score the greedy policy over 10 gymnasium episodes, and raise ``Wrong`` below
    ``threshold``. ``cases`` ("6 hidden cases") and ``agent`` ("TRPO agent trained with your
    step") complete the fail line, ``hint`` ends it."""
    from course_lib.rl.evaluate import evaluate
    from course_lib.rl.train import train

    result = train(config, seed=seed)
    greedy = float(evaluate(result.params, config, episodes=10, seed=0))
    if not greedy >= threshold:
        raise Wrong(f"right on the {cases}, but the {agent} reached a greedy return of "
                    f"{greedy:.0f} < {threshold:.0f} on {config.env}" + (f": {hint}" if hint else ""))


class PolicyProblem(NamedTuple):
    """A small tanh policy network on fixed states, for the curvature exercises."""

    logits_fn: Callable[[jax.Array], jax.Array]  # θ [P] → logits [B, A]
    params: jax.Array  # θ_old [P]
    kl_fn: Callable[[jax.Array], jax.Array]  # θ → mean KL(π_old‖π_θ), π_old fixed
    fisher: np.ndarray  # [P, P], the Hessian of kl_fn at θ_old (Gauss-Newton form, float64)
    sensitive: jax.Array  # 0.05 × the top eigenvector of the Fisher: a short, sensitive step


@functools.lru_cache(maxsize=1)
def policy_problem() -> PolicyProblem:
    rng = np.random.default_rng(7)
    b, o, h, a = 32, 4, 8, 3
    obs = f32(rng.normal(size=(b, o)))
    params = f32(rng.normal(0.0, 0.7, o * h + h + h * a + a))
    logits_fn = functools.partial(tanh_logits, obs=obs, hidden=h, actions=a)

    old_logits = logits_fn(params)

    def kl_fn(p):
        return jnp.mean(categorical_kl(old_logits, logits_fn(p)))

    # F = mean over states of Jₛᵀ (diag πₛ − πₛπₛᵀ) Jₛ: the Hessian of kl_fn at θ_old
    jac = np.asarray(jax.jacfwd(logits_fn)(params), np.float64)  # [B, A, P]
    pi = np.exp(log_softmax(old_logits))
    h_out = np.einsum("ba,ac->bac", pi, np.eye(a)) - np.einsum("ba,bc->bac", pi, pi)
    fisher = np.einsum("bap,bac,bcq->pq", jac, h_out, jac) / b
    top = np.linalg.eigh(fisher)[1][:, -1]
    return PolicyProblem(logits_fn, params, kl_fn, fisher, f32(0.05 * top))


UNDERFLOW_HINT = ("exp(logp_new)/exp(logp_old) is 0/0 when both probabilities underflow in "
                  "float32; compute r = exp(logp_new − logp_old)")


def stop_gradient_check(objective: Callable[[jax.Array], Any], advantages: jax.Array,
                        what: str) -> None:
    """With logp_old computed from the same parameters, the gradient must still be A / B."""
    lp = f32(np.log(np.linspace(0.2, 0.7, advantages.shape[0])))
    g = grad(objective, lp)
    want = np.asarray(advantages, np.float64) / advantages.shape[0]
    if np.allclose(g, 0.0, atol=1e-7) or np.allclose(g, 2.0 * want, rtol=1e-4):
        raise Wrong(f"the value is right but the gradient also flows through logp_old: when "
                    f"logp_old comes from the same parameters, r ≡ 1 and {what} has no "
                    "gradient. π_old is fixed data: wrap logp_old in jax.lax.stop_gradient")
    if not close(g, want, 1e-4, 1e-7):
        raise Wrong(f"the value is right but the gradient of {what} is wrong at r = 1: it "
                    "should be A_t / B for each sample")


def spd(rng: np.random.Generator, n: int, floor: float = 0.1) -> np.ndarray:
    m = rng.normal(size=(n, n))
    return m @ m.T + floor * np.eye(n)


def step_cases(seed: int) -> list[Case]:
    """(direction, Fisher matrix, δ) triples: random SPD, ill-conditioned, the bandit's F."""
    from course_lib.lessons.l05_natural_gradient import BANDIT_START, softmax_fisher

    rng = np.random.default_rng(seed)
    cases = []
    for n, delta in [(4, 0.01), (4, 0.001), (6, 0.2), (3, 0.05)]:
        cases.append(Case(f"a random {n}×{n} Fisher and δ = {delta}",
                          (f32(rng.normal(size=n)), f32(spd(rng, n)), delta)))
    cases.append(Case("a diagonal Fisher (1, 100) and δ = 0.01",
                      (f32([1.0, 1.0]), f32(np.diag([1.0, 100.0])), 0.01)))
    fisher = np.asarray(softmax_fisher(jnp.asarray(BANDIT_START, jnp.float32)), np.float64)
    cases.append(Case("the bandit's Fisher matrix and δ = 0.01",
                      (f32([0.3, -1.0, 2.0]), f32(fisher), 0.01)))
    return cases


def scale_variants(d: Callable, what: str) -> list[tuple[Callable, str]]:
    """Wrong step scales, each returned through ``d`` (as α, or as the step α·s)."""
    n64 = lambda x: np.asarray(x, np.float64)

    def quad(s, f):
        return float(n64(s) @ n64(f) @ n64(s))

    return [
        (lambda s, f, delta: d(s, math.sqrt(delta / quad(s, f))),
         (f"{what} has a quadratic KL ½·sᵀFs of δ/2: you dropped the 2. The model is "
         "½·sᵀFs = δ, so the scale is √(2δ / sᵀFs)")),
        (lambda s, f, delta: d(s, 2.0 * delta / quad(s, f)),
         "you forgot the square root: α = √(2δ / sᵀFs)"),
        (lambda s, f, delta: d(s, math.sqrt(2.0 * delta / float(n64(s) @ n64(s)))),
         ("you scaled by the Euclidean length sᵀs; the trust region measures the step with the "
          "Fisher matrix: α = √(2δ / sᵀFs)")),
        (lambda s, f, delta: d(s, math.sqrt(quad(s, f) / (2.0 * delta))),
         "your scale is upside down: α = √(2δ / sᵀFs)"),
    ]
