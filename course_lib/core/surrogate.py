"""The probability ratio and the surrogate objectives of TRPO and PPO, and sample KL estimators.

Samples (s_t, a_t) are collected with the old policy π_old and scored by a new policy π_θ. The
probability ratio r_t(θ) = π_θ(a_t|s_t) / π_old(a_t|s_t) turns the old samples into an estimate
of how good π_θ is:

* **surrogate** L(θ) = E_t[r_t A_t] (Kakade & Langford, 2002; Schulman et al., 2015, "Trust
  Region Policy Optimization", eq. 14). TRPO maximises it subject to mean KL(π_old‖π_θ) <= δ.
* **clipped surrogate** L^CLIP(θ) = E_t[min(r_t A_t, clip(r_t, 1−ε, 1+ε) A_t)] (Schulman et al.,
  2017, "Proximal Policy Optimization Algorithms", eq. 7): once r_t has moved past 1±ε in the
  direction that A_t rewards, the sample stops contributing gradient.
* **KL-penalty objective** E_t[r_t A_t] − β E_t[KL] (PPO paper, eq. 8).
* **sample KL estimators** k1, k2, k3 of KL(π_old‖π_θ) from the log-probs alone
  (J. Schulman, "Approximating KL Divergence", 2020, http://joschu.net/blog/kl-approx.html).

Every function takes per-sample log-probabilities ``[B]`` of the *taken* actions (from
``course_lib.core.distributions.categorical_log_prob`` or ``gaussian_log_prob``): ``logp_new`` under
π_θ, ``logp_old`` under π_old. The old policy is fixed data, so ``surrogate``,
``clipped_surrogate``, ``kl_penalty_objective`` and ``kl_estimate`` apply
``jax.lax.stop_gradient`` to ``logp_old``: their gradient flows only through ``logp_new``.
``ratio`` itself is the plain formula and differentiates through both arguments.

Objectives are to be *maximised* (return the negative to use them as an optax loss). All
functions are pure, work under ``jax.jit`` and ``jax.vmap`` (a traced ``eps``/``beta`` skips its
value check) and check their arguments at trace time.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from course_lib._validate import check_choice, check_non_negative, check_rank, check_same_shape

__all__ = [
    "KL_ESTIMATORS",
    "clip_fraction",
    "clipped_surrogate",
    "kl_estimate",
    "kl_penalty_objective",
    "ratio",
    "surrogate",
]

KL_ESTIMATORS = ("k1", "k2", "k3")


def _check_log_probs(logp_new: jax.Array, logp_old: jax.Array) -> None:
    check_rank(logp_new, 1, "logp_new")
    check_rank(logp_old, 1, "logp_old")
    check_same_shape(logp_new, logp_old, "logp_new", "logp_old")


def _check_per_sample(x: jax.Array, logp_new: jax.Array, name: str) -> None:
    check_rank(x, 1, name)
    check_same_shape(x, logp_new, name, "logp_new")


def ratio(logp_new: jax.Array, logp_old: jax.Array) -> jax.Array:
    """Probability ratio r = π_new(a|s) / π_old(a|s) = exp(logp_new − logp_old), per sample.

    Computed from log-probabilities, so a tiny π_old does not divide by a rounded zero.
    No ``stop_gradient`` is applied here: pass ``logp_old`` as data (computed once, before the
    update) or wrap it in ``jax.lax.stop_gradient`` yourself. The objectives below do the latter.

    Args:
      logp_new: ``[B]`` log π_new(a_t|s_t).
      logp_old: ``[B]`` log π_old(a_t|s_t).

    Returns:
      ``[B]`` ratios, > 0.

    >>> import jax.numpy as jnp
    >>> round(float(ratio(jnp.log(jnp.array([0.8])), jnp.log(jnp.array([0.2])))[0]), 4)
    4.0
    """
    logp_new = jnp.asarray(logp_new)
    logp_old = jnp.asarray(logp_old)
    _check_log_probs(logp_new, logp_old)
    return jnp.exp(logp_new - logp_old)


def surrogate(logp_new: jax.Array, logp_old: jax.Array, advantages: jax.Array) -> jax.Array:
    """Surrogate advantage L(θ) = mean_t[r_t A_t] (TRPO, Schulman et al. 2015, eq. 14).

    Its gradient at θ = θ_old is the policy gradient; away from θ_old it is a local model
    that large ratios make unreliable (r = 0.8 / 0.2 = 4 with A = +5 contributes 20).
    ``logp_old`` is put under ``jax.lax.stop_gradient``.

    Args:
      logp_new: ``[B]`` log π_θ(a_t|s_t).
      logp_old: ``[B]`` log π_old(a_t|s_t).
      advantages: ``[B]`` advantage estimates A_t.

    Returns:
      A scalar, to be maximised.
    """
    logp_new = jnp.asarray(logp_new)
    advantages = jnp.asarray(advantages)
    r = ratio(logp_new, jax.lax.stop_gradient(logp_old))
    _check_per_sample(advantages, logp_new, "advantages")
    return jnp.mean(r * advantages)


def clipped_surrogate(
    logp_new: jax.Array, logp_old: jax.Array, advantages: jax.Array, eps: float | jax.Array
) -> jax.Array:
    """PPO's clipped surrogate mean_t[min(r_t A_t, clip(r_t, 1−ε, 1+ε) A_t)] (PPO paper, eq. 7).

    The minimum makes it a pessimistic bound on the unclipped surrogate:

    * A > 0: the term is flat (zero gradient) once r > 1+ε; below 1−ε it still pulls r up.
    * A < 0: the term is flat once r < 1−ε; for r > 1+ε it keeps its full gradient, so a move
      that made a bad action more likely is always corrected.

    ``logp_old`` is put under ``jax.lax.stop_gradient``.

    Args:
      logp_new: ``[B]`` log π_θ(a_t|s_t).
      logp_old: ``[B]`` log π_old(a_t|s_t).
      advantages: ``[B]`` advantage estimates A_t.
      eps: clip range ε >= 0 (0.2 in the paper). A concrete negative value raises
        ``ValueError``; a traced value is not checked.

    Returns:
      A scalar, to be maximised.
    """
    logp_new = jnp.asarray(logp_new)
    advantages = jnp.asarray(advantages)
    check_non_negative(eps, "eps")
    r = ratio(logp_new, jax.lax.stop_gradient(logp_old))
    _check_per_sample(advantages, logp_new, "advantages")
    clipped_r = jnp.clip(r, 1.0 - eps, 1.0 + eps)
    return jnp.mean(jnp.minimum(r * advantages, clipped_r * advantages))


def kl_penalty_objective(
    logp_new: jax.Array,
    logp_old: jax.Array,
    advantages: jax.Array,
    kl: jax.Array,
    beta: float | jax.Array,
) -> jax.Array:
    """PPO's KL-penalised surrogate mean_t[r_t A_t] − β · mean_t[KL_t] (PPO paper, eq. 8).

    ``kl`` is the exact per-state KL(π_old‖π_θ)(s_t), e.g. ``categorical_kl(old_logits,
    new_logits)``, computed by the caller so that its gradient flows into θ. The adaptive rule
    that updates β between iterations is not part of this function. ``logp_old`` is put under
    ``jax.lax.stop_gradient``.

    Args:
      logp_new: ``[B]`` log π_θ(a_t|s_t).
      logp_old: ``[B]`` log π_old(a_t|s_t).
      advantages: ``[B]`` advantage estimates A_t.
      kl: ``[B]`` per-state KL(π_old‖π_θ).
      beta: penalty coefficient β >= 0 (checked when concrete).

    Returns:
      A scalar, to be maximised.
    """
    logp_new = jnp.asarray(logp_new)
    kl = jnp.asarray(kl)
    check_non_negative(beta, "beta")
    _check_per_sample(kl, logp_new, "kl")
    return surrogate(logp_new, logp_old, advantages) - beta * jnp.mean(kl)


def kl_estimate(logp_new: jax.Array, logp_old: jax.Array, kind: str) -> jax.Array:
    """Sample estimate of KL(π_old‖π_new) from actions drawn from the OLD policy.

    With log r = logp_new − logp_old (r = π_new / π_old) and a_t ~ π_old:

    * ``"k1"`` = mean(−log r): unbiased, high variance, single samples can be negative.
    * ``"k2"`` = mean(½ (log r)²): low variance, never negative, biased: its expectation is
      an f-divergence that agrees with the KL only to second order in the policy change.
    * ``"k3"`` = mean((r − 1) − log r): unbiased (E_old[r] = 1) and never negative, since
      x − 1 >= log x. Computed as ``expm1(log r) − log r`` to keep precision when r ≈ 1.

    Reference: J. Schulman, "Approximating KL Divergence" (2020). The actions must be samples
    of π_old: the estimators are expectations under π_old.
    ``logp_old`` is put under ``jax.lax.stop_gradient``.

    Args:
      logp_new: ``[B]`` log π_new(a_t|s_t).
      logp_old: ``[B]`` log π_old(a_t|s_t).
      kind: one of ``"k1"``, ``"k2"``, ``"k3"`` (a Python string, static under ``jit``).

    Returns:
      A scalar estimate of the mean KL over the batch.
    """
    check_choice(kind, KL_ESTIMATORS, "kind")
    logp_new = jnp.asarray(logp_new)
    logp_old = jnp.asarray(logp_old)
    _check_log_probs(logp_new, logp_old)
    log_r = logp_new - jax.lax.stop_gradient(logp_old)
    if kind == "k1":
        per_sample = -log_r
    elif kind == "k2":
        per_sample = 0.5 * jnp.square(log_r)
    else:
        per_sample = jnp.expm1(log_r) - log_r
    return jnp.mean(per_sample)


def clip_fraction(logp_new: jax.Array, logp_old: jax.Array, eps: float | jax.Array) -> jax.Array:
    """Fraction of samples whose ratio lies outside the clip range: mean(|r − 1| > ε).

    A PPO diagnostic (CleanRL logs it as ``clipfrac``): how many samples the clip has
    switched off. It has no useful gradient.

    Args:
      logp_new: ``[B]`` log π_new(a_t|s_t).
      logp_old: ``[B]`` log π_old(a_t|s_t).
      eps: clip range ε >= 0 (checked when concrete).

    Returns:
      A scalar in [0, 1], in the dtype of the log-probs.
    """
    check_non_negative(eps, "eps")
    r = ratio(logp_new, logp_old)
    return jnp.mean((jnp.abs(r - 1.0) > eps).astype(r.dtype))
