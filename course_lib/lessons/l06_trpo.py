"""Lesson 06, TRPO: one update taken apart, and summaries of TRPO/NPG training sweeps.

One TRPO update (Schulman et al. 2015, "Trust Region Policy Optimization", §6 and
Appendix C) of the policy parameters θ_old on a batch is four numbered steps:

1. the policy gradient ``g = ∇_θ L(θ_old)`` of the surrogate ``L(θ) = E_t[r_t(θ)·Â_t]``;
2. conjugate gradient for the direction ``d ≈ (F + μI)⁻¹ g`` from Fisher-vector products
   (:func:`course_lib.conjugate_gradient`, :func:`course_lib.gauss_newton_fvp`);
3. the step scaled to the edge of the quadratic trust region,
   ``s = d·√(2δ / dᵀ(F + μI)d)``, so that ``½ sᵀ(F + μI)s = δ``
   (:func:`course_lib.trust_region_step`);
4. a backtracking line search over ``θ_old + 0.8ᵏ·s`` that keeps the first fraction whose
   *exact* mean KL(π_old‖π_θ) is ≤ δ and whose surrogate improves
   (:func:`course_lib.backtracking_line_search`).

:func:`dissect_trpo_update` runs these library pieces one by one and keeps every
intermediate value; it lands on exactly the parameters of
:func:`course_lib.rl.trpo.trpo_policy_step` (:func:`library_trpo_step`), which does the same
update without exposing its inside. The natural policy gradient (Kakade 2001) is steps
1–3 alone: ``θ_old + s``, with no check of the exact KL.

The rest of the module summarises what :func:`course_lib.train_many` returns for a grid of
δ × seeds: seed bands of the learning curves and KLs, the fraction of updates whose exact
KL overshot δ, the final return, the fraction of line searches that accepted a step
(:func:`delta_view`), and one fresh training run for a live panel (:func:`live_run`).
"""

from __future__ import annotations

from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validate import check_int_at_least, check_positive, check_rank
from course_lib.core.solvers import (
    LineSearchInfo,
    backtracking_line_search,
    conjugate_gradient,
    trust_region_step,
)
from course_lib.lessons.common import SeedBand, final_return, nearest_index, seed_band
from course_lib.rl.config import TrainConfig
from course_lib.rl.networks import ActorCritic
from course_lib.rl.rollout import Batch
from course_lib.rl.train import TrainResult, train
from course_lib.rl.trpo import TRPOHyper, batch_fvp, batch_kl, batch_surrogate, trpo_policy_step

__all__ = [
    "DeltaView",
    "LiveRun",
    "UpdateAnatomy",
    "batch_kl",
    "batch_surrogate",
    "delta_view",
    "dissect_trpo_update",
    "library_trpo_step",
    "live_run",
    "overshoot_fraction",
]


# ------------------------------------------------------------------------------------------
# One update, step by step
# ------------------------------------------------------------------------------------------


class UpdateAnatomy(NamedTuple):
    """Every intermediate value of one TRPO update (see :func:`dissect_trpo_update`).

    Attributes:
      gradient: ``[P]`` the policy gradient ``g = ∇L(θ_old)``.
      cg_residuals: ``[cg_iters + 1]`` CG's residual norms ``‖g − (F + μI)x_k‖₂`` for
        ``k = 0 … cg_iters`` (``x_0 = 0``, so entry 0 is ``‖g‖``).
      direction: ``[P]`` CG's solution ``d ≈ (F + μI)⁻¹ g``.
      true_residual: ``‖g − (F + μI)d‖₂`` recomputed with one more Fisher-vector product.
      dFd: ``dᵀ(F + μI)d``, the curvature of the KL model along ``d``.
      scale: ``√(2δ / dᵀ(F + μI)d)``, the factor from ``d`` to the full step.
      full_step: ``[P]`` ``s = scale·d``; θ_old + s is the natural policy gradient step.
      quadratic_kl: ``½ sᵀ(F + μI)s``, the damped quadratic KL model of ``s`` (= δ).
      quadratic_kl_undamped: ``½ sᵀF s``, the same model without the damping term ``½μ‖s‖²``.
      linear_gain: ``gᵀs``, the linear model of the surrogate's improvement.
      full_step_kl: the exact mean KL(π_old‖π_{θ_old+s}) of the full step.
      line_search: :class:`course_lib.core.solvers.LineSearchInfo` with every fraction evaluated
        (``evaluate_all=True``); ``n_backtracks`` is the k TRPO accepts.
      new_params: ``[P]`` θ_new, the accepted ``θ_old + 0.8ᵏ·s`` (θ_old when none is).
    """

    gradient: jax.Array
    cg_residuals: jax.Array
    direction: jax.Array
    true_residual: jax.Array
    dFd: jax.Array
    scale: jax.Array
    full_step: jax.Array
    quadratic_kl: jax.Array
    quadratic_kl_undamped: jax.Array
    linear_gain: jax.Array
    full_step_kl: jax.Array
    line_search: LineSearchInfo
    new_params: jax.Array


def _fisher_products(policy_params, batch, model, cg_damping, fisher_subsample):
    """``(v ↦ (F + μI)v, v ↦ F v)`` from every ``fisher_subsample``-th state, as in training."""
    damped = batch_fvp(policy_params, batch, model, cg_damping, fisher_subsample)
    plain = batch_fvp(policy_params, batch, model, 0.0, fisher_subsample)
    return damped, plain


@partial(jax.jit, static_argnames=("model", "cg_iters", "max_backtracks", "fisher_subsample"))
def _dissect(policy_params, batch, model, delta, cg_damping, backtrack_ratio, cg_iters,
             max_backtracks, fisher_subsample):
    surrogate_fn = lambda p: batch_surrogate(p, batch, model)
    kl_fn = lambda p: batch_kl(p, batch, model)
    fvp, fvp_plain = _fisher_products(policy_params, batch, model, cg_damping, fisher_subsample)

    g = jax.grad(surrogate_fn)(policy_params)                                  # step 1
    d, cg_info = conjugate_gradient(fvp, g, iters=cg_iters)                     # step 2
    s = trust_region_step(d, fvp, delta)                                        # step 3
    new_params, ls = backtracking_line_search(                                  # step 4
        surrogate_fn, kl_fn, policy_params, s, delta,
        max_backtracks=max_backtracks, shrink=backtrack_ratio, evaluate_all=True,
    )

    fd = fvp(d)
    dfd = jnp.vdot(d, fd)
    return UpdateAnatomy(
        gradient=g,
        cg_residuals=jnp.concatenate([jnp.linalg.norm(g)[None], cg_info.residual_norms]),
        direction=d,
        true_residual=jnp.linalg.norm(g - fd),
        dFd=dfd,
        scale=jnp.sqrt(2.0 * delta / dfd),
        full_step=s,
        quadratic_kl=0.5 * jnp.vdot(s, fvp(s)),
        quadratic_kl_undamped=0.5 * jnp.vdot(s, fvp_plain(s)),
        linear_gain=jnp.vdot(g, s),
        full_step_kl=kl_fn(policy_params + s),
        line_search=ls,
        new_params=new_params,
    )


UPDATE_DEFAULTS = {"cg_damping": 0.1, "backtrack_ratio": 0.8, "cg_iters": 10,
                   "max_backtracks": 10, "fisher_subsample": 1}
"""The course's TRPO settings, the defaults of :func:`dissect_trpo_update` (TrainConfig's)."""


def _check_update_args(policy_params, batch, model, delta, cg_damping, backtrack_ratio,
                       cg_iters, max_backtracks, fisher_subsample):
    if not isinstance(model, ActorCritic):
        raise TypeError(f"model must be an ActorCritic, got {type(model).__name__}")
    if not isinstance(batch, Batch):
        raise TypeError(f"batch must be a course_lib.rl.rollout.Batch, got {type(batch).__name__}")
    check_rank(policy_params, 1, "policy_params")
    check_positive(delta, "delta")
    if not float(cg_damping) >= 0.0:
        raise ValueError(f"cg_damping must be >= 0, got {cg_damping}")
    if not 0.0 < float(backtrack_ratio) < 1.0:
        raise ValueError(f"backtrack_ratio must lie in (0, 1), got {backtrack_ratio}")
    check_int_at_least(cg_iters, 1, "cg_iters")
    check_int_at_least(max_backtracks, 1, "max_backtracks")
    check_int_at_least(fisher_subsample, 1, "fisher_subsample")


def dissect_trpo_update(
    policy_params: jax.Array,
    batch: Batch,
    model: ActorCritic,
    delta: float = 0.01,
    *,
    cg_damping: float = 0.1,
    backtrack_ratio: float = 0.8,
    cg_iters: int = 10,
    max_backtracks: int = 10,
    fisher_subsample: int = 1,
) -> UpdateAnatomy:
    """One TRPO update of ``policy_params [P]`` on ``batch``, keeping every intermediate value.

    The steps (Schulman et al. 2015, Appendix C), each a library call:

    * ``g = ∇L(θ_old)`` (:func:`batch_surrogate`);
    * ``d = CG((F + μI), g)`` with ``cg_iters`` iterations of Gauss–Newton Fisher-vector
      products on every ``fisher_subsample``-th state;
    * ``s = d·√(2δ / dᵀ(F + μI)d)``;
    * the first ``k`` with ``KL(θ_old + rᵏs) ≤ δ`` and ``L(θ_old + rᵏs) > L(θ_old)``,
      ``r = backtrack_ratio``, ``k < max_backtracks``.

    The arguments mean what the fields of :class:`course_lib.TrainConfig` of the same name
    mean; the defaults are the course's. The line search evaluates every fraction so the
    trace is complete; the accepted k and θ_new are those of the stopping search that
    :func:`course_lib.rl.trpo.trpo_policy_step` runs (compare :func:`library_trpo_step`).

    Returns:
      an :class:`UpdateAnatomy`.

    Raises:
      ValueError: ``policy_params`` not ``[P]``, ``delta ≤ 0``, ``cg_damping < 0``,
        ``backtrack_ratio`` not in (0, 1), an int argument < 1.
      TypeError: ``model`` or ``batch`` of the wrong type, a count not an int.
    """
    _check_update_args(policy_params, batch, model, delta, cg_damping, backtrack_ratio,
                       cg_iters, max_backtracks, fisher_subsample)
    return _dissect(policy_params, batch, model, jnp.float32(delta), jnp.float32(cg_damping),
                    jnp.float32(backtrack_ratio), cg_iters, max_backtracks, fisher_subsample)


@partial(jax.jit, static_argnames=("model", "cg_iters", "max_backtracks", "fisher_subsample",
                                   "line_search"))
def _library_step(policy_params, batch, model, delta, cg_damping, backtrack_ratio, cg_iters,
                  max_backtracks, fisher_subsample, line_search):
    hp = TRPOHyper.from_config(TrainConfig(), delta=delta, cg_damping=cg_damping,
                               backtrack_ratio=backtrack_ratio, lr=0.0, max_grad_norm=0.0)
    return trpo_policy_step(policy_params, batch, hp, model, cg_iters=cg_iters,
                            max_backtracks=max_backtracks, line_search=line_search,
                            fisher_subsample=fisher_subsample)


def library_trpo_step(
    policy_params: jax.Array,
    batch: Batch,
    model: ActorCritic,
    delta: float = 0.01,
    *,
    line_search: bool = True,
    **options,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """The update the training loop runs: :func:`course_lib.rl.trpo.trpo_policy_step`, jitted.

    ``options``: the keywords of :func:`dissect_trpo_update` (``cg_damping``,
    ``backtrack_ratio``, ``cg_iters``, ``max_backtracks``, ``fisher_subsample``), with its
    defaults; ``line_search=False`` is the natural policy gradient step ``θ_old + s``.
    Returns ``(new_params [P], diagnostics)``.
    """
    unknown = set(options) - set(UPDATE_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown option(s) {sorted(unknown)}; known: {list(UPDATE_DEFAULTS)}")
    o = {**UPDATE_DEFAULTS, **options}
    _check_update_args(policy_params, batch, model, delta, **o)
    return _library_step(policy_params, batch, model, jnp.float32(delta),
                         jnp.float32(o["cg_damping"]), jnp.float32(o["backtrack_ratio"]),
                         o["cg_iters"], o["max_backtracks"], o["fisher_subsample"],
                         bool(line_search))


# ------------------------------------------------------------------------------------------
# Sweep summaries
# ------------------------------------------------------------------------------------------


def overshoot_fraction(kl, delta, factor: float = 1.0) -> np.ndarray:
    """Fraction of updates whose exact KL exceeded ``factor·δ``: ``mean(kl > factor·δ)``.

    ``kl [..., S, I]`` (exact mean KL(π_old‖π_new) per update); ``delta`` a scalar or one δ
    per leading row (``[D]`` for ``kl [D, S, I]``). Returns the fraction over the last two
    axes (all seeds and updates), shape ``kl.shape[:-2]``.
    """
    kl = np.asarray(kl, dtype=np.float64)
    if kl.ndim < 2:
        raise ValueError(f"kl must be [..., S, I] (seeds, updates), got shape {kl.shape}")
    d = np.asarray(delta, dtype=np.float64)
    if not (d > 0).all():
        raise ValueError(f"delta must be > 0, got {delta}")
    if d.ndim > 0 and d.shape != kl.shape[:-2]:
        raise ValueError(f"delta must be a scalar or shaped {kl.shape[:-2]}, got {d.shape}")
    if not float(factor) > 0:
        raise ValueError(f"factor must be > 0, got {factor}")
    threshold = (factor * d).reshape(d.shape + (1, 1))
    return (kl > threshold).mean(axis=(-2, -1))


class DeltaView(NamedTuple):
    """One δ of a ``train_many(..., delta=deltas)`` grid, summarised over its seeds.

    Attributes:
      delta: the grid's δ nearest to the one asked for.
      index: its row in the grid.
      env_steps: ``[I]`` environment steps after each iteration.
      returns: :class:`SeedBand` of the learning curves, each ``[I]``.
      kl: :class:`SeedBand` of the exact KL per update, each ``[I]``.
      final: ``[S]`` :func:`final_return` of each seed.
      overshoot: fraction of updates (all seeds) with KL > δ.
      accepted: fraction of updates whose line search accepted a step (1.0 for NPG).
      backtracked: fraction of updates that accepted a shrunk step (k ≥ 1).
    """

    delta: float
    index: int
    env_steps: np.ndarray
    returns: SeedBand
    kl: SeedBand
    final: np.ndarray
    overshoot: float
    accepted: float
    backtracked: float


def delta_view(result: TrainResult, deltas, delta: float, last: int = 5) -> DeltaView:
    """Summarise the row of ``result`` (``train_many(config, seeds, delta=deltas)``) nearest δ.

    ``result.mean_return`` and every diagnostic are ``[D, S, I]`` with ``D = len(deltas)``.
    Reads arrays only (no training), so a panel can call it on every slider move.
    """
    if not isinstance(result, TrainResult):
        raise TypeError(f"result must be a TrainResult, got {type(result).__name__}")
    grid = np.asarray(deltas, dtype=np.float64)
    ret = np.asarray(result.mean_return)
    if ret.ndim != 3 or ret.shape[0] != grid.size:
        raise ValueError(
            f"result must come from train_many over deltas ({grid.size} values) and seeds: "
            f"mean_return [D, S, I] with D = {grid.size}, got shape {ret.shape}"
        )
    i = nearest_index(grid, delta)
    diag = result.diagnostics
    kl = np.asarray(diag["kl"])[i]
    accepted = np.asarray(diag.get("accepted", np.ones_like(kl)))[i]
    backtracks = np.asarray(diag.get("backtracks", np.zeros_like(kl)))[i]
    return DeltaView(
        delta=float(grid[i]),
        index=i,
        env_steps=np.asarray(result.env_steps)[i, 0],
        returns=seed_band(ret[i]),
        kl=seed_band(kl),
        final=final_return(ret[i], last),
        overshoot=float(overshoot_fraction(kl, grid[i])),
        accepted=float(np.mean(accepted > 0.5)),
        backtracked=float(np.mean((accepted > 0.5) & (backtracks >= 1))),
    )


# ------------------------------------------------------------------------------------------
# One fresh run for the live panel
# ------------------------------------------------------------------------------------------


class LiveRun(NamedTuple):
    """One training run: ``env_steps``, ``mean_return``, ``kl``, ``accepted``, ``backtracks``,
    each ``[I]`` (numpy), and the run's ``delta`` and ``seed``."""

    delta: float
    seed: int
    env_steps: np.ndarray
    mean_return: np.ndarray
    kl: np.ndarray
    accepted: np.ndarray
    backtracks: np.ndarray


def live_run(config: TrainConfig, delta: float, seed: int = 0) -> LiveRun:
    """``course_lib.rl.train(config.replace(delta=delta), seed)`` reduced to what a panel plots.

    δ is a traced field of :class:`course_lib.TrainConfig`, so once ``config``'s structure
    is compiled every new δ reuses the program (about a second for CartPole's defaults).
    """
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.algo not in ("trpo", "npg"):
        raise ValueError(f"config.algo must be 'trpo' or 'npg', got {config.algo!r}")
    check_positive(delta, "delta")
    r = train(config.replace(delta=float(delta)), seed)
    d = r.diagnostics
    return LiveRun(float(delta), int(seed), np.asarray(r.env_steps),
                   np.asarray(r.mean_return), np.asarray(d["kl"]),
                   np.asarray(d["accepted"]), np.asarray(d["backtracks"]))
