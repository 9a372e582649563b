"""Checkers for lesson 01, the cliff."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from course_lib.core.advantages import gae_from_next_values
from course_lib.exercises.checks.verdict import Case, compare, f32, verdict

__all__ = [
    "check_gae",
    "check_predict_alpha",
]


def check_predict_alpha(fn: Callable) -> bool:
    """``predict_alpha(alpha_small, kl_small, target_kl)`` = α₀ · √(target / KL(α₀))."""

    def body() -> int:
        args = [(1.0, 0.01, 0.1), (0.5, 0.4, 0.1), (0.1, 2e-4, 0.01), (2.0, 0.05, 0.05),
                (0.1, 1e-6, 0.01), (3.0, 0.2, 0.8)]
        cases = [Case(f"alpha_small = {a}, kl_small = {k}, target_kl = {t}", (a, k, t))
                 for a, k, t in args]
        compare(fn, cases, lambda a, k, t: a * math.sqrt(t / k), rtol=1e-5, atol=0.0,
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
        return len(cases)

    return verdict("predict alpha", fn, body)


def _gae_variant(*, bootstrap: str = "terminated", cut: str = "end", next_from_values: bool = False,
                 use_lambda: bool = True, add_values: bool = False):
    """A numpy GAE for one environment, ``my_gae``'s signature, written the way a learner might:
    ``bootstrap``/``cut`` name the flags that stop the bootstrap and the recursion ("terminated",
    "end" = terminated or truncated, "none"), for the wrong-answer diagnosis."""

    def run(rewards, values, next_values, terminated, truncated, gamma, lam):
        r, v = np.asarray(rewards, np.float64), np.asarray(values, np.float64)
        nv = np.asarray(next_values, np.float64)
        term = np.asarray(terminated, np.float64)
        end = np.maximum(term, np.asarray(truncated, np.float64))
        flags = {"terminated": term, "end": end, "none": np.zeros_like(term)}
        if next_from_values:
            nv = np.append(v[1:], nv[-1])
        adv, nxt = np.zeros(r.shape[0]), 0.0
        for t in reversed(range(r.shape[0])):
            u = r[t] + gamma * (1.0 - flags[bootstrap][t]) * nv[t] - v[t]
            nxt = u + gamma * (lam if use_lambda else 1.0) * (1.0 - flags[cut][t]) * nxt
            adv[t] = nxt
        return adv + v if add_values else adv

    return run


def check_gae(fn: Callable) -> bool:
    """``my_gae(rewards, values, next_values, terminated, truncated, gamma, lam)`` → the
    advantages ``[T]`` of one environment's rollout, with time-limit truncations bootstrapped.

    The reference is ``course_lib.gae_from_next_values`` (its first output), with
    ``episode_ends = terminated | truncated``.
    """

    def body() -> int:
        rng = np.random.default_rng(103)
        cases = []

        def add(label, t, term_at=(), trunc_at=(), gamma=0.99, lam=0.95):
            rewards = rng.uniform(-1.0, 2.0, t)
            values = rng.normal(3.0, 2.0, t)
            next_values = np.append(values[1:], rng.normal(3.0, 2.0))
            term, trunc = np.zeros(t), np.zeros(t)
            term[list(term_at)] = 1.0
            trunc[list(trunc_at)] = 1.0
            # after an episode end the next state is the final observation, not values[t + 1]
            ends = np.flatnonzero(np.maximum(term, trunc))
            next_values[ends] = rng.normal(20.0, 5.0, ends.size)
            cases.append(Case(label, (f32(rewards), f32(values), f32(next_values), f32(term),
                                      f32(trunc), gamma, lam)))

        add("a rollout without episode ends", 12)
        add("a rollout with terminations at t = 3 and t = 7", 12, term_at=[3, 7])
        add("a rollout truncated by the time limit at t = 5", 12, trunc_at=[5])
        add("a termination at t = 2 and a truncation at t = 6", 10, term_at=[2], trunc_at=[6])
        add("a rollout whose last step is truncated", 9, trunc_at=[8], gamma=0.9, lam=0.8)
        add("terminations with lambda = 1 (Monte Carlo)", 9, term_at=[2, 5], gamma=1.0, lam=1.0)
        add("a truncation with lambda = 0 (one-step TD)", 9, trunc_at=[4], gamma=0.95, lam=0.0)
        add("every step truncated", 5, trunc_at=range(5))
        add("a longer rollout with random terminations and truncations", 24,
            term_at=np.flatnonzero(rng.uniform(size=24) < 0.15),
            trunc_at=[11, 23])

        def ref(r, v, nv, term, trunc, gamma, lam):
            return gae_from_next_values(r, v, nv, term, jnp.maximum(term, trunc), gamma, lam)[0]

        compare(fn, cases, ref, rtol=1e-4, atol=1e-4,
                shape_hint="one advantage per time step, shape [T]",
                wrong=[
                    (_gae_variant(bootstrap="end"),
                     ("you treated a truncation as a termination: the time limit stopped the "
                      "episode, not the task, so a truncated step still bootstraps from "
                      "next_values[t] (the value of its final observation); only terminated "
                      "removes γ·V from u_t")),
                    (_gae_variant(cut="terminated"),
                     ("your recursion runs across a truncation: the next episode's advantages "
                      "flow back into this one. Any episode end, terminated or truncated, "
                      "cuts γλ·Â_{t+1}")),
                    (_gae_variant(bootstrap="none", cut="none"),
                     ("your advantages ignore the episode ends: a termination removes the "
                      "bootstrap γ·V, and any episode end cuts the recursion γλ·Â_{t+1}")),
                    (_gae_variant(bootstrap="none"),
                     ("you bootstrap after a termination: a terminal state has no future, so "
                      "u_t = r_t − V(s_t) there")),
                    (_gae_variant(next_from_values=True),
                     ("you bootstrapped from values[t + 1]: after an episode end that is the "
                      "NEXT episode's first state; next_values[t] holds the value of the state "
                      "that step t really reached")),
                    (_gae_variant(use_lambda=False),
                     ("your recursion discounts Â_{t+1} by γ alone; GAE uses γλ: "
                      "Â_t = u_t + γλ(1 − end_t)Â_{t+1}")),
                    (_gae_variant(add_values=True),
                     "you returned the λ-returns Â_t + V(s_t); return the advantages Â_t"),
                ])
        return len(cases)

    return verdict("GAE", fn, body)
