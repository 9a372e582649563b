"""Checkers for the course's exercises: one per exercise, each prints ONE stable verdict line.

A lesson's exercise cell (between ``# BEGIN SOLUTION`` and ``# END SOLUTION``) defines a
function; the cell after it calls its checker::

    from course_lib.exercises.checks import check_ratio

    _ = check_ratio(my_ratio)

The checker runs the function on cases the learner does not see (random cases and corner
cases: zero probabilities, ``-inf`` logits, negative advantages, ratios beyond 1 ± ε, episode
ends, ...), compares it with the ``course_lib`` reference and prints exactly one line:

* ``✓ ratio: correct on 12 cases`` — the same text on every machine, so nbval can compare it;
* ``✗ ratio: your ratio is inverted: ...`` — what is wrong, in words a learner can act on.
  Common mistakes are recognised and named (KL reversed, ratio inverted, clip on the wrong
  side, no stop-gradient, CG without the residual update, GAE without the done mask, β
  updated the wrong way, ...). An exception raised by the learner's code is reported in the
  same line (``your function raised NotImplementedError: ...``), never as a traceback.

Every checker also returns ``True``/``False`` (assign it, ``_ = check_...``, so the notebook
does not display it). The exercise notebooks (``python -m course_lib.exercises build``) keep
the solution's stored output, the pass line, so ``pytest --nbval`` passes exactly when the
learner's answers are right.

Checkers for the exercises of lessons 06-09 are here too: :func:`check_clipped_surrogate`,
:func:`check_k3`, :func:`check_trust_region_scale`, :func:`check_line_search_accept`,
:func:`check_accepted_k`, :func:`check_adapt_beta`, :func:`check_steps_to_solve`,
:func:`check_seed_band`, :func:`check_solve_rate`, :func:`check_stop_after`,
:func:`check_normalise`, :func:`check_broke_promise` and
:func:`check_diagnosis`.
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

from course_lib.core.advantages import gae
from course_lib.core.distributions import categorical_kl
from course_lib.lessons.l02_policy_distance import radius_at_kl
from course_lib.rl.ppo import adapt_beta
from course_lib.core.solvers import conjugate_gradient, trust_region_step
from course_lib.core.surrogate import clipped_surrogate, kl_estimate, ratio, surrogate

__all__ = [
    "CHECKERS",
    "DIAGNOSES",
    "FAIL",
    "PASS",
    "Diagnosis",
    "check_accepted_k",
    "check_adapt_beta",
    "check_broke_promise",
    "check_categorical_kl",
    "check_cg_two_steps",
    "check_clipped_surrogate",
    "check_clipped_term",
    "check_diagnosis",
    "check_flipped_fraction",
    "check_fvp",
    "check_gae",
    "check_in_trust_region",
    "check_k3",
    "check_line_search_accept",
    "check_mean_kl",
    "check_normalise",
    "check_predict_alpha",
    "check_radius_for_kl",
    "check_ratio",
    "check_relative_l2",
    "check_sampled_kl",
    "check_scale_to_boundary",
    "check_seed_band",
    "check_solve_rate",
    "check_step_scale",
    "check_steps_to_solve",
    "check_stop_after",
    "check_surrogate",
    "check_trust_region_scale",
]

PASS = "✓"
FAIL = "✗"


# ==========================================================================================
# The verdict machinery
# ==========================================================================================


class _Wrong(Exception):
    """The learner's answer is wrong; the message is the text of the fail line."""


def _one_line(text: str, limit: int = 300) -> str:
    text = re.sub(r"\s+", " ", str(text)).strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _verdict(name: str, fn: Any, body: Callable[[], str], *, callable_fn: bool = True) -> bool:
    """Run ``body`` (which returns the pass detail or raises ``_Wrong``); print one line."""
    try:
        if callable_fn and not callable(fn):
            raise _Wrong(f"expected your function, got {_describe_value(fn)}")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            detail = body()
    except _Wrong as wrong:
        print(f"{FAIL} {name}: {_one_line(str(wrong))}")
        return False
    except Exception as err:  # noqa: BLE001 (a checker never shows a traceback)
        print(f"{FAIL} {name}: could not check your answer ({type(err).__name__}: "
              f"{_one_line(str(err), 160)})")
        return False
    print(f"{PASS} {name}: {detail}")
    return True


def _describe_value(value: Any) -> str:
    if value is Ellipsis:
        return "... (not answered yet)"
    if value is None:
        return "None"
    return f"a {type(value).__name__}"


def _call(fn: Callable, *args: Any) -> Any:
    """Call the learner's function; an exception becomes a fail line that names it."""
    try:
        return fn(*args)
    except _Wrong:
        raise
    except Exception as err:  # noqa: BLE001 (any error of the learner's code is a verdict)
        message = _one_line(str(err), 220)
        raise _Wrong(f"your function raised {type(err).__name__}"
                     + (f": {message}" if message else "")) from None


def _grad(fn: Callable, *args: Any, argnums: int = 0) -> np.ndarray:
    """``jax.grad`` of the learner's scalar function, as float64; failures become fail lines."""
    try:
        return np.asarray(jax.grad(fn, argnums=argnums)(*args), np.float64)
    except _Wrong:
        raise
    except Exception as err:  # noqa: BLE001 (any error of the learner's code is a verdict)
        raise _Wrong(
            f"jax.grad could not differentiate your function ({type(err).__name__}: "
            f"{_one_line(str(err), 120)}); write it with jax.numpy so it can be differentiated"
        ) from None


def _as_array(out: Any) -> np.ndarray:
    """The learner's output as a float64 array, or a fail line saying what it was."""
    if out is None:
        raise _Wrong("your function returned None: did you forget the `return`?")
    if isinstance(out, tuple | list | dict):
        raise _Wrong(f"your function returned a {type(out).__name__} of {len(out)} values; "
                     "return a single array")
    try:
        return np.asarray(out, np.float64)
    except Exception:  # noqa: BLE001 (whatever it was, it is not numbers)
        raise _Wrong(f"your function returned a {type(out).__name__}, not numbers") from None


def _as_bool(out: Any, what: str) -> bool:
    if isinstance(out, bool | np.bool_):
        return bool(out)
    arr = np.asarray(out) if hasattr(out, "dtype") else None
    if arr is not None and arr.shape == () and arr.dtype == np.bool_:
        return bool(arr)
    kind = (f"an array of dtype {arr.dtype} and shape {arr.shape}" if arr is not None
            else _describe_value(out))
    raise _Wrong(f"return True or False ({what}), not {kind}")


def _fmt(x: Any) -> str:
    a = np.asarray(x, np.float64)
    if a.ndim == 0:
        return f"{float(a):.4g}"
    flat = a.ravel()
    body = ", ".join(f"{v:.4g}" for v in flat[:4])
    return f"[{body}{', …' if flat.size > 4 else ''}]"


def _close(got: np.ndarray, want: np.ndarray, rtol: float, atol: float) -> bool:
    return got.shape == want.shape and bool(
        np.allclose(got, want, rtol=rtol, atol=atol, equal_nan=True))


def _shape_words(shape: tuple) -> str:
    return "a scalar, shape ()" if shape == () else f"shape {shape}"


class _Case(NamedTuple):
    label: str
    args: tuple


def _compare(
    fn: Callable,
    cases: Sequence[_Case],
    reference: Callable[..., Any] | list,
    *,
    rtol: float,
    atol: float,
    wrong: Sequence[tuple[Callable[..., Any] | list, str]] = (),
    shape_hint: str = "",
    nan_hint: str = "",
    scale_hint: str = "",
) -> None:
    """Run ``fn`` on every case and compare with ``reference``; raise ``_Wrong`` with a diagnosis.

    ``reference`` is a function of a case's arguments, or the list of expected outputs.
    ``wrong`` lists plausible wrong answers (a function implemented here, or its list of
    outputs) with their diagnosis: when the learner's outputs match one of them on every case,
    its message is the verdict. The hints complete the generic verdicts: a wrong shape
    (``shape_hint``), nan/inf where the reference is finite (``nan_hint``), the right answer
    times a constant (``scale_hint``).
    """
    got = [_as_array(_call(fn, *case.args)) for case in cases]
    want = [np.asarray(w, np.float64) for w in (
        reference if isinstance(reference, list) else [reference(*c.args) for c in cases])]
    for case, g, w in zip(cases, got, want, strict=True):
        if g.shape != w.shape:
            hint = f" ({shape_hint})" if shape_hint else ""
            raise _Wrong(f"for {case.label} your function returned {_shape_words(g.shape)}; "
                         f"expected {_shape_words(w.shape)}{hint}")
    bad = [i for i, (g, w) in enumerate(zip(got, want, strict=True))
           if not _close(g, w, rtol, atol)]
    if not bad:
        return
    for variant, message in wrong:
        try:
            outs = [np.asarray(o, np.float64) for o in (
                variant if isinstance(variant, list) else [variant(*c.args) for c in cases])]
        except Exception:  # noqa: BLE001, S112 (this wrong answer cannot even run on these cases)
            continue
        if all(_close(g, o, rtol, atol) for g, o in zip(got, outs, strict=True)):
            raise _Wrong(message)
    if scale_hint:
        factor = _common_factor(got, want)
        if factor is not None:
            raise _Wrong(f"your result is {factor:.3g} × the right one: {scale_hint}")
    i = bad[0]
    case, g, w = cases[i], got[i], want[i]
    if not np.isfinite(g).all() and np.isfinite(w).all():
        raise _Wrong(f"your function returned nan or inf for {case.label}"
                     + (f": {nan_hint}" if nan_hint else ""))
    if g.ndim == 0 or g.size <= 4:
        detail = f"got {_fmt(g)}, expected {_fmt(w)}"
    else:
        j = int(np.argmax(~np.isclose(g, w, rtol=rtol, atol=atol, equal_nan=True)))
        detail = f"at index {np.unravel_index(j, g.shape)}: got {_fmt(g.ravel()[j])}, " \
                 f"expected {_fmt(w.ravel()[j])}"
    raise _Wrong(f"wrong for {case.label}: {detail}")


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


def _f32(x: Any) -> jax.Array:
    return jnp.asarray(np.asarray(x, np.float32))


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, np.float64)
    m = np.max(z, axis=-1, keepdims=True)
    return z - m - np.log(np.sum(np.exp(z - m), axis=-1, keepdims=True))


def _kl_rows(p_logits: Any, q_logits: Any) -> np.ndarray:
    """KL(p‖q) per row in float64 numpy (0 where p = 0), for the wrong-answer variants."""
    lp, lq = _log_softmax(p_logits), _log_softmax(q_logits)
    p = np.exp(lp)
    terms = np.where(p > 0, p * (np.where(p > 0, lp, 0.0) - np.where(p > 0, lq, 0.0)), 0.0)
    return terms.sum(axis=-1)


def _kl_of_raw_logits(p_logits: Any, q_logits: Any) -> np.ndarray:
    """Σ_a p(a)·(z_p(a) − z_q(a)): the logits taken for log-probabilities (a wrong answer)."""
    zp, zq = np.asarray(p_logits, np.float64), np.asarray(q_logits, np.float64)
    p = np.exp(_log_softmax(zp))
    return np.where(p > 0, p * (np.where(p > 0, zp, 0.0) - np.where(p > 0, zq, 0.0)),
                    0.0).sum(axis=-1)


# ==========================================================================================
# Lesson 01: the cliff
# ==========================================================================================


def check_relative_l2(fn: Callable) -> bool:
    """``relative_l2(theta_old, theta_new)`` = ‖θ_new − θ_old‖₂ / ‖θ_old‖₂ (a scalar)."""

    def body() -> str:
        rng = np.random.default_rng(101)
        cases = []
        for size, scale, step in [(5, 1.0, 0.1), (100, 0.05, 0.3), (4610, 1.0, 0.02),
                                  (64, 3.0, 2.0), (8, 1e3, 0.5)]:
            old = rng.normal(0.0, scale, size)
            new = old + rng.normal(0.0, step * scale, size)
            cases.append(_Case(f"{size} parameters", (_f32(old), _f32(new))))
        old = rng.normal(size=10)
        cases.append(_Case("theta_new = theta_old", (_f32(old), _f32(old))))

        def ref(o, n):
            o, n = np.asarray(o, np.float64), np.asarray(n, np.float64)
            return np.linalg.norm(n - o) / np.linalg.norm(o)

        def as64(f):
            return lambda o, n: f(np.asarray(o, np.float64), np.asarray(n, np.float64))

        _compare(fn, cases, ref, rtol=1e-4, atol=1e-7, shape_hint="one number for the whole step",
                 wrong=[
                     (as64(lambda o, n: np.linalg.norm(n - o)),
                      "you returned the absolute distance ‖θ_new − θ_old‖₂; divide it by ‖θ_old‖₂"),
                     (as64(lambda o, n: np.linalg.norm(n - o) / np.linalg.norm(n)),
                      ("you divided by ‖θ_new‖₂; the change is relative to the old parameters, "
                       "‖θ_old‖₂")),
                     (as64(lambda o, n: np.sum((n - o) ** 2) / np.sum(o ** 2)),
                      ("you returned the square of the ratio, a ratio of sums of squares; use "
                       "the L2 norms, the square roots of the sums of squares (jnp.linalg.norm)")),
                     (as64(lambda o, n: abs(np.linalg.norm(n) - np.linalg.norm(o))
                           / np.linalg.norm(o)),
                      ("you compared the lengths ‖θ_new‖ and ‖θ_old‖; take the norm of the "
                       "difference vector θ_new − θ_old")),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("relative L2", fn, body)


def check_flipped_fraction(fn: Callable) -> bool:
    """``flipped_fraction(logits_old, logits_new)``: fraction of rows whose argmax changed."""

    def body() -> str:
        rng = np.random.default_rng(102)
        cases = []
        for b, a, noise in [(64, 2, 0.5), (50, 4, 1.0), (200, 3, 0.2), (1, 2, 3.0)]:
            old = rng.normal(0.0, 1.0, (b, a))
            new = old + rng.normal(0.0, noise, (b, a))
            cases.append(_Case(f"{b} states with {a} actions", (_f32(old), _f32(new))))
        old = rng.normal(size=(16, 2))
        cases.append(_Case("identical logits", (_f32(old), _f32(old))))
        cases.append(_Case("every decision reversed", (_f32(old), _f32(-old))))
        old = rng.normal(size=(6, 3))
        old[:, 2] = -np.inf
        new = old.copy()
        new[:3, [0, 1]] = old[:3, [1, 0]]
        cases.append(_Case("logits with -inf (an impossible action)", (_f32(old), _f32(new))))

        def flips(o, n):
            return np.argmax(np.asarray(o), -1) != np.argmax(np.asarray(n), -1)

        _compare(fn, cases, lambda o, n: flips(o, n).mean(), rtol=0.0, atol=1e-6,
                 shape_hint="one fraction for the whole batch",
                 wrong=[
                     (lambda o, n: flips(o, n).sum(),
                      ("you returned the number of flipped states; divide by the number of "
                       "states B to get a fraction")),
                     (lambda o, n: 1.0 - flips(o, n).mean(),
                      ("you returned the fraction of states whose most likely action did NOT "
                       "change")),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("flipped fraction", fn, body)


def check_predict_alpha(fn: Callable) -> bool:
    """``predict_alpha(alpha_small, kl_small, target_kl)`` = α₀ · √(target / KL(α₀))."""

    def body() -> str:
        args = [(1.0, 0.01, 0.1), (0.5, 0.4, 0.1), (0.1, 2e-4, 0.01), (2.0, 0.05, 0.05),
                (0.1, 1e-6, 0.01), (3.0, 0.2, 0.8)]
        cases = [_Case(f"alpha_small = {a}, kl_small = {k}, target_kl = {t}", (a, k, t))
                 for a, k, t in args]
        _compare(fn, cases, lambda a, k, t: a * math.sqrt(t / k), rtol=1e-5, atol=0.0,
                 shape_hint="one step size",
                 wrong=[
                     (lambda a, k, t: a * t / k,
                      ("you scaled α in proportion to the KL; the KL grows like α², so α grows "
                       "like the square root of the KL: α₀·√(target/KL(α₀))")),
                     (lambda a, k, t: a * math.sqrt(k / t),
                      ("your ratio is upside down: the target needs a LARGER step when it is "
                       "larger than KL(α₀): α₀·√(target/KL(α₀))")),
                     (lambda a, k, t: a * (t / k) ** 2,
                      "you squared the KL ratio; invert KL ∝ α²: α = α₀·√(target/KL(α₀))"),
                     (lambda a, k, t: math.sqrt(t / k),
                      "you forgot to multiply by α_small: α = α₀·√(target/KL(α₀))"),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("predict alpha", fn, body)


def _gae_variant(mask_bootstrap: bool = True, mask_recursion: bool = True, shift: int = 0,
                 use_last_value: bool = True, use_lambda: bool = True, add_values: bool = False):
    """A numpy GAE with one ingredient switched off, for the wrong-answer diagnosis."""

    def run(rewards, values, dones, last_value, gamma, lam):
        r, v = np.asarray(rewards, np.float64), np.asarray(values, np.float64)
        d = np.asarray(dones, np.float64)
        if shift:
            d = np.roll(d, shift)
            d[0 if shift > 0 else -1] = 0.0
        lv = float(last_value) if use_last_value else 0.0
        t_max = r.shape[0]
        adv = np.zeros(t_max)
        nxt_adv, nxt_v = 0.0, lv
        for t in reversed(range(t_max)):
            keep_b = 1.0 - d[t] if mask_bootstrap else 1.0
            keep_r = 1.0 - d[t] if mask_recursion else 1.0
            delta = r[t] + gamma * keep_b * nxt_v - v[t]
            nxt_adv = delta + gamma * (lam if use_lambda else 1.0) * keep_r * nxt_adv
            adv[t] = nxt_adv
            nxt_v = v[t]
        return adv + v if add_values else adv

    return run


def check_gae(fn: Callable) -> bool:
    """``my_gae(rewards, values, dones, last_value, gamma, lam)`` → advantages ``[T]``.

    The reference is ``course_lib.gae`` (its first output) on one environment's rollout.
    """

    def body() -> str:
        rng = np.random.default_rng(103)
        cases = []

        def add(label, t, done_at, gamma, lam, last_value=None):
            rewards = rng.uniform(-1.0, 2.0, t)
            values = rng.normal(3.0, 2.0, t)
            dones = np.zeros(t)
            dones[list(done_at)] = 1.0
            lv = rng.normal(3.0, 2.0) if last_value is None else last_value
            cases.append(_Case(label, (_f32(rewards), _f32(values), _f32(dones),
                                       jnp.float32(lv), gamma, lam)))

        add("a rollout without episode ends", 12, [], 0.99, 0.95)
        add("a rollout with episode ends at t = 3 and t = 7", 12, [3, 7], 0.99, 0.95)
        add("a rollout whose last step ends an episode", 10, [9], 0.9, 0.8, last_value=25.0)
        add("episode ends with lambda = 1 (Monte Carlo)", 9, [2, 5], 1.0, 1.0)
        add("episode ends with lambda = 0 (one-step TD)", 9, [4], 0.95, 0.0)
        add("two episode ends in a row", 8, [3, 4], 0.99, 0.9)
        add("every step ending an episode", 5, range(5), 0.99, 0.95, last_value=40.0)
        add("a single step", 1, [], 0.99, 0.95)
        add("a longer rollout with random episode ends", 24,
            np.flatnonzero(rng.uniform(size=24) < 0.2), 0.99, 0.95)

        def ref(r, v, d, lv, gamma, lam):
            return gae(r, v, d, lv, gamma, lam)[0]

        _compare(fn, cases, ref, rtol=1e-4, atol=1e-4,
                 shape_hint="one advantage per time step, shape [T]",
                 wrong=[
                     (_gae_variant(mask_bootstrap=False, mask_recursion=False),
                      ("your advantages leak across episode ends (no done mask): where done_t = 1, "
                       "s_{t+1} is the next episode's first state, so multiply both γ·V(s_{t+1}) "
                       "and γλ·Â_{t+1} by (1 − done_t)")),
                     (_gae_variant(mask_recursion=False),
                      ("you stopped the bootstrap at an episode end but not the recursion: "
                       "multiply γλ·Â_{t+1} by (1 − done_t) too, or the next episode's "
                       "advantages flow back into this one")),
                     (_gae_variant(mask_bootstrap=False),
                      ("you cut the recursion at an episode end but still bootstrap from "
                       "V(s_{t+1}), the next episode's first state: δ_t = r_t + γ(1 − done_t)"
                       "V(s_{t+1}) − V(s_t)")),
                     (_gae_variant(shift=1),
                      ("your done mask is one step late: done_t = 1 means step t itself ended "
                       "the episode, so it cuts the link between t and t+1")),
                     (_gae_variant(shift=-1),
                      ("your done mask is one step early: done_t = 1 means step t itself ended "
                       "the episode, so it cuts the link between t and t+1")),
                     (_gae_variant(use_last_value=False),
                      ("you ignored last_value: V(s_T) = last_value bootstraps the last step "
                       "(unless that step ended an episode)")),
                     (_gae_variant(use_lambda=False),
                      ("your recursion discounts Â_{t+1} by γ alone; GAE uses γλ: "
                       "Â_t = δ_t + γλ(1 − done_t)Â_{t+1}")),
                     (_gae_variant(add_values=True),
                      "you returned the λ-returns Â_t + V(s_t); return the advantages Â_t"),
                 ])
        return f"correct on {len(cases)} rollouts"

    return _verdict("GAE", fn, body)


# ==========================================================================================
# Lesson 02: weight distance vs policy distance
# ==========================================================================================


def _kl_logit_cases(seed: int) -> list[_Case]:
    """Pairs of ``[B, A]`` logits: random, with zero probabilities, identical, extreme."""
    rng = np.random.default_rng(seed)
    cases = []
    for b, a, scale, noise in [(4, 3, 1.0, 1.0), (16, 3, 1.5, 0.3), (8, 5, 2.0, 1.5)]:
        p = rng.normal(0.0, scale, (b, a))
        cases.append(_Case(f"random logits [{b}, {a}]", (_f32(p), _f32(p + rng.normal(0, noise,
                                                                                   (b, a))))))
    p = np.array([[0.0, 1.0, -np.inf], [0.5, -np.inf, -np.inf], [0.0, 0.0, 0.0]])
    q = np.array([[0.3, -0.2, 1.0], [0.0, 2.0, 1.0], [1.0, -1.0, 0.0]])
    cases.append(_Case("rows where p has zero-probability actions",
                       (_f32(p), _f32(q))))
    p = rng.normal(size=(3, 4))
    cases.append(_Case("identical logits (KL = 0)", (_f32(p), _f32(p))))
    p = np.array([[0.0, -200.0], [0.0, 0.0]])
    q = np.array([[0.0, 0.0], [0.0, -200.0]])
    cases.append(_Case("extreme logits (a probability of e^-200)", (_f32(p), _f32(q))))
    return cases


_ZERO_P_HINT = ("use jax.nn.log_softmax, never the log of a probability (−inf once it "
                "underflows), and where p = 0 set both log-probabilities to 0 before "
                "subtracting (0·(−inf) = nan)")


def check_categorical_kl(fn: Callable) -> bool:
    """``my_categorical_kl(p_logits, q_logits)`` → KL(p‖q) per row ``[B]``, finite gradients."""

    def body() -> str:
        cases = _kl_logit_cases(201)
        _compare(fn, cases, lambda p, q: categorical_kl(p, q), rtol=1e-4, atol=1e-6,
                 shape_hint="one KL per row, shape [B]", nan_hint=_ZERO_P_HINT,
                 wrong=[
                     (lambda p, q: _kl_rows(q, p),
                      ("your KL is KL(q‖p), reversed: KL(p‖q) = Σ_a p(a)·(log p(a) − log q(a)) "
                       "weights by the FIRST argument's probabilities")),
                     (_kl_of_raw_logits,
                      ("you used the logits as log-probabilities; normalise them first with "
                       "jax.nn.log_softmax")),
                     (lambda p, q: _kl_rows(p, q) / np.asarray(p).shape[-1],
                      "you averaged over the actions; the KL SUMS over actions"),
                 ])
        # the gradient must be finite where p has a zero, and right everywhere
        checks = len(cases)
        for argnums, which in ((0, "p_logits"), (1, "q_logits")):
            for case in (cases[0], cases[3]):
                g = _grad(lambda a, b: jnp.sum(fn(a, b)), *case.args, argnums=argnums)
                want = np.asarray(jax.grad(lambda a, b: jnp.sum(categorical_kl(a, b)),
                                           argnums=argnums)(*case.args))
                if not np.isfinite(g).all():
                    raise _Wrong(f"the value is right but its gradient with respect to {which} "
                                 "is nan where p has a zero-probability action: replace BOTH "
                                 "log-probabilities by 0 where p = 0 before subtracting them "
                                 "(a second jnp.where), so no inf enters the gradient")
                if not _close(g, want, 1e-3, 1e-5):
                    raise _Wrong(f"the value is right but the gradient with respect to {which} "
                                 f"is wrong for {case.label}: do not stop gradients or round "
                                 "inside the KL")
                checks += 1
        return f"correct on {checks} cases, gradients included"

    return _verdict("categorical KL", fn, body)


def check_sampled_kl(fn: Callable) -> bool:
    """``sampled_kl(key, old_logits, new_logits, n)``: Monte-Carlo KL(old‖new), actions ~ old."""

    def body() -> str:
        rng = np.random.default_rng(202)
        setups = []
        # a peaked π_old and a flatter π_new: KL(old‖new) and KL(new‖old) differ by a factor 2
        for b, a, n in [(32, 3, 1000), (24, 4, 2000)]:
            setups.append((f"{b} states with {a} actions, n = {n}",
                           rng.normal(0.0, 3.0, (b, a)), rng.normal(0.0, 0.5, (b, a)), n))
        old = rng.normal(0.0, 1.5, (32, 3))
        setups.append(("a small step (KL about 0.02), n = 1000", old,
                       old + rng.normal(0.0, 0.25, (32, 3)), 1000))
        old = rng.normal(0.0, 1.0, (16, 3))
        old[:, 0] = -np.inf  # an action π_old never takes: KL(old‖new) is finite
        setups.append(("π_old with a zero-probability action, n = 1000", old,
                       rng.normal(0.0, 1.0, (16, 3)), 1000))
        checks = 0
        for i, (label, old, new, n) in enumerate(setups):
            est = _as_array(_call(fn, jax.random.key(10 + i), _f32(old), _f32(new), n))
            if est.shape != ():
                raise _Wrong(f"for {label} your function returned {_shape_words(est.shape)}; "
                             "return one number, the mean over all samples")
            exact, se = _kl_and_stderr(old, new, n)
            reverse, se_reverse = _kl_and_stderr(new, old, n)
            tol = 6.0 * se + 1e-3 * exact
            tol_reverse = 6.0 * se_reverse + 1e-3 * reverse
            e = float(est)
            if abs(e - exact) <= tol:
                checks += 1
                continue
            if abs(e + exact) <= tol:
                raise _Wrong("your estimate has the wrong sign: average log π_old(a|s) − "
                             "log π_new(a|s) over actions drawn from π_old")
            if math.isfinite(reverse) and abs(e - reverse) <= tol_reverse:
                raise _Wrong("your estimate matches KL(new‖old): draw the actions from the OLD "
                             "policy and average log π_old − log π_new")
            if math.isfinite(reverse) and abs(e + reverse) <= tol_reverse:
                raise _Wrong("you drew the actions from the new policy; TRPO's batch comes from "
                             "π_old, so sample with the old logits")
            if not math.isfinite(e):
                raise _Wrong(f"your estimate is {e} for {label}: were actions drawn from π_new? "
                             "π_old never takes an action whose probability is 0")
            raise _Wrong(f"for {label} your estimate is {e:.4f}; the exact KL(old‖new) is "
                         f"{exact:.4f} and a sample mean should land within {tol:.4f} of it")
        label, old, new, n = setups[0]
        again = _as_array(_call(fn, jax.random.key(99), _f32(old), _f32(new), n))
        first = _as_array(_call(fn, jax.random.key(10), _f32(old), _f32(new), n))
        if np.array_equal(again, first):
            raise _Wrong("your estimate does not change with the key: draw n actions per state "
                         "with jax.random.categorical(key, ...) and average over them")
        return f"correct on {checks + 1} cases (within 6 standard errors of the exact KL)"

    return _verdict("sampled KL", fn, body)


def _kl_and_stderr(p_logits: np.ndarray, q_logits: np.ndarray, n: int) -> tuple[float, float]:
    """Mean KL(p‖q) over rows and the standard error of its n-sample-per-row k1 estimate."""
    lp, lq = _log_softmax(p_logits), _log_softmax(q_logits)
    p = np.exp(lp)
    log_r = np.where(p > 0, lp - np.where(p > 0, lq, 0.0), 0.0)
    kl = np.sum(p * log_r, axis=-1)
    var = np.sum(p * np.square(log_r), axis=-1) - kl ** 2
    b = kl.shape[0]
    return float(kl.mean()), float(np.sqrt(max(var.sum(), 0.0) / n) / b)


class _PolicyProblem(NamedTuple):
    """A small tanh policy network on fixed states, for the curvature exercises."""

    logits_fn: Callable[[jax.Array], jax.Array]  # θ [P] → logits [B, A]
    params: jax.Array  # θ_old [P]
    kl_fn: Callable[[jax.Array], jax.Array]  # θ → mean KL(π_old‖π_θ), π_old fixed
    fisher: np.ndarray  # [P, P], the Hessian of kl_fn at θ_old (Gauss-Newton form, float64)
    sensitive: jax.Array  # 0.05 × the top eigenvector of the Fisher: a short, sensitive step


@functools.lru_cache(maxsize=1)
def _policy_problem() -> _PolicyProblem:
    rng = np.random.default_rng(7)
    b, o, h, a = 32, 4, 8, 3
    obs = _f32(rng.normal(size=(b, o)))
    params = _f32(rng.normal(0.0, 0.7, o * h + h + h * a + a))

    def logits_fn(p):
        w1, b1 = p[:o * h].reshape(o, h), p[o * h:o * h + h]
        w2, b2 = p[o * h + h:o * h + h + h * a].reshape(h, a), p[o * h + h + h * a:]
        return jnp.tanh(obs @ w1 + b1[None, :]) @ w2 + b2[None, :]

    old_logits = logits_fn(params)

    def kl_fn(p):
        return jnp.mean(categorical_kl(old_logits, logits_fn(p)))

    # F = mean over states of Jₛᵀ (diag πₛ − πₛπₛᵀ) Jₛ: the Hessian of kl_fn at θ_old
    jac = np.asarray(jax.jacfwd(logits_fn)(params), np.float64)  # [B, A, P]
    pi = np.exp(_log_softmax(old_logits))
    h_out = np.einsum("ba,ac->bac", pi, np.eye(a)) - np.einsum("ba,bc->bac", pi, pi)
    fisher = np.einsum("bap,bac,bcq->pq", jac, h_out, jac) / b
    top = np.linalg.eigh(fisher)[1][:, -1]
    return _PolicyProblem(logits_fn, params, kl_fn, fisher, _f32(0.05 * top))


def check_radius_for_kl(fn: Callable) -> bool:
    """``radius_for_kl(logits_fn, params, direction, target)``: the L2 radius at which
    KL(old‖new) along ``direction`` reaches ``target``."""

    def body() -> str:
        prob = _policy_problem()
        rng = np.random.default_rng(203)
        directions = [("a random direction", _f32(rng.normal(size=prob.params.shape))),
                      ("the most sensitive direction", prob.sensitive)]
        cases = [_Case(f"{name} and target {t}", (prob.logits_fn, prob.params, d, t))
                 for name, d in directions for t in (0.001, 0.01, 0.2)]

        def ref(logits_fn, params, d, t):
            return radius_at_kl(logits_fn, params, d, t)

        def reverse(logits_fn, params, d, t):
            u = d / jnp.linalg.norm(d)
            kl = jax.jit(lambda r: jnp.mean(categorical_kl(logits_fn(params + r * u),
                                                            logits_fn(params))))
            return _bisect(lambda r: float(kl(jnp.float32(r))), t)

        def unnormalised(logits_fn, params, d, t):
            return ref(logits_fn, params, d, t) / float(jnp.linalg.norm(d))

        _compare(fn, cases, ref, rtol=3e-3, atol=0.0, shape_hint="one radius",
                 wrong=[
                     (reverse,
                      ("your radius is where KL(new‖old) reaches the target; the trust region "
                       "measures KL(old‖new): mean_kl(logits_fn, params, new)")),
                     (unnormalised,
                      ("your radius is in units of ‖direction‖: move by r along the UNIT "
                       "direction (perturb normalises it) so that r is an L2 distance in weight "
                       "space")),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("radius for KL", fn, body)


def _bisect(f: Callable[[float], float], target: float) -> float:
    lo, hi = 0.0, 1e-3
    while f(hi) < target and hi < 1e6:
        lo, hi = hi, 2.0 * hi
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if f(mid) >= target else (mid, hi)
    return hi


# ==========================================================================================
# Lesson 03: the ratio and the surrogate
# ==========================================================================================


def _logp_cases(seed: int) -> list[_Case]:
    rng = np.random.default_rng(seed)
    cases = [_Case("the worked example (π_old = 0.2, π_new = 0.8)",
                   (_f32(np.log([0.8])), _f32(np.log([0.2]))))]
    for b in (8, 3, 32):
        old = np.log(rng.uniform(0.02, 0.98, b))
        cases.append(_Case(f"random log-probabilities, B = {b}",
                           (_f32(old + rng.normal(0.0, 0.6, b)), _f32(old))))
    lp = np.log(rng.uniform(0.1, 0.9, 5))
    cases.append(_Case("logp_new = logp_old", (_f32(lp), _f32(lp))))
    cases.append(_Case("log-probabilities near −110 (probabilities that underflow)",
                       (_f32([-109.0, -3.0, -120.0]), _f32([-110.0, -1.0, -118.5]))))
    cases.append(_Case("ratios far beyond 1 ± 0.2 (π_new/π_old = 10 and 1/10)",
                       (_f32(np.log([0.5, 0.01])), _f32(np.log([0.05, 0.1])))))
    return cases


_UNDERFLOW_HINT = ("exp(logp_new)/exp(logp_old) is 0/0 when both probabilities underflow in "
                   "float32; compute r = exp(logp_new − logp_old)")


def check_ratio(fn: Callable) -> bool:
    """``my_ratio(logp_new, logp_old)`` → r = exp(logp_new − logp_old) per sample ``[B]``."""

    def body() -> str:
        cases = _logp_cases(301)
        n64 = lambda x: np.asarray(x, np.float64)
        _compare(fn, cases, lambda new, old: ratio(new, old), rtol=1e-5, atol=1e-30,
                 shape_hint="one ratio per sample", nan_hint=_UNDERFLOW_HINT,
                 wrong=[
                     (lambda new, old: np.exp(n64(old) - n64(new)),
                      ("your ratio is inverted: π_old/π_new; r = π_new/π_old = "
                       "exp(logp_new − logp_old)")),
                     (lambda new, old: n64(new) - n64(old),
                      "you returned log r = logp_new − logp_old; the ratio is its exponential"),
                     (lambda new, old: np.exp(np.asarray(new)) / np.exp(np.asarray(old)),
                      _UNDERFLOW_HINT),
                     (lambda new, old: n64(new) / n64(old),
                      ("you divided the log-probabilities; r = π_new/π_old = "
                       "exp(logp_new − logp_old)")),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("ratio", fn, body)


def _surrogate_cases(seed: int) -> list[_Case]:
    rng = np.random.default_rng(seed)
    cases = [_Case("the worked example (r = 4, A = +5)",
                   (_f32(np.log([0.8])), _f32(np.log([0.2])), _f32([5.0])))]
    for b in (6, 16, 32):
        old = np.log(rng.uniform(0.05, 0.95, b))
        cases.append(_Case(f"random samples, B = {b}",
                           (_f32(old + rng.normal(0.0, 0.5, b)), _f32(old),
                            _f32(rng.normal(0.0, 2.0, b)))))
    old = np.log(rng.uniform(0.05, 0.95, 8))
    cases.append(_Case("negative advantages only",
                       (_f32(old + rng.normal(0.0, 0.5, 8)), _f32(old),
                        _f32(-rng.uniform(0.5, 3.0, 8)))))
    cases.append(_Case("log-probabilities near −110",
                       (_f32([-109.0, -3.0]), _f32([-110.0, -1.0]), _f32([1.0, -2.0]))))
    return cases


def _stop_gradient_check(objective: Callable[[jax.Array], Any], advantages: jax.Array,
                         what: str) -> None:
    """With logp_old computed from the same parameters, the gradient must still be A / B."""
    lp = _f32(np.log(np.linspace(0.2, 0.7, advantages.shape[0])))
    g = _grad(objective, lp)
    want = np.asarray(advantages, np.float64) / advantages.shape[0]
    if np.allclose(g, 0.0, atol=1e-7) or np.allclose(g, 2.0 * want, rtol=1e-4):
        raise _Wrong(f"the value is right but the gradient also flows through logp_old: when "
                     f"logp_old comes from the same parameters, r ≡ 1 and {what} has no "
                     "gradient. π_old is fixed data: wrap logp_old in jax.lax.stop_gradient")
    if not _close(g, want, 1e-4, 1e-7):
        raise _Wrong(f"the value is right but the gradient of {what} is wrong at r = 1: it "
                     "should be A_t / B for each sample")


def check_surrogate(fn: Callable) -> bool:
    """``my_surrogate(logp_new, logp_old, advantages)`` → mean(r·A), with ``logp_old`` under
    ``jax.lax.stop_gradient``."""

    def body() -> str:
        cases = _surrogate_cases(302)
        n64 = lambda x: np.asarray(x, np.float64)
        _compare(fn, cases, lambda new, old, a: surrogate(new, old, a), rtol=1e-5, atol=1e-6,
                 shape_hint="the surrogate is one number, the mean over the batch",
                 nan_hint=_UNDERFLOW_HINT,
                 wrong=[
                     (lambda new, old, a: np.sum(np.exp(n64(new) - n64(old)) * n64(a)),
                      "you summed r·A over the batch; the surrogate is the MEAN of r·A"),
                     (lambda new, old, a: np.mean(np.exp(n64(old) - n64(new)) * n64(a)),
                      "your ratio is inverted: π_old/π_new; r = exp(logp_new − logp_old)"),
                     (lambda new, old, a: np.mean((n64(new) - n64(old)) * n64(a)),
                      ("you weighted A by log r; the surrogate weights it by the ratio "
                       "r = exp(logp_new − logp_old)")),
                     (lambda new, old, a: np.mean(n64(new) * n64(a)),
                      ("you returned mean(logp_new·A), the REINFORCE objective; the surrogate "
                       "uses the ratio r = exp(logp_new − logp_old)")),
                 ])
        a = _f32([1.0, -2.0, 0.5, 3.0])
        _stop_gradient_check(lambda lp: fn(lp, lp, a), a, "the surrogate")
        return f"correct on {len(cases) + 1} cases, gradient included"

    return _verdict("surrogate", fn, body)


def _clip_term(r: float, a: float, eps: float) -> float:
    return min(r * a, min(max(r, 1.0 - eps), 1.0 + eps) * a)


def check_clipped_term(fn: Callable) -> bool:
    """``my_clipped_term(r, advantage, eps)`` = min(r·A, clip(r, 1 − ε, 1 + ε)·A), one sample."""

    def body() -> str:
        cases = [_Case(f"r = {r}, A = {a}, ε = {eps}", (jnp.float32(r), jnp.float32(a), eps))
                 for eps in (0.2, 0.1) for a in (-5.0, -0.5, 0.0, 2.0, 5.0)
                 for r in (0.3, 0.5, 0.85, 1.0, 1.05, 1.15, 1.5, 4.0)]
        clip = lambda r, e: min(max(r, 1.0 - e), 1.0 + e)

        def variant(f):
            return lambda r, a, e: f(float(r), float(a), e)

        _compare(fn, cases, variant(_clip_term), rtol=1e-5, atol=1e-6,
                 shape_hint="one sample's term is one number",
                 wrong=[
                     (variant(lambda r, a, e: a * min(r, 1.0 + e)),
                      ("your clip is on the wrong side for A < 0: there the term is flat BELOW "
                       "1 − ε (making a bad action rarer earns nothing more) and keeps r·A above "
                       "1 + ε. min(r·A, clip(r, 1 − ε, 1 + ε)·A) gets both signs right")),
                     (variant(lambda r, a, e: max(r * a, clip(r, e) * a)),
                      ("you took the max; PPO's term is the pessimistic MIN of r·A and "
                       "clip(r, 1 − ε, 1 + ε)·A")),
                     (variant(lambda r, a, e: clip(r, e) * a),
                      ("you dropped the min: with A < 0 and r > 1 + ε the term must stay r·A "
                       "(the clip never hides a step that made a bad action more likely); "
                       "return min(r·A, clip(r, 1 − ε, 1 + ε)·A)")),
                     (variant(lambda r, a, e: min(r * a, min(max(r * a, 1.0 - e), 1.0 + e))),
                      "you clipped the product r·A; clip the ratio r, then multiply by A"),
                     (variant(lambda r, a, e: r * a),
                      "you never clip: the term is min(r·A, clip(r, 1 − ε, 1 + ε)·A)"),
                 ])
        low, high = (_clip_term(r, -5.0, 0.2) for r in (0.5, 4.0))
        return (f"correct on {len(cases)} cases (A = -5, ε = 0.2: r = 0.5 → {low:.1f}, "
                f"r = 4 → {high:.1f})")

    return _verdict("clipped term", fn, body)


# ==========================================================================================
# Lesson 04: the KL trust region
# ==========================================================================================


def check_mean_kl(fn: Callable) -> bool:
    """``my_mean_kl(old_logits, new_logits)`` → mean over states of KL(π_old‖π_new), a scalar."""

    def body() -> str:
        cases = _kl_logit_cases(401)
        _compare(fn, cases, lambda o, n: jnp.mean(categorical_kl(o, n)), rtol=1e-4, atol=1e-6,
                 shape_hint="the MEAN over the states, one number", nan_hint=_ZERO_P_HINT,
                 wrong=[
                     (lambda o, n: _kl_rows(n, o).mean(),
                      ("your KL is KL(new‖old); the trust region uses KL(old‖new) = "
                       "Σ_a π_old(a)·(log π_old(a) − log π_new(a))")),
                     (lambda o, n: _kl_rows(o, n).sum(),
                      "you summed the KL over the states; the trust region bounds the MEAN"),
                     (lambda o, n: _kl_rows(o, n).max(),
                      ("you returned the largest KL of a state; the trust region bounds the "
                       "MEAN over the states")),
                     (lambda o, n: _kl_rows(o, n).mean() / np.asarray(o).shape[-1],
                      ("you averaged over the actions too; the KL SUMS over actions, then the "
                       "mean is over states")),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("mean KL from logits", fn, body)


@functools.lru_cache(maxsize=1)
def _toy_steps() -> list[tuple[str, str, np.ndarray, np.ndarray, float]]:
    """Lesson 04's toy: the plain gradient step and TRPO's step, with their δ."""
    from course_lib.lessons.l04_trust_region import DEFAULT_TOY, toy_gradient, toy_logits, toy_natural_step

    theta = jnp.asarray(DEFAULT_TOY.theta_old, jnp.float32)

    @jax.jit
    def steps(delta):
        return (toy_logits(theta), toy_logits(theta + toy_gradient()),
                toy_logits(theta + toy_natural_step(delta)))

    out = []
    for name, label, delta, which in [
        ("gradient step", "the toy's gradient step", 0.01, 1),
        ("gradient step", "the toy's gradient step", 0.1, 1),
        ("TRPO's step", "the toy's TRPO step", 0.3, 2),
        ("TRPO's step", "the toy's TRPO step", 1.0, 2),
    ]:
        logits = steps(jnp.float32(delta))
        out.append((name, label, np.asarray(logits[0])[None, :],
                    np.asarray(logits[which])[None, :], delta))
    return out


def check_in_trust_region(fn: Callable) -> bool:
    """``my_in_trust_region(old_logits, new_logits, delta)``: mean KL(old‖new) ≤ δ, a bool."""

    def body() -> str:
        rng = np.random.default_rng(402)
        cases = []

        def add(label, old, new, delta):
            cases.append(_Case(label, (_f32(old), _f32(new), delta)))

        def kl(o, n):
            return _kl_rows(o, n)

        old = rng.normal(0.0, 1.0, (16, 3))
        new = old + rng.normal(0.0, 0.3, (16, 3))
        f = kl(old, new).mean()
        add("a step with mean KL half of δ", old, new, float(2.0 * f))
        add("a step with mean KL twice δ", old, new, float(0.5 * f))
        # forward and reverse KL on opposite sides of δ
        old = np.log(np.array([[0.9, 0.05, 0.05]] * 4))
        new = np.log(np.array([[0.5, 0.25, 0.25]] * 4))
        f, r = kl(old, new).mean(), kl(new, old).mean()  # 0.37 and 0.51
        add("a step with KL(old‖new) < δ < KL(new‖old)", old, new, float(np.sqrt(f * r)))
        add("a step with KL(new‖old) < δ < KL(old‖new)", new, old, float(np.sqrt(f * r)))
        # mean below δ although one state is far outside
        old = rng.normal(0.0, 1.0, (8, 3))
        new = old.copy()
        new[0] += np.array([3.0, -3.0, 0.0])
        per_state = kl(old, new)
        add("a batch whose mean KL is below δ but one state's KL is above",
            old, new, float(np.sqrt(per_state.mean() * per_state.max())))
        old = np.array([[0.0, -np.inf, 1.0], [0.0, 0.0, 0.0]])
        new = np.array([[0.5, 0.0, 0.0], [0.1, -0.1, 0.0]])
        add("π_old with a zero-probability action", old, new, 0.2)
        toy = _toy_steps()
        for _, label, o, n, d in toy:
            add(f"{label} at δ = {d}", o, n, d)

        answers = []
        for case in cases:
            got = _as_bool(_call(fn, *case.args), "whether mean KL(old‖new) ≤ δ")
            answers.append(got)
        truth = [bool(kl(o, n).mean() <= d) for o, n, d in (c.args for c in cases)]
        if answers == truth:
            inside = lambda ok: "inside" if ok else "outside"
            toy_text = "; ".join(f"{name} {inside(ok)} δ = {d:g}" for (name, _, _, _, d), ok
                                 in zip(toy, truth[-len(toy):], strict=True))
            return f"correct on {len(cases)} cases (on the toy: {toy_text})"

        def verdicts(rule):
            return [bool(rule(np.asarray(o), np.asarray(n)) <= d)
                    for o, n, d in (c.args for c in cases)]

        for rule, message in [
            (lambda o, n: kl(n, o).mean(),
             "you measured KL(new‖old); the trust region bounds KL(old‖new)"),
            (lambda o, n: kl(o, n).max(),
             ("you bounded the largest per-state KL; TRPO's trust region bounds the MEAN KL over "
              "the states")),
            (lambda o, n: kl(o, n).sum(),
             "you bounded the SUM of the per-state KLs; the trust region bounds their mean"),
        ]:
            if answers == verdicts(rule):
                raise _Wrong(message)
        i = next(i for i, (a, t) in enumerate(zip(answers, truth, strict=True)) if a != t)
        raise _Wrong(f"wrong for {cases[i].label}: you said {answers[i]}, but its mean "
                     f"KL(old‖new) is {'≤' if truth[i] else '>'} δ")

    return _verdict("inside the trust region", fn, body)


def _spd(rng: np.random.Generator, n: int, floor: float = 0.1) -> np.ndarray:
    m = rng.normal(size=(n, n))
    return m @ m.T + floor * np.eye(n)


def _step_cases(seed: int) -> list[_Case]:
    """(direction, Fisher matrix, δ) triples: random SPD, ill-conditioned, the bandit's F."""
    from course_lib.lessons.l05_natural_gradient import BANDIT_START, softmax_fisher

    rng = np.random.default_rng(seed)
    cases = []
    for n, delta in [(4, 0.01), (4, 0.001), (6, 0.2), (3, 0.05)]:
        cases.append(_Case(f"a random {n}×{n} Fisher and δ = {delta}",
                           (_f32(rng.normal(size=n)), _f32(_spd(rng, n)), delta)))
    cases.append(_Case("a diagonal Fisher (1, 100) and δ = 0.01",
                       (_f32([1.0, 1.0]), _f32(np.diag([1.0, 100.0])), 0.01)))
    fisher = np.asarray(softmax_fisher(jnp.asarray(BANDIT_START, jnp.float32)), np.float64)
    cases.append(_Case("the bandit's Fisher matrix and δ = 0.01",
                       (_f32([0.3, -1.0, 2.0]), _f32(fisher), 0.01)))
    return cases


def _beta(d: np.ndarray, fisher: np.ndarray, delta: float) -> float:
    d, fisher = np.asarray(d, np.float64), np.asarray(fisher, np.float64)
    return math.sqrt(2.0 * delta / float(d @ fisher @ d))


def _scale_variants(d: Callable, what: str) -> list[tuple[Callable, str]]:
    """Wrong step scales, each returned through ``d`` (as β, or as the step β·s)."""
    n64 = lambda x: np.asarray(x, np.float64)

    def quad(s, f):
        return float(n64(s) @ n64(f) @ n64(s))

    return [
        (lambda s, f, delta: d(s, math.sqrt(delta / quad(s, f))),
         (f"{what} has a quadratic KL ½·sᵀFs of δ/2: you dropped the 2. The model is "
         "½·sᵀFs = δ, so the scale is √(2δ / sᵀFs)")),
        (lambda s, f, delta: d(s, 2.0 * delta / quad(s, f)),
         "you forgot the square root: β = √(2δ / sᵀFs)"),
        (lambda s, f, delta: d(s, math.sqrt(2.0 * delta / float(n64(s) @ n64(s)))),
         ("you scaled by the Euclidean length sᵀs; the trust region measures the step with the "
          "Fisher matrix: β = √(2δ / sᵀFs)")),
        (lambda s, f, delta: d(s, math.sqrt(quad(s, f) / (2.0 * delta))),
         "your scale is upside down: β = √(2δ / sᵀFs)"),
    ]


def check_scale_to_boundary(fn: Callable) -> bool:
    """``my_scale_to_boundary(s, fisher, delta)`` → the step β·s with ½(βs)ᵀF(βs) = δ."""

    def body() -> str:
        cases = _step_cases(403)
        step = lambda s, beta: beta * np.asarray(s, np.float64)
        _compare(fn, cases,
                 lambda s, f, delta: trust_region_step(s, lambda v: f @ v, delta),
                 rtol=1e-4, atol=1e-7,
                 shape_hint="return the scaled step β·s, shaped like s, not the scale β",
                 wrong=_scale_variants(step, "your step"))
        return f"correct on {len(cases)} cases"

    return _verdict("scale to the trust-region boundary", fn, body)


# ==========================================================================================
# Lesson 05: the natural gradient
# ==========================================================================================


@functools.lru_cache(maxsize=1)
def _fvp_cases() -> tuple[list[_Case], list[np.ndarray]]:
    """(kl_fn, params, v) cases with their dense F v."""
    from course_lib.lessons.l05_natural_gradient import BANDIT_START, bandit_kl, softmax_fisher

    prob = _policy_problem()
    rng = np.random.default_rng(501)
    v = _f32(rng.normal(size=prob.params.shape))
    start = jnp.asarray(BANDIT_START, jnp.float32)
    w = _f32([0.3, -1.0, 2.0])
    a = _spd(rng, 4, 1.0)
    x0 = _f32(rng.normal(size=4))

    def smooth(x):  # not a KL: its gradient at x0 is not 0
        return jnp.sum(jnp.logaddexp(0.0, _f32(a) @ x)) + 0.1 * jnp.sum(x ** 4)

    u = _f32(rng.normal(size=4))
    cases = [
        _Case("a policy network's mean KL at θ_old, random v", (prob.kl_fn, prob.params, v)),
        _Case("a policy network's mean KL at θ_old, v = its most sensitive direction",
              (prob.kl_fn, prob.params, prob.sensitive)),
        _Case("the bandit's KL at its start", (lambda z: bandit_kl(start, z), start, w)),
        _Case("a smooth function whose gradient is not 0", (smooth, x0, u)),
    ]
    expected = [
        prob.fisher @ np.asarray(v, np.float64),
        prob.fisher @ np.asarray(prob.sensitive, np.float64),
        np.asarray(softmax_fisher(start), np.float64) @ np.asarray(w, np.float64),
        np.asarray(jax.hessian(smooth)(x0), np.float64) @ np.asarray(u, np.float64),
    ]
    return cases, expected


def check_fvp(fn: Callable) -> bool:
    """``my_fvp(kl_fn, params, v)`` → F v, F the Hessian of ``kl_fn`` at ``params``."""

    def body() -> str:
        cases, expected = _fvp_cases()

        def gradient(kl_fn, params, v):
            return jax.grad(kl_fn)(params)

        _compare(fn, cases, list(expected), rtol=2e-3, atol=1e-5,
                 shape_hint="F v has the shape of v; jax.jvp of jax.grad(kl_fn) gives it",
                 scale_hint="F is the Hessian of kl_fn itself, with no factor and no damping",
                 wrong=[
                     *[([e + c * np.asarray(case.args[2], np.float64)
                         for e, case in zip(expected, cases, strict=True)],
                        (f"your product is F v + {c:g}·v: that is damping, which this F v does "
                         "not have (TRPO adds it later, for conjugate gradient)"))
                       for c in (0.1, 0.01, 0.001)],
                     (gradient,
                      ("you returned the gradient of kl_fn (the first output of jax.jvp); F v "
                       "is the derivative of that gradient in the direction v, the SECOND "
                       "output: jax.jvp(jax.grad(kl_fn), (params,), (v,))[1]")),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("Fisher-vector product", fn, body)


def check_step_scale(fn: Callable) -> bool:
    """``my_step_scale(direction, fvp, delta)`` → the scalar β = √(2δ / dᵀF d)."""

    def body() -> str:
        cases = [_Case(c.label, (c.args[0], _MatVec(c.args[1]), c.args[2]))
                 for c in _step_cases(502)]

        def ref(d, fvp, delta):
            step = trust_region_step(d, fvp, delta)
            return jnp.vdot(step, d) / jnp.vdot(d, d)

        def via_matrix(f):  # recover the matrix behind the fvp for the numpy variants
            return lambda d, fvp, delta: f(d, fvp.matrix, delta)

        _compare(fn, cases, ref, rtol=1e-4, atol=1e-8,
                 shape_hint="return the scalar β; the step is β·d",
                 wrong=[(via_matrix(f), m) for f, m in _scale_variants(
                     lambda s, beta: beta, "the step β·d")])
        return f"correct on {len(cases)} cases"

    return _verdict("trust-region step size", fn, body)


class _MatVec:
    """``v ↦ F v`` for a fixed matrix (keeps the matrix for the wrong-answer variants)."""

    def __init__(self, matrix: jax.Array):
        self.matrix = matrix

    def __call__(self, v: jax.Array) -> jax.Array:
        return self.matrix @ v


def _cg_variant(iters: int = 2, update_residual: bool = True, conjugate: bool = True):
    def run(a, b):
        a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
        x, r, p = np.zeros_like(b), b.copy(), b.copy()
        for _ in range(iters):
            ap = a @ p
            alpha = (r @ r) / (p @ ap)
            x = x + alpha * p
            r_new = r - alpha * ap if update_residual else r
            beta = (r_new @ r_new) / (r @ r)
            p = r_new + beta * p if conjugate else r_new
            r = r_new
        return x

    return run


def check_cg_two_steps(fn: Callable) -> bool:
    """``my_cg_two_steps(A, b)`` → x₂, two conjugate-gradient iterations from x₀ = 0."""

    def body() -> str:
        from course_lib.lessons.l05_natural_gradient import BANDIT_START, softmax_fisher

        rng = np.random.default_rng(503)
        m = rng.normal(size=(5, 5))
        q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
        start = jnp.asarray(BANDIT_START, jnp.float32)
        cases = [
            _Case("the 2×2 system [[4, 1], [1, 3]] x = (1, 2)",
                  (_f32([[4.0, 1.0], [1.0, 3.0]]), _f32([1.0, 2.0]))),
            _Case("a random 5×5 SPD system", (_f32(m @ m.T + np.eye(5)), _f32(np.arange(1, 6)))),
            _Case("the bandit's damped Fisher F + 0.1·I",
                  (_f32(np.asarray(softmax_fisher(start)) + 0.1 * np.eye(3)),
                   _f32([0.5, -1.0, 0.3]))),
            _Case("an ill-conditioned 4×4 system (eigenvalues 1 to 30)",
                  (_f32(q @ np.diag([1.0, 3.0, 10.0, 30.0]) @ q.T), _f32(rng.normal(size=4)))),
        ]

        def ref(a, b):
            return conjugate_gradient(lambda v: a @ v, b, iters=2)[0]

        _compare(fn, cases, ref, rtol=1e-3, atol=1e-5,
                 shape_hint="return x₂, shaped like b",
                 wrong=[
                     (_cg_variant(update_residual=False),
                      ("your residual is never updated: after each step set r ← r − α·A p "
                       "(CG without the residual update keeps stepping along stale directions)")),
                     (_cg_variant(conjugate=False),
                      ("your new search direction ignores the previous one (that is steepest "
                       "descent): p ← r_new + β·p with β = r_newᵀr_new / rᵀr")),
                     (_cg_variant(iters=1),
                      "you did one CG iteration; do exactly two"),
                     (_cg_variant(iters=3),
                      "you did three CG iterations; do exactly two"),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("two steps of CG", fn, body)


# ==========================================================================================
# Lessons 06-09: checkers the later lessons' exercises use
# ==========================================================================================


def _clipped_cases(seed: int) -> list[_Case]:
    rng = np.random.default_rng(seed)
    cases = [_Case("the worked example (r = 4, A = +5, ε = 0.2)",
                   (_f32(np.log([0.8])), _f32(np.log([0.2])), _f32([5.0]), 0.2)),
             _Case("r = 4 with A = −5 (ε = 0.2)",
                   (_f32(np.log([0.8])), _f32(np.log([0.2])), _f32([-5.0]), 0.2))]
    for b, eps in [(16, 0.2), (32, 0.1), (8, 0.3)]:
        old = np.log(rng.uniform(0.05, 0.95, b))
        new = old + rng.normal(0.0, 0.7, b)  # ratios from about 0.2 to 5
        cases.append(_Case(f"random samples, B = {b}, ε = {eps}",
                           (_f32(new), _f32(old), _f32(rng.normal(0.0, 2.0, b)), eps)))
    old = np.log(rng.uniform(0.05, 0.95, 12))
    new = old + rng.normal(0.0, 0.7, 12)
    cases.append(_Case("negative advantages only", (_f32(new), _f32(old),
                                                    _f32(-rng.uniform(0.5, 3.0, 12)), 0.2)))
    cases.append(_Case("ε = 0", (_f32(new), _f32(old), _f32(rng.normal(0.0, 2.0, 12)), 0.0)))
    return cases


def check_clipped_surrogate(fn: Callable) -> bool:
    """``my_clipped_surrogate(logp_new, logp_old, advantages, eps)`` → PPO's L^CLIP (a scalar)."""

    def body() -> str:
        cases = _clipped_cases(601)
        n64 = lambda x: np.asarray(x, np.float64)

        def rule(term):
            def run(new, old, a, eps):
                r = np.exp(n64(new) - n64(old))
                return np.mean(term(r, n64(a), eps))
            return run

        def clip(r, eps):
            return np.clip(r, 1.0 - eps, 1.0 + eps)

        _compare(fn, cases, lambda new, old, a, eps: clipped_surrogate(new, old, a, eps),
                 rtol=1e-5, atol=1e-6,
                 shape_hint="L^CLIP is one number, the mean over the batch",
                 nan_hint=_UNDERFLOW_HINT,
                 wrong=[
                     (rule(lambda r, a, e: a * np.minimum(r, 1.0 + e)),
                      ("your clip is on the wrong side for A < 0: there the objective is flat "
                       "BELOW 1 − ε and keeps r·A above 1 + ε. min(r·A, clip(r, 1 − ε, 1 + ε)·A) "
                       "gets both signs right")),
                     (rule(lambda r, a, e: np.maximum(r * a, clip(r, e) * a)),
                      ("you took the max; L^CLIP is the pessimistic MIN of r·A and "
                       "clip(r, 1 − ε, 1 + ε)·A")),
                     (rule(lambda r, a, e: clip(r, e) * a),
                      ("you dropped the min: with A < 0 and r > 1 + ε the term must stay r·A; "
                       "average min(r·A, clip(r, 1 − ε, 1 + ε)·A)")),
                     (rule(lambda r, a, e: r * a),
                      "you never clip: that is the unclipped surrogate mean(r·A)"),
                     (rule(lambda r, a, e: np.minimum(r * a, r * np.clip(a, 1.0 - e, 1.0 + e))),
                      "you clipped the advantage; clip the ratio r to [1 − ε, 1 + ε]"),
                     (lambda new, old, a, eps: np.mean(np.minimum(
                         np.exp(n64(old) - n64(new)) * n64(a),
                         clip(np.exp(n64(old) - n64(new)), eps) * n64(a))),
                      "your ratio is inverted: π_old/π_new; r = exp(logp_new − logp_old)"),
                     (lambda new, old, a, eps: len(n64(a)) * rule(
                         lambda r, a_, e: np.minimum(r * a_, clip(r, e) * a_))(new, old, a, eps),
                      "you summed over the batch; L^CLIP is the MEAN over the samples"),
                 ])
        a = _f32([1.0, -2.0, 0.5, 3.0])
        _stop_gradient_check(lambda lp: fn(lp, lp, a, 0.2), a, "L^CLIP")
        checks = len(cases) + 1
        for case in cases[2:5]:
            g = _grad(lambda new, *rest: fn(new, *rest), *case.args)
            want = np.asarray(jax.grad(clipped_surrogate)(*case.args), np.float64)
            if not _close(g, want, 1e-3, 1e-6):
                raise _Wrong(f"the value is right but the gradient is wrong for {case.label}: "
                             "a clipped sample must have zero gradient")
            checks += 1
        return f"correct on {checks} cases, gradients included"

    return _verdict("clipped surrogate", fn, body)


def check_k3(fn: Callable) -> bool:
    """``my_k3(logp_new, logp_old)`` → mean((r − 1) − log r), Schulman's k3 estimate of
    KL(π_old‖π_new) from actions drawn from π_old (``course_lib.kl_estimate(..., "k3")``)."""

    def body() -> str:
        rng = np.random.default_rng(701)
        cases = []
        for scale, b in [(1e-4, 64), (0.05, 64), (0.5, 32), (2.0, 16)]:
            old = np.log(rng.uniform(0.05, 0.95, b))
            cases.append(_Case(f"log-ratios of size {scale:g}",
                               (_f32(old + rng.normal(0.0, scale, b)), _f32(old))))
        lp = np.log(rng.uniform(0.1, 0.9, 8))
        cases.append(_Case("logp_new = logp_old (KL 0)", (_f32(lp), _f32(lp))))
        def k(f):
            return lambda new, old: np.mean(f(np.asarray(new, np.float64)
                                              - np.asarray(old, np.float64)))

        def ref(new, old):
            return kl_estimate(new, old, "k3")

        _compare(fn, cases[1:], ref, rtol=1e-3, atol=1e-9,
                 shape_hint="one number, the mean over the samples",
                 wrong=[
                     (k(lambda lr: -lr),
                      ("that is k1 = mean(−log r): unbiased but noisy, and it can be negative; "
                       "k3 = mean((r − 1) − log r) is never negative")),
                     (k(lambda lr: 0.5 * lr ** 2),
                      "that is k2 = mean(½(log r)²); k3 = mean((r − 1) − log r)"),
                     (k(lambda lr: np.expm1(-lr) + lr),
                      ("your log r is reversed: r = π_new/π_old, log r = logp_new − logp_old")),
                 ])
        try:  # right for large log-ratios: a failure at 1e-4 is a matter of precision
            _compare(fn, cases[:1], ref, rtol=1e-3, atol=1e-9)
        except _Wrong:
            raise _Wrong("right for large log-ratios but not for log r ≈ 1e-4: in float32, "
                         "(r − 1) − log r loses its digits when r ≈ 1; compute "
                         "jnp.expm1(log_r) − log_r") from None
        c = 0.3
        g = _grad(lambda t: fn(t + c, t), _f32(np.log([0.2, 0.5, 0.7])))
        if np.allclose(g, 0.0, atol=1e-8):
            raise _Wrong("the value is right but the gradient also flows through logp_old: "
                         "put logp_old under jax.lax.stop_gradient (π_old is fixed data)")
        return f"correct on {len(cases) + 1} cases, gradient included"

    return _verdict("k3 estimate", fn, body)


def _accept(kl: float, improvement: float, delta: float) -> bool:
    """TRPO's line-search acceptance rule, as in ``course_lib.backtracking_line_search``."""
    return (math.isfinite(kl) and math.isfinite(improvement) and kl <= delta
            and improvement > 0)


def check_line_search_accept(fn: Callable) -> bool:
    """``accept(kl, improvement, delta) -> bool``: TRPO's line-search test (KL ≤ δ, gain > 0)."""

    def body() -> str:
        nan, inf = float("nan"), float("inf")
        args = [(0.005, 0.1, 0.01), (0.02, 0.1, 0.01), (0.005, -0.1, 0.01), (0.005, 0.0, 0.01),
                (0.01, 0.1, 0.01), (0.0, 1e-6, 0.01), (0.5, 10.0, 0.01), (0.03, -1.0, 0.01),
                (0.009, 0.3, 0.05), (nan, 0.1, 0.01), (0.005, nan, 0.01), (inf, 1.0, 0.01)]
        got = [_as_bool(_call(fn, *a), "whether the step is accepted") for a in args]
        want = [_accept(*a) for a in args]
        if got == want:
            return f"correct on {len(args)} cases"
        candidates = [
            (lambda k, i, d: k <= d,
             "you accept a step that makes the surrogate worse: also require improvement > 0"),
            (lambda k, i, d: math.isfinite(k) and math.isfinite(i) and k < d and i > 0,
             "a step whose KL is exactly δ is inside the trust region: accept when KL ≤ δ"),
            (lambda k, i, d: math.isfinite(k) and math.isfinite(i) and k <= d and i >= 0,
             "an improvement of exactly 0 is no improvement: require improvement > 0"),
            (lambda k, i, d: not (k > d) and not (i <= 0),
             ("a NaN KL or improvement must be rejected: write the test as kl <= delta and "
              "improvement > 0 (a comparison with NaN is False), not as `not (kl > delta)`")),
            (lambda k, i, d: math.isfinite(k) and math.isfinite(i) and k >= d and i > 0,
             "you accept steps OUTSIDE the trust region: accept when KL ≤ δ"),
            (lambda k, i, d: i > 0,
             "you never look at the KL: a step is accepted only inside the trust region, KL ≤ δ"),
        ]
        for rule, message in candidates:
            if got == [bool(rule(*a)) for a in args]:
                raise _Wrong(message)
        i = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        k, imp, d = args[i]
        raise _Wrong(f"wrong for KL = {k}, improvement = {imp}, δ = {d}: you said {got[i]}, "
                     f"expected {want[i]}")

    return _verdict("line-search acceptance", fn, body)


def check_adapt_beta(fn: Callable) -> bool:
    """``adapt_beta(beta, kl, target) -> new_beta``: PPO-penalty's rule (PPO paper §4)."""

    def body() -> str:
        cases = [_Case(f"β = {b}, KL = {m}·target, target = {t}", (b, m * t, t))
                 for t in (0.01, 0.02) for b in (1.0, 0.3, 4.0)
                 for m in (0.1, 0.5, 0.65, 0.7, 1.0, 1.4, 1.6, 3.0, 50.0)]

        def ref(b, kl, t):
            return adapt_beta(jnp.float32(b), jnp.float32(kl), jnp.float32(t))

        def rule(low, high, down=0.5, up=2.0):
            def run(b, kl, t):
                return b * down if kl < low * t else (b * up if kl > high * t else b)
            return run

        _compare(fn, cases, ref, rtol=1e-5, atol=1e-9, shape_hint="the new β, one number",
                 wrong=[
                     (rule(1 / 1.5, 1.5, down=2.0, up=0.5),
                      ("β is updated the wrong way: when the KL is too large the penalty must "
                       "GROW (β × 2), and when it is too small it must shrink (β / 2)")),
                     (rule(1.0, 1.0),
                      ("you change β whenever the KL differs from the target; the PPO paper "
                       "leaves β alone while target/1.5 ≤ KL ≤ 1.5·target")),
                     (rule(1 / 1.5, 1.5, down=1 / 1.5, up=1.5),
                      ("β is halved or doubled (× ½, × 2), not scaled by 1.5; 1.5 is the width "
                       "of the band around the target")),
                     (rule(0.5, 2.0),
                      "the band is target/1.5 ≤ KL ≤ 1.5·target, not target/2 to 2·target"),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("adaptive β", fn, body)


def check_trust_region_scale(fn: Callable) -> bool:
    """``trust_region_scale(dFd, delta)`` → β = √(2δ / dᵀFd), the factor that takes the
    direction d to the edge of the quadratic trust region ½ sᵀF s = δ."""

    def body() -> str:
        rng = np.random.default_rng(606)
        cases = [_Case("dᵀFd = 2, δ = 0.01", (_f32(2.0), 0.01)),
                 _Case("dᵀFd = 0.04, δ = 0.01 (a step to lengthen)", (_f32(0.04), 0.01)),
                 _Case("dᵀFd = 1, δ = 0.5", (_f32(1.0), 0.5))]
        for dfd, delta in zip(10.0 ** rng.uniform(-3, 3, 6), rng.choice([0.001, 0.01, 0.05, 0.1], 6),
                              strict=True):
            cases.append(_Case(f"dᵀFd = {dfd:.4g}, δ = {delta}", (_f32(dfd), float(delta))))
        n64 = lambda x: float(np.asarray(x, np.float64))
        _compare(fn, cases, lambda dfd, d: np.sqrt(2.0 * d / n64(dfd)), rtol=1e-5, atol=1e-9,
                 shape_hint="β is one number",
                 wrong=[
                     (lambda dfd, d: np.sqrt(d / n64(dfd)),
                      "you dropped the 2: the edge is ½ sᵀF s = δ, so β = √(2δ / dᵀFd)"),
                     (lambda dfd, d: 2.0 * d / n64(dfd),
                      "you forgot the square root: β²·dᵀFd = 2δ gives β = √(2δ / dᵀFd)"),
                     (lambda dfd, d: np.sqrt(n64(dfd) / (2.0 * d)),
                      "your β is upside down: √(dᵀFd / 2δ); β = √(2δ / dᵀFd)"),
                     (lambda dfd, d: np.sqrt(2.0 * d) / n64(dfd),
                      "dᵀFd belongs under the square root too: β = √(2δ / dᵀFd)"),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("trust-region scale", fn, body)


def _first_accepted(kls: np.ndarray, imps: np.ndarray, delta: float) -> int:
    for k, (kl, imp) in enumerate(zip(kls, imps, strict=True)):
        if _accept(float(kl), float(imp), delta):
            return k
    return len(kls)


def check_accepted_k(fn: Callable) -> bool:
    """``accepted_k(kls, improvements, delta) -> int``: the first k whose step is accepted
    (KL ≤ δ and improvement > 0), or ``len(kls)`` when none is."""

    def body() -> str:
        nan = float("nan")
        raw = [
            ("the full step is accepted", [0.005, 0.003, 0.002], [0.2, 0.15, 0.1], 0.01),
            ("two backtracks", [0.05, 0.02, 0.008, 0.005, 0.003], [0.3, 0.25, 0.2, 0.15, 0.1], 0.01),
            ("no step is acceptable", [0.5, 0.3, 0.2], [0.3, 0.2, 0.1], 0.01),
            ("inside the region but worse, then better",
             [0.009, 0.006, 0.004, 0.002], [-0.1, -0.02, 0.05, 0.04], 0.01),
            ("KL exactly δ", [0.04, 0.01, 0.006], [0.3, 0.2, 0.1], 0.01),
            ("a NaN KL first", [nan, 0.02, 0.004], [0.3, 0.2, 0.1], 0.01),
            ("improvements that turn negative", [0.03, 0.01, 0.005, 0.002],
             [0.2, 0.1, -0.05, 0.02], 0.01),
            ("one fraction, acceptable", [0.001], [0.01], 0.01),
            ("one fraction, rejected", [0.1], [0.01], 0.01),
        ]
        cases = [(label, np.asarray(k, np.float32), np.asarray(i, np.float32), d)
                 for label, k, i, d in raw]

        def verdict(rule) -> list[Any]:
            return [rule(k, i, d) for _, k, i, d in cases]

        got = []
        for label, k, i, d in cases:
            out = _call(fn, jnp.asarray(k), jnp.asarray(i), d)
            if out is None:
                raise _Wrong(f"your function returned None for {label} (did you forget the "
                             "`return`?); when no step is acceptable return len(kls)")
            arr = np.asarray(out)
            if arr.shape != () or not np.issubdtype(arr.dtype, np.integer) and not (
                    np.issubdtype(arr.dtype, np.floating) and float(arr).is_integer()):
                raise _Wrong(f"return one whole number k, not {_describe_value(out)} of shape "
                             f"{arr.shape}")
            got.append(int(arr))
        want = verdict(_first_accepted)
        if got == want:
            return f"correct on {len(cases)} cases"

        def last(k, i, d):
            ok = [j for j in range(len(k)) if _accept(float(k[j]), float(i[j]), d)]
            return ok[-1] if ok else len(k)
        candidates = [
            (lambda k, i, d: -1 if (r := _first_accepted(k, i, d)) == len(k) else r,
             "when no step is acceptable return len(kls) (TRPO keeps θ_old), not −1"),
            (lambda k, i, d: 0 if (r := _first_accepted(k, i, d)) == len(k) else r,
             ("when no step is acceptable, argmax of an all-False array is 0: return len(kls) "
              "instead (TRPO keeps θ_old)")),
            (lambda k, i, d: len(k) - 1 if (r := _first_accepted(k, i, d)) == len(k) else r,
             "when no step is acceptable return len(kls), not the index of the last fraction"),
            (lambda k, i, d: _first_accepted(k, i, d) + 1,
             "your k is one too large: k counts backtracks, so the full step is k = 0"),
            (last, "you returned the LAST acceptable k; TRPO stops at the FIRST"),
            (lambda k, i, d: _first_accepted(k, np.ones_like(i), d),
             "you ignore the improvement: a step must also improve the surrogate (> 0)"),
            (lambda k, i, d: _first_accepted(np.zeros_like(k), i, d),
             "you ignore the KL: a step must also stay inside the trust region (KL ≤ δ)"),
        ]
        for rule, message in candidates:
            if got == verdict(rule):
                raise _Wrong(message)
        j = next(j for j, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        raise _Wrong(f"wrong for {cases[j][0]}: you said k = {got[j]}, expected {want[j]}")

    return _verdict("accepted k", fn, body)


def _first_steps(ret: np.ndarray, steps: np.ndarray, threshold: float, *, strict: bool = False,
                 last: bool = False, index: bool = False, missing: Any = None) -> Any:
    hits = [i for i, r in enumerate(ret) if (r > threshold if strict else r >= threshold)]
    if not hits:
        return missing
    i = hits[-1] if last else hits[0]
    return float(i) if index else float(steps[i])


def check_steps_to_solve(fn: Callable) -> bool:
    """``steps_to_solve(mean_return, env_steps, threshold)`` → the env steps of the first
    iteration whose mean return is ≥ threshold (a float), or None if the curve never gets there."""

    def body() -> str:
        rng = np.random.default_rng(808)
        steps = np.arange(1, 9) * 2048.0
        raw = [
            ("a curve that reaches the threshold exactly", [10, 300, 475, 500, 480, 500, 500, 500],
             475.0),
            ("a curve that never gets there", [10, 50, 120, 200, 260, 300, 350, 400], 475.0),
            ("a curve that crosses, falls back and crosses again",
             [100, 480, 300, 200, 490, 500, 500, 500], 475.0),
            ("a curve solved at the first iteration", [500] * 8, 475.0),
            ("a negative threshold (Pendulum)", [-1400, -1200, -900, -600, -300, -250, -240, -200],
             -250.0),
            ("a curve just below the threshold", [474.9] * 8, 475.0),
        ]
        for j in range(3):
            curve = np.cumsum(rng.uniform(-20, 120, 8))
            raw.append((f"a random curve #{j + 1}", curve, float(np.round(curve[4]))))
        cases = [(label, np.asarray(r, np.float32), steps.astype(np.int64), t)
                 for label, r, t in raw]

        def outputs(rule) -> list[Any]:
            return [rule(r, st, t) for _, r, st, t in cases]

        got = []
        for label, r, st, t in cases:
            out = _call(fn, r, st, t)
            if out is None:
                got.append(None)
                continue
            arr = np.asarray(out)
            if arr.shape != () or not np.issubdtype(arr.dtype, np.number):
                raise _Wrong(f"for {label} you returned {_describe_value(out)}; return one "
                             "number of environment steps, or None")
            got.append("nan" if np.isnan(float(arr)) else float(arr))
        want = outputs(_first_steps)
        if got == want:
            return f"correct on {len(cases)} cases"
        candidates = [
            (functools.partial(_first_steps, strict=True),
             "a return equal to the threshold counts: test mean_return >= threshold"),
            (functools.partial(_first_steps, index=True),
             "you returned the iteration's index; return env_steps at that iteration"),
            (functools.partial(_first_steps, last=True),
             "you returned the LAST iteration at or above the threshold; the FIRST one counts"),
            (lambda r, st, t: _first_steps(r, np.concatenate([[0.0], st[:-1]]), t),
             ("your steps are one iteration early: env_steps[i] are the steps taken after "
              "iteration i")),
        ]
        for missing, word in [("nan", "nan"), (-1.0, "−1"), (0.0, "0"),
                              (float(len(steps)), "len(mean_return)"),
                              (float(steps[-1]), "the last env_steps")]:
            candidates.append((functools.partial(_first_steps, missing=missing),
                               f"a curve that never reaches the threshold must give None, not {word}"))
        for rule, message in candidates:
            if got == outputs(rule):
                raise _Wrong(message)
        j = next(j for j, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        raise _Wrong(f"wrong for {cases[j][0]}: you said {got[j]}, expected {want[j]}")

    return _verdict("steps to solve", fn, body)


def check_seed_band(fn: Callable) -> bool:
    """``band(values [S, I])`` → ``(mean, lo, hi)``, each ``[I]``: the mean, minimum and maximum
    over the seeds at each iteration."""

    def body() -> str:
        rng = np.random.default_rng(809)
        cases = [np.array([[1.0, 5.0], [3.0, -1.0]]),
                 rng.normal(200.0, 80.0, (5, 12)), rng.normal(-600.0, 300.0, (3, 7)),
                 rng.normal(0.0, 1.0, (1, 4)), rng.normal(100.0, 10.0, (8, 3))]

        def ref(v):
            return v.mean(0), v.min(0), v.max(0)

        wrongs = [
            (lambda v: (v.mean(1), v.min(1), v.max(1)),
             "you took the band over iterations (axis 1); take it over the seeds, axis 0"),
            (lambda v: (v.mean(0), v.max(0), v.min(0)),
             "lo and hi are swapped: return (mean, min, max)"),
            (lambda v: (np.median(v, 0), v.min(0), v.max(0)),
             "the middle curve is the MEAN over seeds, not the median"),
            (lambda v: (v.mean(0), v.mean(0) - v.std(0), v.mean(0) + v.std(0)),
             "that is mean ± one standard deviation; the band is the min and max over seeds"),
            (lambda v: (v.mean(), v.min(), v.max()),
             "you reduced over everything; return one value per iteration (axis 0 only)"),
        ]
        for k, v in enumerate(cases):
            out = _call(fn, v.astype(np.float32))
            if not isinstance(out, tuple | list) or len(out) != 3:
                raise _Wrong(f"return three curves (mean, lo, hi), not {_describe_value(out)}")
            got = [np.asarray(o, np.float64) for o in out]
            want = ref(v)
            if all(g.shape == w.shape and _close(g, w, 1e-5, 1e-4)
                   for g, w in zip(got, want, strict=True)):
                continue
            for rule, message in wrongs:
                alt = [np.asarray(a, np.float64) for a in rule(v)]
                if all(g.shape == a.shape and _close(g, a, 1e-5, 1e-4)
                       for g, a in zip(got, alt, strict=True)):
                    raise _Wrong(message)
            raise _Wrong(f"wrong for values of shape {v.shape}: expected mean {_fmt(want[0])}, "
                         f"lo {_fmt(want[1])}, hi {_fmt(want[2])}" if v.size <= 4 else
                         f"wrong for values of shape {v.shape} (case {k + 1})")
        return f"correct on {len(cases)} cases"

    return _verdict("seed band", fn, body)


def check_solve_rate(fn: Callable) -> bool:
    """``my_solve_rate(scores [S], threshold)`` → the fraction of seeds with score ≥ threshold."""

    def body() -> str:
        rng = np.random.default_rng(810)
        raw = [([475.0, 474.0, 500.0, 100.0], 475.0, "a score equal to the threshold"),
               ([-240.0, -260.0, -250.0], -250.0, "a negative threshold"),
               ([10.0, 20.0, 30.0], 475.0, "no seed solves"),
               ([500.0, 500.0], 475.0, "every seed solves")]
        for n in (5, 8, 10):
            sc = np.round(rng.uniform(300.0, 500.0, n))
            raw.append((list(sc), float(sc[n // 2]), f"{n} random seeds"))
        cases = [_Case(label, (np.asarray(sc, np.float32), t)) for sc, t, label in raw]
        n64 = lambda x: np.asarray(x, np.float64)
        _compare(fn, cases, lambda sc, t: np.mean(n64(sc) >= t), rtol=1e-6, atol=1e-9,
                 shape_hint="the solve rate is one number between 0 and 1",
                 wrong=[
                     (lambda sc, t: np.mean(n64(sc) > t),
                      "a score equal to the threshold counts as solved: use >="),
                     (lambda sc, t: np.sum(n64(sc) >= t),
                      "that is the number of seeds that solved; return the FRACTION (0 to 1)"),
                     (lambda sc, t: 100.0 * np.mean(n64(sc) >= t),
                      "that is a percentage; return the fraction, between 0 and 1"),
                     (lambda sc, t: np.mean(n64(sc) < t),
                      "that is the fraction that did NOT solve: count scores >= threshold"),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("solve rate", fn, body)


def _epochs_run(trace: Sequence[float], target: float, *, strict: bool = True,
                already_ran: bool = True) -> int:
    for k, kl in enumerate(trace):
        if (kl > target) if strict else (kl >= target):
            return k + 1 if already_ran else k
    return len(trace)


def check_stop_after(fn: Callable) -> bool:
    """``stop_after(kl_trace, target_kl) -> int``: the epochs run under KL early stopping (the
    first epoch whose KL exceeds the target still runs; ``len(kl_trace)`` if none does)."""

    def body() -> str:
        raw = [([0.001, 0.004, 0.03, 0.2], 0.02), ([0.001, 0.002], 0.02), ([0.5], 0.02),
               ([0.02, 0.021], 0.02), ([0.001, 0.02, 0.02, 0.5], 0.02),
               ([0.002, 0.006, 0.011, 0.018, 0.026, 0.04, 0.05, 0.07, 0.09, 0.12], 0.01),
               ([0.0005, 0.001, 0.0015, 0.002, 0.0025], 0.005), ([0.3, 0.01, 0.5], 0.1)]
        cases = [(np.asarray(t, np.float32), float(np.float32(g))) for t, g in raw]

        def outputs(rule) -> list[int]:
            return [rule(t, g) for t, g in cases]

        got = []
        for t, g in cases:
            out = _call(fn, t, g)
            arr = np.asarray(out) if out is not None else None
            if arr is None or arr.shape != () or not (
                    np.issubdtype(arr.dtype, np.integer)
                    or np.issubdtype(arr.dtype, np.floating) and float(arr).is_integer()):
                raise _Wrong(f"return one whole number of epochs, not {_describe_value(out)}")
            got.append(int(arr))
        want = outputs(_epochs_run)
        if got == want:
            return f"correct on {len(cases)} cases"
        candidates = [
            (functools.partial(_epochs_run, already_ran=False),
             "the epoch whose KL crossed the target has already run: count it (k + 1)"),
            (functools.partial(_epochs_run, strict=False),
             "a KL equal to the target does not exceed it: stop only when KL > target_kl"),
            (lambda t, g: _epochs_run(t, g) if (t > g).any() else 0,
             "when the KL never exceeds the target every epoch runs: return len(kl_trace)"),
            (lambda t, g: _epochs_run(t, g) if (t > g).any() else -1,
             "when the KL never exceeds the target every epoch runs: return len(kl_trace)"),
            (lambda t, g: int(np.sum(t <= g)),
             "you counted the epochs below the target; training stops at the FIRST crossing"),
        ]
        for rule, message in candidates:
            if got == outputs(rule):
                raise _Wrong(message)
        j = next(j for j, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        raise _Wrong(f"wrong for kl_trace = {raw[j][0]}, target {raw[j][1]}: you said "
                     f"{got[j]}, expected {want[j]}")

    return _verdict("early stopping", fn, body)


def check_normalise(fn: Callable) -> bool:
    """``normalise(adv)`` → ``(adv − mean) / (std + 1e-8)`` over the whole batch."""

    def body() -> str:
        rng = np.random.default_rng(909)
        cases = [_Case("advantages [1, 2, 3, 10]", (_f32([1.0, 2.0, 3.0, 10.0]),)),
                 _Case("advantages in the hundreds", (_f32(100.0 * rng.normal(size=64) + 7.0),)),
                 _Case("small advantages (std 0.01)", (_f32(0.01 * rng.normal(size=32) - 0.5),)),
                 _Case("all-positive advantages", (_f32(rng.uniform(1.0, 5.0, 16)),)),
                 _Case("a batch of one (std 0)", (_f32([3.0]),)),
                 _Case("a [4, 8] batch", (_f32(rng.normal(2.0, 3.0, (4, 8))),))]
        n64 = lambda x: np.asarray(x, np.float64)

        def norm(x, centre=True, scale=True, ddof=0, axis=None):
            x = n64(x)
            m = x.mean(axis=axis, keepdims=axis is not None) if centre else 0.0
            sd = x.std(axis=axis, ddof=ddof, keepdims=axis is not None) if scale else 1.0
            return (x - m) / (sd + 1e-8)

        _compare(fn, cases, lambda x: norm(x), rtol=1e-4, atol=1e-4,
                 shape_hint="one normalised advantage per sample, same shape as adv",
                 nan_hint="add 1e-8 to the standard deviation: a batch of one has std 0",
                 wrong=[
                     (lambda x: norm(x, centre=False),
                      "you scaled but did not centre: subtract the mean first"),
                     (lambda x: norm(x, scale=False),
                      "you centred but did not scale: divide by (std + 1e-8)"),
                     (lambda x: n64(x) / (np.abs(n64(x)).max() + 1e-8),
                      "you divided by the largest |A|; divide by the standard deviation"),
                     (lambda x: norm(x, axis=-1),
                      "normalise over the whole batch, not row by row"),
                 ])
        return f"correct on {len(cases)} cases"

    return _verdict("normalise", fn, body)


def check_broke_promise(fn: Callable) -> bool:
    """``broke_promise(before, after, gain, kl, delta)`` → bool array: gain > 0, KL ≤ δ and
    after < 0.9·before."""

    def body() -> str:
        rng = np.random.default_rng(910)
        n = 40
        before = rng.uniform(50.0, 500.0, n)
        after = before * rng.uniform(0.6, 1.2, n)
        after[:3] = 0.9 * before[:3]          # exactly a 10 % drop: not broken
        gain = rng.normal(0.02, 0.03, n)
        gain[3:5] = 0.0                      # no gain: not a TRPO update
        kl = rng.uniform(0.0, 0.02, n)
        kl[5:8] = 0.01                       # exactly δ: inside the region
        cases = [(100.0, np.array([80.0, 95.0, 80.0, 80.0, 89.0]),
                  np.array([0.1, 0.1, -0.1, 0.1, 0.1]), np.array([0.005, 0.005, 0.005, 0.02, 0.01]),
                  0.01),
                 (before, after, gain, kl, 0.01),
                 (200.0, np.array([150.0, 190.0, 170.0]), np.array([0.1, 0.1, 0.1]),
                  np.array([0.04, 0.04, 0.06]), 0.05)]

        def rule(before, after, gain, kl, delta, *, kl_ok=lambda k, d: k <= d,
                 gain_ok=lambda g: g > 0, fell=lambda a, b: a < 0.9 * b):
            b, a, g, k = (np.asarray(x, np.float64) for x in (before, after, gain, kl))
            return gain_ok(g) & kl_ok(k, delta) & fell(a, b)

        got = []
        for c in cases:
            out = _call(fn, *c)
            arr = np.asarray(out) if out is not None else None
            if arr is None or arr.dtype != np.bool_:
                raise _Wrong("return a boolean array (one True/False per update), not "
                             + (_describe_value(out) if arr is None else
                                f"an array of dtype {arr.dtype}"))
            if arr.shape != np.shape(c[1]):
                raise _Wrong(f"return one True/False per update: expected shape "
                             f"{np.shape(c[1])}, got {arr.shape}")
            got.append(arr)

        def same(r) -> bool:
            return all(np.array_equal(g, r(*c)) for g, c in zip(got, cases, strict=True))

        if same(rule):
            return f"correct on {sum(len(c[1]) for c in cases)} updates"
        candidates = [
            (functools.partial(rule, kl_ok=lambda k, d: k < d),
             "an update whose KL is exactly δ is inside the trust region: use kl <= delta"),
            (functools.partial(rule, gain_ok=lambda g: g >= 0),
             "a gain of exactly 0 is not an improvement: require gain > 0"),
            (functools.partial(rule, fell=lambda a, b: a <= 0.9 * b),
             "losing exactly 10 % is not MORE than 10 %: use after < 0.9 · before"),
            (functools.partial(rule, fell=lambda a, b: a < b),
             ("any drop counts in your answer; the promise is broken only when the return "
              "fell by more than 10 % (after < 0.9 · before)")),
            (functools.partial(rule, fell=lambda a, b: a < 0.1 * b),
             ("you test after < 0.1 · before (a 90 % drop); more than 10 % lost is "
              "after < 0.9 · before")),
            (lambda b, a, g, k, d: rule(b, a, g, k, d, kl_ok=lambda k_, d_: k_ > d_),
             "an update that broke the promise was INSIDE the trust region: kl <= delta"),
            (lambda b, a, g, k, d: (np.asarray(k) <= d) & (np.asarray(a) < 0.9 * np.asarray(b)),
             "you forgot the gain: TRPO also asks for a surrogate gain > 0"),
            (lambda b, a, g, k, d: (np.asarray(g) > 0) & (np.asarray(a) < 0.9 * np.asarray(b)),
             "you forgot the KL: TRPO also asks for a mean KL ≤ δ"),
        ]
        for r, message in candidates:
            if same(r):
                raise _Wrong(message)
        return_ = next(i for i, (g, c) in enumerate(zip(got, cases, strict=True))
                       if not np.array_equal(g, rule(*c)))
        raise _Wrong(f"wrong on test batch {return_ + 1}: compare gain > 0, kl <= delta and "
                     "after < 0.9 · before")

    return _verdict("broken promise", fn, body)


class Diagnosis(NamedTuple):
    """A multiple-choice "diagnose the broken run" question.

    Attributes:
      options: letter → the option's text (the lesson shows them, e.g. via ``markdown()``).
      answer: the right letter.
      why: one sentence printed after ✓.
      feedback: letter → why that option is wrong (printed after ✗).
    """

    options: dict[str, str]
    answer: str
    why: str
    feedback: dict[str, str]

    def markdown(self) -> str:
        return "\n".join(f"- **({k})** {v}" for k, v in self.options.items())


DIAGNOSES: dict[str, Diagnosis] = {
    "broken_run": Diagnosis(
        options={
            "a": "The learning rate is too small: the policy cannot keep up with its advantages.",
            "b": "Too many epochs on the same batch with no clip and no KL stop: the policy walked "
                 "far from π_old, where the surrogate no longer predicts the return.",
            "c": "The advantages were normalised, which threw away their scale.",
            "d": "The value network is too small to fit the returns.",
        },
        answer="b",
        why="the KL per update grew far past 0.01 just before the return collapsed: the "
            "update left the region where the surrogate can be trusted",
        feedback={
            "a": "a learning rate too small makes learning slow, not a sudden collapse; look at "
                 "the KL per update just before the return fell",
            "c": "normalising advantages rescales every update the same way and is standard in "
                 "PPO; it does not explain a KL that keeps growing",
            "d": "a weak critic makes advantages noisy and learning slow; the collapse follows "
                 "a KL that grew far beyond 0.01 per update",
        },
    ),
    "kl_blowup": Diagnosis(
        options={
            "a": "The learning rate is too small.",
            "b": "Many epochs on the same batch without the clip and without monitoring the KL.",
            "c": "The advantages were not normalised.",
            "d": "The discount γ is too low.",
        },
        answer="b",
        why="a KL of 1–7 nats per update (TRPO's δ is 0.01) means each update walked far from "
            "π_old, where the surrogate no longer predicts the return; keep the clip, 3–10 "
            "epochs, and stop an update when its KL exceeds a target",
        feedback={
            "a": "a learning rate too small gives TINY updates (KL ≪ 0.01) and slow learning, "
                 "not 1–7 nats per update and a collapse",
            "c": "un-normalised advantages change the scale of every step, but the symptom here "
                 "is updates that keep running epoch after epoch with nothing to stop them: the "
                 "clip is off and nobody watches the KL",
            "d": "γ shapes which rewards count; it does not make one update move the policy by "
                 "1–7 nats",
        },
    ),
}
"""The diagnosis questions by name; a lesson may add its own and pass ``question=``."""


def check_diagnosis(answer: Any, question: str = "broken_run") -> bool:
    """Check a multiple-choice diagnosis (``answer`` a letter such as ``"b"``, or a function
    returning it) against ``DIAGNOSES[question]``."""

    def body() -> str:
        if question not in DIAGNOSES:
            raise _Wrong(f"no diagnosis question named {question!r}")
        q = DIAGNOSES[question]
        value = _call(answer) if callable(answer) else answer
        letters = ", ".join(repr(k) for k in q.options)
        if value is Ellipsis or value is None:
            raise _Wrong(f"no answer yet: set it to one of {letters}")
        text = str(value).strip().strip("()").strip().lower()
        if text not in q.options:
            raise _Wrong(f"answer with one of the letters {letters}, not {value!r}")
        if text != q.answer:
            raise _Wrong(f"({text}) is not it: {q.feedback.get(text, 'look at the KL again')}")
        return f"({q.answer}) is right: {q.why}"

    return _verdict("diagnosis", answer, body, callable_fn=False)


CHECKERS: dict[str, Callable[..., bool]] = {
    name: globals()[name] for name in __all__ if name.startswith("check_")
}
"""Every checker by name (the exercise builder checks that a lesson calls one of these)."""
