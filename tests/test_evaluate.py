"""How good a policy is (course_lib.rl.evaluate): episode_returns in the jitted JAX env, with
common random numbers, checked against a Python loop and against gymnasium itself."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CARTPOLE, CARTPOLE_MODEL

from course_lib.rl.envs import make_env, set_gymnasium_state
from course_lib.rl.evaluate import episode_returns
from course_lib.rl.networks import ActorCritic

MODEL, ENV = CARTPOLE_MODEL, CARTPOLE
LOGITS = jax.jit(lambda theta, obs: MODEL.policy(theta, obs).logits)


@pytest.fixture(scope="module")
def theta(cartpole_params) -> jax.Array:
    return cartpole_params.policy


def _biased_policy(action: int | None) -> jax.Array:
    """Parameters whose output layer always prefers ``action`` (None: the uniform policy)."""
    pi = jnp.zeros_like(MODEL.init(jax.random.key(0))[0])
    if action is None:
        return pi
    # Flat layout (flax, keys sorted): Dense_0 bias [16], kernel [4·16], Dense_1 bias [2], ...
    return pi.at[80:82].set(jnp.array([-20.0, 20.0]) * (1 if action == 1 else -1))


def _python_returns(theta, key, n_episodes, greedy):
    """Reference: the documented key scheme, one un-jitted env.step at a time."""
    k_reset, k_noise = jax.random.split(key)
    states, obs = jax.vmap(ENV.reset)(jax.random.split(k_reset, n_episodes))
    noise = jax.random.gumbel(k_noise, (ENV.max_episode_steps, n_episodes, 2))
    totals = np.zeros(n_episodes)
    alive = np.ones(n_episodes, bool)
    t = 0
    while alive.any():
        logits = LOGITS(theta, obs)
        actions = jnp.argmax(logits if greedy else logits + noise[t], axis=-1)
        states, obs, reward, term, trunc = jax.vmap(ENV.step)(states, actions.astype(jnp.int32))
        totals += np.where(alive, np.asarray(reward), 0.0)
        alive &= ~np.asarray(term | trunc)
        t += 1
    return totals


@pytest.mark.parametrize("greedy", [False, True])
def test_episode_returns_match_a_python_loop(theta, greedy):
    key = jax.random.key(11)
    got = episode_returns(theta, MODEL, ENV, key, episodes=8, greedy=greedy)
    np.testing.assert_array_equal(got, _python_returns(theta, key, 8, greedy))


def test_greedy_episode_returns_match_gymnasium(theta):
    """Same start states in gymnasium itself, the greedy policy: the same returns."""
    import gymnasium

    key = jax.random.key(12)
    got = np.asarray(episode_returns(theta, MODEL, ENV, key, episodes=8, greedy=True))
    k_reset, _ = jax.random.split(key)
    starts, _ = jax.vmap(ENV.reset)(jax.random.split(k_reset, 8))
    gym_env = gymnasium.make("CartPole-v1")
    try:
        for i in range(8):
            gym_env.reset(seed=0)
            set_gymnasium_state(gym_env, np.asarray(starts.physics[i]))
            obs = np.asarray(starts.physics[i], np.float32)
            total, done = 0.0, False
            while not done:
                action = int(jnp.argmax(LOGITS(theta, jnp.asarray(obs)[None])[0]))
                obs, reward, term, trunc, _ = gym_env.step(action)
                total += reward
                done = term or trunc
            assert total == got[i], i
    finally:
        gym_env.close()


def test_episode_returns_of_known_cartpole_policies():
    run = jax.jit(lambda p: episode_returns(p, MODEL, ENV, jax.random.key(3), 256))
    for action in (0, 1):
        pushing = np.asarray(run(_biased_policy(action)))
        assert np.all((pushing >= 8) & (pushing <= 11)), "always pushing one way ends in 8-11 steps"
    uniform = float(np.mean(run(_biased_policy(None))))
    assert 18.0 < uniform < 27.0, "a uniformly random policy lasts about 22 steps on average"


def test_episode_returns_use_common_random_numbers(theta):
    key = jax.random.key(5)
    run = jax.jit(lambda p: episode_returns(p, MODEL, ENV, key, 16))
    a, b = run(theta), run(theta + 0.0)
    np.testing.assert_array_equal(a, b)
    other = _biased_policy(1)
    many = jax.jit(jax.vmap(lambda p: episode_returns(p, MODEL, ENV, key, 16)))(
        jnp.stack([theta, other])
    )
    np.testing.assert_allclose(many[0], a)
    assert not np.allclose(many[1], a)


def test_episode_returns_reject_bad_arguments(theta):
    with pytest.raises(ValueError, match="episodes"):
        episode_returns(theta, MODEL, ENV, jax.random.key(0), episodes=0)
    with pytest.raises(ValueError, match="policy_params"):
        episode_returns(theta[None], MODEL, ENV, jax.random.key(0))
    with pytest.raises(ValueError, match="model"):
        episode_returns(theta, MODEL, make_env("Pendulum-v1"), jax.random.key(0))
    gaussian = ActorCritic(obs_dim=4, n_actions=2, discrete=False, hidden=(16,))
    with pytest.raises(ValueError, match="model"):
        episode_returns(theta, gaussian, ENV, jax.random.key(0))
