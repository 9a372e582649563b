"""course_lib: the JAX library behind the course "Why PPO's clip works".

The reference TRPO/PPO library is importable from here: the math of ``course_lib.core``
(distributions, surrogates, curvature, solvers, advantages) and the reinforcement learning of
``course_lib.rl`` (environments, networks, the rollout, the updates, training, evaluation).
Imports go one way, core ← rl ← lessons ← widgets (README, "How course_lib is built").

Importing course_lib before JAX starts its backend sets XLA's CPU backend optimisation level to
1 (unless ``XLA_FLAGS`` already chooses one): compiling a training program then takes about a
third less time, and measured run times do not change. ``COURSE_LIB_KEEP_XLA_FLAGS=1`` opts out.
"""

import os as _os

if not _os.environ.get("COURSE_LIB_KEEP_XLA_FLAGS"):
    _flags = _os.environ.get("XLA_FLAGS", "")
    if "xla_backend_optimization_level" not in _flags:
        _os.environ["XLA_FLAGS"] = f"{_flags} --xla_backend_optimization_level=1".strip()

from course_lib.core.advantages import gae, gae_from_next_values, normalize_advantages
from course_lib.core.curvature import dense_fisher, fisher_vector_product, gauss_newton_fvp
from course_lib.core.distributions import (
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
)
from course_lib.core.solvers import backtracking_line_search, conjugate_gradient, trust_region_step
from course_lib.core.surrogate import (
    clip_fraction,
    clipped_surrogate,
    kl_estimate,
    kl_penalty_objective,
    ratio,
    surrogate,
)
from course_lib.rl.config import TrainConfig
from course_lib.rl.envs import make_env
from course_lib.rl.evaluate import episode_returns, evaluate
from course_lib.rl.networks import ActorCritic, Params, model_from_config
from course_lib.rl.rollout import Batch, collect_batch
from course_lib.rl.train import TrainResult, train, train_many

__version__ = "0.1.0"

__all__ = [
    "ActorCritic",
    "Batch",
    "Params",
    "TrainConfig",
    "TrainResult",
    "backtracking_line_search",
    "categorical_entropy",
    "categorical_kl",
    "categorical_log_prob",
    "clip_fraction",
    "clipped_surrogate",
    "collect_batch",
    "conjugate_gradient",
    "dense_fisher",
    "episode_returns",
    "evaluate",
    "fisher_vector_product",
    "gae",
    "gae_from_next_values",
    "gauss_newton_fvp",
    "gaussian_entropy",
    "gaussian_kl",
    "gaussian_log_prob",
    "kl_estimate",
    "kl_penalty_objective",
    "make_env",
    "model_from_config",
    "normalize_advantages",
    "ratio",
    "surrogate",
    "train",
    "train_many",
    "trust_region_step",
]
