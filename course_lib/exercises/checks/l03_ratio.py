"""Checkers for lesson 03, the ratio and the surrogate."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from course_lib.core.surrogate import ratio, surrogate
from course_lib.exercises.checks.verdict import (
    UNDERFLOW_HINT,
    Case,
    compare,
    f32,
    stop_gradient_check,
    verdict,
)

__all__ = [
    "check_ratio",
    "check_surrogate",
]


def _logp_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = [Case("the worked example (π_old = 0.2, π_new = 0.8)",
                  (f32(np.log([0.8])), f32(np.log([0.2]))))]
    for b in (8, 3, 32):
        old = np.log(rng.uniform(0.02, 0.98, b))
        cases.append(Case(f"random log-probabilities, B = {b}",
                          (f32(old + rng.normal(0.0, 0.6, b)), f32(old))))
    lp = np.log(rng.uniform(0.1, 0.9, 5))
    cases.append(Case("logp_new = logp_old", (f32(lp), f32(lp))))
    cases.append(Case("log-probabilities near −110 (probabilities that underflow)",
                      (f32([-109.0, -3.0, -120.0]), f32([-110.0, -1.0, -118.5]))))
    cases.append(Case("ratios far beyond 1 ± 0.2 (π_new/π_old = 10 and 1/10)",
                      (f32(np.log([0.5, 0.01])), f32(np.log([0.05, 0.1])))))
    return cases


def check_ratio(fn: Callable) -> bool:
    """``my_ratio(logp_new, logp_old)`` → r = exp(logp_new − logp_old) per sample ``[B]``."""

    def body() -> int:
        cases = _logp_cases(301)
        n64 = lambda x: np.asarray(x, np.float64)
        compare(fn, cases, lambda new, old: ratio(new, old), rtol=1e-5, atol=1e-30,
                shape_hint="one ratio per sample", nan_hint=UNDERFLOW_HINT,
                wrong=[
                    (lambda new, old: np.exp(n64(old) - n64(new)),
                     ("your ratio is inverted: π_old/π_new; r = π_new/π_old = "
                      "exp(logp_new − logp_old)")),
                    (lambda new, old: n64(new) - n64(old),
                     "you returned log r = logp_new − logp_old; the ratio is its exponential"),
                    (lambda new, old: np.exp(np.asarray(new)) / np.exp(np.asarray(old)),
                     UNDERFLOW_HINT),
                    (lambda new, old: n64(new) / n64(old),
                     ("you divided the log-probabilities; r = π_new/π_old = "
                      "exp(logp_new − logp_old)")),
                ])
        return len(cases)

    return verdict("ratio", fn, body)


def _surrogate_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = [Case("the worked example (r = 4, A = +5)",
                  (f32(np.log([0.8])), f32(np.log([0.2])), f32([5.0])))]
    for b in (6, 16, 32):
        old = np.log(rng.uniform(0.05, 0.95, b))
        cases.append(Case(f"random samples, B = {b}",
                          (f32(old + rng.normal(0.0, 0.5, b)), f32(old),
                           f32(rng.normal(0.0, 2.0, b)))))
    old = np.log(rng.uniform(0.05, 0.95, 8))
    cases.append(Case("negative advantages only",
                      (f32(old + rng.normal(0.0, 0.5, 8)), f32(old),
                       f32(-rng.uniform(0.5, 3.0, 8)))))
    cases.append(Case("log-probabilities near −110",
                      (f32([-109.0, -3.0]), f32([-110.0, -1.0]), f32([1.0, -2.0]))))
    return cases


def check_surrogate(fn: Callable) -> bool:
    """``my_surrogate(logp_new, logp_old, advantages)`` → mean(r·A), with ``logp_old`` under
    ``jax.lax.stop_gradient``."""

    def body() -> int:
        cases = _surrogate_cases(302)
        n64 = lambda x: np.asarray(x, np.float64)
        compare(fn, cases, lambda new, old, a: surrogate(new, old, a), rtol=1e-5, atol=1e-6,
                shape_hint="the surrogate is one number, the mean over the batch",
                nan_hint=UNDERFLOW_HINT,
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
        a = f32([1.0, -2.0, 0.5, 3.0])
        stop_gradient_check(lambda lp: fn(lp, lp, a), a, "the surrogate")
        return len(cases) + 1

    return verdict("surrogate", fn, body)


