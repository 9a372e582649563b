"""GAE (Schulman et al. 2016) against plain Python loops, its limits λ=0 and λ=1, and masks."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.core.advantages import gae, gae_from_next_values, normalize_advantages

RTOL = 2e-5
ATOL = 2e-5


def _rollout(shape, seed, p_done=0.1):
    rng = np.random.default_rng(seed)
    rewards = rng.normal(size=shape).astype(np.float32)
    values = rng.normal(size=shape).astype(np.float32)
    dones = (rng.random(shape) < p_done).astype(np.float32)
    last_value = rng.normal(size=shape[1:]).astype(np.float32)
    return rewards, values, dones, last_value


def _loop_gae(rewards, values, dones, last_value, gamma, lam, use_dones=True):
    """The textbook backward loop, in float64 (CleanRL's form)."""
    rewards, values, dones = (np.asarray(x, np.float64) for x in (rewards, values, dones))
    if not use_dones:
        dones = np.zeros_like(dones)
    advantages = np.zeros_like(rewards)
    running = np.zeros_like(rewards[0])
    for t in reversed(range(len(rewards))):
        next_value = last_value if t == len(rewards) - 1 else values[t + 1]
        nonterminal = 1.0 - dones[t]
        delta = rewards[t] + gamma * nonterminal * next_value - values[t]
        running = delta + gamma * lam * nonterminal * running
        advantages[t] = running
    return advantages


def _loop_discounted_returns(rewards, dones, last_value, gamma):
    """G_t = r_t + γ(1 − d_t) G_{t+1}, G_T = last_value: the Monte Carlo return."""
    returns = np.zeros(np.shape(rewards))
    running = np.asarray(last_value, np.float64)
    for t in reversed(range(len(rewards))):
        running = rewards[t] + gamma * (1.0 - dones[t]) * running
        returns[t] = running
    return returns


SHAPES = [(64,), (64, 5)]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("gamma, lam", [(0.99, 0.95), (0.9, 0.5), (1.0, 1.0), (0.0, 0.7)])
def test_gae_matches_python_loop(shape, gamma, lam):
    rewards, values, dones, last_value = _rollout(shape, seed=0)
    assert dones.any()
    adv, ret = gae(rewards, values, dones, last_value, gamma, lam)
    expected = _loop_gae(rewards, values, dones, last_value, gamma, lam)
    assert adv.shape == ret.shape == shape and adv.dtype == jnp.float32
    np.testing.assert_allclose(adv, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ret, expected + values, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("shape", SHAPES)
def test_lambda_one_is_monte_carlo_return_minus_value(shape):
    rewards, values, dones, last_value = _rollout(shape, seed=1)
    adv, ret = gae(rewards, values, dones, last_value, 0.97, 1.0)
    mc = _loop_discounted_returns(rewards, dones, last_value, 0.97)
    np.testing.assert_allclose(ret, mc, rtol=RTOL, atol=1e-4)
    np.testing.assert_allclose(adv, mc - values, rtol=RTOL, atol=1e-4)


@pytest.mark.parametrize("shape", SHAPES)
def test_lambda_zero_is_one_step_td_error(shape):
    rewards, values, dones, last_value = _rollout(shape, seed=2)
    adv, _ = gae(rewards, values, dones, last_value, 0.9, 0.0)
    next_values = np.concatenate([values[1:], last_value[None]])
    td = rewards + 0.9 * (1.0 - dones) * next_values - values
    np.testing.assert_allclose(adv, td, rtol=RTOL, atol=ATOL)


def test_done_mask_cuts_the_recursion():
    rewards, values, dones, last_value = _rollout((40, 3), seed=3, p_done=0.2)
    adv, _ = gae(rewards, values, dones, last_value, 0.99, 0.95)
    masked = _loop_gae(rewards, values, dones, last_value, 0.99, 0.95)
    unmasked = _loop_gae(rewards, values, dones, last_value, 0.99, 0.95, use_dones=False)
    np.testing.assert_allclose(adv, masked, rtol=RTOL, atol=ATOL)
    # A GAE that ignored the dones would be caught here.
    assert np.abs(np.asarray(adv) - unmasked).max() > 0.1


def test_nothing_after_a_done_reaches_the_steps_before_it():
    rewards, values, dones, last_value = _rollout((20,), seed=4, p_done=0.0)
    dones[9] = 1.0
    adv, _ = gae(rewards, values, dones, last_value, 0.99, 0.95)
    rewards2, values2 = rewards.copy(), values.copy()
    rewards2[10:] += 100.0
    values2[10:] -= 50.0
    adv2, _ = gae(rewards2, values2, dones, last_value + 7.0, 0.99, 0.95)
    np.testing.assert_array_equal(adv[:10], adv2[:10])
    assert not np.allclose(adv[10:], adv2[10:])


def test_bool_dones_equal_float_dones():
    rewards, values, dones, last_value = _rollout((30, 2), seed=5)
    a, _ = gae(rewards, values, dones, last_value, 0.99, 0.95)
    b, _ = gae(rewards, values, dones.astype(bool), last_value, 0.99, 0.95)
    np.testing.assert_array_equal(a, b)


def test_gae_is_gae_from_next_values_with_shifted_values():
    rewards, values, dones, last_value = _rollout((50, 4), seed=6)
    next_values = np.concatenate([values[1:], last_value[None]])
    a = gae(rewards, values, dones, last_value, 0.95, 0.9)
    b = gae_from_next_values(rewards, values, next_values, dones, dones, 0.95, 0.9)
    for x, y in zip(a, b, strict=True):
        np.testing.assert_array_equal(x, y)


def test_truncation_bootstraps_from_the_final_observation():
    """Reward 1 forever and V = 1/(1−γ) exactly: every TD error is 0 if truncation bootstraps.

    Step 9 is truncated by a time limit; step 10 starts a new episode. Treating the
    truncation as a termination would make δ_9 = 1 − V = −γ/(1−γ) instead.
    """
    gamma, lam, T = 0.9, 0.95, 20
    v = 1.0 / (1.0 - gamma)
    rewards = np.ones(T, np.float32)
    values = np.full(T, v, np.float32)
    next_values = np.full(T, v, np.float32)  # V of each step's real next observation
    terminations = np.zeros(T, np.float32)
    episode_ends = np.zeros(T, np.float32)
    episode_ends[9] = 1.0
    adv, ret = gae_from_next_values(
        rewards, values, next_values, terminations, episode_ends, gamma, lam
    )
    np.testing.assert_allclose(adv, 0.0, atol=1e-5)
    np.testing.assert_allclose(ret, v, rtol=1e-6)

    wrong, _ = gae_from_next_values(
        rewards, values, next_values, episode_ends, episode_ends, gamma, lam
    )
    assert float(wrong[9]) == pytest.approx(1.0 - v, rel=1e-5)


@pytest.mark.parametrize("shape", SHAPES)
def test_gae_from_next_values_matches_python_loop(shape):
    rng = np.random.default_rng(7)
    rewards, values, _, _ = _rollout(shape, seed=7)
    next_values = rng.normal(size=shape).astype(np.float32)
    terminations = (rng.random(shape) < 0.1).astype(np.float32)
    truncations = (rng.random(shape) < 0.1).astype(np.float32)
    ends = np.maximum(terminations, truncations)
    gamma, lam = 0.98, 0.9
    expected = np.zeros(shape)
    running = np.zeros(shape[1:])
    for t in reversed(range(shape[0])):
        if np.ndim(running) == 0:
            running = 0.0 if ends[t] else running
        else:
            running = np.where(ends[t] > 0, 0.0, running)
        bootstrap = np.where(terminations[t] > 0, 0.0, next_values[t])
        delta = rewards[t] + gamma * bootstrap - values[t]
        running = delta + gamma * lam * running
        expected[t] = running
    adv, ret = gae_from_next_values(rewards, values, next_values, terminations, ends, gamma, lam)
    np.testing.assert_allclose(adv, expected, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(ret, expected + values, rtol=RTOL, atol=ATOL)


def test_jit_equals_eager_and_hyperparameters_can_be_traced():
    rewards, values, dones, last_value = _rollout((32, 4), seed=8)
    eager = gae(rewards, values, dones, last_value, 0.99, 0.95)
    jitted = jax.jit(gae)(rewards, values, dones, last_value, 0.99, 0.95)
    for a, b in zip(eager, jitted, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
    # One compiled call over several λ (vmap over a traced hyper-parameter).
    lams = jnp.array([0.0, 0.5, 1.0])
    swept, _ = jax.vmap(lambda lam: gae(rewards, values, dones, last_value, 0.99, lam))(lams)
    for i, lam in enumerate([0.0, 0.5, 1.0]):
        expected = _loop_gae(rewards, values, dones, last_value, 0.99, lam)
        np.testing.assert_allclose(swept[i], expected, rtol=RTOL, atol=1e-4)


def test_normalize_advantages():
    adv = jnp.asarray(np.random.default_rng(9).normal(3.0, 5.0, size=(128, 4)), jnp.float32)
    out = normalize_advantages(adv)
    assert out.shape == adv.shape
    assert abs(float(out.mean())) < 1e-5 and float(out.std()) == pytest.approx(1.0, abs=1e-4)
    np.testing.assert_allclose(jax.jit(normalize_advantages)(adv), out, rtol=1e-6, atol=1e-6)


def test_normalize_batch_of_one_is_zero_not_nan():
    out = normalize_advantages(jnp.array([3.7]))
    assert np.isfinite(np.asarray(out)).all() and float(out[0]) == 0.0


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"values": np.zeros(9, np.float32)}, "values"),
        ({"values": np.zeros((10, 1), np.float32)}, "values"),
        ({"dones": np.zeros((10, 2), np.float32)}, "dones"),
        ({"last_value": np.zeros(1, np.float32)}, "last_value"),
        ({"rewards": np.zeros((10, 1, 1), np.float32)}, "rewards"),
        ({"gamma": 1.5}, "gamma"),
        ({"lam": -0.1}, "lam"),
    ],
)
def test_bad_arguments_raise_naming_them(kwargs, name):
    args = {
        "rewards": np.zeros(10, np.float32),
        "values": np.zeros(10, np.float32),
        "dones": np.zeros(10, np.float32),
        "last_value": np.float32(0.0),
        "gamma": 0.99,
        "lam": 0.95,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        gae(**args)


def test_bad_arguments_of_gae_from_next_values_raise_naming_them():
    x = np.zeros((10, 3), np.float32)
    for i, name in enumerate(["values", "next_values", "terminations", "episode_ends"]):
        args = [x, x, x, x, x]
        args[i + 1] = np.zeros((10,), np.float32)
        with pytest.raises(ValueError, match=name):
            gae_from_next_values(*args, 0.99, 0.95)


def test_normalize_bad_arguments():
    with pytest.raises(ValueError, match="eps"):
        normalize_advantages(jnp.ones(3), eps=0.0)
    with pytest.raises(ValueError, match="advantages"):
        normalize_advantages(jnp.ones(0))
