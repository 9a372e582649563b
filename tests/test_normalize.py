"""The running normalisers (course_lib.rl.normalize) against gymnasium's RunningMeanStd and
plain NumPy: the parallel update, the normalisation, the reward scaler's discounted return."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnasium.wrappers.utils import RunningMeanStd as GymRunningMeanStd

from course_lib.rl.normalize import (
    Normalizers,
    init_normalizers,
    normalize,
    observe,
    running_stats,
    scale_rewards,
    update_stats,
)


def test_fresh_stats_are_gymnasiums():
    gym = GymRunningMeanStd(shape=(3,))
    ours = running_stats((3,))
    np.testing.assert_array_equal(ours.mean, gym.mean)
    np.testing.assert_array_equal(ours.var, gym.var)
    assert float(ours.count) == pytest.approx(gym.count)


@pytest.mark.parametrize("jit", [False, True])
def test_parallel_update_matches_gymnasium_and_numpy(jit):
    rng = np.random.default_rng(0)
    batches = [rng.normal([1.0, -2.0, 5.0], [0.5, 3.0, 0.01], size=(b, 3)) for b in (1, 8, 3, 50)]
    update = jax.jit(update_stats) if jit else update_stats
    gym, ours = GymRunningMeanStd(shape=(3,)), running_stats((3,))
    for x in batches:
        gym.update(x)
        ours = update(ours, jnp.asarray(x, jnp.float32))
        np.testing.assert_allclose(ours.mean, gym.mean, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ours.var, gym.var, rtol=1e-4, atol=1e-7)
        assert float(ours.count) == pytest.approx(gym.count, rel=1e-6)
    data = np.concatenate(batches)
    # the statistics of all rows seen and of the prior, one pseudo-row of weight c = 1e-4 with
    # mean 0 and variance 1: E[x] = Σx/(n+c), Var = (c + Σx²)/(n+c) − E[x]²
    n, c = len(data), 1e-4
    mean = data.sum(axis=0) / (n + c)
    np.testing.assert_allclose(ours.mean, mean, rtol=1e-5)
    np.testing.assert_allclose(ours.var, (c + (data**2).sum(axis=0)) / (n + c) - mean**2,
                               rtol=1e-3)
    np.testing.assert_allclose(ours.var[:2], data.var(axis=0)[:2], rtol=1e-4)


def test_normalize_is_the_clipped_standard_score():
    stats = update_stats(running_stats((2,)), jnp.array([[0.0, 10.0], [2.0, 30.0]]))
    x = jnp.array([[1.0, 20.0], [3.0, 1000.0], [-1.0, -1000.0]])
    want = np.clip((np.asarray(x) - np.asarray(stats.mean)) / np.sqrt(np.asarray(stats.var) + 1e-8),
                   -10, 10)
    np.testing.assert_allclose(normalize(stats, x), want, rtol=1e-6)
    got = np.asarray(normalize(stats, x))
    assert got[1, 1] == 10.0 and got[2, 1] == -10.0
    np.testing.assert_allclose(normalize(stats, x[0]), want[0], rtol=1e-6)  # one row


def test_observe_updates_then_normalises_and_is_the_identity_when_off():
    obs = jnp.array([[1.0, 2.0], [3.0, 6.0]])
    off = Normalizers()
    assert observe(off, obs)[1] is obs
    on = init_normalizers(2, 2, normalize_obs=True, scale_rewards=False)
    norm, seen = observe(on, obs)
    np.testing.assert_allclose(norm.obs.mean, [2.0, 4.0], rtol=1e-4)
    np.testing.assert_allclose(seen, normalize(norm.obs, obs))
    assert norm.ret is None and norm.disc_return is None


def test_scale_rewards_follows_the_discounted_return_and_resets_at_episode_ends():
    """A NumPy loop of CleanRL's ``NormalizeReward`` (G ← γG + r, update, r/√(var+1e-8),
    G ← 0 where done) with gymnasium's RunningMeanStd, over 3 envs and 40 steps."""
    rng = np.random.default_rng(1)
    gamma, n, t = 0.9, 3, 40
    rewards = rng.normal(-3.0, 2.0, size=(t, n))
    dones = rng.random((t, n)) < 0.1
    norm = init_normalizers(4, n, normalize_obs=False, scale_rewards=True)
    step = jax.jit(scale_rewards)
    gym, g = GymRunningMeanStd(shape=()), np.zeros(n)
    for r, d in zip(rewards, dones):
        g = g * gamma + r
        gym.update(g)
        want = r / np.sqrt(gym.var + 1e-8)
        g = np.where(d, 0.0, g)
        norm, got = step(norm, jnp.asarray(r, jnp.float32), jnp.asarray(d), jnp.float32(gamma))
        np.testing.assert_allclose(got, want, rtol=1e-4)
        np.testing.assert_allclose(norm.disc_return, g, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(norm.ret.var, gym.var, rtol=1e-4)
    assert norm.obs is None
    unchanged = Normalizers()
    r = jnp.ones(3)
    assert scale_rewards(unchanged, r, jnp.zeros(3, bool), 0.9)[1] is r
