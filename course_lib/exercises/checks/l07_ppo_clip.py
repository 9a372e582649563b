"""Checkers for lesson 07, PPO's clip."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.core.surrogate import clipped_surrogate, kl_estimate
from course_lib.exercises.checks.verdict import (
    UNDERFLOW_HINT,
    Case,
    Wrong,
    close,
    compare,
    f32,
    grad,
    stop_gradient_check,
    verdict,
)
from course_lib.rl.ppo import adapt_beta

__all__ = [
    "check_adapt_beta",
    "check_clipped_surrogate",
    "check_k3",
]


def _clipped_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = [Case("the worked example (r = 4, A = +5, ε = 0.2)",
                  (f32(np.log([0.8])), f32(np.log([0.2])), f32([5.0]), 0.2)),
             Case("r = 4 with A = −5 (ε = 0.2)",
                  (f32(np.log([0.8])), f32(np.log([0.2])), f32([-5.0]), 0.2))]
    for b, eps in [(16, 0.2), (32, 0.1), (8, 0.3)]:
        old = np.log(rng.uniform(0.05, 0.95, b))
        new = old + rng.normal(0.0, 0.7, b)  # ratios from about 0.2 to 5
        cases.append(Case(f"random samples, B = {b}, ε = {eps}",
                          (f32(new), f32(old), f32(rng.normal(0.0, 2.0, b)), eps)))
    old = np.log(rng.uniform(0.05, 0.95, 12))
    new = old + rng.normal(0.0, 0.7, 12)
    cases.append(Case("negative advantages only", (f32(new), f32(old),
                                                   f32(-rng.uniform(0.5, 3.0, 12)), 0.2)))
    cases.append(Case("ε = 0", (f32(new), f32(old), f32(rng.normal(0.0, 2.0, 12)), 0.0)))
    return cases


def check_clipped_surrogate(fn: Callable) -> bool:
    """``my_clipped_surrogate(logp_new, logp_old, advantages, eps)`` → PPO's L^CLIP (a scalar)."""

    def body() -> int:
        cases = _clipped_cases(601)
        n64 = lambda x: np.asarray(x, np.float64)

        def rule(term):
            def run(new, old, a, eps):
                r = np.exp(n64(new) - n64(old))
                return np.mean(term(r, n64(a), eps))
            return run

        def clip(r, eps):
            return np.clip(r, 1.0 - eps, 1.0 + eps)

        compare(fn, cases, lambda new, old, a, eps: clipped_surrogate(new, old, a, eps),
                rtol=1e-5, atol=1e-6,
                shape_hint="L^CLIP is one number, the mean over the batch",
                nan_hint=UNDERFLOW_HINT,
                wrong=[
                    (rule(lambda r, a, e: a * np.minimum(r, 1.0 + e)),
                     ("your clip is on the wrong side for A < 0: there the objective is flat "
                      "BELOW 1 − ε and keeps r·A above 1 + ε. min(r·A, clip(r, 1 − ε, 1 + ε)·A) "
                      "gets both signs right")),
                    (rule(lambda r, a, e: np.maximum(r * a, clip(r, e) * a)),
                     ("you took the max; L^CLIP is the pessimistic MIN of r·A and "
                      "clip(r, 1 − ε, 1 + ε)·A")),
                    (rule(lambda r, a, e: clip(r, e) * a),
                     ("you dropped the min: with A < 0 and r > 1 + ε the term must stay r·A; "
                      "average min(r·A, clip(r, 1 − ε, 1 + ε)·A)")),
                    (rule(lambda r, a, e: r * a),
                     "you never clip: that is the unclipped surrogate mean(r·A)"),
                    (rule(lambda r, a, e: np.minimum(r * a, r * np.clip(a, 1.0 - e, 1.0 + e))),
                     "you clipped the advantage; clip the ratio r to [1 − ε, 1 + ε]"),
                    (lambda new, old, a, eps: np.mean(np.minimum(
                        np.exp(n64(old) - n64(new)) * n64(a),
                        clip(np.exp(n64(old) - n64(new)), eps) * n64(a))),
                     "your ratio is inverted: π_old/π_new; r = exp(logp_new − logp_old)"),
                    (lambda new, old, a, eps: len(n64(a)) * rule(
                        lambda r, a_, e: np.minimum(r * a_, clip(r, e) * a_))(new, old, a, eps),
                     "you summed over the batch; L^CLIP is the MEAN over the samples"),
                ])
        a = f32([1.0, -2.0, 0.5, 3.0])
        stop_gradient_check(lambda lp: fn(lp, lp, a, 0.2), a, "L^CLIP")
        checks = len(cases) + 1
        for case in cases[2:5]:
            g = grad(lambda new, *rest: fn(new, *rest), *case.args)
            want = np.asarray(jax.grad(clipped_surrogate)(*case.args), np.float64)
            if not close(g, want, 1e-3, 1e-6):
                raise Wrong(f"the value is right but the gradient is wrong for {case.label}: "
                            "a clipped sample must have zero gradient")
            checks += 1
        return checks

    return verdict("clipped surrogate", fn, body)


def check_k3(fn: Callable) -> bool:
    """``my_k3(logp_new, logp_old)`` → mean((r − 1) − log r), Schulman's k3 estimate of
    KL(π_old‖π_new) from actions drawn from π_old (``course_lib.kl_estimate(..., "k3")``)."""

    def body() -> int:
        rng = np.random.default_rng(701)
        cases = []
        for scale, b in [(1e-4, 64), (0.05, 64), (0.5, 32), (2.0, 16)]:
            old = np.log(rng.uniform(0.05, 0.95, b))
            cases.append(Case(f"log-ratios of size {scale:g}",
                              (f32(old + rng.normal(0.0, scale, b)), f32(old))))
        lp = np.log(rng.uniform(0.1, 0.9, 8))
        cases.append(Case("logp_new = logp_old (KL 0)", (f32(lp), f32(lp))))
        def k(f):
            return lambda new, old: np.mean(f(np.asarray(new, np.float64)
                                              - np.asarray(old, np.float64)))

        def ref(new, old):
            return kl_estimate(new, old, "k3")

        compare(fn, cases[1:], ref, rtol=1e-3, atol=1e-9,
                shape_hint="one number, the mean over the samples",
                wrong=[
                    (k(lambda lr: -lr),
                     ("that is k1 = mean(−log r): unbiased but noisy, and it can be negative; "
                      "k3 = mean((r − 1) − log r) is never negative")),
                    (k(lambda lr: 0.5 * lr ** 2),
                     "that is k2 = mean(½(log r)²); k3 = mean((r − 1) − log r)"),
                    (k(lambda lr: np.expm1(-lr) + lr),
                     ("your log r is reversed: r = π_new/π_old, log r = logp_new − logp_old")),
                ])
        try:  # right for large log-ratios: a failure at 1e-4 is a matter of precision
            compare(fn, cases[:1], ref, rtol=1e-3, atol=1e-9)
        except Wrong:
            raise Wrong("right for large log-ratios but not for log r ≈ 1e-4: in float32, "
                        "(r − 1) − log r loses its digits when r ≈ 1; compute "
                        "jnp.expm1(log_r) − log_r") from None
        c = 0.3
        g = grad(lambda t: fn(t + c, t), f32(np.log([0.2, 0.5, 0.7])))
        if np.allclose(g, 0.0, atol=1e-8):
            raise Wrong("the value is right but the gradient also flows through logp_old: "
                        "put logp_old under jax.lax.stop_gradient (π_old is fixed data)")
        return len(cases) + 1

    return verdict("k3 estimate", fn, body)


def check_adapt_beta(fn: Callable) -> bool:
    """``adapt_beta(beta, kl, target) -> new_beta``: PPO-penalty's rule (PPO paper §4)."""

    def body() -> int:
        cases = [Case(f"β = {b}, KL = {m}·target, target = {t}", (b, m * t, t))
                 for t in (0.01, 0.02) for b in (1.0, 0.3, 4.0)
                 for m in (0.1, 0.5, 0.65, 0.7, 1.0, 1.4, 1.6, 3.0, 50.0)]

        def ref(b, kl, t):
            return adapt_beta(jnp.float32(b), jnp.float32(kl), jnp.float32(t))

        def rule(low, high, down=0.5, up=2.0):
            def run(b, kl, t):
                return b * down if kl < low * t else (b * up if kl > high * t else b)
            return run

        compare(fn, cases, ref, rtol=1e-5, atol=1e-9, shape_hint="the new β, one number",
                wrong=[
                    (rule(1 / 1.5, 1.5, down=2.0, up=0.5),
                     ("β is updated the wrong way: when the KL is too large the penalty must "
                      "GROW (β × 2), and when it is too small it must shrink (β / 2)")),
                    (rule(1.0, 1.0),
                     ("you change β whenever the KL differs from the target; the PPO paper "
                      "leaves β alone while target/1.5 ≤ KL ≤ 1.5·target")),
                    (rule(1 / 1.5, 1.5, down=1 / 1.5, up=1.5),
                     ("β is halved or doubled (× ½, × 2), not scaled by 1.5; 1.5 is the width "
                      "of the band around the target")),
                    (rule(0.5, 2.0),
                     "the band is target/1.5 ≤ KL ≤ 1.5·target, not target/2 to 2·target"),
                ])
        return len(cases)

    return verdict("adaptive β", fn, body)
