"""Running normalisers of observations and rewards, as pure functions of explicit state.

Two of PPO's implementation details (Engstrom et al. 2020, §3: reward scaling, observation
normalisation and clipping; Huang et al. 2022, "The 37 Implementation Details of PPO",
continuous-action details 6–8) rescale
what the networks see while training. The reference code does it with environment wrappers
(OpenAI baselines' ``VecNormalize``, gymnasium's ``NormalizeObservation`` and
``NormalizeReward``, used by CleanRL); here the same arithmetic is a handful of pure functions
over a :class:`RunningMeanStd`, so the statistics live in the jitted training loop's carry:

* **observation normalisation**: before the policy acts on a step's observations ``[N, O]``,
  the running mean and variance absorb them (:func:`update_stats`), then the networks see
  ``clip((obs − mean) / √(var + 1e-8), −10, 10)`` (:func:`normalize`);
* **reward scaling**: each environment keeps a discounted return ``G ← γ·G + r`` (set to 0 when
  its episode ends); the running variance of ``G`` over all environments absorbs each step's
  ``G [N]`` and the learner receives ``r / √(var(G) + 1e-8)`` (no mean is subtracted: a
  constant shift of the rewards would change the task).

The running statistics start as gymnasium's ``RunningMeanStd``: mean 0, variance 1 and a
pseudo-count of 1e-4, and combine a batch of B rows by the parallel algorithm of Chan, Golub
and LeVeque (1979): with Δ = mean_B − mean and n' = n + B,

    mean' = mean + Δ·B/n'
    var'  = (var·n + var_B·B + Δ²·n·B/n') / n'

which is the mean and (population) variance of all rows seen, up to the 1e-4 prior.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "OBS_CLIP",
    "STATS_EPS",
    "Normalizers",
    "RunningMeanStd",
    "init_normalizers",
    "normalize",
    "observe",
    "running_stats",
    "scale_rewards",
    "update_stats",
]

OBS_CLIP = 10.0
"""Normalised observations are clipped to [−10, 10] (gymnasium, baselines)."""
STATS_EPS = 1e-8
"""Added to the variance before the square root (gymnasium, baselines)."""
PRIOR_COUNT = 1e-4
"""The pseudo-count a fresh :class:`RunningMeanStd` starts with (gymnasium's ``epsilon``)."""


class RunningMeanStd(NamedTuple):
    """The running mean and variance of the rows seen so far.

    Attributes:
      mean, var: ``[...]`` float32, the shape of one row (``[O]`` for observations, ``[]`` for
        returns).
      count: float32 scalar, rows seen plus the 1e-4 prior.
    """

    mean: jax.Array
    var: jax.Array
    count: jax.Array


def running_stats(shape: tuple[int, ...] = ()) -> RunningMeanStd:
    """Fresh statistics of rows of ``shape``: mean 0, variance 1, count 1e-4."""
    return RunningMeanStd(jnp.zeros(shape, jnp.float32), jnp.ones(shape, jnp.float32),
                          jnp.float32(PRIOR_COUNT))


def update_stats(stats: RunningMeanStd, x: jax.Array) -> RunningMeanStd:
    """``stats`` after absorbing the rows ``x [B, ...]`` (Chan et al.'s parallel update)."""
    x = jnp.asarray(x, jnp.float32)
    b = jnp.float32(x.shape[0])
    batch_mean = jnp.mean(x, axis=0)
    batch_var = jnp.var(x, axis=0)
    delta = batch_mean - stats.mean
    total = stats.count + b
    mean = stats.mean + delta * b / total
    m2 = stats.var * stats.count + batch_var * b + jnp.square(delta) * stats.count * b / total
    return RunningMeanStd(mean, m2 / total, total)


def normalize(stats: RunningMeanStd, x: jax.Array, clip: float = OBS_CLIP) -> jax.Array:
    """``clip((x − mean) / √(var + 1e-8), −clip, clip)`` with the statistics held fixed; ``x``
    is one row or a batch of rows ``[..., *row]``."""
    lead = (1,) * (jnp.ndim(x) - jnp.ndim(stats.mean))
    mean = jnp.reshape(stats.mean, lead + jnp.shape(stats.mean))
    std = jnp.reshape(jnp.sqrt(stats.var + STATS_EPS), lead + jnp.shape(stats.var))
    return jnp.clip((x - mean) / std, -clip, clip)


class Normalizers(NamedTuple):
    """The state of the normalisers of ``N`` environments stepped together (None where off).

    Attributes:
      obs: :class:`RunningMeanStd` of the observations ``[O]``, or None.
      ret: :class:`RunningMeanStd` of the discounted returns ``[]``, or None.
      disc_return: ``[N]`` each environment's discounted return G, or None.
    """

    obs: RunningMeanStd | None = None
    ret: RunningMeanStd | None = None
    disc_return: jax.Array | None = None


def init_normalizers(obs_dim: int, num_envs: int, normalize_obs: bool,
                     scale_rewards: bool) -> Normalizers:
    """Fresh :class:`Normalizers` with the switched-on parts present."""
    return Normalizers(
        running_stats((obs_dim,)) if normalize_obs else None,
        running_stats(()) if scale_rewards else None,
        jnp.zeros((num_envs,), jnp.float32) if scale_rewards else None,
    )


def observe(norm: Normalizers, obs: jax.Array) -> tuple[Normalizers, jax.Array]:
    """The observations ``[N, O]`` the networks see: the statistics absorb ``obs`` and then
    normalise it (gymnasium's ``NormalizeObservation``); ``obs`` unchanged when ``norm.obs`` is
    None."""
    if norm.obs is None:
        return norm, obs
    stats = update_stats(norm.obs, obs)
    return norm._replace(obs=stats), normalize(stats, obs)


def scale_rewards(norm: Normalizers, reward: jax.Array, done: jax.Array,
                  gamma: jax.Array) -> tuple[Normalizers, jax.Array]:
    """The rewards ``[N]`` the learner sees: ``G ← γ·G + r``, the statistics absorb ``G``,
    ``r / √(var(G) + 1e-8)``, and ``G ← 0`` where ``done`` (CleanRL's and baselines'
    ``NormalizeReward``/``VecNormalize``); ``reward`` unchanged when ``norm.ret`` is None."""
    if norm.ret is None:
        return norm, reward
    disc = norm.disc_return * gamma + reward
    stats = update_stats(norm.ret, disc)
    scaled = reward / jnp.sqrt(stats.var + STATS_EPS)
    return Normalizers(norm.obs, stats, jnp.where(done, 0.0, disc)), scaled
