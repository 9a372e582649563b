"""Checkers for lesson 04, the KL trust region."""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.exercises.checks.verdict import (
    Case,
    Wrong,
    as_bool,
    call,
    f32,
    kl_rows,
    verdict,
)

__all__ = [
    "check_in_trust_region",
]


@functools.lru_cache(maxsize=1)
def _toy_steps() -> list[tuple[str, str, np.ndarray, np.ndarray, float]]:
    """Lesson 04's toy: the plain gradient step and TRPO's step, with their δ."""
    from course_lib.lessons.l04_trust_region import (
        DEFAULT_TOY,
        toy_gradient,
        toy_logits,
        toy_natural_step,
    )

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

    def body() -> int:
        rng = np.random.default_rng(402)
        cases = []

        def add(label, old, new, delta):
            cases.append(Case(label, (f32(old), f32(new), delta)))

        def kl(o, n):
            return kl_rows(o, n)

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
            got = as_bool(call(fn, *case.args), "whether mean KL(old‖new) ≤ δ")
            answers.append(got)
        truth = [bool(kl(o, n).mean() <= d) for o, n, d in (c.args for c in cases)]
        if answers == truth:
            return len(cases)

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
                raise Wrong(message)
        i = next(i for i, (a, t) in enumerate(zip(answers, truth, strict=True)) if a != t)
        raise Wrong(f"wrong for {cases[i].label}: you said {answers[i]}, but its mean "
                    f"KL(old‖new) is {'≤' if truth[i] else '>'} δ")

    return verdict("inside the trust region", fn, body)


