"""Generalized Advantage Estimation and advantage normalisation.

GAE (Schulman, Moritz, Levine, Jordan & Abbeel 2016, "High-Dimensional Continuous
Control Using Generalized Advantage Estimation", eq. 16) estimates the advantage of each
step of a rollout as an exponentially weighted sum of one-step TD errors:

    u_t = R_t + γ·V(s_{t+1}) − V(s_t)
    Â_t = Σ_{l≥0} (γλ)^l u_{t+l} = u_t + γλ·Â_{t+1}

λ = 0 gives the one-step TD error (low variance, biased by V); λ = 1 gives the Monte
Carlo return minus V(s_t) (unbiased, high variance). The recursion runs backwards in
time with ``jax.lax.scan(reverse=True)``.

Episode boundaries inside a rollout need two different masks, because gymnasium's
episodes end in two ways:

- *terminated*: the MDP reached a terminal state, whose value is 0, so the TD error
  must not bootstrap: u_t = R_t − V(s_t).
- *truncated*: a time limit stopped the episode; the next state s_{t+1} still has a
  value, so u_t = R_t + γ·V(s_{t+1}) − V(s_t) with s_{t+1} the real final observation
  (not the reset observation that follows it in the rollout).

Either way, the next step belongs to a new episode, so Â_t must not include Â_{t+1}.
``gae_from_next_values`` takes both masks and the value of every step's real next state;
``gae`` is the common special case in which every episode end is a termination.

>>> import jax.numpy as jnp
>>> adv, ret = gae(jnp.ones(3), jnp.zeros(3), jnp.zeros(3), jnp.float32(0.0), 0.5, 1.0)
>>> [round(float(a), 3) for a in adv]
[1.75, 1.5, 1.0]
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from course_lib._validate import check_positive, check_same_shape, concrete_float

__all__ = ["gae", "gae_from_next_values", "normalize_advantages"]


def _check_unit_interval(value: Any, name: str) -> None:
    v = concrete_float(value)
    if v is not None and not (0.0 <= v <= 1.0):
        raise ValueError(f"{name} must be in [0, 1], got {v}")


def _check_time_major(rewards: Any) -> None:
    if jnp.ndim(rewards) not in (1, 2):
        raise ValueError(
            f"rewards must have shape [T] or [T, N] (time first), got shape {jnp.shape(rewards)}"
        )
    if jnp.shape(rewards)[0] == 0:
        raise ValueError("rewards must hold at least one time step, got shape (0, ...)")


def gae_from_next_values(
    rewards: jax.Array,
    values: jax.Array,
    next_values: jax.Array,
    terminations: jax.Array,
    episode_ends: jax.Array,
    gamma: float | jax.Array,
    lam: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """GAE with explicit next-state values, handling termination and truncation.

        u_t = R_t + γ·(1 − terminations_t)·next_values_t − values_t
        Â_t = u_t + γλ·(1 − episode_ends_t)·Â_{t+1},      Â_T = 0
        returns_t = Â_t + values_t           (the λ-return, the value target)

    Args:
      rewards: ``[T]`` or ``[T, N]`` (N parallel environments), time first.
      values: V(s_t), same shape as ``rewards``.
      next_values: V of the real next state of each step (for a truncated step, the
        value of its final observation, not of the reset observation), same shape.
      terminations: 1 where step t reached a terminal state (no bootstrap), same shape;
        bool or float.
      episode_ends: 1 where the episode ended at step t for any reason (terminated or
        truncated), which cuts the recursion; same shape; bool or float.
      gamma: discount γ in [0, 1].
      lam: GAE λ in [0, 1].

    Returns:
      ``(advantages, returns)``, both of the shape of ``rewards``.

    Raises:
      ValueError: a shape is wrong (the message names the argument) or a concrete
        ``gamma``/``lam`` is outside [0, 1].
    """
    _check_time_major(rewards)
    for arg, name in [
        (values, "values"),
        (next_values, "next_values"),
        (terminations, "terminations"),
        (episode_ends, "episode_ends"),
    ]:
        check_same_shape(arg, rewards, name, "rewards")
    _check_unit_interval(gamma, "gamma")
    _check_unit_interval(lam, "lam")

    dtype = jnp.result_type(rewards, values, next_values, float)
    rewards, values, next_values = (jnp.asarray(x, dtype) for x in (rewards, values, next_values))
    not_terminated = 1.0 - jnp.asarray(terminations, dtype)
    not_ended = 1.0 - jnp.asarray(episode_ends, dtype)

    deltas = rewards + gamma * not_terminated * next_values - values
    decays = gamma * lam * not_ended

    def backward(next_advantage, inputs):
        delta, decay = inputs
        advantage = delta + decay * next_advantage
        return advantage, advantage

    _, advantages = jax.lax.scan(
        backward, jnp.zeros_like(rewards[0]), (deltas, decays), reverse=True
    )
    return advantages, advantages + values


def gae(
    rewards: jax.Array,
    values: jax.Array,
    dones: jax.Array,
    last_value: jax.Array,
    gamma: float | jax.Array,
    lam: float | jax.Array,
) -> tuple[jax.Array, jax.Array]:
    """GAE over a rollout whose episode ends are all terminations (Schulman et al. 2016).

        u_t = R_t + γ·(1 − d_t)·V(s_{t+1}) − V(s_t),   V(s_T) = last_value
        Â_t = u_t + γλ·(1 − d_t)·Â_{t+1}
        returns_t = Â_t + V(s_t)

    This is ``gae_from_next_values`` with ``next_values = [values[1:], last_value]`` and
    ``terminations = episode_ends = dones``. With a time limit, a truncated step must
    instead bootstrap from V(final observation): use ``gae_from_next_values``.

    Args:
      rewards: ``[T]`` or ``[T, N]`` (N parallel environments), time first.
      values: V(s_t), same shape as ``rewards``.
      dones: 1 where the episode ended at step t, so V(s_{t+1}) (the next episode's
        first state) is not used; same shape; bool or float.
      last_value: V of the state after the last step, ``[]`` or ``[N]``.
      gamma, lam: discount γ and GAE λ in [0, 1].

    Returns and raises as :func:`gae_from_next_values`.
    """
    _check_time_major(rewards)
    check_same_shape(values, rewards, "values", "rewards")
    check_same_shape(dones, rewards, "dones", "rewards")
    if jnp.shape(last_value) != jnp.shape(rewards)[1:]:
        raise ValueError(
            f"last_value must have shape {jnp.shape(rewards)[1:]} (rewards without its time "
            f"axis), got shape {jnp.shape(last_value)}"
        )
    values = jnp.asarray(values)
    last_value = jnp.asarray(last_value, values.dtype)
    next_values = jnp.concatenate([values[1:], last_value[None]], axis=0)
    return gae_from_next_values(rewards, values, next_values, dones, dones, gamma, lam)


def normalize_advantages(advantages: jax.Array, eps: float = 1e-8) -> jax.Array:
    """Standardise advantages over the whole batch: ``(Â − mean Â) / (std Â + eps)``.

    The mean and (population) standard deviation are taken over all elements, whatever
    the shape. A batch of one gives zeros, not NaN (its std is 0, hence ``eps``).

    Raises:
      ValueError: ``advantages`` is empty or ``eps`` is not > 0.
    """
    check_positive(eps, "eps")
    if jnp.size(advantages) == 0:
        raise ValueError("advantages must not be empty")
    advantages = jnp.asarray(advantages)
    centred = advantages - jnp.mean(advantages)
    return centred / (jnp.std(advantages) + eps)
