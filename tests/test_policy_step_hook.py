"""TrainConfig.policy_step: a learner's TRPO step replaces the library's inside train (issue 16,
lesson 06's capstone)."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

import course_lib as cl
from course_lib.rl.train import initial_params


def test_policy_step_must_be_a_function():
    with pytest.raises(TypeError, match="policy_step"):
        cl.TrainConfig(algo="trpo", policy_step=3).validate()


def test_train_takes_the_given_policy_step_and_its_arguments():
    seen = {}

    def stay(surrogate_fn, kl_fn, params, delta):
        seen["shapes"] = (params.shape, jnp.shape(surrogate_fn(params)), jnp.shape(kl_fn(params)),
                          jnp.shape(delta))
        return params

    config = cl.TrainConfig(algo="trpo", policy_step=stay, total_steps=2048)
    result = cl.train(config, seed=0)
    start = initial_params(config, [0])
    np.testing.assert_array_equal(np.asarray(result.params.policy), start.policy[0])
    assert not np.array_equal(np.asarray(result.params.value), start.value[0])  # the critic learns
    (p,), surrogate_shape, kl_shape, delta_shape = seen["shapes"]
    assert p == start.policy.shape[1] and surrogate_shape == kl_shape == delta_shape == ()
    assert np.all(np.asarray(result.diagnostics["accepted"]) == 0.0)


def test_ppo_update_must_be_a_function():
    with pytest.raises(TypeError, match="ppo_update"):
        cl.TrainConfig(algo="ppo", ppo_update="mine").validate()


def test_train_takes_the_given_ppo_update():
    calls = []

    def frozen(params, opt_state, batch, key, hp, model, epochs, minibatches):
        calls.append((epochs, minibatches, batch.obs.shape))
        return params, opt_state

    config = cl.TrainConfig(algo="ppo", ppo_update=frozen, total_steps=2048)
    result = cl.train(config, seed=0)
    start = initial_params(config, [0])
    np.testing.assert_array_equal(np.asarray(result.params.policy), start.policy[0])
    np.testing.assert_array_equal(np.asarray(result.params.value), start.value[0])
    assert calls[0][:2] == (config.epochs, config.minibatches)
    assert calls[0][2] == (config.batch_size, 4)
