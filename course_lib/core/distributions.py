"""Log-probability, entropy and KL divergence of the two policy families used in the course.

* **Categorical** policies (discrete actions) are given by unnormalised ``logits`` ``[B, A]``:
  π(a|s) = softmax(logits)[a]. Everything is computed from ``jax.nn.log_softmax`` and never as
  the log of a probability, so an action with probability 0 (logit ``-inf``) is handled exactly.
* **Diagonal Gaussian** policies (continuous actions) are given by ``mean`` ``[B, D]`` and
  ``log_std`` (``[D]``, shared by the batch, or ``[B, D]``):
  π(a|s) = Π_d N(a_d; mean_d, exp(log_std_d)²).

The KL divergence KL(p‖q) = Σ_a p(a) (log p(a) − log q(a)) is what a trust region measures:
TRPO (Schulman et al., 2015, "Trust Region Policy Optimization", eq. 12) constrains the mean
KL(π_old‖π_new) over the visited states. Every function here is per row: one number per state.

All functions are pure, work under ``jax.jit`` and ``jax.vmap``, check the ranks and shapes of
their arguments at trace time (``ValueError``/``TypeError`` naming the argument) and never rely
on implicit rank promotion.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from course_lib._validate import check_leading, check_rank, check_same_shape

__all__ = [
    "categorical_entropy",
    "categorical_kl",
    "categorical_log_prob",
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_log_prob",
]

_LOG_2PI = math.log(2.0 * math.pi)


# --------------------------------------------------------------------------- categorical


def categorical_log_prob(logits: jax.Array, actions: jax.Array) -> jax.Array:
    """log π(a|s) of a categorical policy: ``log_softmax(logits)[b, actions[b]]``.

    Args:
      logits: ``[B, A]`` unnormalised log-probabilities; ``-inf`` marks an impossible action.
      actions: ``[B]`` integer actions in ``[0, A)``.

    Returns:
      ``[B]`` log-probabilities. An action outside ``[0, A)`` (negative ones included) gives
      ``nan`` rather than silently reading another action's probability; ``-inf`` for an action
      whose logit is ``-inf``.

    >>> import jax.numpy as jnp
    >>> logits = jnp.log(jnp.array([[0.2, 0.8]]))
    >>> float(jnp.exp(categorical_log_prob(logits, jnp.array([1]))[0]))  # doctest: +ELLIPSIS
    0.8...
    """
    logits = jnp.asarray(logits)
    actions = jnp.asarray(actions)
    check_rank(logits, 2, "logits")
    check_rank(actions, 1, "actions")
    if not jnp.issubdtype(actions.dtype, jnp.integer):
        raise TypeError(f"actions must be an integer array, got dtype {actions.dtype}")
    check_leading(actions, logits.shape[0], "actions", "logits")
    log_pi = jax.nn.log_softmax(logits, axis=-1)
    picked = jnp.take_along_axis(
        log_pi, actions[:, None], axis=-1, mode="fill", wrap_negative_indices=False
    )
    return picked[:, 0]


def categorical_entropy(logits: jax.Array) -> jax.Array:
    """Entropy H(π) = −Σ_a π(a) log π(a) of a categorical policy, per row.

    An action with probability 0 (logit ``-inf``) contributes exactly 0 (the limit of p log p),
    and the gradient with respect to ``logits`` stays finite there.

    Args:
      logits: ``[B, A]`` unnormalised log-probabilities.

    Returns:
      ``[B]`` entropies in nats, between 0 and log A.
    """
    logits = jnp.asarray(logits)
    check_rank(logits, 2, "logits")
    log_pi = jax.nn.log_softmax(logits, axis=-1)
    pi = jnp.exp(log_pi)
    # log π = -inf where π = 0; replace it by 0 so that 0·log π is 0 and its gradient is finite.
    safe_log_pi = jnp.where(pi > 0, log_pi, 0.0)
    return -jnp.sum(pi * safe_log_pi, axis=-1)


def categorical_kl(p_logits: jax.Array, q_logits: jax.Array) -> jax.Array:
    """KL(p‖q) = Σ_a p(a) (log p(a) − log q(a)) between two categorical policies, per row.

    Computed from ``log_softmax`` of the logits, never as ``log`` of a probability (the naive
    ``(p * (p.log() - q.log())).sum()`` gives ``0 · (−inf) = nan`` as soon as p(a) = 0).

    Zero-probability actions:

    * p(a) = 0 (``p_logits`` is ``-inf`` at a): the term is exactly 0, whatever q(a) is, and the
      gradient with respect to both ``p_logits`` and ``q_logits`` is finite. Both log-probs are
      replaced by 0 where p(a) = 0 *before* they are combined (the "double where"), so the
      masked-out branch never produces ``inf``/``nan`` that would leak into the gradient.
    * q(a) = 0 where p(a) > 0: KL(p‖q) is +inf, which is the correct value (q cannot explain
      an action p takes). The value is ``inf``; its gradient with respect to ``p_logits`` is
      not finite.

    Args:
      p_logits: ``[B, A]`` logits of p (the old policy in a trust region, KL(π_old‖π_new)).
      q_logits: ``[B, A]`` logits of q.

    Returns:
      ``[B]`` KL divergences in nats, >= 0 (up to rounding).

    >>> import jax.numpy as jnp
    >>> p = jnp.array([[0.0, -jnp.inf]])   # p = (1, 0)
    >>> q = jnp.array([[0.0, 0.0]])        # q = (0.5, 0.5)
    >>> round(float(categorical_kl(p, q)[0]), 4)  # log 2
    0.6931
    """
    p_logits = jnp.asarray(p_logits)
    q_logits = jnp.asarray(q_logits)
    check_rank(p_logits, 2, "p_logits")
    check_rank(q_logits, 2, "q_logits")
    check_same_shape(p_logits, q_logits, "p_logits", "q_logits")
    log_p = jax.nn.log_softmax(p_logits, axis=-1)
    log_q = jax.nn.log_softmax(q_logits, axis=-1)
    p = jnp.exp(log_p)
    on_support = p > 0
    safe_log_p = jnp.where(on_support, log_p, 0.0)
    safe_log_q = jnp.where(on_support, log_q, 0.0)
    return jnp.sum(p * (safe_log_p - safe_log_q), axis=-1)


# --------------------------------------------------------------------------- diagonal Gaussian


def _rows_of_log_std(log_std: jax.Array, mean: jax.Array, name: str, mean_name: str) -> jax.Array:
    """``log_std`` as ``[B, D]``: a ``[D]`` vector is broadcast explicitly over the batch."""
    log_std = jnp.asarray(log_std)
    if log_std.ndim == 1:
        if log_std.shape[0] != mean.shape[1]:
            raise ValueError(
                f"{name} of shape {log_std.shape} must have the action size {mean.shape[1]} "
                f"of {mean_name} (shape {mean.shape})"
            )
        return jnp.broadcast_to(log_std[None, :], mean.shape)
    if log_std.ndim == 2:
        check_same_shape(log_std, mean, name, mean_name)
        return log_std
    raise ValueError(f"{name} must have rank 1 ([D]) or 2 ([B, D]), got shape {log_std.shape}")


def gaussian_log_prob(mean: jax.Array, log_std: jax.Array, actions: jax.Array) -> jax.Array:
    """log π(a|s) of a diagonal Gaussian policy, summed over the action dimensions.

    log π(a) = Σ_d [ −½ ((a_d − μ_d) / σ_d)² − log σ_d − ½ log 2π ],  σ_d = exp(log_std_d).

    Args:
      mean: ``[B, D]`` means μ.
      log_std: ``[D]`` (shared by every state) or ``[B, D]`` log standard deviations.
      actions: ``[B, D]`` actions.

    Returns:
      ``[B]`` log-densities.
    """
    mean = jnp.asarray(mean)
    actions = jnp.asarray(actions)
    check_rank(mean, 2, "mean")
    check_rank(actions, 2, "actions")
    check_same_shape(actions, mean, "actions", "mean")
    log_std = _rows_of_log_std(log_std, mean, "log_std", "mean")
    z = (actions - mean) * jnp.exp(-log_std)
    return jnp.sum(-0.5 * jnp.square(z) - log_std - 0.5 * _LOG_2PI, axis=-1)


def gaussian_entropy(mean: jax.Array, log_std: jax.Array) -> jax.Array:
    """Entropy of a diagonal Gaussian, per row: H = Σ_d [ log σ_d + ½ (1 + log 2π) ].

    The entropy does not depend on the mean; ``mean`` fixes the batch shape ``[B, D]``.

    Args:
      mean: ``[B, D]`` means.
      log_std: ``[D]`` or ``[B, D]`` log standard deviations.

    Returns:
      ``[B]`` entropies in nats (negative when σ is small: it is a differential entropy).
    """
    mean = jnp.asarray(mean)
    check_rank(mean, 2, "mean")
    log_std = _rows_of_log_std(log_std, mean, "log_std", "mean")
    return jnp.sum(log_std + 0.5 * (1.0 + _LOG_2PI), axis=-1)


def gaussian_kl(
    p_mean: jax.Array, p_log_std: jax.Array, q_mean: jax.Array, q_log_std: jax.Array
) -> jax.Array:
    """KL(p‖q) between two diagonal Gaussians, per row, in closed form.

    KL = Σ_d [ log σ_q − log σ_p + (σ_p² + (μ_p − μ_q)²) / (2 σ_q²) − ½ ],
    with the variance ratio computed as exp(2 (log σ_p − log σ_q)) so that nothing is divided
    by a tiny σ_q² before it is needed.

    Args:
      p_mean: ``[B, D]`` means of p (the old policy in a trust region).
      p_log_std: ``[D]`` or ``[B, D]`` log standard deviations of p.
      q_mean: ``[B, D]`` means of q.
      q_log_std: ``[D]`` or ``[B, D]`` log standard deviations of q.

    Returns:
      ``[B]`` KL divergences in nats, >= 0 (up to rounding).
    """
    p_mean = jnp.asarray(p_mean)
    q_mean = jnp.asarray(q_mean)
    check_rank(p_mean, 2, "p_mean")
    check_rank(q_mean, 2, "q_mean")
    check_same_shape(p_mean, q_mean, "p_mean", "q_mean")
    p_log_std = _rows_of_log_std(p_log_std, p_mean, "p_log_std", "p_mean")
    q_log_std = _rows_of_log_std(q_log_std, q_mean, "q_log_std", "q_mean")
    log_ratio = p_log_std - q_log_std
    scaled_gap = (p_mean - q_mean) * jnp.exp(-q_log_std)
    per_dim = -log_ratio + 0.5 * (jnp.exp(2.0 * log_ratio) + jnp.square(scaled_gap)) - 0.5
    return jnp.sum(per_dim, axis=-1)
