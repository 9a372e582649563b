"""Checkers for lesson 06, TRPO."""

from __future__ import annotations

import math
from collections.abc import Callable

from course_lib.exercises.checks.verdict import (
    Wrong,
    as_bool,
    call,
    verdict,
)

__all__ = [
    "accept",
    "check_line_search_accept",
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


