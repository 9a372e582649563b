"""Checkers for lesson 08, TRPO vs PPO."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np

from course_lib.exercises.checks.verdict import (
    Case,
    Wrong,
    call,
    close,
    compare,
    describe_value,
    fmt,
    verdict,
)

__all__ = [
    "check_seed_band",
    "check_solve_rate",
    "check_steps_to_solve",
]


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

    def body() -> int:
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
            out = call(fn, r, st, t)
            if out is None:
                got.append(None)
                continue
            arr = np.asarray(out)
            if arr.shape != () or not np.issubdtype(arr.dtype, np.number):
                raise Wrong(f"for {label} you returned {describe_value(out)}; return one "
                            "number of environment steps, or None")
            got.append("nan" if np.isnan(float(arr)) else float(arr))
        want = outputs(_first_steps)
        if got == want:
            return len(cases)
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
                raise Wrong(message)
        j = next(j for j, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
        raise Wrong(f"wrong for {cases[j][0]}: you said {got[j]}, expected {want[j]}")

    return verdict("steps to solve", fn, body)


def check_seed_band(fn: Callable) -> bool:
    """``band(values [S, I])`` → ``(mean, lo, hi)``, each ``[I]``: the mean, minimum and maximum
    over the seeds at each iteration."""

    def body() -> int:
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
            out = call(fn, v.astype(np.float32))
            if not isinstance(out, tuple | list) or len(out) != 3:
                raise Wrong(f"return three curves (mean, lo, hi), not {describe_value(out)}")
            got = [np.asarray(o, np.float64) for o in out]
            want = ref(v)
            if all(g.shape == w.shape and close(g, w, 1e-5, 1e-4)
                   for g, w in zip(got, want, strict=True)):
                continue
            for rule, message in wrongs:
                alt = [np.asarray(a, np.float64) for a in rule(v)]
                if all(g.shape == a.shape and close(g, a, 1e-5, 1e-4)
                       for g, a in zip(got, alt, strict=True)):
                    raise Wrong(message)
            raise Wrong(f"wrong for values of shape {v.shape}: expected mean {fmt(want[0])}, "
                        f"lo {fmt(want[1])}, hi {fmt(want[2])}" if v.size <= 4 else
                        f"wrong for values of shape {v.shape} (case {k + 1})")
        return len(cases)

    return verdict("seed band", fn, body)


def check_solve_rate(fn: Callable) -> bool:
    """``my_solve_rate(scores [S], threshold)`` → the fraction of seeds with score ≥ threshold."""

    def body() -> int:
        rng = np.random.default_rng(810)
        raw = [([475.0, 474.0, 500.0, 100.0], 475.0, "a score equal to the threshold"),
               ([-240.0, -260.0, -250.0], -250.0, "a negative threshold"),
               ([10.0, 20.0, 30.0], 475.0, "no seed solves"),
               ([500.0, 500.0], 475.0, "every seed solves")]
        for n in (5, 8, 10):
            sc = np.round(rng.uniform(300.0, 500.0, n))
            raw.append((list(sc), float(sc[n // 2]), f"{n} random seeds"))
        cases = [Case(label, (np.asarray(sc, np.float32), t)) for sc, t, label in raw]
        n64 = lambda x: np.asarray(x, np.float64)
        compare(fn, cases, lambda sc, t: np.mean(n64(sc) >= t), rtol=1e-6, atol=1e-9,
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
        return len(cases)

    return verdict("solve rate", fn, body)
