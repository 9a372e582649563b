"""A batch of experience and the statistics every update reports on it.

:class:`Batch` is what a rollout hands to an update: flat ``[N]`` rows (N = num_envs ·
num_steps), the old policy's distribution parameters kept so that the exact
KL(π_old‖π_new) can be computed, and the GAE advantages and returns.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from course_lib.core.advantages import normalize_advantages
from course_lib.rl.networks import ActorCritic, Dist
from course_lib.core.surrogate import clip_fraction, kl_estimate


class Batch(NamedTuple):
    """One iteration's experience, flattened to ``[N]`` rows.

    Attributes:
      obs: ``[N, O]``. actions: ``[N]`` int32 or ``[N, D]``.
      logp_old: ``[N]`` log π_old(a|s) of the actions taken.
      dist_old: :class:`Dist` of π_old on ``obs`` (logits ``[N, A]`` or mean/log_std ``[N, D]``).
      values_old: ``[N]`` V(s) before the update. advantages, returns: ``[N]`` from GAE.
    """

    obs: jax.Array
    actions: jax.Array
    logp_old: jax.Array
    dist_old: Dist
    values_old: jax.Array
    advantages: jax.Array
    returns: jax.Array


def take(batch: Batch, index: jax.Array) -> Batch:
    """Rows ``index`` of every array of ``batch`` (a minibatch)."""
    return jax.tree.map(lambda x: x[index], batch)


def minibatch_indices(key: jax.Array, n: int, epochs: int, minibatches: int) -> jax.Array:
    """Row indices ``[epochs · minibatches, n // minibatches]``: each epoch a fresh random
    permutation of ``0..n-1`` cut into ``minibatches`` parts."""
    perms = jax.vmap(lambda k: jax.random.permutation(k, n))(jax.random.split(key, epochs))
    return perms.reshape(epochs * minibatches, n // minibatches)


def normalise(adv: jax.Array, mode_on: bool) -> jax.Array:
    """Advantages scaled to zero mean and unit std when ``mode_on`` (finite for one row)."""
    return normalize_advantages(adv) if mode_on else adv


def policy_diagnostics(
    model: ActorCritic, policy_params: jax.Array, batch: Batch, eps: jax.Array
) -> dict[str, jax.Array]:
    """How far the new policy moved from π_old on the batch.

    ``kl`` is the exact mean KL(π_old‖π_new) from the distributions' parameters; ``kl_k1``
    and ``kl_k3`` are the sample estimates from the actions taken (Schulman 2020);
    ``clipfrac`` the fraction of |r − 1| > ε; ``max_ratio`` the largest r; ``entropy``
    the mean entropy of π_new; ``surrogate_gain`` is L(π_new) − L(π_old) = E[(r − 1)·A].
    """
    dist = model.policy(policy_params, batch.obs)
    logp = model.log_prob(dist, batch.actions)
    return {
        "kl": jnp.mean(model.kl(batch.dist_old, dist)),
        "kl_k1": kl_estimate(logp, batch.logp_old, "k1"),
        "kl_k3": kl_estimate(logp, batch.logp_old, "k3"),
        "clipfrac": clip_fraction(logp, batch.logp_old, eps),
        "max_ratio": jnp.max(jnp.exp(logp - batch.logp_old)),
        "entropy": jnp.mean(model.entropy(dist)),
        "surrogate_gain": jnp.mean((jnp.exp(logp - batch.logp_old) - 1.0) * batch.advantages),
    }


def explained_variance(values: jax.Array, returns: jax.Array) -> jax.Array:
    """1 − Var[R − V] / Var[R]: 1 is a perfect critic, 0 no better than a constant."""
    var_r = jnp.var(returns)
    return jnp.where(var_r > 0, 1.0 - jnp.var(returns - values) / jnp.where(var_r > 0, var_r, 1.0), 0.0)
