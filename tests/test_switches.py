"""The switches of "the rest of PPO" (issue 15): each one's effect, where it acts.

* ``normalize_obs``: the running statistics are those of the observations acted on, the
  networks see the normalised ones (rollout and batch), the result carries the statistics
  and ``evaluate`` applies them;
* ``scale_rewards``: the learner's rewards are the raw ones over the running std of the
  discounted return, the reported returns stay raw;
* ``bootstrap_truncation``: off, a truncated step loses exactly γ·V(final observation);
* ``clip_actions``: the env sees clipped actions, the batch keeps the sample and its log-prob;
* ``ortho_init``: orthogonal weights with gains √2 / 0.01 / 1, or LeCun normal;
* ``adam_eps``: reaches Adam's denominator, and ``train_many`` sweeps it.

The bit-for-bit identity of the defaults is tests/test_defaults_pinned.py.
"""

from __future__ import annotations

import importlib
import math
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CONFIG
from gym_reference import gymnasium_greedy_return
from gymnasium.wrappers.utils import RunningMeanStd as GymRunningMeanStd

from course_lib import (
    ActorCritic,
    TrainConfig,
    evaluate,
    make_env,
    model_from_config,
    train,
    train_many,
)
from course_lib.rl.envs import JaxEnv
from course_lib.rl.evaluate import episode_returns
from course_lib.rl.normalize import init_normalizers
from course_lib.rl.ppo import PPOHyper, optimizer, ppo_loss, ppo_update
from course_lib.rl.rollout import reset_envs, run_envs, trajectory_batch

train_module = importlib.import_module("course_lib.rl.train")
TINY = TINY_CONFIG
SWITCHES = ("normalize_obs", "scale_rewards", "bootstrap_truncation", "clip_actions",
            "ortho_init")


def rollout(env, model, policy, key, num_envs, num_steps, norm=None, **kwargs):
    k_reset, k_run = jax.random.split(key)
    env_part = reset_envs(env, k_reset, num_envs)
    if norm is not None:
        env_part = (*env_part, norm)
    return run_envs(env, model, policy, env_part, k_run, num_steps, **kwargs)


# ------------------------------------------------------------------------------------------
# The config
# ------------------------------------------------------------------------------------------


def test_the_new_fields_their_kinds_and_defaults():
    config = TrainConfig()
    assert set(SWITCHES) <= set(TrainConfig.switch_fields())
    assert not set(SWITCHES) & set(TrainConfig.numeric_fields())
    assert "adam_eps" in TrainConfig.numeric_fields()
    assert (config.normalize_obs, config.scale_rewards, config.bootstrap_truncation,
            config.clip_actions, config.ortho_init, config.adam_eps) == (
        False, False, True, True, True, 1e-5)
    assert train_module._structure(config.replace(adam_eps=0.1)) == train_module._structure(config)
    numbers = train_module.numbers(config.replace(adam_eps=0.1))
    assert float(numbers["adam_eps"]) == pytest.approx(0.1)
    source = Path(importlib.import_module("course_lib.rl.config").__file__)
    text = source.read_text(encoding="utf-8")
    for name in SWITCHES + ("adam_eps",):
        assert re.search(rf"\n    {name}: \w+ = .+\n    \"\"\"", text), name


@pytest.mark.parametrize(
    ("changes", "error", "name"),
    [
        ({"normalize_obs": "yes"}, TypeError, "normalize_obs"),
        ({"scale_rewards": 1}, TypeError, "scale_rewards"),
        ({"bootstrap_truncation": None}, TypeError, "bootstrap_truncation"),
        ({"clip_actions": 0.0}, TypeError, "clip_actions"),
        ({"ortho_init": "orthogonal"}, TypeError, "ortho_init"),
        ({"adam_eps": 0.0}, ValueError, "adam_eps"),
        ({"adam_eps": -1e-8}, ValueError, "adam_eps"),
        ({"adam_eps": float("nan")}, ValueError, "adam_eps"),
    ],
)
def test_bad_values_raise_naming_the_field(changes, error, name):
    config = TINY.replace(**changes)
    with pytest.raises(error, match=re.escape(name)):
        config.validate()
    with pytest.raises(error, match=re.escape(name)):
        train(config, 0)


def test_train_many_sweeps_adam_eps_and_takes_switches_from_the_config():
    with pytest.raises(ValueError, match="normalize_obs"):
        train_many(TINY, seeds=[0], normalize_obs=[False, True])
    with pytest.raises(ValueError, match="adam_eps"):
        train_many(TINY, seeds=[0], adam_eps=[1e-5, 0.0])
    grid = train_many(TINY, seeds=[0], adam_eps=[1e-5, 0.5])
    assert grid.mean_return.shape == (2, 1, TINY.iterations)
    for i, eps in enumerate([1e-5, 0.5]):
        single = train(TINY.replace(adam_eps=eps), 0)
        np.testing.assert_allclose(grid.params.policy[i, 0], single.params.policy,
                                   rtol=1e-4, atol=1e-5)
    assert not np.allclose(grid.params.policy[0, 0], grid.params.policy[1, 0])


def test_adam_eps_does_not_recompile():
    train(TINY, 0)
    before = train_module._chunk_jit._cache_size()
    train(TINY.replace(adam_eps=1e-3), 0)
    assert train_module._chunk_jit._cache_size() == before


# ------------------------------------------------------------------------------------------
# normalize_obs
# ------------------------------------------------------------------------------------------


def running_numpy(rows_per_step):
    """Gymnasium's RunningMeanStd after each step's rows: ``[(mean, var)]``."""
    gym, out = GymRunningMeanStd(shape=rows_per_step.shape[2:]), []
    for rows in rows_per_step:
        gym.update(np.asarray(rows, np.float64))
        out.append((gym.mean.copy(), gym.var.copy()))
    return out


def test_rollout_statistics_are_those_of_the_observations_acted_on():
    """With a policy whose actions do not depend on the observation (zero weights: uniform
    logits), a normalising rollout takes the same steps as a plain one, so the plain one's
    observations are the raw ones: the statistics after each step are gymnasium's over all raw
    observations acted on so far, and the trajectory holds them normalised with the statistics
    of their step (``final_obs`` too)."""
    env, model = make_env("CartPole-v1"), ActorCritic(4, 2, True, (8,))
    zero = jnp.zeros_like(model.init(jax.random.key(0))[0])
    key, n, t = jax.random.key(3), 4, 64
    plain_part, plain, ret_plain, count_plain = rollout(env, model, zero, key, n, t)
    norm = init_normalizers(4, n, normalize_obs=True, scale_rewards=False)
    part, traj, ret_sum, count = rollout(env, model, zero, key, n, t, norm=norm)
    np.testing.assert_array_equal(traj.actions, plain.actions)
    assert float(ret_sum) == float(ret_plain) and int(count) == int(count_plain)
    np.testing.assert_array_equal(part[1], plain_part[1])  # the carried obs is raw
    raw = np.asarray(plain.obs, np.float64)
    stats = running_numpy(raw)
    for step, (mean, var) in enumerate(stats):
        want = np.clip((raw[step] - mean) / np.sqrt(var + 1e-8), -10, 10)
        np.testing.assert_allclose(traj.obs[step], want, rtol=1e-3, atol=1e-3)
        want_final = np.clip((np.asarray(plain.final_obs[step]) - mean) / np.sqrt(var + 1e-8),
                             -10, 10)
        np.testing.assert_allclose(traj.final_obs[step], want_final, rtol=1e-3, atol=1e-3)
    final = part[3].obs
    np.testing.assert_allclose(final.mean, raw.reshape(-1, 4).mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(final.var, raw.reshape(-1, 4).var(axis=0), rtol=1e-3)
    assert float(final.count) == pytest.approx(n * t + 1e-4)


def test_training_networks_see_normalised_observations():
    """The batch an iteration updates on (``training_batch``) holds normalised observations,
    and the old policy's distributions and values in it are the networks' outputs on exactly
    those, not on the raw observations."""
    config = TINY.replace(normalize_obs=True, num_steps=64, total_steps=2 * 64)
    static, num = train_module.prepare(config), train_module.numbers(config)
    carry = train_module.init_carry(static, num, jnp.int32(0))
    assert carry.norm.obs is not None and carry.norm.ret is None
    first_batch = lambda c: train_module.training_batch(static, num, c, jnp.int32(0))
    batch, _, _ = jax.jit(first_batch)(carry)
    model = model_from_config(config)
    params = carry.learner.params
    np.testing.assert_allclose(model.policy(params.policy, batch.obs).logits,
                               batch.dist_old.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.value(params.value, batch.obs), batch.values_old,
                               rtol=1e-5, atol=1e-6)
    obs = np.asarray(batch.obs)
    assert np.abs(obs).max() <= 10.0
    # standardised: each coordinate's spread is of order 1 (raw CartPole velocities are not)
    assert (np.abs(obs.mean(axis=0)) < 1.0).all() and (np.abs(obs.std(axis=0) - 1.0) < 0.5).all()


def test_train_returns_the_statistics_and_evaluate_applies_them():
    config = TINY.replace(normalize_obs=True)
    result = train(config, 0)
    stats = result.obs_stats
    assert stats.mean.shape == (4,) and stats.var.shape == (4,)
    assert float(stats.count) == pytest.approx(config.total_steps + 1e-4)
    # evaluate: a TrainResult, or params with its statistics; never without them
    value = evaluate(result, config, episodes=2, seed=0)
    assert evaluate(result.params, config, episodes=2, seed=0, obs_stats=stats) == value
    assert value == pytest.approx(_greedy_normalised(result, config, 2, 0), rel=1e-4)
    with pytest.raises(ValueError, match="obs_stats"):
        evaluate(result.params, config, episodes=2)
    with pytest.raises(ValueError, match="obs_stats"):
        evaluate(result.params, TINY, episodes=2, obs_stats=stats)
    # the JAX-native episodes take the statistics too
    env, model = make_env("CartPole-v1"), model_from_config(config)
    frozen = episode_returns(result.params.policy, model, env, jax.random.key(0), 4, True, stats)
    raw = episode_returns(result.params.policy, model, env, jax.random.key(0), 4, True)
    assert frozen.shape == raw.shape == (4,)


def _greedy_normalised(result, config, episodes, seed):
    """Reference: plain gymnasium episodes, observations normalised by hand."""
    stats = result.obs_stats
    mean, std = np.asarray(stats.mean), np.sqrt(np.asarray(stats.var) + 1e-8)
    return gymnasium_greedy_return(result.params, config, episodes, seed,
                                   observe=lambda obs: np.clip((obs - mean) / std, -10, 10))


def test_train_many_carries_the_statistics_of_each_run():
    config = TINY.replace(normalize_obs=True, scale_rewards=True)
    grid = train_many(config, seeds=[0, 1], lr=[1e-3])
    assert grid.obs_stats.mean.shape == (1, 2, 4) and grid.obs_stats.count.shape == (1, 2)
    single = train(config.replace(lr=1e-3), 1)
    np.testing.assert_allclose(grid.obs_stats.mean[0, 1], single.obs_stats.mean, rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(grid.mean_return[0, 1], single.mean_return, rtol=1e-4)


# ------------------------------------------------------------------------------------------
# scale_rewards
# ------------------------------------------------------------------------------------------


def test_rollout_scales_rewards_by_the_std_of_the_discounted_return():
    """Pendulum (rewards of varying size), 4 envs × 600 steps (3 episodes each): the learner's
    rewards are the raw ones over √(var(G) + 1e-8), G the discounted return reset at episode
    ends (gymnasium's RunningMeanStd over each step's G); the steps, the raw returns reported
    and the episode count are those of the plain rollout; after the first episode the
    discounted returns of the scaled rewards have a std close to 1."""
    env = make_env("Pendulum-v1")
    model = ActorCritic(3, 1, False, (8,))
    pi = model.init(jax.random.key(0))[0]
    key, n, t, gamma = jax.random.key(5), 4, 600, 0.9
    _, plain, ret_plain, count_plain = rollout(env, model, pi, key, n, t)
    norm = init_normalizers(3, n, normalize_obs=False, scale_rewards=True)
    part, traj, ret_sum, count = rollout(env, model, pi, key, n, t, norm=norm, gamma=gamma)
    np.testing.assert_array_equal(traj.obs, plain.obs)
    np.testing.assert_array_equal(traj.actions, plain.actions)
    assert float(ret_sum) == float(ret_plain) and int(count) == int(count_plain) == 12
    raw, done = np.asarray(plain.rewards, np.float64), np.asarray(plain.done)
    gym, g, scaled_g, disc_scaled = GymRunningMeanStd(shape=()), np.zeros(n), np.zeros(n), []
    for step in range(t):
        g = g * gamma + raw[step]
        gym.update(g)
        np.testing.assert_allclose(traj.rewards[step], raw[step] / np.sqrt(gym.var + 1e-8),
                                   rtol=1e-4)
        scaled_g = scaled_g * gamma + np.asarray(traj.rewards[step])
        disc_scaled.append(scaled_g)
        g, scaled_g = np.where(done[step], 0.0, g), np.where(done[step], 0.0, scaled_g)
    assert float(part[3].ret.var) == pytest.approx(gym.var, rel=1e-4)
    std = np.std(np.array(disc_scaled)[200:])
    assert 0.7 < std < 1.3, std
    with pytest.raises(ValueError, match="gamma"):
        rollout(env, model, pi, key, n, t, norm=norm)


def test_training_reports_raw_returns_with_scaled_rewards():
    """The first iteration's rollout is the same with and without scaling (the same policy),
    so the returns it reports are equal; the update sees other rewards, so later ones differ."""
    config = TINY.replace(env="Pendulum-v1", scale_rewards=True, num_steps=256,
                          total_steps=2 * 2 * 256)
    scaled, plain = train(config, 0), train(config.replace(scale_rewards=False), 0)
    assert scaled.obs_stats is None
    assert scaled.mean_return[0] == plain.mean_return[0] < -100.0  # a raw Pendulum return
    assert not np.array_equal(scaled.params.value, plain.params.value)


# ------------------------------------------------------------------------------------------
# bootstrap_truncation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_truncation_without_bootstrap_changes_exactly_the_truncated_steps(env_id):
    """With λ = 0 an advantage is its TD error; treating truncation as termination removes
    γ·V(final observation) at the truncated steps and changes no other step. With λ > 0 the
    difference reaches back through the truncated episode only. CartPole's episodes start 10
    steps before the 500-step limit, so some end by truncation."""
    env = make_env(env_id)
    model = ActorCritic(env.obs_dim, env.n_actions, env.discrete, (8,))
    pi, v = model.init(jax.random.key(1))
    v = v + 0.1 * jax.random.normal(jax.random.key(2), v.shape)  # a critic with V ≠ 0
    key, n, t = jax.random.key(4), 4, 260 if env_id == "Pendulum-v1" else 24
    k_reset, k_run = jax.random.split(key)
    state, obs, ep_ret = reset_envs(env, k_reset, n)
    if env_id == "CartPole-v1":
        state = state._replace(t=jnp.full((n,), env.max_episode_steps - 10, jnp.int32))
    _, traj, _, _ = run_envs(env, model, pi, (state, obs, ep_ret), k_run, t)
    truncated = np.asarray(traj.done & ~traj.terminated).reshape(-1)
    assert truncated.sum() >= 2
    gamma = 0.99
    batch = lambda lam, boot: trajectory_batch(model, v, traj, gamma, lam, normalize=False,
                                               bootstrap_truncation=boot)
    on, off = batch(0.0, True), batch(0.0, False)
    diff = np.asarray(off.advantages - on.advantages)
    final_v = np.asarray(model.value(v, traj.final_obs.reshape(t * n, -1)))
    np.testing.assert_allclose(diff[truncated], -gamma * final_v[truncated], rtol=1e-4,
                               atol=1e-6)
    assert (diff[~truncated] == 0).all()
    np.testing.assert_allclose(off.returns - on.returns, diff, atol=1e-5)
    # λ = 0.95: the change flows back within the truncated episodes only
    lam_diff = np.asarray(batch(0.95, False).advantages - batch(0.95, True).advantages)
    time_major = lam_diff.reshape(t, n)
    done = np.asarray(traj.done)
    for e in range(n):
        ends = np.flatnonzero(done[:, e])
        starts = np.concatenate([[0], ends[:-1] + 1])
        for s, end in zip(starts, ends):
            changed = (time_major[s:end + 1, e] != 0).any()
            assert changed == bool(truncated.reshape(t, n)[end, e]), (e, s, end)
        assert (time_major[ends[-1] + 1:, e] == 0).all()  # the episode still running


def test_bootstrap_truncation_reaches_the_training_batch():
    """``training_batch`` of a Pendulum run (every episode truncated at step 200) with and
    without bootstrapping: with λ = 0 and no advantage normalisation, the advantages differ at
    the 200th step of each env's episode and nowhere else."""
    base = TINY.replace(env="Pendulum-v1", num_steps=256, total_steps=2 * 256, gae_lambda=0.0,
                        normalize_advantages="none", minibatches=2)
    out = {}
    for boot in (True, False):
        config = base.replace(bootstrap_truncation=boot)
        static, num = train_module.prepare(config), train_module.numbers(config)
        carry = train_module.init_carry(static, num, jnp.int32(0))
        batch, _, _ = jax.jit(
            lambda c, s=static, m=num: train_module.training_batch(s, m, c, jnp.int32(0)))(carry)
        out[boot] = np.asarray(batch.advantages).reshape(256, 2)
    changed = out[True] != out[False]
    assert changed[199].all() and changed.sum() == 2


# ------------------------------------------------------------------------------------------
# clip_actions
# ------------------------------------------------------------------------------------------


def _echo_step(physics, action):
    """An env that does not clip: its reward is the action it receives."""
    return physics, action[0], jnp.zeros((), bool)


ECHO = JaxEnv("Echo-v0", obs_dim=1, discrete=False, n_actions=1, action_low=-0.5,
              action_high=0.5, max_episode_steps=50, reset_physics=lambda k: jnp.zeros(1),
              step_physics=_echo_step, physics_obs=lambda p: p)


def test_clip_actions_clips_what_the_env_receives_not_what_the_batch_keeps():
    model = ActorCritic(1, 1, False, (8,))  # log_std 0: σ = 1, most samples outside ±0.5
    pi = model.init(jax.random.key(0))[0]
    key = jax.random.key(1)
    _, clipped, _, _ = rollout(ECHO, model, pi, key, 4, 32, clip_actions=True)
    _, unclipped, _, _ = rollout(ECHO, model, pi, key, 4, 32, clip_actions=False)
    actions = np.asarray(clipped.actions)[..., 0]
    assert (np.abs(actions) > 0.5).mean() > 0.3
    np.testing.assert_array_equal(clipped.actions, unclipped.actions)  # the same samples
    np.testing.assert_array_equal(clipped.rewards, np.clip(actions, -0.5, 0.5))
    np.testing.assert_array_equal(unclipped.rewards, actions)
    logp = model.log_prob(jax.tree.map(lambda x: x.reshape(128, -1), clipped.dist),
                          clipped.actions.reshape(128, 1))
    np.testing.assert_allclose(clipped.logp.reshape(-1), logp, rtol=1e-6)  # of the sample


def test_clip_actions_changes_nothing_on_pendulum_which_clips_itself():
    env = make_env("Pendulum-v1")
    model = ActorCritic(3, 1, False, (8,), init_log_std=1.0)  # σ = e: many torques beyond ±2
    pi = model.init(jax.random.key(0))[0]
    key = jax.random.key(2)
    a = rollout(env, model, pi, key, 4, 64, clip_actions=True)
    b = rollout(env, model, pi, key, 4, 64, clip_actions=False)
    assert (np.abs(np.asarray(a[1].actions)) > 2.0).mean() > 0.2
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_switches_on_the_gymnasium_path():
    """MountainCarContinuous has no JAX port: the host loop runs the same normalisers step by
    step, passes the raw actions on without ``clip_actions``, and returns the statistics that
    ``evaluate`` applies."""
    config = TINY.replace(env="MountainCarContinuous-v0", clip_actions=False, normalize_obs=True,
                          scale_rewards=True)
    result = train(config, 0)
    assert result.mean_return.shape == (TINY.iterations,)
    assert result.obs_stats.mean.shape == (2,)
    assert float(result.obs_stats.count) == pytest.approx(config.total_steps + 1e-4)
    assert math.isfinite(evaluate(result, config, episodes=1, seed=0))


# ------------------------------------------------------------------------------------------
# ortho_init
# ------------------------------------------------------------------------------------------


def _kernels(model, params, policy):
    module = model._policy_module() if policy else model._value_module()
    layers = model._unravel(module)(params)["params"]
    mlp = layers if (model.discrete or not policy) else layers["MLP_0"]
    return [np.asarray(mlp[f"Dense_{i}"]["kernel"]) for i in range(len(model.hidden) + 1)], mlp


@pytest.mark.parametrize("discrete", [True, False])
def test_ortho_init_gains_and_the_lecun_alternative(discrete):
    obs_dim, n_actions = (4, 2) if discrete else (3, 1)
    for draw in ("host", "graph"):
        ortho = ActorCritic(obs_dim, n_actions, discrete, (64, 64))
        lecun = ActorCritic(obs_dim, n_actions, discrete, (64, 64), ortho_init=False)
        if draw == "host":
            (o_pi, o_v), (l_pi, l_v) = ortho.init_numpy(0), lecun.init_numpy(0)
        else:
            (o_pi, o_v), (l_pi, l_v) = ortho.init(jax.random.key(0)), lecun.init(jax.random.key(0))
        assert o_pi.shape == l_pi.shape and o_v.shape == l_v.shape
        (w0, w1, w2), mlp = _kernels(ortho, o_pi, True)
        gram = lambda w: w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        np.testing.assert_allclose(gram(w0), 2.0 * np.eye(min(w0.shape)), atol=1e-4)
        np.testing.assert_allclose(gram(w1), 2.0 * np.eye(64), atol=1e-4)
        np.testing.assert_allclose(gram(w2), 1e-4 * np.eye(n_actions), atol=1e-7)
        value_out = _kernels(ortho, o_v, False)[0][2]
        np.testing.assert_allclose(gram(value_out), np.eye(1), atol=1e-5)
        # LeCun normal: variance 1/fan_in, truncated at 2 standard deviations of the normal
        # before rescaling, never orthogonal; the output layers are not scaled down
        (l0, l1, l2), lmlp = _kernels(lecun, l_pi, True)
        for w in (l0, l1, l2, *_kernels(lecun, l_v, False)[0]):
            bound = 2.0 / 0.87962566103423978 / math.sqrt(w.shape[0])
            assert np.abs(w).max() <= bound * (1 + 1e-6)
        assert np.std(l1) == pytest.approx(1 / 8, rel=0.05)
        assert np.std(l2) == pytest.approx(1 / 8, rel=0.3)
        assert np.abs(l1.T @ l1 - np.eye(64)).max() > 0.1
        for m in (mlp, lmlp):
            assert all(not np.asarray(m[f"Dense_{i}"]["bias"]).any() for i in range(3))


def test_ortho_init_reaches_the_starting_networks():
    config = TINY.replace(hidden=(64,), ortho_init=False)
    start = train_module.initial_params(train_module.prepare(config), [0])
    model = model_from_config(config)
    assert not model.ortho_init
    np.testing.assert_array_equal(start.policy[0], model.init_numpy(0)[0])
    ortho = model_from_config(TINY.replace(hidden=(64,)))
    assert not np.allclose(start.policy[0], ortho.init_numpy(0)[0])
    result = train(config, 0)
    assert np.isfinite(result.mean_return).all()


# ------------------------------------------------------------------------------------------
# adam_eps
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("eps", [1e-5, 0.01, 1.0])
def test_adam_eps_is_the_denominators_epsilon(eps, cartpole_params, cartpole_batch):
    """One full-batch Adam step from a fresh state: Adam's bias-corrected moments are g and g²,
    so the step is lr·g/(|g| + ε) exactly, ε = ``adam_eps``."""
    from conftest import CARTPOLE_MODEL

    params = tuple(cartpole_params)
    hp = PPOHyper.from_config(TrainConfig(), lr=0.5, max_grad_norm=1e9, adam_eps=eps)
    assert float(hp.adam_eps) == pytest.approx(eps)
    opt_state = optimizer(hp.max_grad_norm).init(params)
    new, _, _ = ppo_update(params, opt_state, cartpole_batch, jax.random.key(0), hp,
                           CARTPOLE_MODEL, epochs=1, minibatches=1)
    grads, _ = jax.grad(ppo_loss, has_aux=True)(params, cartpole_batch, hp, CARTPOLE_MODEL,
                                                "clip", False)
    for p, q, g in zip(params, new, grads):
        want = p - 0.5 * g / (jnp.abs(g) + eps)
        np.testing.assert_allclose(q, want, rtol=2e-3, atol=1e-6)


def test_adam_eps_reaches_the_trpo_critic(cartpole_params, cartpole_batch):
    from conftest import CARTPOLE_MODEL

    from course_lib.rl.trpo import TRPOHyper, fit_value

    v = cartpole_params.value
    fits = []
    for eps in (1e-5, 10.0):
        hp = TRPOHyper.from_config(TrainConfig(adam_eps=eps))
        assert float(hp.adam_eps) == pytest.approx(eps)
        new, _ = fit_value(v, optimizer(hp.max_grad_norm).init(v), cartpole_batch,
                           jax.random.key(0), hp, CARTPOLE_MODEL, epochs=1, minibatches=1)
        fits.append(np.abs(np.asarray(new - v)).max())
    assert fits[1] < 0.1 * fits[0]  # a large ε shrinks Adam's step
