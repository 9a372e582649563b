"""Checkers for lesson 01, the cliff."""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from course_lib.core.advantages import gae
from course_lib.exercises.checks.verdict import Case, compare, f32, verdict

__all__ = [
    "check_flipped_fraction",
    "check_gae",
    "check_predict_alpha",
    "check_relative_l2",
]


def check_relative_l2(fn: Callable) -> bool:
    """``relative_l2(theta_old, theta_new)`` = ‖θ_new − θ_old‖₂ / ‖θ_old‖₂ (a scalar)."""

    def body() -> int:
        rng = np.random.default_rng(101)
        cases = []
        for size, scale, step in [(5, 1.0, 0.1), (100, 0.05, 0.3), (4610, 1.0, 0.02),
                                  (64, 3.0, 2.0), (8, 1e3, 0.5)]:
            old = rng.normal(0.0, scale, size)
            new = old + rng.normal(0.0, step * scale, size)
            cases.append(Case(f"{size} parameters", (f32(old), f32(new))))
        old = rng.normal(size=10)
        cases.append(Case("theta_new = theta_old", (f32(old), f32(old))))

        def ref(o, n):
            o, n = np.asarray(o, np.float64), np.asarray(n, np.float64)
            return np.linalg.norm(n - o) / np.linalg.norm(o)

        def as64(f):
            return lambda o, n: f(np.asarray(o, np.float64), np.asarray(n, np.float64))

        compare(fn, cases, ref, rtol=1e-4, atol=1e-7, shape_hint="one number for the whole step",
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
        return len(cases)

    return verdict("relative L2", fn, body)


def check_flipped_fraction(fn: Callable) -> bool:
    """``flipped_fraction(logits_old, logits_new)``: fraction of rows whose argmax changed."""

    def body() -> int:
        rng = np.random.default_rng(102)
        cases = []
        for b, a, noise in [(64, 2, 0.5), (50, 4, 1.0), (200, 3, 0.2), (1, 2, 3.0)]:
            old = rng.normal(0.0, 1.0, (b, a))
            new = old + rng.normal(0.0, noise, (b, a))
            cases.append(Case(f"{b} states with {a} actions", (f32(old), f32(new))))
        old = rng.normal(size=(16, 2))
        cases.append(Case("identical logits", (f32(old), f32(old))))
        cases.append(Case("every decision reversed", (f32(old), f32(-old))))
        old = rng.normal(size=(6, 3))
        old[:, 2] = -np.inf
        new = old.copy()
        new[:3, [0, 1]] = old[:3, [1, 0]]
        cases.append(Case("logits with -inf (an impossible action)", (f32(old), f32(new))))

        def flips(o, n):
            return np.argmax(np.asarray(o), -1) != np.argmax(np.asarray(n), -1)

        compare(fn, cases, lambda o, n: flips(o, n).mean(), rtol=0.0, atol=1e-6,
                shape_hint="one fraction for the whole batch",
                wrong=[
                    (lambda o, n: flips(o, n).sum(),
                     ("you returned the number of flipped states; divide by the number of "
                      "states B to get a fraction")),
                    (lambda o, n: 1.0 - flips(o, n).mean(),
                     ("you returned the fraction of states whose most likely action did NOT "
                      "change")),
                ])
        return len(cases)

    return verdict("flipped fraction", fn, body)


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
            u = r[t] + gamma * keep_b * nxt_v - v[t]
            nxt_adv = u + gamma * (lam if use_lambda else 1.0) * keep_r * nxt_adv
            adv[t] = nxt_adv
            nxt_v = v[t]
        return adv + v if add_values else adv

    return run


def check_gae(fn: Callable) -> bool:
    """``my_gae(rewards, values, dones, last_value, gamma, lam)`` → advantages ``[T]``.

    The reference is ``course_lib.gae`` (its first output) on one environment's rollout.
    """

    def body() -> int:
        rng = np.random.default_rng(103)
        cases = []

        def add(label, t, done_at, gamma, lam, last_value=None):
            rewards = rng.uniform(-1.0, 2.0, t)
            values = rng.normal(3.0, 2.0, t)
            dones = np.zeros(t)
            dones[list(done_at)] = 1.0
            lv = rng.normal(3.0, 2.0) if last_value is None else last_value
            cases.append(Case(label, (f32(rewards), f32(values), f32(dones),
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

        compare(fn, cases, ref, rtol=1e-4, atol=1e-4,
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
                      "V(s_{t+1}), the next episode's first state: u_t = r_t + γ(1 − done_t)"
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
                      "Â_t = u_t + γλ(1 − done_t)Â_{t+1}")),
                    (_gae_variant(add_values=True),
                     "you returned the λ-returns Â_t + V(s_t); return the advantages Â_t"),
                ])
        return len(cases)

    return verdict("GAE", fn, body)
