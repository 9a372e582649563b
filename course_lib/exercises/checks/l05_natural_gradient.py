"""Checkers for lesson 05, the natural gradient."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.core.solvers import conjugate_gradient, trust_region_step
from course_lib.exercises.checks.verdict import (
    Case,
    compare,
    f32,
    policy_problem,
    scale_variants,
    spd,
    step_cases,
    verdict,
)

__all__ = [
    "check_cg_two_steps",
    "check_fvp",
    "check_step_scale",
]


@functools.lru_cache(maxsize=1)
def _fvp_cases() -> tuple[list[Case], list[np.ndarray]]:
    """(kl_fn, params, v) cases with their dense F v."""
    from course_lib.lessons.l05_natural_gradient import BANDIT_START, bandit_kl, softmax_fisher

    prob = policy_problem()
    rng = np.random.default_rng(501)
    v = f32(rng.normal(size=prob.params.shape))
    start = jnp.asarray(BANDIT_START, jnp.float32)
    w = f32([0.3, -1.0, 2.0])
    a = spd(rng, 4, 1.0)
    x0 = f32(rng.normal(size=4))

    def smooth(x):  # not a KL: its gradient at x0 is not 0
        return jnp.sum(jnp.logaddexp(0.0, f32(a) @ x)) + 0.1 * jnp.sum(x ** 4)

    u = f32(rng.normal(size=4))
    cases = [
        Case("a policy network's mean KL at θ_old, random v", (prob.kl_fn, prob.params, v)),
        Case("a policy network's mean KL at θ_old, v = its most sensitive direction",
             (prob.kl_fn, prob.params, prob.sensitive)),
        Case("the bandit's KL at its start", (lambda z: bandit_kl(start, z), start, w)),
        Case("a smooth function whose gradient is not 0", (smooth, x0, u)),
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

    def body() -> int:
        cases, expected = _fvp_cases()

        def gradient(kl_fn, params, v):
            return jax.grad(kl_fn)(params)

        compare(fn, cases, list(expected), rtol=2e-3, atol=1e-5,
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
        return len(cases)

    return verdict("Fisher-vector product", fn, body)


def check_step_scale(fn: Callable) -> bool:
    """``my_step_scale(direction, fvp, delta)`` → the scalar α = √(2δ / dᵀF d)."""

    def body() -> int:
        cases = [Case(c.label, (c.args[0], _MatVec(c.args[1]), c.args[2]))
                 for c in step_cases(502)]

        def ref(d, fvp, delta):
            step = trust_region_step(d, fvp, delta)
            return jnp.vdot(step, d) / jnp.vdot(d, d)

        def via_matrix(f):  # recover the matrix behind the fvp for the numpy variants
            return lambda d, fvp, delta: f(d, fvp.matrix, delta)

        compare(fn, cases, ref, rtol=1e-4, atol=1e-8,
                shape_hint="return the scalar α; the step is α·d",
                wrong=[(via_matrix(f), m) for f, m in scale_variants(
                    lambda s, beta: beta, "the step α·d")])
        return len(cases)

    return verdict("trust-region step size", fn, body)


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

    def body() -> int:
        from course_lib.lessons.l05_natural_gradient import BANDIT_START, softmax_fisher

        rng = np.random.default_rng(503)
        m = rng.normal(size=(5, 5))
        q, _ = np.linalg.qr(rng.normal(size=(4, 4)))
        start = jnp.asarray(BANDIT_START, jnp.float32)
        cases = [
            Case("the 2×2 system [[4, 1], [1, 3]] x = (1, 2)",
                 (f32([[4.0, 1.0], [1.0, 3.0]]), f32([1.0, 2.0]))),
            Case("a random 5×5 SPD system", (f32(m @ m.T + np.eye(5)), f32(np.arange(1, 6)))),
            Case("the bandit's damped Fisher F + 0.1·I",
                 (f32(np.asarray(softmax_fisher(start)) + 0.1 * np.eye(3)),
                  f32([0.5, -1.0, 0.3]))),
            Case("an ill-conditioned 4×4 system (eigenvalues 1 to 30)",
                 (f32(q @ np.diag([1.0, 3.0, 10.0, 30.0]) @ q.T), f32(rng.normal(size=4)))),
        ]

        def ref(a, b):
            return conjugate_gradient(lambda v: a @ v, b, iters=2)[0]

        compare(fn, cases, ref, rtol=1e-3, atol=1e-5,
                shape_hint="return x₂, shaped like b",
                wrong=[
                    (_cg_variant(update_residual=False),
                     ("your residual is never updated: after each step set q ← q − a·A p "
                      "(CG without the residual update keeps stepping along stale directions)")),
                    (_cg_variant(conjugate=False),
                     ("your new search direction ignores the previous one (that is steepest "
                      "descent): p ← q_new + m·p with m = q_newᵀq_new / qᵀq")),
                    (_cg_variant(iters=1),
                     "you did one CG iteration; do exactly two"),
                    (_cg_variant(iters=3),
                     "you did three CG iterations; do exactly two"),
                ])
        return len(cases)

    return verdict("two steps of CG", fn, body)
