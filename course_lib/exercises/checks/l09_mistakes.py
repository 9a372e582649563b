"""Checkers for lesson 09, common mistakes (and its diagnosis questions)."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import numpy as np

from course_lib.exercises.checks.verdict import (
    Case,
    Wrong,
    call,
    compare,
    describe_value,
    f32,
    verdict,
)

__all__ = [
    "DIAGNOSES",
    "Diagnosis",
    "check_broke_promise",
    "check_diagnosis",
    "check_normalise",
    "check_stop_after",
]


def _epochs_run(trace: Sequence[float], target: float, *, strict: bool = True,
                already_ran: bool = True) -> int:
    for k, kl in enumerate(trace):
        if (kl > target) if strict else (kl >= target):
            return k + 1 if already_ran else k
    return len(trace)


def check_stop_after(fn: Callable) -> bool:
    """``stop_after(kl_trace, target_kl) -> int``: the epochs run under KL early stopping (the
    first epoch whose KL exceeds the target still runs; ``len(kl_trace)`` if none does)."""

    def body() -> int:
        raw = [([0.001, 0.004, 0.03, 0.2], 0.02), ([0.001, 0.002], 0.02), ([0.5], 0.02),
               ([0.02, 0.021], 0.02), ([0.001, 0.02, 0.02, 0.5], 0.02),
               ([0.002, 0.006, 0.011, 0.018, 0.026, 0.04, 0.05, 0.07, 0.09, 0.12], 0.01),
               ([0.0005, 0.001, 0.0015, 0.002, 0.0025], 0.005), ([0.3, 0.01, 0.5], 0.1)]
        cases = [(np.asarray(t, np.float32), float(np.float32(g))) for t, g in raw]

        def outputs(rule) -> list[int]:
            return [rule(t, g) for t, g in cases]

        got = []
        for t, g in cases:
            out = call(fn, t, g)
            arr = np.asarray(out) if out is not None else None
            if arr is None or arr.shape != () or not (
                    np.issubdtype(arr.dtype, np.integer)
                    or np.issubdtype(arr.dtype, np.floating) and float(arr).is_integer()):
                raise Wrong(f"return one whole number of epochs, not {describe_value(out)}")
            got.append(int(arr))
        want = outputs(_epochs_run)
        if got == want:
            return len(cases)
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
                raise Wrong(message)
        j = next(j for j, (a, b) in enumerate(zip(got, want, strict=True)) if a != b)
        raise Wrong(f"wrong for kl_trace = {raw[j][0]}, target {raw[j][1]}: you said "
                    f"{got[j]}, expected {want[j]}")

    return verdict("early stopping", fn, body)


def check_normalise(fn: Callable) -> bool:
    """``normalise(adv)`` → ``(adv − mean) / (std + 1e-8)`` over the whole batch."""

    def body() -> int:
        rng = np.random.default_rng(909)
        cases = [Case("advantages [1, 2, 3, 10]", (f32([1.0, 2.0, 3.0, 10.0]),)),
                 Case("advantages in the hundreds", (f32(100.0 * rng.normal(size=64) + 7.0),)),
                 Case("small advantages (std 0.01)", (f32(0.01 * rng.normal(size=32) - 0.5),)),
                 Case("all-positive advantages", (f32(rng.uniform(1.0, 5.0, 16)),)),
                 Case("a batch of one (std 0)", (f32([3.0]),)),
                 Case("a [4, 8] batch", (f32(rng.normal(2.0, 3.0, (4, 8))),))]
        n64 = lambda x: np.asarray(x, np.float64)

        def norm(x, centre=True, scale=True, ddof=0, axis=None):
            x = n64(x)
            m = x.mean(axis=axis, keepdims=axis is not None) if centre else 0.0
            sd = x.std(axis=axis, ddof=ddof, keepdims=axis is not None) if scale else 1.0
            return (x - m) / (sd + 1e-8)

        compare(fn, cases, lambda x: norm(x), rtol=1e-4, atol=1e-4,
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
        return len(cases)

    return verdict("normalise", fn, body)


def check_broke_promise(fn: Callable) -> bool:
    """``broke_promise(before, after, gain, kl, delta)`` → bool array: gain > 0, KL ≤ δ and
    after < 0.9·before."""

    def body() -> int:
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
            out = call(fn, *c)
            arr = np.asarray(out) if out is not None else None
            if arr is None or arr.dtype != np.bool_:
                raise Wrong("return a boolean array (one True/False per update), not "
                            + (describe_value(out) if arr is None else
                               f"an array of dtype {arr.dtype}"))
            if arr.shape != np.shape(c[1]):
                raise Wrong(f"return one True/False per update: expected shape "
                            f"{np.shape(c[1])}, got {arr.shape}")
            got.append(arr)

        def same(r) -> bool:
            return all(np.array_equal(g, r(*c)) for g, c in zip(got, cases, strict=True))

        if same(rule):
            return sum(len(c[1]) for c in cases)
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
                raise Wrong(message)
        return_ = next(i for i, (g, c) in enumerate(zip(got, cases, strict=True))
                       if not np.array_equal(g, rule(*c)))
        raise Wrong(f"wrong on test batch {return_ + 1}: compare gain > 0, kl <= delta and "
                    "after < 0.9 · before")

    return verdict("broken promise", fn, body)


class Diagnosis(NamedTuple):
    """A multiple-choice "diagnose the broken run" question.

    Attributes:
      options: letter → the option's text (the lesson shows them, e.g. via ``markdown()``).
      answer: the right letter.
      why: why the right option is right (for the lesson's discussion; the pass line never
        prints it, since the exercise notebook stores that line).
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

    def body() -> None:
        if question not in DIAGNOSES:
            raise Wrong(f"no diagnosis question named {question!r}")
        q = DIAGNOSES[question]
        value = call(answer) if callable(answer) else answer
        letters = ", ".join(repr(k) for k in q.options)
        if value is Ellipsis or value is None:
            raise Wrong(f"no answer yet: set it to one of {letters}")
        text = str(value).strip().strip("()").strip().lower()
        if text not in q.options:
            raise Wrong(f"answer with one of the letters {letters}, not {value!r}")
        if text != q.answer:
            raise Wrong(f"({text}) is not it: {q.feedback.get(text, 'look at the KL again')}")
        # no count: the pass line names no option (the exercise notebook stores it)

    return verdict("diagnosis", answer, body, callable_fn=False)
