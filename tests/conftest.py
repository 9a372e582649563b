"""Test-wide settings and the helpers several test files share.

* Rank promotion raises, so a silent [T,1] + [T] broadcast is a failure.
* ``run``: a fixture that runs a function eagerly and, in a second parametrisation, under
  ``jax.jit``; a test taking ``run`` checks both paths (tracing must not change a result).
* ``TINY_CONFIG``: the smallest training run (2 iterations of 2 envs × 16 steps, a (8,)
  network), for tests of the training machinery rather than of learning.
"""

import jax
import pytest

from course_lib import TrainConfig

jax.config.update("jax_numpy_rank_promotion", "raise")

TINY_CONFIG = TrainConfig(total_steps=2 * 2 * 16, num_envs=2, num_steps=16, minibatches=2,
                          hidden=(8,))


@pytest.fixture(params=["eager", "jit"])
def run(request):
    """``run(fn, *args)``: ``fn(*args)`` eagerly, or ``jax.jit(fn)(*args)``."""
    if request.param == "jit":
        return lambda fn, *args: jax.jit(fn)(*args)
    return lambda fn, *args: fn(*args)
