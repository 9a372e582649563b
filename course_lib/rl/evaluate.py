"""How good a policy is: full episodes played in the jitted JAX environment, or in gymnasium.

:func:`episode_returns` is the fast measurement every lesson uses (one jitted call, vmappable
over policies, common random numbers); :func:`evaluate` plays the real gymnasium environment,
the reference a reader can trust independently of the JAX port.
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validate import check_int_at_least, check_rank, check_seed
from course_lib.rl.config import TrainConfig
from course_lib.rl.envs import JaxEnv
from course_lib.rl.networks import ActorCritic, Params, model_from_config
from course_lib.rl.normalize import RunningMeanStd, normalize
from course_lib.rl.rollout import check_model_fits_env

__all__ = ["episode_returns", "evaluate"]


def _seen(obs_stats: RunningMeanStd | None, obs):
    """What the networks see: ``obs`` normalised by the frozen ``obs_stats`` (if any)."""
    return obs if obs_stats is None else normalize(obs_stats, obs)


@partial(jax.jit, static_argnames=("model", "env", "episodes", "greedy"))
def _episode_returns(policy_params, model, env, key, episodes, greedy, obs_stats=None):
    horizon = env.max_episode_steps
    k_reset, k_noise = jax.random.split(key)
    states, obs = jax.vmap(env.reset)(jax.random.split(k_reset, episodes))
    noise = jax.random.gumbel(k_noise, (horizon, episodes, model.n_actions))

    def cond(carry):
        t, _, _, alive, _ = carry
        return (t < horizon) & jnp.any(alive)

    def body(carry):
        t, states, obs, alive, total = carry
        logits = model.policy(policy_params, _seen(obs_stats, obs)).logits
        actions = jnp.argmax(logits if greedy else logits + noise[t], axis=-1).astype(jnp.int32)
        states, obs, rewards, term, trunc = jax.vmap(env.step)(states, actions)
        total = total + jnp.where(alive, rewards, 0.0)
        alive = alive & ~(term | trunc)
        return t + 1, states, obs, alive, total

    init = (jnp.zeros((), jnp.int32), states, obs, jnp.ones((episodes,), bool),
            jnp.zeros((episodes,), jnp.float32))
    return jax.lax.while_loop(cond, body, init)[-1]


def episode_returns(
    policy_params: jax.Array,
    model: ActorCritic,
    env: JaxEnv,
    key: jax.Array,
    episodes: int = 32,
    greedy: bool = False,
    obs_stats: RunningMeanStd | None = None,
) -> jax.Array:
    """Undiscounted returns ``[episodes]`` of full episodes of ``env`` played by the policy.

    Each episode starts from ``env.reset`` and runs to termination or the time limit
    (``env.max_episode_steps``: 500 on CartPole-v1). Actions are sampled from π
    (``argmax(logits + Gumbel noise)`` ∼ Categorical(logits)) or, with ``greedy``, are its most
    likely ones. All randomness comes from ``key``: ``k_reset, k_noise = split(key)``, episode
    i starts from ``env.reset(split(k_reset, episodes)[i])`` and step t adds
    ``gumbel(k_noise, [T, episodes, A])[t]``. Two policies evaluated with the same key face the
    same episodes and the same noise (common random numbers), so their difference in return
    measures the policies, not the luck of the draw. Jitted; vmap over ``policy_params`` to
    evaluate many policies at once. ``obs_stats``: the observation statistics of a policy
    trained with ``normalize_obs`` (``TrainResult.obs_stats``), applied frozen.
    """
    check_model_fits_env(model, env)
    if not model.discrete:
        raise ValueError("model must be a categorical (discrete-action) policy")
    check_rank(policy_params, 1, "policy_params")
    check_int_at_least(episodes, 1, "episodes")
    return _episode_returns(policy_params, model, env, key, episodes, bool(greedy), obs_stats)


def evaluate(params: Params, config: TrainConfig, episodes: int = 10, seed: int = 0,
             obs_stats: RunningMeanStd | None = None) -> float:
    """Mean return of the greedy (discrete) / mean (continuous) policy over ``episodes``
    episodes of the real gymnasium environment ``config.env``, seeded ``seed, seed+1, ...``.

    ``params`` is a :class:`Params` or a whole ``TrainResult`` (of :func:`course_lib.train`),
    whose ``params`` and ``obs_stats`` are then used. A policy trained with
    ``config.normalize_obs`` sees each observation normalised by the frozen statistics
    ``obs_stats`` (``TrainResult.obs_stats``), as in training; they are required then, and
    refused otherwise (a ``ValueError`` naming ``obs_stats``)."""
    import gymnasium

    if hasattr(params, "obs_stats") and hasattr(params, "params"):  # a TrainResult
        if obs_stats is None:
            obs_stats = params.obs_stats
        params = params.params
    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    if bool(getattr(config, "normalize_obs", False)) != (obs_stats is not None):
        raise ValueError(
            "obs_stats must be given (TrainResult.obs_stats) when config.normalize_obs is on"
            if obs_stats is None else
            "obs_stats must be None when config.normalize_obs is off: the policy was trained "
            "on raw observations"
        )
    model = model_from_config(config)
    act = jax.jit(lambda p, s, o: model.greedy(model.policy(p, _seen(s, o))))
    venv = gymnasium.make_vec(config.env, num_envs=episodes, vectorization_mode="sync")
    try:
        obs, _ = venv.reset(seed=check_seed(seed))
        totals = np.zeros(episodes)
        finished = np.zeros(episodes, bool)
        while not finished.all():
            action = np.asarray(act(params.policy, obs_stats, jnp.asarray(obs, jnp.float32)))
            obs, reward, term, trunc, _ = venv.step(action)
            totals += np.where(finished, 0.0, reward)
            finished |= term | trunc
    finally:
        venv.close()
    return float(totals.mean())
