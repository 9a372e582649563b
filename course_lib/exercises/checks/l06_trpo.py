"""Checkers for lesson 06, TRPO."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax.numpy as jnp
import numpy as np

from course_lib.exercises.checks.verdict import (
    Case,
    Wrong,
    as_bool,
    call,
    compare,
    describe_value,
    f32,
    verdict,
)

__all__ = [
    "accept",
    "check_accepted_k",
    "check_line_search_accept",
    "check_trust_region_scale",
]


def accept(kl: float, improvement: float, delta: float) -> bool:
    """TRPO's line-search acceptance rule, as in ``course_lib.backtracking_line_search``."""
    return (math.isfinite(kl) and math.isfinite(improvement) and kl <= delta
            and improvement > 0)


def check_line_search_accept(fn: Callable) -> bool:
    """``accept(kl, improvement, delta) -> bool``: TRPO's line-search test (KL ≤ δ, gain > 0)."""

    def body() -> int:
        nan, inf = float("nan"), float("inf")
        args = [(0.005, 0.1, 0.01), (0.02, 0.1, 0.01), (0.005, -0.1, 0.01), (0.005, 0.0, 0.01),
                (0.01, 0.1, 0.01), (0.0, 1e-6, 0.01), (0.5, 10.0, 0.01), (0.03, -1.0, 0.01),
                (0.009, 0.3, 0.05), (nan, 0.1, 0.01), (0.005, nan, 0.01), (inf, 1.0, 0.01)]
        got = [as_bool(call(fn, *a), "whether the step is accepted") for a in args]
        want = [accept(*a) for a in args]
        if got == want:
            return len(args)
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
                raise Wrong(message)
        i = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        k, imp, d = args[i]
        raise Wrong(f"wrong for KL = {k}, improvement = {imp}, δ = {d}: you said {got[i]}, "
                    f"expected {want[i]}")

    return verdict("line-search acceptance", fn, body)


def check_trust_region_scale(fn: Callable) -> bool:
    """``trust_region_scale(dFd, delta)`` → α = √(2δ / dᵀFd), the factor that takes the
    direction d to the edge of the quadratic trust region ½ sᵀF s = δ."""

    def body() -> int:
        rng = np.random.default_rng(606)
        cases = [Case("dᵀFd = 2, δ = 0.01", (f32(2.0), 0.01)),
                 Case("dᵀFd = 0.04, δ = 0.01 (a step to lengthen)", (f32(0.04), 0.01)),
                 Case("dᵀFd = 1, δ = 0.5", (f32(1.0), 0.5))]
        for dfd, delta in zip(10.0 ** rng.uniform(-3, 3, 6), rng.choice([0.001, 0.01, 0.05, 0.1], 6),
                              strict=True):
            cases.append(Case(f"dᵀFd = {dfd:.4g}, δ = {delta}", (f32(dfd), float(delta))))
        n64 = lambda x: float(np.asarray(x, np.float64))
        compare(fn, cases, lambda dfd, d: np.sqrt(2.0 * d / n64(dfd)), rtol=1e-5, atol=1e-9,
                shape_hint="α is one number",
                wrong=[
                    (lambda dfd, d: np.sqrt(d / n64(dfd)),
                     "you dropped the 2: the edge is ½ sᵀF s = δ, so α = √(2δ / dᵀFd)"),
                    (lambda dfd, d: 2.0 * d / n64(dfd),
                     "you forgot the square root: α²·dᵀFd = 2δ gives α = √(2δ / dᵀFd)"),
                    (lambda dfd, d: np.sqrt(n64(dfd) / (2.0 * d)),
                     "your α is upside down: √(dᵀFd / 2δ); α = √(2δ / dᵀFd)"),
                    (lambda dfd, d: np.sqrt(2.0 * d) / n64(dfd),
                     "dᵀFd belongs under the square root too: α = √(2δ / dᵀFd)"),
                ])
        return len(cases)

    return verdict("trust-region scale", fn, body)


def _first_accepted(kls: np.ndarray, imps: np.ndarray, delta: float) -> int:
    for k, (kl, imp) in enumerate(zip(kls, imps, strict=True)):
        if accept(float(kl), float(imp), delta):
            return k
    return len(kls)


def check_accepted_k(fn: Callable) -> bool:
    """``accepted_k(kls, improvements, delta) -> int``: the first k whose step is accepted
    (KL ≤ δ and improvement > 0), or ``len(kls)`` when none is."""

    def body() -> int:
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
            out = call(fn, jnp.asarray(k), jnp.asarray(i), d)
            if out is None:
                raise Wrong(f"your function returned None for {label} (did you forget the "
                            "`return`?); when no step is acceptable return len(kls)")
            arr = np.asarray(out)
            if arr.shape != () or not np.issubdtype(arr.dtype, np.integer) and not (
                    np.issubdtype(arr.dtype, np.floating) and float(arr).is_integer()):
                raise Wrong(f"return one whole number k, not {describe_value(out)} of shape "
                            f"{arr.shape}")
            got.append(int(arr))
        want = verdict(_first_accepted)
        if got == want:
            return len(cases)

        def last(k, i, d):
            ok = [j for j in range(len(k)) if accept(float(k[j]), float(i[j]), d)]
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
                raise Wrong(message)
        j = next(j for j, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        raise Wrong(f"wrong for {cases[j][0]}: you said k = {got[j]}, expected {want[j]}")

    return verdict("accepted k", fn, body)
