"""Lesson 06's capstone: the learner's whole TRPO policy step, checked on hidden policies and
then trained.

``my_trpo_step(surrogate_fn, kl_fn, params, delta) -> new params`` (flat ``[P]``): the policy
gradient, CG on (F + 0.1·I) with F·v from ``jax.jvp`` of ``jax.grad(kl_fn)`` (10 iterations),
the scale √(2δ / dᵀFd), and the backtracking line search (fractions 0.8ᵏ, k = 0 … 9; the first
with KL ≤ δ and a positive improvement; none: ``params`` unchanged). The check

1. runs it under ``jax.jit`` (δ traced, as in training) on hidden small policy networks and
   compares the new parameters with the library's step (``course_lib.core.solvers``); the
   registered wrong steps (no line search, CG with the wrong sign, the plain gradient instead
   of F⁻¹g, the scale without its 2, no damping) fail with a line naming the mistake;
2. plugs it into ``course_lib.train`` (``TrainConfig(algo="trpo", policy_step=...)``) on a
   hidden seed: the greedy policy must solve CartPole-v1 in gymnasium (mean return ≥ 475
   over 10 episodes). About 15 s on a laptop, most of it compiling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.core.distributions import categorical_kl, categorical_log_prob
from course_lib.core.solvers import (
    backtracking_line_search,
    conjugate_gradient,
    trust_region_step,
)
from course_lib.exercises.checks.verdict import (
    Case,
    Wrong,
    compare,
    f32,
    tanh_logits,
    trained_greedy,
    verdict,
)

__all__ = ["TRPO_STEP_SEED", "check_trpo_step", "library_trpo_step"]

DAMPING = 0.1
CG_ITERS = 10
SHRINK = 0.8
BACKTRACKS = 10
TRPO_STEP_SEED = 11
"""The training seed of the check (hidden from the learner's notebook: it is not printed)."""
SOLVED = 475.0


class StepProblem(NamedTuple):
    surrogate_fn: Callable[[jax.Array], jax.Array]
    kl_fn: Callable[[jax.Array], jax.Array]
    params: jax.Array


@functools.cache
def step_problem(seed: int) -> StepProblem:
    """A small tanh policy (4 → 8 → 3) on 64 fixed states, sampled actions, advantages."""
    rng = np.random.default_rng(seed)
    b, o, h, a = 64, 4, 8, 3
    obs = f32(rng.normal(size=(b, o)))
    params = f32(rng.normal(0.0, 0.5, o * h + h + h * a + a))

    logits_fn = functools.partial(tanh_logits, obs=obs, hidden=h, actions=a)

    old_logits = logits_fn(params)
    actions = jax.random.categorical(jax.random.key(seed), old_logits).astype(jnp.int32)
    logp_old = categorical_log_prob(old_logits, actions)
    adv = f32(rng.normal(size=b))

    def surrogate_fn(p):
        logp = categorical_log_prob(logits_fn(p), actions)
        return jnp.mean(jnp.exp(logp - jax.lax.stop_gradient(logp_old)) * adv)

    def kl_fn(p):
        return jnp.mean(categorical_kl(jax.lax.stop_gradient(old_logits), logits_fn(p)))

    return StepProblem(surrogate_fn, kl_fn, params)


def _fvp(kl_fn, params, damping=DAMPING):
    return lambda v: jax.jvp(jax.grad(kl_fn), (params,), (v,))[1] + damping * v


def library_trpo_step(surrogate_fn, kl_fn, params, delta, *, sign=1.0, natural=True,
                      two=2.0, damping=DAMPING, line_search=True):
    """The step the capstone asks for, from the library's pieces; the keywords build the
    registered wrong steps."""
    fvp = _fvp(kl_fn, params, damping)
    g = jax.grad(surrogate_fn)(params)
    d = sign * conjugate_gradient(fvp, g, iters=CG_ITERS)[0] if natural else g
    s = trust_region_step(d, fvp, two * delta / 2.0)
    if not line_search:
        return params + s
    return backtracking_line_search(surrogate_fn, kl_fn, params, s, delta,
                                    max_backtracks=BACKTRACKS, shrink=SHRINK)[0]


@functools.cache
def synthetic_problem(kind: str) -> StepProblem:
    """Functions with the shape of a TRPO problem at θ_old = 0 (KL 0 with gradient 0 and
    Hessian F there, surrogate slope g) whose line search must backtrack: the KL grows faster
    than its quadratic model ("quartic KL"), the surrogate turns down ("surrogate turns
    down"), or no fraction is acceptable ("nothing acceptable": params come back unchanged)."""
    rng = np.random.default_rng({"quartic KL": 21, "surrogate turns down": 22,
                                 "nothing acceptable": 23}[kind])
    n = 6
    m = rng.normal(size=(n, n))
    fisher = f32(m @ m.T / n + 0.2 * np.eye(n))
    g = f32(rng.normal(size=n))
    quartic = 400.0 if kind == "quartic KL" else 0.0
    bend = {"quartic KL": 0.0, "surrogate turns down": 3.0, "nothing acceptable": 1e4}[kind]

    def kl_fn(p):
        q = p @ fisher @ p
        return 0.5 * q + quartic * q * q

    def surrogate_fn(p):
        return g @ p - bend * jnp.sum(p * p) ** 1.5

    return StepProblem(surrogate_fn, kl_fn, jnp.zeros(n, jnp.float32))


def _problem(name: str) -> StepProblem:
    kind, _, seed = name.partition(" #")
    return step_problem(int(seed)) if kind == "policy" else synthetic_problem(kind)


CASES = [("policy #0", 0.01), ("policy #1", 0.02), ("policy #2", 0.3), ("quartic KL", 0.01),
         ("surrogate turns down", 0.05), ("nothing acceptable", 0.05)]
"""(problem, δ): hidden policy networks, where the full step is accepted, and functions where
the line search must shrink the step, for the KL, for the surrogate, or to nothing."""


def _cases() -> list[Case]:
    return [Case(f"a hidden problem ({name}) with δ = {d}", (name, d)) for name, d in CASES]


@functools.cache
def _reference(name: str, delta: float, wrong: tuple = ()) -> np.ndarray:
    pr = _problem(name)
    step = jax.jit(lambda p, d: library_trpo_step(pr.surrogate_fn, pr.kl_fn, p, d,
                                                  **dict(wrong)))
    return np.asarray(step(pr.params, f32(delta)), np.float64)


def _variant(**wrong) -> Callable:
    return lambda name, delta: _reference(name, delta, tuple(sorted(wrong.items())))


WRONG_STEPS = [
    ({"line_search": False},
     ("your step skips the line search: on a hidden case the full step breaks KL ≤ δ. Try "
     "the fractions 0.8ᵏ of the step, k = 0 … 9, and keep the first one with KL ≤ δ and a "
     "positive improvement of the surrogate (the rule of your acceptable; params unchanged if none)")),
    ({"sign": -1.0},
     ("CG with the wrong sign: your direction is −F⁻¹g, downhill on the surrogate, so the "
     "line search never accepts. CG solves (F + 0.1·I)·d = g with the residual starting at g")),
    ({"sign": -1.0, "line_search": False},
     ("CG with the wrong sign and no line search: your step goes downhill on the surrogate "
     "(−F⁻¹g) and is never checked. Solve (F + 0.1·I)·d = +g, then line-search the step")),
    ({"natural": False},
     ("you stepped along the plain gradient g, not the natural direction d = (F + 0.1·I)⁻¹g "
     "that CG solves for: the trust region measures steps with F, so it must shape the "
     "direction too (section 3)")),
    ({"two": 1.0},
     ("your scale is √(δ / dᵀFd): the quadratic model of the KL is ½·α²·dᵀFd, so the step "
     "that reaches δ has α = √(2δ / dᵀFd)")),
    ({"damping": 0.0},
     ("your Fisher-vector product has no damping: CG must solve (F + 0.1·I)·d = g, so add "
     "0.1·v to F·v (the library's cg_damping)")),
]


def _jitted(fn: Callable) -> Callable:
    def run(name, delta):
        pr = _problem(name)
        step = jax.jit(lambda p, d: fn(pr.surrogate_fn, pr.kl_fn, p, d))
        try:
            out = step(pr.params, f32(delta))
        except NotImplementedError:
            raise
        except jax.errors.ConcretizationTypeError as err:
            raise Wrong("your step does not run under jax.jit (training runs it inside one): "
                        "no Python `if`/`float()` on arrays; pick the accepted fraction with "
                        "jnp.argmax / jnp.where instead (" + str(err).split("\n")[0][:80]
                        + ")") from None
        return out
    return run


def check_trpo_step(fn: Callable, train: bool = True) -> bool:
    """``my_trpo_step(surrogate_fn, kl_fn, params, delta) -> new params``: lesson 06's
    capstone. Hidden cases against the library's step, then (``train``) a TRPO agent trained
    with it must solve CartPole-v1 (greedy, gymnasium) on a hidden seed."""

    def body() -> int:
        cases = _cases()
        compare(_jitted(fn), cases, _variant(), rtol=2e-3, atol=2e-4,
                wrong=[(_variant(**w), m) for w, m in WRONG_STEPS],
                shape_hint="return the new flat parameters, the same shape as params")
        if not train:
            return len(cases)
        from course_lib.rl.config import TrainConfig

        trained_greedy(TrainConfig(algo="trpo", policy_step=fn), TRPO_STEP_SEED,
                       threshold=SOLVED, cases=f"{len(cases)} hidden cases",
                       agent="TRPO agent trained with your step",
                       hint="does your step work for any params and δ, traced?")
        return len(cases) + 1

    return verdict("TRPO step", fn, body)
