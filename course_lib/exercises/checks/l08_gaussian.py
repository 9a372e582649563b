"""Lesson 08's capstone: the learner's diagonal-Gaussian policy, checked on hidden cases, trained.

The learner writes the three functions a continuous-action policy needs, every argument
``[B, D]`` (means, log standard deviations, actions), each result ``[B]``:

* ``log_prob(mean, log_std, actions)`` = Σ_d [−½ ((a_d − μ_d)/σ_d)² − log σ_d − ½ log 2π];
* ``entropy(mean, log_std)`` = Σ_d [log σ_d + ½ (1 + log 2π)];
* ``kl(p_mean, p_log_std, q_mean, q_log_std)`` = Σ_d [log σ_q − log σ_p
  + (σ_p² + (μ_p − μ_q)²) / (2 σ_q²) − ½].

The check

1. compares them with :mod:`course_lib.core.distributions` on hidden cases, values and
   gradients, including standard deviations of e^−50 ≈ 2·10⁻²², whose square underflows to 0
   in float32: a formula that forms σ² (or log σ² from it) returns nan or ±inf there. The
   registered wrong answers (constant left out or added once, σ² in place of σ, KL reversed,
   the −½ left out, ...) fail with a line naming the mistake;
2. plugs them into ``course_lib.train`` (``TrainConfig(env="Pendulum-v1", gaussian_fns=...)``)
   on a hidden seed: the greedy PPO policy must swing the pendulum up and hold it (mean return
   ≥ −400 over 10 episodes in gymnasium, from about −1200 untrained).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.core import distributions as D
from course_lib.exercises.checks.verdict import (
    Case,
    Wrong,
    compare,
    describe_value,
    f32,
    grad,
    trained_greedy,
    verdict,
)

__all__ = ["GAUSSIAN_SEED", "check_gaussian_policy"]

GAUSSIAN_SEED = 2
"""The training seed of the check (not printed in the learner's notebook)."""
SWUNG_UP = -400.0
TRAIN_ITERATIONS = 50
_LOG_2PI = math.log(2.0 * math.pi)
_TINY = -50.0
"""A log standard deviation whose σ² = e^−100 underflows to 0 in float32."""
_SMALL_SIGMA = (
    "σ² = exp(2·log_std) underflows to 0 in float32 there: work with log_std and "
    "(a − μ)·exp(−log_std), and form σ_p²/σ_q² as exp(2·(log σ_p − log σ_q)), never σ² alone")


def _draw(seed: int, batch: int, dim: int, log_std_range: tuple[float, float]):
    rng = np.random.default_rng(seed)
    mean = rng.normal(0.0, 1.0, (batch, dim))
    log_std = rng.uniform(*log_std_range, (batch, dim))
    return rng, mean, log_std


def _log_prob_cases() -> list[Case]:
    cases = []
    for seed, (batch, dim) in enumerate([(5, 1), (4, 3), (6, 2)]):
        rng, mean, log_std = _draw(seed, batch, dim, (-1.5, 0.7))
        actions = mean + np.exp(log_std) * rng.normal(0.0, 1.5, (batch, dim))
        cases.append(Case(f"a batch of {batch} states with {dim} action dimension"
                          f"{'s' if dim > 1 else ''}", (f32(mean), f32(log_std), f32(actions))))
    rng = np.random.default_rng(7)
    log_std = np.full((4, 2), _TINY)
    actions = np.exp(log_std) * rng.normal(0.0, 1.0, (4, 2))
    cases.append(Case("a batch with σ = e^−50", (f32(np.zeros((4, 2))), f32(log_std),
                                                  f32(actions))))
    return cases


def _entropy_cases() -> list[Case]:
    cases = []
    for seed, (batch, dim) in enumerate([(5, 1), (3, 4)]):
        _, mean, log_std = _draw(10 + seed, batch, dim, (-2.0, 1.0))
        cases.append(Case(f"a batch of {batch} states with {dim} action dimension"
                          f"{'s' if dim > 1 else ''}", (f32(mean), f32(log_std))))
    cases.append(Case("a batch with σ = e^−50", (f32(np.zeros((3, 2))),
                                                  f32(np.full((3, 2), _TINY)))))
    return cases


def _kl_cases() -> list[Case]:
    cases = []
    for seed, (batch, dim) in enumerate([(5, 1), (4, 3)]):
        rng, p_mean, p_log_std = _draw(20 + seed, batch, dim, (-1.0, 0.5))
        q_mean = p_mean + rng.normal(0.0, 0.5, (batch, dim))
        q_log_std = p_log_std + rng.normal(0.0, 0.4, (batch, dim))
        cases.append(Case(f"a batch of {batch} pairs with {dim} action dimension"
                          f"{'s' if dim > 1 else ''}",
                          tuple(f32(x) for x in (p_mean, p_log_std, q_mean, q_log_std))))
    rng = np.random.default_rng(29)
    p_log_std = np.full((4, 2), _TINY)
    q_log_std = p_log_std + rng.uniform(-1.0, 1.0, (4, 2))
    gap = np.exp(q_log_std) * rng.normal(0.0, 1.0, (4, 2))
    cases.append(Case("a batch of pairs with σ around e^−50",
                      tuple(f32(x) for x in (np.zeros((4, 2)), p_log_std, gap, q_log_std))))
    return cases


# --------------------------------------------------------------------------- wrong answers
# Each is written the way a learner plausibly writes it, so that its outputs (nan included)
# are what that learner's function returns on the hidden cases.


def _lp_terms(mean, log_std, actions, *, const=True, log_sigma=True, power=1.0):
    z = (actions - mean) * jnp.exp(-power * log_std)
    terms = -0.5 * z**2 - (log_std if log_sigma else 0.0) - (0.5 * _LOG_2PI if const else 0.0)
    return jnp.sum(terms, axis=-1)


def _lp_through_variance(mean, log_std, actions):
    var = jnp.exp(2.0 * log_std)
    return jnp.sum(-0.5 * (actions - mean) ** 2 / var - 0.5 * jnp.log(2.0 * jnp.pi * var), -1)


WRONG_LOG_PROBS = [
    (functools.partial(_lp_terms, const=False),
     "log_prob: the normalising constant −½·log 2π is missing (one per action dimension)"),
    (lambda m, s, a: _lp_terms(m, s, a, const=False) - 0.5 * _LOG_2PI,
     ("log_prob: −½·log 2π is added once per state; it belongs to every action dimension "
     "(it is inside the sum over d)")),
    (functools.partial(_lp_terms, log_sigma=False),
     ("log_prob: the −log σ_d term is missing; without it the density is not normalised, and "
     "the gradient never pushes σ down")),
    (functools.partial(_lp_terms, power=2.0),
     "log_prob: you divided (a − μ) by σ², the variance; the standardised action is (a − μ)/σ"),
]

WRONG_ENTROPIES = [
    (lambda m, s: jnp.sum(s, -1),
     "entropy: the constant ½·(1 + log 2π) per action dimension is missing"),
    (lambda m, s: jnp.mean(s + 0.5 * (1.0 + _LOG_2PI), -1),
     ("entropy: you averaged over the action dimensions; the entropy of independent dimensions "
     "is their SUM")),
    (lambda m, s: jnp.sum(2.0 * s + 0.5 * (1.0 + _LOG_2PI), -1),
     "entropy: you used log σ² where the formula has log σ (H = Σ_d log σ_d + ½(1 + log 2π))"),
]


def _kl_terms(pm, ps, qm, qs, *, half=True, log_ratio=True, flip_variance=False):
    r = ps - qs
    var_ratio = jnp.exp(-2.0 * r) if flip_variance else jnp.exp(2.0 * r)
    per = 0.5 * (var_ratio + ((pm - qm) * jnp.exp(-qs)) ** 2) - (r if log_ratio else 0.0)
    return jnp.sum(per - (0.5 if half else 0.0), -1)


WRONG_KLS = [
    (lambda pm, ps, qm, qs: D.gaussian_kl(qm, qs, pm, ps),
     ("kl: you computed KL(q‖p), the KL the other way round; the trust region measures "
     "KL(π_old‖π_new) = KL(p‖q), with the mean gap divided by q's σ")),
    (functools.partial(_kl_terms, half=False),
     "kl: the −½ per action dimension is missing (KL(p‖p) must be 0)"),
    (functools.partial(_kl_terms, log_ratio=False),
     "kl: the log σ_q − log σ_p term is missing"),
    (functools.partial(_kl_terms, flip_variance=True),
     "kl: the variance ratio is upside down: it is σ_p²/σ_q², the old variance over the new"),
]


# --------------------------------------------------------------------------- the check


def _gradients(fn: Callable, cases: list[Case], ref: Callable, what: str) -> None:
    """The gradient of Σ_rows fn with respect to each argument agrees with the library's
    (PPO and TRPO differentiate all three functions)."""
    for case in cases:
        if float(np.min(np.asarray(case.args[1]))) < -10:
            continue  # the values are checked there; gradients at σ ≈ 1e−22 are ~1e22
        for i in range(len(case.args)):
            got = grad(lambda *a: jnp.sum(fn(*a)), *case.args, argnums=i)
            want = np.asarray(jax.grad(lambda *a: jnp.sum(ref(*a)), argnums=i)(*case.args))
            if got.shape != want.shape or not np.allclose(got, want, rtol=1e-3, atol=1e-4):
                raise Wrong(f"{what}: the values are right but the gradient with respect to "
                            f"argument {i + 1} is not, for {case.label}: is something under "
                            "jax.lax.stop_gradient, or computed with NumPy?")


def _check_functions(log_prob: Callable, entropy: Callable, kl: Callable) -> int:
    parts = [
        ("log_prob", log_prob, _log_prob_cases(), D.gaussian_log_prob, WRONG_LOG_PROBS),
        ("entropy", entropy, _entropy_cases(), D.gaussian_entropy, WRONG_ENTROPIES),
        ("kl", kl, _kl_cases(), D.gaussian_kl, WRONG_KLS),
    ]
    for what, fn, cases, ref, wrong in parts:
        if not callable(fn):
            raise Wrong(f"{what}: expected your function, got {describe_value(fn)}")
        try:
            compare(fn, cases, ref, rtol=1e-4, atol=1e-4, wrong=wrong,
                    shape_hint="one number per state: sum over the action dimensions",
                    nan_hint=_SMALL_SIGMA)
        except Wrong as wrong_answer:
            message = str(wrong_answer)
            raise Wrong(message if message.startswith(f"{what}:") else f"{what}: {message}")
        _gradients(fn, cases, ref, what)
    return sum(len(p[2]) for p in parts)


def check_gaussian_policy(log_prob: Callable, entropy: Callable, kl: Callable,
                          train: bool = True) -> bool:
    """Lesson 08's capstone: ``log_prob(mean, log_std, actions)``, ``entropy(mean, log_std)``
    and ``kl(p_mean, p_log_std, q_mean, q_log_std)`` of a diagonal Gaussian (arguments
    ``[B, D]``, results ``[B]``), checked against the library on hidden cases (tiny σ
    included), then (``train``) a PPO agent whose policy uses them must swing up Pendulum-v1
    (greedy, gymnasium) on a hidden seed."""

    def body() -> int:
        n = _check_functions(log_prob, entropy, kl)
        if not train:
            return n
        from course_lib.rl.config import TrainConfig

        config = TrainConfig.for_env("Pendulum-v1", algo="ppo",
                                     gaussian_fns=(log_prob, entropy, kl))
        trained_greedy(config.replace(total_steps=config.batch_size * TRAIN_ITERATIONS),
                       GAUSSIAN_SEED, threshold=SWUNG_UP, cases=f"{n} hidden cases",
                       agent="PPO agent trained with your Gaussian policy")
        return n + 1

    return verdict("Gaussian policy", log_prob, body)
