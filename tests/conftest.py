"""Test-wide settings and the helpers several test files share.

* Rank promotion raises, so a silent [T,1] + [T] broadcast is a failure.
* ``run``: a fixture that runs a function eagerly and, in a second parametrisation, under
  ``jax.jit``; a test taking ``run`` checks both paths (tracing must not change a result).
* ``TINY_CONFIG``: the smallest training run (2 iterations of 2 envs × 16 steps, a (8,)
  network), for tests of the training machinery rather than of learning.
* ``CARTPOLE_MODEL`` / ``CARTPOLE``, and the fixtures ``cartpole_params`` (a non-uniform policy,
  an untrained critic) and ``cartpole_batch`` (4 × 32 steps of it): a CartPole actor-critic
  small enough that nothing needs training.
"""

import jax
import pytest
from hypothesis import settings

from course_lib import ActorCritic, Params, TrainConfig, collect_batch, make_env

# Property tests draw the same examples on every run: CI passes or fails reproducibly.
settings.register_profile("course", derandomize=True)
settings.load_profile("course")

jax.config.update("jax_numpy_rank_promotion", "raise")

TINY_CONFIG = TrainConfig(total_steps=2 * 2 * 16, num_envs=2, num_steps=16, minibatches=2,
                          hidden=(8,))


CARTPOLE_MODEL = ActorCritic(obs_dim=4, n_actions=2, discrete=True, hidden=(16,))
CARTPOLE = make_env("CartPole-v1")


@pytest.fixture(scope="session")
def cartpole_params() -> Params:
    """A non-uniform CartPole policy (its initialisation perturbed) and an untrained critic."""
    pi, v = CARTPOLE_MODEL.init(jax.random.key(0))
    return Params(pi + 0.3 * jax.random.normal(jax.random.key(1), pi.shape), v)


@pytest.fixture(scope="session")
def cartpole_batch(cartpole_params):
    return collect_batch(cartpole_params, CARTPOLE_MODEL, CARTPOLE, jax.random.key(2),
                         num_envs=4, num_steps=32)


@pytest.fixture(params=["eager", "jit"])
def run(request):
    """``run(fn, *args)``: ``fn(*args)`` eagerly, or ``jax.jit(fn)(*args)``."""
    if request.param == "jit":
        return lambda fn, *args: jax.jit(fn)(*args)
    return lambda fn, *args: fn(*args)
