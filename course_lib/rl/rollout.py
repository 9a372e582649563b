"""A batch of experience and the statistics every update reports on it.

:class:`Batch` is what a rollout hands to an update: flat ``[N]`` rows (N = num_envs ·
num_steps), the old policy's distribution parameters kept so that the exact
KL(π_old‖π_new) can be computed, and the GAE advantages and returns.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from course_lib._validate import check_int_at_least, check_rank, check_unit_interval
from course_lib.core.advantages import gae_from_next_values, normalize_advantages
from course_lib.core.surrogate import clip_fraction, kl_estimate
from course_lib.rl.envs import JaxEnv
from course_lib.rl.networks import ActorCritic, Dist, Params
from course_lib.rl.normalize import Normalizers, normalize, observe, scale_rewards


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
    permutation of ``0..n-1`` cut into ``minibatches`` parts.

    The permutation is the argsort of n uniform numbers: one sort, where
    ``jax.random.permutation`` runs several rounds of sorting (slower to compile)."""
    perms = jnp.argsort(jax.random.uniform(key, (epochs, n)), axis=-1)
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


# ------------------------------------------------------------------------------------------
# The rollout
# ------------------------------------------------------------------------------------------


class Trajectory(NamedTuple):
    """``num_steps × num_envs`` transitions (leaves ``[T, N, ...]``); ``final_obs`` is the real
    next observation (before any reset), ``done`` = terminated or truncated.

    ``obs`` and ``final_obs`` are what the networks see (normalised when the rollout runs
    observation normalisation), ``actions`` the sampled (unclipped) actions whose
    log-probabilities ``logp`` are, and ``rewards`` what the learner sees (scaled when the
    rollout runs reward scaling)."""

    obs: jax.Array
    actions: jax.Array
    logp: jax.Array
    dist: Any
    rewards: jax.Array
    terminated: jax.Array
    done: jax.Array
    final_obs: jax.Array


def where_done(done: jax.Array, a, b):
    """Per environment: ``a`` where ``done [N]`` else ``b`` (leaves ``[N, ...]``)."""
    return jax.tree.map(
        lambda x, y: jnp.where(done.reshape(done.shape + (1,) * (x.ndim - 1)), x, y), a, b
    )


def run_envs(
    env: JaxEnv, model: ActorCritic, policy_params: jax.Array, env_part: tuple, key: jax.Array,
    num_steps: int, *, clip_actions: bool = True, gamma: jax.Array | float | None = None,
) -> tuple[tuple, Trajectory, jax.Array, jax.Array]:
    """``num_steps`` steps of ``N`` JAX envs under π(θ = ``policy_params``), restarting episodes
    as they end: the one rollout of course_lib, used by training and by every lesson.

    ``env_part = (env_state, obs [N, O], ep_return [N])`` is where the envs stand (``obs`` as
    the envs return it), optionally with a fourth item, the envs'
    :class:`~course_lib.rl.normalize.Normalizers`: then before each step the observation
    statistics (if any) absorb the step's observations and the networks see them normalised
    (:func:`~course_lib.rl.normalize.observe`; ``final_obs`` normalised with the same
    statistics), and the rewards (if scaled) are divided by the running std of the discounted
    return with discount ``gamma`` (:func:`~course_lib.rl.normalize.scale_rewards`).
    ``ep_return`` and the returns reported always add up the raw rewards.

    All random numbers (action noise, the states new episodes start from) are drawn before the
    loop, in one batch; a discrete action is Gumbel-max, ``argmax(logits + Gumbel noise)``, a
    sample of Categorical(logits); a continuous one is ``mean + σ·ε``, clipped to the env's
    action bounds before the env step when ``clip_actions`` (the trajectory keeps the unclipped
    sample and its log-probability).

    Returns ``(env_part, traj, ret_sum, ep_count)``: where the envs stand now (as many items as
    given), the :class:`Trajectory` ``[T, N, ...]``, and the sum and count of the returns of
    the episodes that ended.
    """
    env_state, obs, ep_return, *rest = env_part
    norm = rest[0] if rest else Normalizers()
    if norm.ret is not None and gamma is None:
        raise ValueError("gamma must be given when the rollout scales rewards")
    clip = clip_actions and not env.discrete
    k_noise, k_reset = jax.random.split(key)
    t, n = num_steps, obs.shape[0]
    if env.discrete:
        noise = jax.random.gumbel(k_noise, (t, n, env.n_actions))
    else:
        noise = jax.random.normal(k_noise, (t, n, env.n_actions))
    resets = jax.vmap(jax.vmap(env.reset))(jax.random.split(k_reset, (t, n)))

    def step(c, xs):
        env_state, raw_obs, ep_return, norm, ret_sum, ep_count = c
        eps_t, (reset_state, reset_obs) = xs
        norm, obs = observe(norm, raw_obs)
        dist = model.policy(policy_params, obs)
        if env.discrete:  # Gumbel-max: argmax(logits + Gumbel noise) ~ Categorical(logits)
            action = jnp.argmax(dist.logits + eps_t, axis=-1).astype(jnp.int32)
        else:
            action = dist.logits + jnp.exp(dist.log_std) * eps_t
        logp = model.log_prob(dist, action)
        env_action = jnp.clip(action, env.action_low, env.action_high) if clip else action
        next_state, final_obs, reward, term, trunc = jax.vmap(env.step)(env_state, env_action)
        done = term | trunc
        env_state = where_done(done, reset_state, next_state)
        next_obs = where_done(done, reset_obs, final_obs)
        if norm.obs is not None:
            final_obs = normalize(norm.obs, final_obs)
        ep_return = ep_return + reward
        ret_sum = ret_sum + jnp.sum(jnp.where(done, ep_return, 0.0))
        ep_count = ep_count + jnp.sum(done)
        ep_return = jnp.where(done, 0.0, ep_return)
        norm, learn_reward = scale_rewards(norm, reward, done, gamma)
        out = Trajectory(obs, action, logp, dist, learn_reward, term, done, final_obs)
        return (env_state, next_obs, ep_return, norm, ret_sum, ep_count), out

    init = (env_state, obs, ep_return, norm, jnp.zeros(()), jnp.zeros((), jnp.int32))
    (env_state, obs, ep_return, norm, ret_sum, ep_count), traj = jax.lax.scan(
        step, init, (noise, resets))
    return (env_state, obs, ep_return, *([norm] if rest else [])), traj, ret_sum, ep_count


def trajectory_batch(
    model: ActorCritic, value_params: jax.Array, traj: Trajectory, gamma, lam,
    normalize: bool = True, bootstrap_truncation: bool = True,
) -> Batch:
    """Flatten a ``[T, N]`` trajectory into a :class:`Batch` of ``T·N`` rows with GAE(γ, λ)
    advantages (Schulman et al. 2016) from the critic ``value_params``, bootstrapped with
    V(final observation) where an episode was truncated (with ``bootstrap_truncation``; else a
    truncation counts as a termination, value 0 after it); normalised to zero mean and unit
    std when ``normalize``."""
    t, n = traj.rewards.shape

    def flat(x):
        return x.reshape((t * n,) + x.shape[2:])

    values = model.value(value_params, flat(traj.obs)).reshape(t, n)
    next_values = model.value(value_params, flat(traj.final_obs)).reshape(t, n)
    terminations = traj.terminated if bootstrap_truncation else traj.done
    adv, returns = gae_from_next_values(
        traj.rewards, values, next_values, terminations.astype(jnp.float32),
        traj.done.astype(jnp.float32), gamma, lam,
    )
    return Batch(
        flat(traj.obs), flat(traj.actions), flat(traj.logp), jax.tree.map(flat, traj.dist),
        flat(values), normalise(flat(adv), normalize), flat(returns),
    )


def reset_envs(env: JaxEnv, key: jax.Array, num_envs: int) -> tuple:
    """``num_envs`` fresh episodes: ``(env_state, obs [N, O], ep_return [N] = 0)``."""
    env_state, obs = jax.vmap(env.reset)(jax.random.split(key, num_envs))
    return env_state, obs, jnp.zeros(num_envs)


def check_model_fits_env(model: ActorCritic, env: JaxEnv) -> None:
    """``model`` is an :class:`ActorCritic` sized for the JAX environment ``env``."""
    if not isinstance(model, ActorCritic):
        raise TypeError(f"model must be an ActorCritic, got {type(model).__name__}")
    if not isinstance(env, JaxEnv):
        raise TypeError(f"env must be a JaxEnv (course_lib.make_env), got {type(env).__name__}")
    if (env.obs_dim, env.n_actions, env.discrete) != (model.obs_dim, model.n_actions, model.discrete):
        raise ValueError(
            f"model ({model.obs_dim} observations, {model.n_actions} actions) does not fit env "
            f"{env.env_id!r} ({env.obs_dim} observations, {env.n_actions} actions)"
        )


def check_rollout_args(params, model, env, num_envs, num_steps, gamma, lam) -> None:
    """The checks of :func:`collect_batch`'s arguments, for any function that rolls out: each
    failure names its argument (``params`` not :class:`Params`, a ``model`` that does not fit
    ``env``, a count < 1, ``gamma``/``lam`` outside [0, 1])."""
    check_model_fits_env(model, env)
    if not isinstance(params, Params):
        raise TypeError(f"params must be course_lib.rl.networks.Params, got {type(params).__name__}")
    check_rank(params.policy, 1, "params.policy")
    check_int_at_least(num_envs, 1, "num_envs")
    check_int_at_least(num_steps, 1, "num_steps")
    check_unit_interval(gamma, "gamma")
    check_unit_interval(lam, "lam")


@partial(jax.jit, static_argnames=("model", "env", "num_envs", "num_steps"))
def _collect(params, model, env, key, num_envs, num_steps, gamma, lam):
    k_reset, k_run = jax.random.split(key)
    env_part = reset_envs(env, k_reset, num_envs)
    _, traj, _, _ = run_envs(env, model, params.policy, env_part, k_run, num_steps)
    return trajectory_batch(model, params.value, traj, gamma, lam)


def collect_batch(
    params: Params,
    model: ActorCritic,
    env: JaxEnv,
    key: jax.Array,
    num_envs: int = 8,
    num_steps: int = 128,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> Batch:
    """A fresh on-policy batch of ``num_envs · num_steps`` rows, as a training update sees it.

    ``num_envs`` environments start from ``env.reset`` and run ``num_steps`` steps each under
    π_old = ``params.policy`` (:func:`run_envs`, the rollout :func:`course_lib.train` uses);
    advantages are GAE(γ, λ) from ``params.value``, normalised (:func:`trajectory_batch`).
    Jitted; ``model``, ``env``, ``num_envs`` and ``num_steps`` are static.

    Args:
      params: :class:`course_lib.rl.networks.Params` ``(policy [P], value [V])``.
      model: the :class:`ActorCritic` of ``params``; env: a JAX-native environment
        (``course_lib.make_env``) whose sizes fit ``model``; key: a JAX random key.
      num_envs, num_steps: ints >= 1. gamma, lam: discount and GAE λ in [0, 1].

    Returns:
      :class:`Batch` of ``N = num_envs · num_steps`` rows.
    """
    check_rollout_args(params, model, env, num_envs, num_steps, gamma, lam)
    return _collect(params, model, env, key, num_envs, num_steps, jnp.float32(gamma), jnp.float32(lam))
