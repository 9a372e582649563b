"""Checkers for lesson 02, weight distance vs policy distance."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.core.distributions import categorical_kl
from course_lib.exercises.checks.verdict import (
    ZERO_P_HINT,
    Case,
    Wrong,
    as_array,
    call,
    close,
    compare,
    f32,
    grad,
    kl_logit_cases,
    kl_rows,
    log_softmax,
    policy_problem,
    shape_words,
    verdict,
)
from course_lib.lessons.l02_policy_distance import radius_at_kl

__all__ = [
    "check_categorical_kl",
    "check_radius_for_kl",
    "check_sampled_kl",
]


def _kl_of_raw_logits(p_logits: Any, q_logits: Any) -> np.ndarray:
    """Σ_a p(a)·(z_p(a) − z_q(a)): the logits taken for log-probabilities (a wrong answer)."""
    zp, zq = np.asarray(p_logits, np.float64), np.asarray(q_logits, np.float64)
    p = np.exp(log_softmax(zp))
    return np.where(p > 0, p * (np.where(p > 0, zp, 0.0) - np.where(p > 0, zq, 0.0)),
                    0.0).sum(axis=-1)


def check_categorical_kl(fn: Callable) -> bool:
    """``my_categorical_kl(p_logits, q_logits)`` → KL(p‖q) per row ``[B]``, finite gradients."""

    def body() -> int:
        cases = kl_logit_cases(201)
        compare(fn, cases, lambda p, q: categorical_kl(p, q), rtol=1e-4, atol=1e-6,
                shape_hint="one KL per row, shape [B]", nan_hint=ZERO_P_HINT,
                wrong=[
                    (lambda p, q: kl_rows(q, p),
                     ("your KL is KL(q‖p), reversed: KL(p‖q) = Σ_a p(a)·(log p(a) − log q(a)) "
                      "weights by the FIRST argument's probabilities")),
                    (_kl_of_raw_logits,
                     ("you used the logits as log-probabilities; normalise them first with "
                      "jax.nn.log_softmax")),
                    (lambda p, q: kl_rows(p, q) / np.asarray(p).shape[-1],
                     "you averaged over the actions; the KL SUMS over actions"),
                ])
        # the gradient must be finite where p has a zero, and right everywhere
        checks = len(cases)
        for argnums, which in ((0, "p_logits"), (1, "q_logits")):
            for case in (cases[0], cases[3]):
                g = grad(lambda a, b: jnp.sum(fn(a, b)), *case.args, argnums=argnums)
                want = np.asarray(jax.grad(lambda a, b: jnp.sum(categorical_kl(a, b)),
                                           argnums=argnums)(*case.args))
                if not np.isfinite(g).all():
                    raise Wrong(f"the value is right but its gradient with respect to {which} "
                                "is nan where p has a zero-probability action: replace BOTH "
                                "log-probabilities by 0 where p = 0 before subtracting them "
                                "(a second jnp.where), so no inf enters the gradient")
                if not close(g, want, 1e-3, 1e-5):
                    raise Wrong(f"the value is right but the gradient with respect to {which} "
                                f"is wrong for {case.label}: do not stop gradients or round "
                                "inside the KL")
                checks += 1
        return checks

    return verdict("categorical KL", fn, body)


def check_sampled_kl(fn: Callable) -> bool:
    """``sampled_kl(key, old_logits, new_logits, n)``: Monte-Carlo KL(old‖new), actions ~ old."""

    def body() -> int:
        rng = np.random.default_rng(202)
        setups = []
        # a peaked π_old and a flatter π_new: KL(old‖new) and KL(new‖old) differ by a factor 2
        for b, a, n in [(32, 3, 1000), (24, 4, 2000)]:
            setups.append((f"{b} states with {a} actions, n = {n}",
                           rng.normal(0.0, 3.0, (b, a)), rng.normal(0.0, 0.5, (b, a)), n))
        old = rng.normal(0.0, 1.5, (32, 3))
        setups.append(("a small step (KL about 0.02), n = 1000", old,
                       old + rng.normal(0.0, 0.25, (32, 3)), 1000))
        old = rng.normal(0.0, 1.0, (16, 3))
        old[:, 0] = -np.inf  # an action π_old never takes: KL(old‖new) is finite
        setups.append(("π_old with a zero-probability action, n = 1000", old,
                       rng.normal(0.0, 1.0, (16, 3)), 1000))
        checks = 0
        for i, (label, old, new, n) in enumerate(setups):
            est = as_array(call(fn, jax.random.key(10 + i), f32(old), f32(new), n))
            if est.shape != ():
                raise Wrong(f"for {label} your function returned {shape_words(est.shape)}; "
                            "return one number, the mean over all samples")
            exact, se = _kl_and_stderr(old, new, n)
            reverse, se_reverse = _kl_and_stderr(new, old, n)
            tol = 6.0 * se + 1e-3 * exact
            tol_reverse = 6.0 * se_reverse + 1e-3 * reverse
            e = float(est)
            if abs(e - exact) <= tol:
                checks += 1
                continue
            if abs(e + exact) <= tol:
                raise Wrong("your estimate has the wrong sign: average log π_old(a|s) − "
                            "log π_new(a|s) over actions drawn from π_old")
            if math.isfinite(reverse) and abs(e - reverse) <= tol_reverse:
                raise Wrong("your estimate matches KL(new‖old): draw the actions from the OLD "
                            "policy and average log π_old − log π_new")
            if math.isfinite(reverse) and abs(e + reverse) <= tol_reverse:
                raise Wrong("you drew the actions from the new policy; TRPO's batch comes from "
                            "π_old, so sample with the old logits")
            if not math.isfinite(e):
                raise Wrong(f"your estimate is {e} for {label}: were actions drawn from π_new? "
                            "π_old never takes an action whose probability is 0")
            raise Wrong(f"for {label} your estimate is {e:.4f}; the exact KL(old‖new) is "
                        f"{exact:.4f} and a sample mean should land within {tol:.4f} of it")
        label, old, new, n = setups[0]
        again = as_array(call(fn, jax.random.key(99), f32(old), f32(new), n))
        first = as_array(call(fn, jax.random.key(10), f32(old), f32(new), n))
        if np.array_equal(again, first):
            raise Wrong("your estimate does not change with the key: draw n actions per state "
                        "with jax.random.categorical(key, ...) and average over them")
        return checks + 1

    return verdict("sampled KL", fn, body)


def _kl_and_stderr(p_logits: np.ndarray, q_logits: np.ndarray, n: int) -> tuple[float, float]:
    """Mean KL(p‖q) over rows and the standard error of its n-sample-per-row k1 estimate."""
    lp, lq = log_softmax(p_logits), log_softmax(q_logits)
    p = np.exp(lp)
    log_r = np.where(p > 0, lp - np.where(p > 0, lq, 0.0), 0.0)
    kl = np.sum(p * log_r, axis=-1)
    var = np.sum(p * np.square(log_r), axis=-1) - kl ** 2
    b = kl.shape[0]
    return float(kl.mean()), float(np.sqrt(max(var.sum(), 0.0) / n) / b)


def check_radius_for_kl(fn: Callable) -> bool:
    """``radius_for_kl(logits_fn, params, direction, target)``: the L2 radius at which
    KL(old‖new) along ``direction`` reaches ``target``."""

    def body() -> int:
        prob = policy_problem()
        rng = np.random.default_rng(203)
        directions = [("a random direction", f32(rng.normal(size=prob.params.shape))),
                      ("the most sensitive direction", prob.sensitive)]
        cases = [Case(f"{name} and target {t}", (prob.logits_fn, prob.params, d, t))
                 for name, d in directions for t in (0.001, 0.01, 0.2)]

        def ref(logits_fn, params, d, t):
            return radius_at_kl(logits_fn, params, d, t)

        def reverse(logits_fn, params, d, t):
            u = d / jnp.linalg.norm(d)
            kl = jax.jit(lambda r: jnp.mean(categorical_kl(logits_fn(params + r * u),
                                                            logits_fn(params))))
            return _bisect(lambda r: float(kl(jnp.float32(r))), t)

        def unnormalised(logits_fn, params, d, t):
            return ref(logits_fn, params, d, t) / float(jnp.linalg.norm(d))

        compare(fn, cases, ref, rtol=3e-3, atol=0.0, shape_hint="one radius",
                wrong=[
                    (reverse,
                     ("your radius is where KL(new‖old) reaches the target; the trust region "
                      "measures KL(old‖new): mean_kl(logits_fn, params, new)")),
                    (unnormalised,
                     ("your radius is in units of ‖direction‖: move by r along the UNIT "
                      "direction (perturb normalises it) so that r is an L2 distance in weight "
                      "space")),
                ])
        return len(cases)

    return verdict("radius for KL", fn, body)


def _bisect(f: Callable[[float], float], target: float) -> float:
    lo, hi = 0.0, 1e-3
    while f(hi) < target and hi < 1e6:
        lo, hi = hi, 2.0 * hi
    for _ in range(50):
        mid = 0.5 * (lo + hi)
        lo, hi = (lo, mid) if f(mid) >= target else (mid, hi)
    return hi
