"""The one rollout of course_lib (course_lib.rl.rollout): run_envs → trajectory_batch → Batch,
and collect_batch, the fresh on-policy batch every lesson and the training loop share."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CARTPOLE, CARTPOLE_MODEL

from course_lib import TrainConfig
from course_lib.rl.envs import make_env
from course_lib.rl.networks import Params, model_from_config
from course_lib.rl.rollout import collect_batch
from course_lib.rl.train import init_carry, numbers, prepare, training_batch
from course_lib.rl.trpo import batch_kl

MODEL, ENV = CARTPOLE_MODEL, CARTPOLE


@pytest.fixture(scope="module")
def params(cartpole_params) -> Params:
    return cartpole_params


@pytest.fixture(scope="module")
def batch(cartpole_batch):
    return cartpole_batch


def test_collect_batch_is_on_policy_with_normalised_gae(params, batch):
    n = 4 * 32
    assert batch.obs.shape == (n, 4) and batch.actions.shape == (n,)
    assert batch.dist_old.logits.shape == (n, 2)
    dist = MODEL.policy(params.policy, batch.obs)
    np.testing.assert_allclose(batch.dist_old.logits, dist.logits, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        batch.logp_old, MODEL.log_prob(dist, batch.actions), rtol=1e-5, atol=1e-6
    )
    np.testing.assert_allclose(
        batch.values_old, MODEL.value(params.value, batch.obs), rtol=1e-5, atol=1e-5
    )
    raw = np.asarray(batch.returns - batch.values_old)
    expected = (raw - raw.mean()) / (raw.std() + 1e-8)
    np.testing.assert_allclose(batch.advantages, expected, rtol=1e-4, atol=1e-4)
    assert float(batch_kl(params.policy, batch, MODEL)) == pytest.approx(0.0, abs=1e-6)
    # CartPole starts every episode inside ±0.05 and ends it outside 12° or 2.4 m.
    assert np.all(np.abs(np.asarray(batch.obs)[:, 2]) <= 0.21)


def test_collect_batch_works_under_jit_and_vmap(params):
    one = collect_batch(params, MODEL, ENV, jax.random.key(5), num_envs=2, num_steps=16)
    jitted = jax.jit(lambda p, k: collect_batch(p, MODEL, ENV, k, num_envs=2, num_steps=16))
    np.testing.assert_allclose(jitted(params, jax.random.key(5)).advantages, one.advantages,
                               rtol=1e-5, atol=1e-5)
    keys = jax.random.split(jax.random.key(6), 3)
    many = jax.vmap(lambda k: collect_batch(params, MODEL, ENV, k, num_envs=2, num_steps=16))(keys)
    assert many.obs.shape == (3, 32, 4)


def test_collect_batch_rejects_bad_arguments(params):
    with pytest.raises(ValueError, match="num_steps"):
        collect_batch(params, MODEL, ENV, jax.random.key(0), num_envs=2, num_steps=0)
    with pytest.raises(ValueError, match="num_envs"):
        collect_batch(params, MODEL, ENV, jax.random.key(0), num_envs=0)
    with pytest.raises(ValueError, match="gamma"):
        collect_batch(params, MODEL, ENV, jax.random.key(0), gamma=1.5)
    with pytest.raises(TypeError, match="params"):
        collect_batch(params.policy, MODEL, ENV, jax.random.key(0))
    with pytest.raises(ValueError, match="model"):
        collect_batch(params, MODEL, make_env("Pendulum-v1"), jax.random.key(0))
    with pytest.raises(TypeError, match="env"):
        collect_batch(params, MODEL, "CartPole-v1", jax.random.key(0))


def test_the_training_loop_collects_with_the_same_rollout():
    """``training_batch`` (the batch iteration 0 of ``train`` updates on) is a run of the same
    rollout from the same start: its rows are on-policy for the initial parameters and its
    advantages are normalised GAE."""
    config = TrainConfig(total_steps=1024, num_envs=4, num_steps=64, hidden=(16,))
    static, num = prepare(config), numbers(config)
    carry = init_carry(static, num, jnp.int32(0))
    batch, lr, _ = training_batch(static, num, carry, jnp.int32(0))
    model = model_from_config(config)
    assert model == MODEL
    dist = model.policy(carry.learner.params.policy, batch.obs)
    np.testing.assert_allclose(batch.logp_old, model.log_prob(dist, batch.actions),
                               rtol=1e-5, atol=1e-6)
    assert batch.obs.shape == (256, 4)
    assert float(jnp.mean(batch.advantages)) == pytest.approx(0.0, abs=1e-5)
    assert float(lr) == pytest.approx(config.lr)
