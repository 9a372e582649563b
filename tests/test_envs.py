"""The JAX-native environments follow gymnasium transition by transition.

Each comparison puts gymnasium's own env into a sampled state, takes the same action in
both and compares what comes back. The JAX side is one jitted vmap over all samples;
only gymnasium is stepped in a Python loop.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.rl import envs
from course_lib.rl.envs import (
    EnvState,
    gymnasium_env,
    make_env,
    set_gymnasium_state,
    step_autoreset,
)

# float32 (JAX) against float64 (gymnasium) after one step.
RTOL = 1e-5
ATOL = 1e-5
# A next state this close to a termination threshold may legitimately fall on different
# sides of it in float32 and float64: such transitions are left out of the exact
# termination comparison (and counted, so almost none may be left out).
THRESHOLD_MARGIN = 1e-5


# ----------------------------------------------------------------------------- sampling


def _reset_states(env_id: str, n: int, seed: int) -> np.ndarray:
    keys = jax.random.split(jax.random.key(seed), n)
    states, _ = jax.vmap(make_env(env_id).reset)(keys)
    return np.asarray(states.physics)


def _rollout_states(env_id: str, n: int, seed: int) -> np.ndarray:
    """States that gymnasium itself visits under a random policy (not terminal ones)."""
    rng = np.random.default_rng(seed)
    gym_env = gymnasium_env(env_id)
    gym_env.action_space.seed(seed)
    out: list[np.ndarray] = []
    _, _ = gym_env.reset(seed=seed)
    while len(out) < n:
        out.append(np.array(gym_env.unwrapped.state, dtype=np.float32))
        _, _, terminated, truncated, _ = gym_env.step(gym_env.action_space.sample())
        if terminated or truncated:
            _, _ = gym_env.reset(seed=int(rng.integers(2**31)))
    gym_env.close()
    return np.stack(out)


def _uniform_states(env_id: str, n: int, seed: int) -> np.ndarray:
    """States spread over the region an episode can be in."""
    rng = np.random.default_rng(seed)
    if env_id == "CartPole-v1":
        high = np.array([2.4, 2.5, envs.CARTPOLE_THETA_THRESHOLD, 3.5])
    else:
        high = np.array([4 * math.pi, 8.0])  # θ is never wrapped; |θ̇| ≤ 8
    return rng.uniform(-high, high, size=(n, high.size)).astype(np.float32)


def _sample(env_id: str, seed: int = 0):
    """~1,200 (physics, t, action) triples from resets, rollouts and uniform states."""
    env = make_env(env_id)
    physics = np.concatenate(
        [
            _reset_states(env_id, 200, seed),
            _rollout_states(env_id, 500, seed + 1),
            _uniform_states(env_id, 500, seed + 2),
        ]
    )
    n = len(physics)
    rng = np.random.default_rng(seed + 3)
    t = rng.integers(0, env.max_episode_steps - 1, size=n).astype(np.int32)
    t[rng.random(n) < 0.1] = env.max_episode_steps - 1  # the step that hits the limit
    if env.discrete:
        actions = rng.integers(0, env.n_actions, size=n).astype(np.int32)
    else:  # past the bounds too, so the torque clip is exercised
        actions = rng.uniform(-1.5, 1.5, size=(n, env.n_actions)) * env.action_high
        actions = actions.astype(np.float32)
    return physics, t, actions


def _gymnasium_steps(env_id: str, physics, t, actions) -> dict[str, np.ndarray]:
    gym_env = gymnasium_env(env_id)
    gym_env.reset(seed=0)
    rows = []
    for p, ti, a in zip(physics, t, actions, strict=True):
        set_gymnasium_state(gym_env, p, int(ti))
        action = int(a) if np.ndim(a) == 0 else a
        obs, reward, terminated, truncated, _ = gym_env.step(action)
        rows.append((np.array(gym_env.unwrapped.state), obs, reward, terminated, truncated))
    gym_env.close()
    state, obs, reward, terminated, truncated = (np.array(c) for c in zip(*rows, strict=True))
    return {
        "state": state,
        "obs": obs,
        "reward": reward,
        "terminated": terminated,
        "truncated": truncated,
    }


def _jax_steps(env_id: str, physics, t, actions) -> dict[str, np.ndarray]:
    env = make_env(env_id)
    step = jax.jit(jax.vmap(env.step))
    state, obs, reward, terminated, truncated = step(
        EnvState(jnp.asarray(physics), jnp.asarray(t)), jnp.asarray(actions)
    )
    return {
        "state": np.asarray(state.physics),
        "t": np.asarray(state.t),
        "obs": np.asarray(obs),
        "reward": np.asarray(reward),
        "terminated": np.asarray(terminated),
        "truncated": np.asarray(truncated),
    }


# ----------------------------------------------------------------------------- gymnasium


@pytest.fixture(scope="module", params=["CartPole-v1", "Pendulum-v1"])
def transitions(request):
    env_id = request.param
    physics, t, actions = _sample(env_id)
    return (
        env_id,
        t,
        _jax_steps(env_id, physics, t, actions),
        _gymnasium_steps(env_id, physics, t, actions),
    )


def test_enough_transitions(transitions):
    _, t, jx, _ = transitions
    assert len(t) >= 1000
    assert jx["state"].dtype == np.float32 and jx["obs"].dtype == np.float32


def test_next_state_and_obs_match(transitions):
    _, _, jx, gym = transitions
    np.testing.assert_allclose(jx["state"], gym["state"], rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(jx["obs"], gym["obs"], rtol=RTOL, atol=ATOL)
    assert gym["obs"].dtype == np.float32


def test_reward_matches(transitions):
    env_id, _, jx, gym = transitions
    if env_id == "CartPole-v1":
        np.testing.assert_array_equal(jx["reward"], gym["reward"])
    else:
        np.testing.assert_allclose(jx["reward"], gym["reward"], rtol=RTOL, atol=ATOL)
        assert (gym["reward"] < -1.0).any()  # not only near-upright states


def test_terminated_matches(transitions):
    env_id, _, jx, gym = transitions
    if env_id == "CartPole-v1":
        x, theta = gym["state"][:, 0], gym["state"][:, 2]
        near = (np.abs(np.abs(x) - envs.CARTPOLE_X_THRESHOLD) < THRESHOLD_MARGIN) | (
            np.abs(np.abs(theta) - envs.CARTPOLE_THETA_THRESHOLD) < THRESHOLD_MARGIN
        )
        assert near.sum() <= 5, "too many samples on a threshold to test termination"
        np.testing.assert_array_equal(jx["terminated"][~near], gym["terminated"][~near])
        # Both outcomes are exercised, so a constant answer would fail.
        assert gym["terminated"][~near].any() and not gym["terminated"][~near].all()
    else:
        assert not gym["terminated"].any() and not jx["terminated"].any()


def test_truncated_at_time_limit(transitions):
    env_id, t, jx, gym = transitions
    limit = make_env(env_id).max_episode_steps
    np.testing.assert_array_equal(jx["truncated"], gym["truncated"])
    np.testing.assert_array_equal(jx["truncated"], t + 1 >= limit)
    np.testing.assert_array_equal(jx["t"], t + 1)
    assert jx["truncated"].any() and not jx["truncated"].all()


def test_a_whole_episode_from_the_same_start_matches():
    """Short-horizon agreement along one episode (errors compound only slowly)."""
    env = make_env("CartPole-v1")
    state, obs = env.reset(jax.random.key(7))
    gym_env = gymnasium_env("CartPole-v1")
    gym_env.reset(seed=0)
    set_gymnasium_state(gym_env, np.asarray(state.physics))
    step = jax.jit(env.step)
    rng = np.random.default_rng(0)
    for _ in range(30):
        action = int(rng.integers(2))
        state, obs, reward, terminated, truncated = step(state, action)
        g_obs, g_reward, g_terminated, g_truncated, _ = gym_env.step(action)
        np.testing.assert_allclose(obs, g_obs, rtol=1e-4, atol=1e-5)
        assert (float(reward), bool(terminated), bool(truncated)) == (
            g_reward,
            g_terminated,
            g_truncated,
        )
        if g_terminated:
            break


# ----------------------------------------------------------------------------- reset


def test_cartpole_reset_distribution():
    keys = jax.random.split(jax.random.key(0), 4000)
    state, obs = jax.vmap(make_env("CartPole-v1").reset)(keys)
    p = np.asarray(state.physics)
    assert p.shape == (4000, 4) and p.dtype == np.float32
    assert (np.abs(p) <= 0.05).all()
    assert (p.min(axis=0) < -0.049).all() and (p.max(axis=0) > 0.049).all()
    np.testing.assert_array_equal(obs, p)
    assert (np.asarray(state.t) == 0).all()


def test_pendulum_reset_distribution():
    keys = jax.random.split(jax.random.key(0), 4000)
    state, obs = jax.vmap(make_env("Pendulum-v1").reset)(keys)
    th, thdot = np.asarray(state.physics).T
    assert (np.abs(th) <= np.float32(math.pi)).all() and (np.abs(thdot) <= 1.0).all()
    assert th.min() < -3.1 and th.max() > 3.1 and thdot.min() < -0.99 and thdot.max() > 0.99
    np.testing.assert_allclose(obs, np.stack([np.cos(th), np.sin(th), thdot], 1), atol=1e-6)
    assert (np.asarray(state.t) == 0).all()


def test_gymnasium_reset_is_in_the_same_bounds():
    for env_id, bound in [("CartPole-v1", [0.05] * 4), ("Pendulum-v1", [math.pi, 1.0])]:
        gym_env = gymnasium_env(env_id)
        for seed in range(20):
            gym_env.reset(seed=seed)
            assert (np.abs(gym_env.unwrapped.state) <= bound).all()


# ----------------------------------------------------------------------------- API


@pytest.mark.parametrize("env_id", ["CartPole-v1", "Pendulum-v1"])
def test_vmap_over_8_envs_matches_one_by_one(env_id):
    env = make_env(env_id)
    keys = jax.random.split(jax.random.key(1), 8)
    states, obs = jax.vmap(env.reset)(keys)
    assert obs.shape == (8, env.obs_dim)
    if env.discrete:
        actions = jnp.arange(8) % env.n_actions
    else:
        actions = jnp.linspace(-2.0, 2.0, 8)[:, None]
    batch = jax.vmap(env.step)(states, actions)
    assert batch[1].shape == (8, env.obs_dim)
    assert batch[2].shape == batch[3].shape == batch[4].shape == (8,)
    for i in range(8):
        one = env.step(jax.tree.map(lambda x, i=i: x[i], states), actions[i])
        np.testing.assert_allclose(batch[1][i], one[1], rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(batch[2][i], one[2], rtol=1e-6, atol=1e-7)


def test_step_autoreset_on_truncation_returns_final_obs():
    env = make_env("Pendulum-v1")
    state = EnvState(jnp.array([0.5, -1.0], jnp.float32), jnp.int32(env.max_episode_steps - 1))
    key = jax.random.key(3)
    auto = jax.jit(step_autoreset, static_argnums=0)
    new_state, obs, reward, terminated, truncated, final_obs = auto(env, state, jnp.ones(1), key)
    _stepped, real_obs, real_reward, _, _ = env.step(state, jnp.ones(1))
    reset_state, reset_obs = env.reset(key)
    assert bool(truncated) and not bool(terminated)
    np.testing.assert_allclose(final_obs, real_obs, rtol=1e-6)
    np.testing.assert_allclose(obs, reset_obs, rtol=1e-6)
    np.testing.assert_allclose(new_state.physics, reset_state.physics, rtol=1e-6)
    assert int(new_state.t) == 0
    assert float(reward) == pytest.approx(float(real_reward))


def test_step_autoreset_on_termination():
    env = make_env("CartPole-v1")
    state = EnvState(jnp.array([2.39, 2.0, 0.0, 0.0], jnp.float32), jnp.int32(10))
    new_state, obs, reward, terminated, truncated, final_obs = step_autoreset(
        env, state, 1, jax.random.key(4)
    )
    assert bool(terminated) and not bool(truncated) and float(reward) == 1.0
    assert float(final_obs[0]) > 2.4  # the real next observation, off the track
    assert (np.abs(np.asarray(obs)) <= 0.05).all() and int(new_state.t) == 0


def test_step_autoreset_without_done_just_steps():
    env = make_env("CartPole-v1")
    state, _ = env.reset(jax.random.key(5))
    new_state, obs, _, terminated, truncated, final_obs = step_autoreset(
        env, state, 0, jax.random.key(6)
    )
    stepped, stepped_obs, *_ = env.step(state, 0)
    assert not bool(terminated) and not bool(truncated)
    np.testing.assert_array_equal(obs, final_obs)
    np.testing.assert_array_equal(obs, stepped_obs)
    np.testing.assert_array_equal(new_state.physics, stepped.physics)
    assert int(new_state.t) == 1


def test_jit_equals_eager():
    env = make_env("Pendulum-v1")
    state, _ = env.reset(jax.random.key(8))
    eager = env.step(state, jnp.array([0.7]))
    jitted = jax.jit(env.step)(state, jnp.array([0.7]))
    for a, b in zip(eager[1:], jitted[1:], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


def test_unknown_env_id_raises_naming_it():
    with pytest.raises(ValueError, match="MountainCar-v0") as info:
        make_env("MountainCar-v0")
    assert "CartPole-v1" in str(info.value) and "Pendulum-v1" in str(info.value)


@pytest.mark.parametrize(
    "env_id, action", [("CartPole-v1", jnp.array([1])), ("Pendulum-v1", jnp.float32(1.0))]
)
def test_wrong_action_shape_raises(env_id, action):
    env = make_env(env_id)
    state, _ = env.reset(jax.random.key(0))
    with pytest.raises(ValueError, match="action"):
        env.step(state, action)


def test_env_attributes():
    cartpole, pendulum = make_env("CartPole-v1"), make_env("Pendulum-v1")
    assert (cartpole.obs_dim, cartpole.discrete, cartpole.n_actions) == (4, True, 2)
    assert cartpole.max_episode_steps == 500
    assert (pendulum.obs_dim, pendulum.discrete, pendulum.n_actions) == (3, False, 1)
    assert (pendulum.action_low, pendulum.action_high, pendulum.max_episode_steps) == (
        -2.0,
        2.0,
        200,
    )
    for env in (cartpole, pendulum):
        gym_env = gymnasium_env(env.env_id)
        assert gym_env.observation_space.shape == (env.obs_dim,)
        assert gym_env.spec.max_episode_steps == env.max_episode_steps
    assert make_env("CartPole-v1") == cartpole and hash(make_env("CartPole-v1")) == hash(cartpole)


def test_step_autoreset_vmaps_over_envs():
    env = make_env("CartPole-v1")
    keys = jax.random.split(jax.random.key(9), 8)
    states, _ = jax.vmap(env.reset)(keys)
    states = states._replace(t=jnp.arange(8, dtype=jnp.int32) + env.max_episode_steps - 4)
    auto = jax.jit(jax.vmap(step_autoreset, in_axes=(None, 0, 0, 0)), static_argnums=0)
    new, obs, _, _, truncated, final_obs = auto(env, states, jnp.ones(8, jnp.int32), keys)
    np.testing.assert_array_equal(truncated, np.arange(8) >= 3)
    np.testing.assert_array_equal(new.t, np.where(np.arange(8) >= 3, 0, np.arange(8) + 497))
    np.testing.assert_array_equal(obs[:3], final_obs[:3])
    assert not np.allclose(obs[3:], final_obs[3:])
