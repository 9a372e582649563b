"""Lesson 07, PPO's clip: the clipped objective per sample, and whether it keeps a trust region.

PPO (Schulman et al. 2017, "Proximal Policy Optimization Algorithms") replaces TRPO's KL
constraint by a clipped surrogate (eq. 7),

    L^CLIP(θ) = E_t[min(r_t(θ)·A_t, clip(r_t(θ), 1−ε, 1+ε)·A_t)],
    r_t(θ) = π_θ(a_t|s_t) / π_old(a_t|s_t),

and runs several epochs of minibatch Adam on it. This module measures both halves:

* :func:`clip_objective` evaluates one sample's term of L^CLIP and its gradient with
  respect to r and to log π over a grid of ratios (``course_lib.clipped_surrogate``,
  ``jax.grad``, ``jax.vmap``); :func:`flat_region` states where that gradient is zero.
* :func:`epoch_study` asks the question the PPO paper leaves open and that "Implementation
  Matters in Deep Policy Gradients" (Engstrom et al., 2020) measured: after each epoch of an
  update, how far has the policy moved? It trains PPO for a few iterations, collects the next
  batch exactly as the training loop does (:func:`training_batch`), and runs the update's
  epochs one at a time (:func:`run_epochs`, calling ``course_lib.rl.ppo.ppo_update`` with one
  epoch per call) with the clip, without it, and with the clip plus early stopping on the k3
  KL estimate, recording the exact mean KL(π_old‖π), the k3 estimate, the largest ratio and
  the clip fraction after every epoch.
* :func:`eps_view` summarises one ε of a ``train_many(..., eps=[...])`` sweep, and
  :func:`replay_beta` replays PPO-penalty's adaptive β rule (``course_lib.rl.ppo.adapt_beta``)
  over the KLs of a run.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validate import check_int_at_least, check_non_negative, check_rank, check_seed
from course_lib.core.surrogate import clipped_surrogate
from course_lib.lessons.common import SeedBand, final_return, nearest_index, seed_band
from course_lib.rl.config import TrainConfig
from course_lib.rl.networks import Params, model_from_config
from course_lib.rl.ppo import EPOCH_DIAGNOSTICS, PPOHyper, adapt_beta, run_epochs
from course_lib.rl.train import (
    JAX_ENV_IDS,
    Carry,
    TrainResult,
    init_carry,
    initial_params,
    iteration,
    numbers,
    prepare,
    training_batch,
)

__all__ = [
    "VARIANTS",
    "ClipCurve",
    "EpochStudy",
    "EpsView",
    "clip_objective",
    "epoch_study",
    "eps_view",
    "flat_region",
    "replay_beta",
    "study_summary",
]


# ------------------------------------------------------------------------------------------
# L^CLIP for one sample, as a function of the ratio
# ------------------------------------------------------------------------------------------


class ClipCurve(NamedTuple):
    """One sample's clipped objective over a grid of ratios (see :func:`clip_objective`).

    Attributes:
      ratios: ``[R]`` the ratios r = π_θ(a|s) / π_old(a|s).
      objective: ``[R]`` min(r·A, clip(r, 1−ε, 1+ε)·A).
      unclipped: ``[R]`` r·A, the plain surrogate's term.
      grad_ratio: ``[R]`` ∂ objective / ∂r.
      grad_logp: ``[R]`` ∂ objective / ∂ log π_θ(a|s) = r · ∂ objective / ∂r.
      flat: ``[R]`` bool, True where the gradient is exactly zero (the clip is active).
    """

    ratios: jax.Array
    objective: jax.Array
    unclipped: jax.Array
    grad_ratio: jax.Array
    grad_logp: jax.Array
    flat: jax.Array


def _term_of_logp(logp: jax.Array, advantage: jax.Array, eps: jax.Array) -> jax.Array:
    """The clipped surrogate of ONE sample with log π_old = 0, as a function of log π_θ."""
    return clipped_surrogate(logp[None], jnp.zeros(1, logp.dtype), advantage[None], eps)


def _term_of_ratio(r: jax.Array, advantage: jax.Array, eps: jax.Array) -> jax.Array:
    return _term_of_logp(jnp.log(r), advantage, eps)


@jax.jit
def _clip_curve(ratios, advantage, eps) -> ClipCurve:
    per_r = jax.vmap(jax.value_and_grad(_term_of_ratio), in_axes=(0, None, None))
    per_logp = jax.vmap(jax.grad(_term_of_logp), in_axes=(0, None, None))
    objective, grad_r = per_r(ratios, advantage, eps)
    grad_logp = per_logp(jnp.log(ratios), advantage, eps)
    return ClipCurve(ratios, objective, ratios * advantage, grad_r, grad_logp, grad_r == 0.0)


def clip_objective(ratios, advantage: float, eps: float) -> ClipCurve:
    """PPO's per-sample term min(r·A, clip(r, 1−ε, 1+ε)·A) and its gradients, over ``ratios``.

    Each ratio is turned into log-probabilities (log π_θ = log r, log π_old = 0) and passed to
    ``course_lib.clipped_surrogate`` as a batch of one; ``jax.grad`` differentiates it with
    respect to r and to log π_θ, ``jax.vmap`` maps it over the grid (PPO paper, eq. 7 and
    Figure 1). The gradient is zero where the clip has switched the sample off:

    * A > 0: for r > 1+ε (the action is already ε more likely; no reward for more);
    * A < 0: for r < 1−ε (the action is already ε less likely);

    elsewhere the minimum keeps the unclipped term, r·A, whenever it is the smaller
    (pessimistic) one: A > 0 with r < 1−ε, A < 0 with r > 1+ε, so a step in the wrong
    direction is always pulled back with the full gradient A.

    Args:
      ratios: ``[R]`` ratios > 0 (avoid exactly 1±ε, where the gradient is one-sided).
      advantage: the sample's advantage A (a finite scalar).
      eps: the clip range ε ≥ 0.

    Returns:
      :class:`ClipCurve`, arrays ``[R]``.

    >>> c = clip_objective(jnp.array([0.5, 1.0, 4.0]), 5.0, 0.2)
    >>> [round(float(x), 2) for x in c.objective], [float(g) for g in c.grad_ratio]
    ([2.5, 5.0, 6.0], [5.0, 5.0, 0.0])
    """
    ratios = jnp.asarray(ratios, jnp.float32)
    check_rank(ratios, 1, "ratios")
    if ratios.shape[0] < 1 or not bool(jnp.all(ratios > 0)):
        raise ValueError("ratios must be a non-empty array of values > 0")
    if not np.isfinite(float(advantage)):
        raise ValueError(f"advantage must be finite, got {advantage}")
    check_non_negative(eps, "eps")
    return _clip_curve(ratios, jnp.float32(advantage), jnp.float32(eps))


def flat_region(advantage: float, eps: float) -> tuple[float, float]:
    """The open interval of ratios on which one sample's L^CLIP gradient is zero.

    ``(1 + ε, inf)`` for A > 0, ``(0, 1 − ε)`` for A < 0 (empty, ``(0, 0)``, when ε ≥ 1), and
    ``(0, inf)`` for A = 0 (the sample carries no signal at all).
    """
    check_non_negative(eps, "eps")
    a, e = float(advantage), float(eps)
    if not np.isfinite(a):
        raise ValueError(f"advantage must be finite, got {advantage}")
    if a > 0:
        return 1.0 + e, float("inf")
    if a < 0:
        return 0.0, max(1.0 - e, 0.0)
    return 0.0, float("inf")


# ------------------------------------------------------------------------------------------
# One PPO update, epoch by epoch
# ------------------------------------------------------------------------------------------

VARIANTS = ("clip", "no clip", "clip + early stop")
"""The three updates of :func:`epoch_study`, in the order of its leading axis."""


def _warm_carry(static: TrainConfig, num: dict, seed: jax.Array, warmup: jax.Array,
                params: Params) -> Carry:
    """The training loop's state after ``warmup`` iterations (:func:`course_lib.rl.train.iteration`),
    started from ``params``, the networks :func:`~course_lib.rl.train.train` starts ``seed`` from.

    ``warmup`` may be traced (the loop is a ``lax.fori_loop``), so one compiled program
    serves every number of warm-up iterations.
    """
    carry = init_carry(static, num, seed, params)
    body = lambda i, c: iteration(static, num, c, i)[0]
    return jax.lax.fori_loop(jnp.int32(0), warmup, body, carry)


def _study_one(static, epochs, num, target_kl, warmup, seed, params):
    """The three updates of :func:`epoch_study` for one (stage, seed), as one vmapped update.

    The plain surrogate is L^CLIP with ε = ∞ (clip(r, −∞, ∞) = r, so min(r·A, r·A) = r·A with
    the same gradient), which lets the three variants share one compiled update:
    ``(ε, no early stop)``, ``(∞, no early stop)``, ``(ε, target_kl)``.
    """
    model = model_from_config(static)
    carry = _warm_carry(static, num, seed, warmup, params)
    batch, lr, k_update = training_batch(static, num, carry, warmup)
    learner = carry.learner
    inf = jnp.float32(jnp.inf)
    eps = jnp.stack([num["eps"], inf, num["eps"]])
    stop = jnp.stack([inf, inf, target_kl])

    def variant(eps_v, stop_v):
        hp = PPOHyper.from_config(num, lr=lr, eps=eps_v, target_kl=stop_v, beta=learner.beta)
        return run_epochs(learner.params, learner.opt_state, batch, k_update, hp, model,
                          epochs=epochs, minibatches=static.minibatches, objective="clip",
                          clip_value=static.clip_value,
                          minibatch_advantages=static.normalize_advantages == "minibatch",
                          diagnostic_eps=num["eps"])

    return jax.vmap(variant)(eps, stop), learner.last_mean_return


_study_many = jax.jit(jax.vmap(_study_one, in_axes=(None, None, None, None, 0, 0, 0)),
                      static_argnums=(0, 1))


class EpochStudy(NamedTuple):
    """Per-epoch measurements of one PPO update: 3 variants × W stages of training × S seeds.

    Attributes:
      variants: :data:`VARIANTS`, the names of the leading axis.
      kl, kl_k3, max_ratio, clipfrac, updates_done: ``[3, W, S, E]`` numpy arrays (variant,
        stage, seed, epoch e = 1 … E); see :func:`run_epochs`.
      return_before: ``[W, S]`` the mean training return of the iteration before the update.
      warmup_iterations: the W stages: iterations of training before the measured update.
      seeds: the S training seeds.
      epochs: E.
      eps: the clip range ε.
      target_kl: the early-stopping threshold of the third variant.
      config_epochs: the epochs a training update runs (``config.epochs``).
    """

    variants: tuple[str, ...]
    kl: np.ndarray
    kl_k3: np.ndarray
    max_ratio: np.ndarray
    clipfrac: np.ndarray
    updates_done: np.ndarray
    return_before: np.ndarray
    warmup_iterations: tuple[int, ...]
    seeds: tuple[int, ...]
    epochs: int
    eps: float
    target_kl: float
    config_epochs: int


def epoch_study(
    config: TrainConfig,
    seeds,
    *,
    warmup_iterations=(3, 10),
    epochs: int = 30,
    target_kl: float = 0.01,
) -> EpochStudy:
    """Train PPO for a few iterations, then measure the next update epoch by epoch.

    For every stage w (``warmup_iterations[w]`` iterations of training) and every seed, in ONE
    vmapped, jitted call: the training loop's state at that point (its parameters AND Adam's
    state), the next batch (:func:`training_batch`), and three updates of that batch from the
    same start with the same minibatch orders, each run for ``epochs`` epochs by
    :func:`run_epochs`:

    * ``"clip"``: L^CLIP with ``config.eps``;
    * ``"no clip"``: the plain surrogate E[r·A] (computed as L^CLIP with ε = ∞, which equals
      ``ppo_update``'s objective ``"none"`` and lets the three variants share one compiled,
      vmapped update);
    * ``"clip + early stop"``: L^CLIP, stopping once a minibatch's k3 KL estimate exceeds
      ``target_kl`` (Stable-Baselines3 stops at 1.5 × target_kl with the same k3 check).

    Everything else (the learning rate of that iteration, minibatches, gradient clipping, the
    value loss) is what ``config`` trains with. Engstrom et al. (2020, "Implementation Matters
    in Deep Policy Gradients", §4) made the same measurement for PPO on MuJoCo. Numeric fields
    of ``config`` and ``target_kl`` are traced: a new lr or ε reuses the compiled program.

    Args:
      config: a PPO :class:`course_lib.TrainConfig` (``algo="ppo"``, a JAX-native env).
      seeds: training seeds (ints).
      warmup_iterations: one int or a sequence, each in ``[0, config.iterations)``.
      epochs: epochs to run (≥ 1); the training loop itself runs ``config.epochs``.
      target_kl: the early-stopping threshold (> 0).

    Returns:
      :class:`EpochStudy`.
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.algo != "ppo":
        raise ValueError(f"config.algo must be 'ppo', got {config.algo!r}")
    if config.env not in JAX_ENV_IDS:
        raise ValueError(f"config.env must be a JAX-native env {JAX_ENV_IDS}, got {config.env!r}")
    static = prepare(config)
    stages = [int(w) for w in np.atleast_1d(np.asarray(warmup_iterations)).tolist()]
    if not stages or any(not 0 <= w < config.iterations for w in stages):
        raise ValueError(
            f"warmup_iterations must be ints in [0, config.iterations = {config.iterations}), "
            f"got {warmup_iterations}"
        )
    check_int_at_least(epochs, 1, "epochs")
    if not float(target_kl) > 0:
        raise ValueError(f"target_kl must be > 0, got {target_kl}")
    seed_list = [check_seed(s) for s in np.atleast_1d(np.asarray(seeds)).tolist()]
    if not seed_list:
        raise ValueError("seeds must hold at least one seed")
    if config.clip_value:
        raise ValueError("config.clip_value must be False (the no-clip variant uses eps = inf)")
    w_grid, s_grid = np.meshgrid(stages, seed_list, indexing="ij")
    out, before = _study_many(static, epochs, numbers(config), jnp.float32(target_kl),
                              jnp.asarray(w_grid.ravel(), jnp.int32),
                              jnp.asarray(s_grid.ravel(), jnp.int32),
                              initial_params(static, s_grid.ravel()))
    shape = (len(stages), len(seed_list))
    arrays = {
        name: np.moveaxis(np.asarray(out[name]).reshape(shape + (len(VARIANTS), epochs)), 2, 0)
        for name in EPOCH_DIAGNOSTICS
    }
    return EpochStudy(
        variants=VARIANTS, **arrays, return_before=np.asarray(before).reshape(shape),
        warmup_iterations=tuple(stages), seeds=tuple(seed_list), epochs=epochs,
        eps=float(config.eps), target_kl=float(target_kl), config_epochs=config.epochs,
    )


def study_summary(study: EpochStudy, epoch: int, stage: int = 0) -> dict[str, dict[str, float]]:
    """Statistics over the seeds after epoch ``epoch`` (1-based) of stage ``stage``, per variant.

    ``{variant: {"kl_median", "kl_max", "k3_median", "max_ratio_median", "max_ratio_max",
    "clipfrac_median", "epochs_run_median"}}``; ``epochs_run`` counts the epochs up to
    ``epoch`` that took at least one minibatch step.
    """
    if not isinstance(study, EpochStudy):
        raise TypeError(f"study must be an EpochStudy, got {type(study).__name__}")
    check_int_at_least(epoch, 1, "epoch")
    if epoch > study.epochs:
        raise ValueError(f"epoch must be <= study.epochs = {study.epochs}, got {epoch}")
    check_int_at_least(stage, 0, "stage")
    if stage >= len(study.warmup_iterations):
        raise ValueError(f"stage must be < {len(study.warmup_iterations)}, got {stage}")
    e, w = epoch - 1, stage
    out = {}
    for v, name in enumerate(study.variants):
        run = (study.updates_done[v, w, :, :epoch] > 0).sum(axis=-1)
        out[name] = {
            "kl_median": float(np.median(study.kl[v, w, :, e])),
            "kl_max": float(np.max(study.kl[v, w, :, e])),
            "k3_median": float(np.median(study.kl_k3[v, w, :, e])),
            "max_ratio_median": float(np.median(study.max_ratio[v, w, :, e])),
            "max_ratio_max": float(np.max(study.max_ratio[v, w, :, e])),
            "clipfrac_median": float(np.median(study.clipfrac[v, w, :, e])),
            "epochs_run_median": float(np.median(run)),
        }
    return out


# ------------------------------------------------------------------------------------------
# ε sweeps and PPO-penalty's β
# ------------------------------------------------------------------------------------------


class EpsView(NamedTuple):
    """One ε of a ``train_many(config, seeds, eps=eps_values)`` grid, over its seeds.

    Attributes:
      eps: the grid's ε nearest to the one asked for; index: its row.
      env_steps: ``[I]``.
      returns, kl, max_ratio: :class:`course_lib.lessons.common.SeedBand` of the learning
        curves, the exact KL per update and the largest ratio per update, each ``[I]``.
      final: ``[S]`` mean return of each seed's last 5 iterations.
      mean_kl: the exact KL per update averaged over all updates and seeds.
      max_ratio_all: the largest ratio of any update of any seed.
      clipfrac: the clip fraction averaged over all updates and seeds.
    """

    eps: float
    index: int
    env_steps: np.ndarray
    returns: SeedBand
    kl: SeedBand
    max_ratio: SeedBand
    final: np.ndarray
    mean_kl: float
    max_ratio_all: float
    clipfrac: float


def eps_view(result: TrainResult, eps_values, eps: float, last: int = 5) -> EpsView:
    """Summarise the row of ``result`` (``train_many(config, seeds, eps=eps_values)``) nearest ε.

    ``result.mean_return`` and the diagnostics are ``[K, S, I]`` with ``K = len(eps_values)``.
    Reads arrays only, so a panel can call it on every slider move.
    """
    if not isinstance(result, TrainResult):
        raise TypeError(f"result must be a TrainResult, got {type(result).__name__}")
    grid = np.asarray(eps_values, dtype=np.float64).ravel()
    ret = np.asarray(result.mean_return)
    if ret.ndim != 3 or ret.shape[0] != grid.size:
        raise ValueError(
            f"result must come from train_many over eps_values ({grid.size} values) and seeds: "
            f"mean_return [K, S, I] with K = {grid.size}, got shape {ret.shape}"
        )
    for name in ("kl", "max_ratio", "clipfrac"):
        if name not in result.diagnostics:
            raise ValueError(f"result.diagnostics lacks {name!r}: not a PPO sweep")
    i = nearest_index(grid, eps)
    d = {k: np.asarray(result.diagnostics[k])[i] for k in ("kl", "max_ratio", "clipfrac")}
    return EpsView(
        eps=float(grid[i]), index=i, env_steps=np.asarray(result.env_steps)[i, 0],
        returns=seed_band(ret[i]), kl=seed_band(d["kl"]), max_ratio=seed_band(d["max_ratio"]),
        final=final_return(ret[i], last), mean_kl=float(d["kl"].mean()),
        max_ratio_all=float(d["max_ratio"].max()), clipfrac=float(d["clipfrac"].mean()),
    )


@jax.jit
def _replay(kls, beta0, target):
    def step(beta, kl):
        new = adapt_beta(beta, kl, target)
        return new, new

    return jax.lax.scan(step, beta0, kls)[1]


def replay_beta(kls, beta0: float, target_kl: float) -> np.ndarray:
    """PPO-penalty's β after each update, replayed from the updates' KLs (PPO paper §4).

    ``β_i = adapt_beta(β_{i−1}, KL_i, d_targ)`` with ``β_{−1} = beta0``: halve β when
    KL_i < d_targ / 1.5, double it when KL_i > 1.5·d_targ, else keep it
    (``course_lib.rl.ppo.adapt_beta``). ``kls [I]`` are the exact KLs of the updates in order;
    returns ``[I]``, which equals the ``beta`` diagnostic of ``train(TrainConfig(
    algo="ppo_penalty", beta=beta0, target_kl=target_kl))`` given that run's ``kl``.
    """
    kls = jnp.asarray(kls, jnp.float32)
    check_rank(kls, 1, "kls")
    if not float(beta0) > 0:
        raise ValueError(f"beta0 must be > 0, got {beta0}")
    if not float(target_kl) > 0:
        raise ValueError(f"target_kl must be > 0, got {target_kl}")
    return np.asarray(_replay(kls, jnp.float32(beta0), jnp.float32(target_kl)))
