"""TrainConfig.policy_step: a learner's TRPO step replaces the library's inside train (issue 16,
lesson 06's capstone); TrainConfig.ppo_update (lesson 07's) and TrainConfig.gaussian_fns (lesson
08's) likewise."""

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


PENDULUM = {"env": "Pendulum-v1", "total_steps": 2 * 8 * 256, "num_steps": 256, "gamma": 0.9,
            "lr": 1e-3}
LIBRARY_GAUSSIAN = (cl.gaussian_log_prob, cl.gaussian_entropy, cl.gaussian_kl)


@pytest.mark.parametrize("bad", [cl.gaussian_kl, (cl.gaussian_kl,), (1, 2, 3)])
def test_gaussian_fns_must_be_three_functions(bad):
    with pytest.raises(TypeError, match="gaussian_fns"):
        cl.TrainConfig(gaussian_fns=bad).validate()


def test_gaussian_fns_on_a_discrete_env_is_refused():
    with pytest.raises(ValueError, match="gaussian_fns.*discrete"):
        cl.train(cl.TrainConfig(algo="ppo", gaussian_fns=LIBRARY_GAUSSIAN, total_steps=1024),
                 seed=0)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_the_library_functions_given_as_gaussian_fns_train_the_same_agent(algo):
    base = cl.TrainConfig(algo=algo, **PENDULUM)
    own = cl.train(base.replace(gaussian_fns=LIBRARY_GAUSSIAN), seed=0)
    ref = cl.train(base, seed=0)
    np.testing.assert_array_equal(np.asarray(own.params.policy), np.asarray(ref.params.policy))
    np.testing.assert_array_equal(np.asarray(own.diagnostics["kl"]),
                                  np.asarray(ref.diagnostics["kl"]))


def test_train_uses_every_given_gaussian_function():
    calls = set()

    def log_prob(mean, log_std, actions):
        calls.add("log_prob")
        return cl.gaussian_log_prob(mean, log_std, actions)

    def entropy(mean, log_std):
        calls.add("entropy")
        return cl.gaussian_entropy(mean, log_std)

    def doubled_kl(p_mean, p_log_std, q_mean, q_log_std):
        calls.add("kl")
        return 2.0 * cl.gaussian_kl(p_mean, p_log_std, q_mean, q_log_std)

    base = cl.TrainConfig(algo="trpo", **PENDULUM)
    own = cl.train(base.replace(gaussian_fns=(log_prob, entropy, doubled_kl)), seed=0)
    ref = cl.train(base, seed=0)
    assert calls == {"log_prob", "entropy", "kl"}
    # TRPO's constraint and the KL diagnostic both see the given KL: twice the true one, so the
    # steps are shorter and the reported KL is the doubled one, still within delta
    kl_own, kl_ref = np.asarray(own.diagnostics["kl"]), np.asarray(ref.diagnostics["kl"])
    assert np.all(kl_own <= base.delta * (1 + 1e-4))
    assert not np.array_equal(kl_own, kl_ref)
