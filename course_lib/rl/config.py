"""`TrainConfig`: every setting of a training run, documented, frozen.

Fields come in two kinds, and the difference is what makes a slider fast:

* **structural** fields (``algo``, ``env``, sizes, counts, switches) decide the shape of the
  compiled program; changing one compiles a new program;
* **numeric** fields (floats: δ, ε, learning rates, γ, λ, β, target KL, ...) enter the
  compiled program as traced values, so a new value reuses the compiled program, and
  ``train_many`` can sweep them with ``vmap``.

Defaults solve CartPole-v1 in about 31k environment steps (see README for the figures).
:meth:`TrainConfig.for_env` gives the tuned settings of each environment.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import jax.numpy as jnp

ALGOS = ("ppo", "ppo_penalty", "trpo", "npg")
ADVANTAGE_NORMALISATION = ("batch", "minibatch", "none")


@dataclass(frozen=True)
class TrainConfig:
    """Settings of one training run (CleanRL-style: one documented dataclass).

    Use ``dataclasses.replace(config, eps=0.1)`` (or ``config.replace(...)``) for a variant.
    """

    # --- structural: changing these compiles a new program -----------------------------
    algo: str = "ppo"
    """"ppo" (clipped surrogate), "ppo_penalty" (adaptive-β KL penalty), "trpo", "npg"."""
    env: str = "CartPole-v1"
    """A gymnasium id. CartPole-v1 and Pendulum-v1 run as JAX-native copies, inside the jit."""
    total_steps: int = 30_720
    """Environment steps in all; iterations = total_steps // (num_envs · num_steps)."""
    num_envs: int = 8
    """Parallel environments."""
    num_steps: int = 128
    """Steps per environment per iteration (the batch is num_envs · num_steps)."""
    hidden: tuple[int, ...] = (64, 64)
    """Hidden widths of both the policy and the (separate) value network, tanh."""
    epochs: int = 8
    """PPO: passes over each batch. TRPO/NPG: passes of the value function's Adam."""
    minibatches: int = 8
    """Minibatches per epoch (PPO policy and value; TRPO/NPG value only)."""
    clip: bool = True
    """PPO: use the clip. False is the ablation ("many epochs without the clip")."""
    clip_value: bool = False
    """PPO: clip the value update around the old values by ε as in the PPO2 code."""
    normalize_advantages: str = "batch"
    """"batch", "minibatch" or "none" (advantages scaled to zero mean, unit std)."""
    anneal_lr: bool = True
    """Decay the learning rates linearly to 0 over the run."""
    cg_iters: int = 10
    """TRPO/NPG: conjugate-gradient iterations."""
    max_backtracks: int = 10
    """TRPO: line-search tries (fractions shrink^k, k = 0..max_backtracks-1)."""
    fisher_subsample: int = 1
    """TRPO/NPG: use every k-th state for the Fisher-vector product (TRPO paper: 10 %)."""
    normalize_obs: bool = False
    """Observation normalisation (Engstrom et al. 2020 §3; Huang et al. 2022, continuous detail
    6–7; gymnasium's ``NormalizeObservation`` as CleanRL's continuous PPO uses it): a running
    mean and variance over every observation the policy acts on, updated each step from the
    raw observations of all envs, and the networks see ``clip((obs − mean)/√(var + 1e-8), −10,
    10)``, in the rollout and in the update alike (the batch holds what they saw). The
    statistics are part of the loop's state and come back frozen in ``TrainResult.obs_stats``,
    which :func:`course_lib.evaluate` applies. Helps when observation scales differ a lot."""
    scale_rewards: bool = False
    """Reward scaling (Engstrom et al. 2020 §3; Huang et al. 2022, continuous detail 8;
    gymnasium's ``NormalizeReward``, baselines' ``VecNormalize``): each env keeps a discounted
    return G ← γ·G + r, reset to 0 when its episode ends; the learner's rewards are divided by
    the running std of G (no mean subtracted). ``mean_return`` still reports the raw returns."""
    bootstrap_truncation: bool = True
    """At a time-limit truncation (CartPole's 500th step, every 200th step of Pendulum), GAE
    bootstraps with V(final observation), as the episode could have gone on (Pardo et al. 2018,
    "Time Limits in Reinforcement Learning"). False treats truncation as termination (value 0
    after it), as the original baselines/CleanRL PPO code does."""
    clip_actions: bool = True
    """Continuous actions: the sampled action is clipped to the action space's bounds before
    the env step (Huang et al. 2022, continuous detail 5); the batch keeps the unclipped sample,
    whose log-probability the update uses. False passes the unclipped action to the env. On
    Pendulum-v1 the two are the same program in effect: the env clips the torque to [−2, 2]
    itself, for the dynamics and for the cost, exactly as gymnasium's Pendulum does; an env
    that does not clip (e.g. a MuJoCo task on the gymnasium path, whose control cost sees the
    raw action) behaves differently. Discrete actions are never clipped."""
    policy_step: Callable | None = None
    """TRPO/NPG: None (the library's step), or a function ``(surrogate_fn, kl_fn, params,
    delta) → new params`` that replaces :func:`course_lib.rl.trpo.trpo_policy_step`'s
    gradient, CG, scaling and line search (the learner's own TRPO step, lesson 06's capstone
    exercise). ``surrogate_fn`` and ``kl_fn`` map flat policy parameters ``[P]`` to the batch's
    surrogate and mean KL(π_old‖π) (π_old held fixed); it runs inside the jit."""
    ppo_update: Callable | None = None
    """PPO: None (the library's update), or a function ``(params, opt_state, batch, key, hp,
    model, epochs, minibatches) → (params, opt_state)`` that replaces
    :func:`course_lib.rl.ppo.ppo_update` (the learner's own PPO update, lesson 07's capstone
    exercise); ``params`` is ``(policy, value)``, ``hp`` a :class:`~course_lib.rl.ppo.PPOHyper`.
    Its ``updates_done`` diagnostic is reported as 1. It runs inside the jit."""
    gaussian_fns: tuple[Callable, Callable, Callable] | None = None
    """Continuous actions: None (:func:`course_lib.core.distributions.gaussian_log_prob`,
    ``gaussian_entropy`` and ``gaussian_kl``), or three functions with their signatures,
    ``(log_prob(mean, log_std, actions), entropy(mean, log_std), kl(p_mean, p_log_std, q_mean,
    q_log_std))``, that replace them wherever the policy is evaluated: the rollout's
    log-probabilities, the surrogate, the entropy bonus, the KL of TRPO's constraint and of the
    diagnostics (the learner's own Gaussian policy, lesson 08's capstone exercise). Sampling and
    the greedy action (the mean) are the library's. They run inside the jit."""
    ortho_init: bool = True
    """Orthogonal weights (Saxe et al. 2014) with gain √2 in hidden layers, 0.01 at the policy
    output and 1 at the value output, zero biases (Engstrom et al. 2020 §3; Huang et al. 2022,
    detail 2). False draws flax's default instead: LeCun normal (truncated normal with variance
    1/fan_in), zero biases."""

    # --- numeric: traced, so a new value reuses the compiled program ----------------------
    lr: float = 2.5e-3
    """PPO: Adam learning rate of policy and value. TRPO/NPG: of the value function."""
    gamma: float = 0.99
    """Discount γ."""
    gae_lambda: float = 0.95
    """GAE λ (Schulman et al. 2016)."""
    eps: float = 0.2
    """PPO clip ε: the ratio is clipped to [1-ε, 1+ε]; also the clip-fraction threshold."""
    delta: float = 0.01
    """TRPO/NPG trust region δ on the mean KL(π_old‖π_new) per update."""
    target_kl: float = math.inf
    """PPO: stop an update's epochs when the k3 KL estimate on a minibatch exceeds this (inf: off).
    PPO-penalty: the KL target d_targ of the adaptive β."""
    beta: float = 1.0
    """PPO-penalty: initial KL coefficient β."""
    vf_coef: float = 0.5
    """PPO: weight of the value loss."""
    ent_coef: float = 0.0
    """Entropy bonus weight."""
    max_grad_norm: float = 0.5
    """Global-norm gradient clip of Adam's updates."""
    cg_damping: float = 0.1
    """TRPO/NPG: damping μ in (F + μI) for CG."""
    backtrack_ratio: float = 0.8
    """TRPO: line-search shrink factor."""
    adam_eps: float = 1e-5
    """Adam's ε (the denominator is √v̂ + ε): 1e-5 as in the PPO reference code (Huang et al.
    2022, detail 3), where PyTorch's and optax's default is 1e-8."""

    def __post_init__(self) -> None:
        if isinstance(self.hidden, list):  # e.g. from JSON or a widget; tuples are hashable
            object.__setattr__(self, "hidden", tuple(self.hidden))

    @classmethod
    def for_env(cls, env: str, algo: str = "ppo", **changes) -> TrainConfig:
        """The tuned defaults for ``env`` and ``algo``, with ``changes`` on top.

        CartPole-v1 uses the class defaults. Pendulum-v1 (continuous, Gaussian policy) uses
        γ = 0.9 as rl-zoo does, 8 × 256 steps per iteration for 80 iterations (163,840 steps),
        10 epochs of 16 minibatches at lr 1e-3, and δ = 0.02 for TRPO/NPG: PPO and TRPO then
        reach a greedy return ≥ −250 on 4 of 5 seeds (README, ``make bench``).
        """
        tuned = _TUNED.get(env, {})
        return cls(env=env, algo=algo, **{**tuned.get("all", {}), **tuned.get(algo, {}), **changes})

    def replace(self, **changes) -> TrainConfig:
        """A copy with ``changes`` applied (the config itself is never mutated)."""
        return dataclasses.replace(self, **changes)

    @property
    def batch_size(self) -> int:
        return self.num_envs * self.num_steps

    @property
    def iterations(self) -> int:
        return self.total_steps // self.batch_size

    @classmethod
    def numeric_fields(cls) -> tuple[str, ...]:
        """Names of the traced (float) fields."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.type == "float")

    @classmethod
    def switch_fields(cls) -> tuple[str, ...]:
        """Names of the on/off (bool) fields; each is structural."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.type == "bool")

    def validate(self) -> TrainConfig:
        """Raise ``ValueError``/``TypeError`` naming the first bad field; return self."""
        if self.algo not in ALGOS:
            raise ValueError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.normalize_advantages not in ADVANTAGE_NORMALISATION:
            raise ValueError(
                f"normalize_advantages must be one of {ADVANTAGE_NORMALISATION}, "
                f"got {self.normalize_advantages!r}"
            )
        for name in ("total_steps", "num_envs", "num_steps", "epochs", "minibatches",
                     "cg_iters", "max_backtracks", "fisher_subsample"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise TypeError(f"{name} must be an int, got {type(value).__name__}")
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        if self.iterations < 1:
            raise ValueError(
                f"total_steps={self.total_steps} is less than one batch "
                f"(num_envs·num_steps = {self.batch_size})"
            )
        if self.batch_size % self.minibatches:
            raise ValueError(
                f"minibatches={self.minibatches} must divide the batch size {self.batch_size}"
            )
        if not self.hidden or any(not isinstance(h, int) or h < 1 for h in self.hidden):
            raise ValueError(f"hidden must be a non-empty tuple of positive ints, got {self.hidden}")
        for name in self.switch_fields():
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise TypeError(f"{name} must be a bool, got {value!r}")
        for name in self.numeric_fields():
            check_numeric(name, getattr(self, name))
        if self.ppo_update is not None and not callable(self.ppo_update):
            raise TypeError(f"ppo_update must be a function or None, got "
                            f"{type(self.ppo_update).__name__}")
        if self.policy_step is not None and not callable(self.policy_step):
            raise TypeError(f"policy_step must be a function or None, got "
                            f"{type(self.policy_step).__name__}")
        if self.gaussian_fns is not None and (
                not isinstance(self.gaussian_fns, tuple) or len(self.gaussian_fns) != 3
                or not all(callable(f) for f in self.gaussian_fns)):
            raise TypeError("gaussian_fns must be None or a tuple of three functions (log_prob, "
                            f"entropy, kl), got {self.gaussian_fns!r}")
        if self.algo == "ppo_penalty" and not math.isfinite(self.target_kl):
            raise ValueError(
                "target_kl must be finite for algo='ppo_penalty': it is the KL target d_targ "
                "of the adaptive β (the PPO paper uses 0.01)"
            )
        return self


_TUNED: dict[str, dict[str, dict]] = {
    "Pendulum-v1": {
        "all": {"total_steps": 8 * 256 * 80, "num_steps": 256, "gamma": 0.9, "lr": 1e-3,
                "epochs": 10, "minibatches": 16},
        "trpo": {"delta": 0.02},
        "npg": {"delta": 0.02},
    },
}

_POSITIVE = {"lr", "delta", "target_kl", "beta", "max_grad_norm", "adam_eps"}
_UNIT = {"gamma", "gae_lambda"}


def check_numeric(name: str, value) -> None:
    """Range check of one numeric field (Python floats only; arrays are checked elementwise)."""
    import numpy as np

    arr = np.asarray(value, dtype=np.float64)
    if np.isnan(arr).any():
        raise ValueError(f"{name} must not be NaN")
    if name in _POSITIVE and not (arr > 0).all():
        raise ValueError(f"{name} must be > 0, got {value}")
    if name in _UNIT and not ((arr >= 0) & (arr <= 1)).all():
        raise ValueError(f"{name} must lie in [0, 1], got {value}")
    if name == "backtrack_ratio" and not ((arr > 0) & (arr < 1)).all():
        raise ValueError(f"backtrack_ratio must lie in (0, 1), got {value}")
    if name not in _POSITIVE | _UNIT and not (arr >= 0).all():
        raise ValueError(f"{name} must be >= 0, got {value}")


def hyper_fields(names, config, overrides) -> dict:
    """``{name: float32}`` for each of ``names``: from ``overrides``, else from ``config``
    (a TrainConfig's attribute or a mapping's item). Raises naming an unknown override."""
    unknown = set(overrides) - set(names)
    if unknown:
        raise TypeError(f"unknown hyper-parameter(s) {sorted(unknown)}; known: {list(names)}")

    def read(name):
        if name in overrides:
            return overrides[name]
        return config[name] if isinstance(config, Mapping) else getattr(config, name)

    return {name: jnp.asarray(read(name), jnp.float32) for name in names}


def hyper_from_config(cls, config, **overrides):
    """``cls.from_config(config, **overrides)`` of the update's hyper-parameter tuples
    (:class:`course_lib.rl.ppo.PPOHyper`, :class:`course_lib.rl.trpo.TRPOHyper`): each field
    read by name from ``config`` (a :class:`TrainConfig` or a mapping of its numeric fields,
    as the training loop traces them), with ``overrides`` by name on top; float32 scalars."""
    return cls(**hyper_fields(cls._fields, config, overrides))
