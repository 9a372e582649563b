"""Lesson 09: five common mistakes with TRPO and PPO, each reproduced and measured.

1. **Many PPO epochs without the clip.** Re-using one batch for many epochs of the plain
   surrogate ``E[r·A]`` lets the policy run far from π_old, as pre-TRPO policy gradients with
   a too-large step did. :func:`epoch_study` runs PPO's own update
   (:func:`course_lib.rl.ppo.ppo_update`) one epoch at a time on a fixed batch, with and without
   the clip, and records the exact KL(π_old‖π) and the largest ratio after every epoch.
   :func:`worst_drop` and :func:`course_lib.lessons.common.final_return` summarise training runs.
2. **No KL monitoring.** :func:`epochs_until_stop` is KL early stopping applied to a per-epoch
   KL trace.
3. **Advantage scale against δ.** :func:`advantage_scale_study` multiplies the advantages
   by c and shifts them by b and measures what that does to TRPO's step
   (:func:`course_lib.rl.trpo.trpo_policy_step`), to a plain gradient step and to a fixed-β
   KL-penalty objective (:func:`course_lib.kl_penalty_objective`, maximised by Adam).
4. **TRPO and PPO are the same surrogate.** :func:`surrogate_line` evaluates
   ``L = E[r·A]`` and ``L^CLIP`` (and their gradients) along a step from θ_old: equal while
   every ratio lies in [1−ε, 1+ε]. :func:`source_lines` shows both updates calling the
   library's surrogate functions.
5. **TRPO's guarantee in deep nets.** :func:`guarantee_check` takes TRPO steps on many fresh
   batches and measures each policy's return before and after on the same episodes (common
   random numbers); :func:`broken_promises` flags the accepted steps that improved the
   surrogate and still lost return, and :func:`monotonic_bound` evaluates the lower bound
   of TRPO's Theorem 1 (Schulman et al. 2015) on the batch.

Functions returning training summaries work on NumPy arrays; the others are jitted JAX and
return NumPy arrays in NamedTuples. Arguments are checked and errors name them.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from course_lib._validate import (
    check_int_at_least,
    check_non_negative,
    check_positive,
    check_rank,
)
from course_lib.core.surrogate import clipped_surrogate, kl_penalty_objective, surrogate
from course_lib.rl.config import TrainConfig
from course_lib.rl.envs import JaxEnv
from course_lib.rl.evaluate import episode_returns
from course_lib.rl.networks import ActorCritic, Params, model_from_config
from course_lib.rl.ppo import PPOHyper, optimizer, run_epochs
from course_lib.rl.rollout import Batch, check_rollout_args, collect_batch, policy_diagnostics
from course_lib.rl.trpo import TRPOHyper, batch_kl, trpo_policy_step

__all__ = [
    "EpochStudy",
    "EpochView",
    "GuaranteeCheck",
    "MonotonicBound",
    "ScaleStudy",
    "SurrogateLine",
    "advantage_scale_study",
    "broken_promises",
    "default_epoch_study",
    "epoch_study",
    "epoch_view",
    "epochs_until_stop",
    "guarantee_check",
    "monotonic_bound",
    "source_lines",
    "surrogate_line",
    "worst_drop",
]


def _check_model(model: ActorCritic) -> None:
    if not isinstance(model, ActorCritic):
        raise TypeError(f"model must be an ActorCritic, got {type(model).__name__}")


def _check_params(params: Params) -> None:
    if not isinstance(params, Params):
        raise TypeError(f"params must be course_lib.rl.train.Params, got {type(params).__name__}")
    check_rank(params.policy, 1, "params.policy")
    check_rank(params.value, 1, "params.value")


def _check_batch(batch: Batch) -> None:
    if not isinstance(batch, Batch):
        raise TypeError(f"batch must be a course_lib.rl.rollout.Batch, got {type(batch).__name__}")
    check_rank(batch.advantages, 1, "batch.advantages")


def _logp(model: ActorCritic, policy_params: jax.Array, batch: Batch) -> jax.Array:
    return model.log_prob(model.policy(policy_params, batch.obs), batch.actions)


def _gain(model: ActorCritic, policy_params: jax.Array, batch: Batch,
          advantages: jax.Array) -> jax.Array:
    """Surrogate improvement L(θ) − L(θ_old) = mean_t[(r_t − 1)·A_t] for ``advantages``."""
    logp = _logp(model, policy_params, batch)
    return surrogate(logp, batch.logp_old, advantages) - jnp.mean(advantages)


# ------------------------------------------------------------------------------------------
# 1-2. Training-run summaries and the early-stopping rule
# ------------------------------------------------------------------------------------------


def worst_drop(mean_return) -> np.ndarray:
    """Largest relative fall of a learning curve below its best so far: ``[..., I] → [...]``.

        worst_drop = max_i (max_{j≤i} R_j − R_i) / max_{j≤i} R_j

    0 for a curve that never falls, 0.9 for one that lost 90 % of its best return at
    some point. Returns must be > 0 (CartPole's are at least 1).
    """
    r = np.asarray(mean_return, dtype=np.float64)
    if r.ndim < 1 or r.shape[-1] < 1:
        raise ValueError(f"mean_return must have an iteration axis, got shape {r.shape}")
    if not (r > 0).all():
        raise ValueError("mean_return must be > 0 everywhere")
    best = np.maximum.accumulate(r, axis=-1)
    return ((best - r) / best).max(axis=-1)


def epochs_until_stop(kl_after_epoch, target_kl: float) -> int:
    """How many epochs run under KL early stopping with threshold ``target_kl``.

    ``kl_after_epoch[k]`` is the KL(π_old‖π) measured after epoch k + 1. Training checks
    the KL after each epoch and stops as soon as it exceeds ``target_kl``; the epoch that
    crossed has already run. So the answer is ``k + 1`` for the first k with
    ``kl_after_epoch[k] > target_kl``, or ``len(kl_after_epoch)`` when none does.
    (Spinning Up checks the k1 estimate on the whole batch before each full-batch step, and
    Stable-Baselines3 the k3 estimate before each minibatch step, both against 1.5·target_kl;
    ``TrainConfig.target_kl`` checks k3 before each minibatch step against target_kl.)

    >>> epochs_until_stop([0.001, 0.004, 0.03, 0.2], 0.02)
    3
    """
    kl = np.asarray(kl_after_epoch, dtype=np.float64)
    if kl.ndim != 1 or kl.size == 0:
        raise ValueError(f"kl_after_epoch must be a non-empty 1-D sequence, got shape {kl.shape}")
    if not float(target_kl) > 0:
        raise ValueError(f"target_kl must be > 0, got {target_kl}")
    over = np.flatnonzero(kl > float(target_kl))
    return int(over[0]) + 1 if over.size else int(kl.size)


# ------------------------------------------------------------------------------------------
# 1. PPO epoch by epoch on a fixed batch, with and without the clip
# ------------------------------------------------------------------------------------------


OBJECTIVES = ("clip", "none")
"""Rows of :class:`EpochStudy`: PPO's clipped surrogate, then the plain surrogate E[r·A]."""


class EpochStudy(NamedTuple):
    """What each extra epoch on one batch does, with the clip (row 0) and without (row 1).

    Attributes:
      epochs: ``[E + 1]`` 0 … E (0 is θ_old).
      kl: ``[2, E + 1]`` exact mean KL(π_old‖π) over the batch's states after each epoch.
      max_ratio: ``[2, E + 1]`` the largest r_t = π(a_t|s_t) / π_old(a_t|s_t) on the batch.
      clipfrac: ``[2, E + 1]`` fraction of samples with |r_t − 1| > ε.
      eps, lr: the clip range ε and Adam's learning rate used.
    """

    epochs: np.ndarray
    kl: np.ndarray
    max_ratio: np.ndarray
    clipfrac: np.ndarray
    eps: float
    lr: float


@partial(jax.jit, static_argnames=("model", "max_epochs", "minibatches"))
def _epoch_traces(model, params, batch, key, hp, max_epochs, minibatches):
    params = (params.policy, params.value)
    start = policy_diagnostics(model, params[0], batch, hp.eps)

    def trace(objective):
        opt_state = optimizer(hp.max_grad_norm).init(params)
        out = run_epochs(params, opt_state, batch, key, hp, model, epochs=max_epochs,
                         minibatches=minibatches, objective=objective)
        return tuple(jnp.concatenate([start[name][None], out[name]])
                     for name in ("kl", "max_ratio", "clipfrac"))

    rows = [trace(objective) for objective in OBJECTIVES]
    return tuple(jnp.stack(cols) for cols in zip(*rows))


def epoch_study(
    model: ActorCritic,
    params: Params,
    batch: Batch,
    key: jax.Array,
    max_epochs: int = 30,
    lr: float = 2.5e-3,
    eps: float = 0.2,
    minibatches: int = 4,
    max_grad_norm: float = 0.5,
) -> EpochStudy:
    """Run PPO's update one epoch at a time on a fixed batch and measure after each epoch.

    Each epoch is ``course_lib.rl.ppo.ppo_update(..., epochs=1)``
    (:func:`course_lib.rl.ppo.run_epochs`, which lesson 07's study runs too): a shuffle of the batch into
    ``minibatches`` minibatches and one Adam step on each (fresh Adam state at θ_old,
    carried over the epochs). Row 0 maximises L^CLIP = E[min(r·A, clip(r, 1−ε, 1+ε)·A)]
    (PPO paper eq. 7); row 1 the plain surrogate E[r·A], with the same minibatches in the
    same order, so the clip is the only difference. No early stopping.

    One compiled program serves every epoch count up to ``max_epochs``: a panel reads the
    first k entries.

    Args:
      model: the :class:`ActorCritic` of ``params``.
      params: :class:`course_lib.rl.networks.Params` θ_old (the policy that collected ``batch``).
      batch: a :class:`Batch` collected by ``params.policy``.
      key: the key of the minibatch shuffles.
      max_epochs: int ≥ 1. lr, max_grad_norm: > 0. eps: ≥ 0.
      minibatches: int ≥ 1 dividing the batch size.

    Returns:
      an :class:`EpochStudy` of NumPy arrays.
    """
    _check_model(model)
    _check_params(params)
    _check_batch(batch)
    check_int_at_least(max_epochs, 1, "max_epochs")
    check_int_at_least(minibatches, 1, "minibatches")
    n = batch.advantages.shape[0]
    if n % minibatches:
        raise ValueError(f"minibatches={minibatches} must divide the batch size {n}")
    check_positive(lr, "lr")
    check_non_negative(eps, "eps")
    check_positive(max_grad_norm, "max_grad_norm")
    hp = PPOHyper.from_config(TrainConfig(), lr=lr, eps=eps, max_grad_norm=max_grad_norm,
                              target_kl=jnp.inf, beta=0.0)
    kl, max_ratio, clipfrac = _epoch_traces(model, params, batch, key, hp, max_epochs,
                                            minibatches)
    return EpochStudy(np.arange(max_epochs + 1), np.asarray(kl), np.asarray(max_ratio),
                      np.asarray(clipfrac), float(eps), float(lr))


class EpochView(NamedTuple):
    """The part of an :class:`EpochStudy` a panel shows for ``epochs`` epochs.

    Attributes:
      epochs: the chosen epoch count k. clip: whether the clip is the selected row.
      x: ``[k + 1]`` epochs 0 … k.
      kl, max_ratio: ``[2, k + 1]`` rows (clip on, clip off) up to epoch k.
      kl_at, max_ratio_at: ``[2]`` their values after epoch k (clip on, clip off).
      selected: the row index of the selected setting (0 clip on, 1 off).
    """

    epochs: int
    clip: bool
    x: np.ndarray
    kl: np.ndarray
    max_ratio: np.ndarray
    kl_at: np.ndarray
    max_ratio_at: np.ndarray
    selected: int


def epoch_view(study: EpochStudy, epochs: int, clip: bool) -> EpochView:
    """Slice ``study`` to its first ``epochs`` epochs (1 ≤ epochs ≤ its max)."""
    if not isinstance(study, EpochStudy):
        raise TypeError(f"study must be an EpochStudy, got {type(study).__name__}")
    check_int_at_least(int(epochs), 1, "epochs")
    epochs = int(epochs)
    max_epochs = int(study.epochs[-1])
    if epochs > max_epochs:
        raise ValueError(f"epochs must be <= {max_epochs} (the study's max), got {epochs}")
    k = epochs + 1
    return EpochView(epochs, bool(clip), study.epochs[:k], study.kl[:, :k],
                     study.max_ratio[:, :k], study.kl[:, epochs], study.max_ratio[:, epochs],
                     0 if clip else 1)


def default_epoch_study(max_epochs: int = 30, seed: int = 0) -> EpochStudy:
    """:func:`epoch_study` for a freshly initialised CartPole actor-critic (64, 64).

    No training: the policy that collects the batch is the network's initial one. A lesson
    passes its own study (from a trained policy) to the panel instead.
    """
    from course_lib.rl.envs import make_env

    env = make_env("CartPole-v1")
    model = model_from_config(TrainConfig())
    k_init, k_batch, k_study = jax.random.split(jax.random.key(seed), 3)
    params = Params(*model.init(k_init))
    batch = collect_batch(params, model, env, k_batch, num_envs=8, num_steps=128)
    return epoch_study(model, params, batch, k_study, max_epochs=max_epochs)


# ------------------------------------------------------------------------------------------
# 3. Advantage scale against δ
# ------------------------------------------------------------------------------------------


class ScaleStudy(NamedTuple):
    """Result of :func:`advantage_scale_study`, one entry per row (advantages c·A + b).

    Attributes:
      scales, shifts: ``[C]`` the factor c and the shift b of each row.
      trpo_kl: ``[C]`` exact mean KL of TRPO's accepted step.
      trpo_cosine: ``[C]`` cosine between that step and TRPO's step with the original A.
      trpo_accepted: ``[C]`` whether the line search accepted a step.
      trpo_improvement: ``[C]`` the improvement the line search checked, in the units of the
        transformed advantages: mean[(r − 1)·(c·A + b)].
      trpo_gain: ``[C]`` the same step's improvement measured with the original A.
      gradient_kl: ``[C]`` exact KL of the plain gradient step θ_old + α·∇L_c.
      penalty_kl: ``[C]`` exact KL after Adam maximised E[r·(c·A + b)] − β·E[KL].
      penalty_gain: ``[C]`` that point's improvement measured with the original A.
      lr: the learning rate α, chosen so that the c = 1, b = 0 gradient step is as long (‖·‖₂) as TRPO's step.
      delta, beta: δ and the penalty's β.
      reference_step: ``[P]`` TRPO's step θ_new − θ_old with the original advantages A.
    """

    scales: np.ndarray
    shifts: np.ndarray
    trpo_kl: np.ndarray
    trpo_cosine: np.ndarray
    trpo_accepted: np.ndarray
    trpo_improvement: np.ndarray
    trpo_gain: np.ndarray
    gradient_kl: np.ndarray
    penalty_kl: np.ndarray
    penalty_gain: np.ndarray
    lr: float
    delta: float
    beta: float
    reference_step: np.ndarray


@partial(jax.jit, static_argnames=("model", "penalty_steps"))
def _scale_study(model, policy_params, batch, scales, shifts, hp, beta, penalty_lr,
                 penalty_steps):
    adv = batch.advantages

    def surrogate_of(p, a):
        return surrogate(_logp(model, p, batch), batch.logp_old, a)

    def trpo(a):
        new, diag = trpo_policy_step(policy_params, batch._replace(advantages=a), hp, model)
        return new - policy_params, diag["accepted"]

    ref_step, _ = trpo(adv)
    g_ref = jax.grad(surrogate_of)(policy_params, adv)
    lr = jnp.linalg.norm(ref_step) / jnp.linalg.norm(g_ref)
    tx = optax.adam(penalty_lr)

    def penalty(a):
        def objective(p):
            dist = model.policy(p, batch.obs)
            kl = model.kl(batch.dist_old, dist)
            return kl_penalty_objective(model.log_prob(dist, batch.actions), batch.logp_old,
                                        a, kl, beta)

        def step(carry, _):
            p, state = carry
            updates, state = tx.update(jax.grad(lambda q: -objective(q))(p), state, p)
            return (optax.apply_updates(p, updates), state), None

        (p, _), _ = jax.lax.scan(step, (policy_params, tx.init(policy_params)), None,
                                 length=penalty_steps)
        return p

    def row(c, b):
        a = c * adv + b
        s, accepted = trpo(a)
        cosine = jnp.vdot(s, ref_step) / (jnp.linalg.norm(s) * jnp.linalg.norm(ref_step))
        g = jax.grad(surrogate_of)(policy_params, a)
        p_pen = penalty(a)
        return (
            batch_kl(policy_params + s, batch, model), cosine, accepted,
            _gain(model, policy_params + s, batch, a), _gain(model, policy_params + s, batch, adv),
            batch_kl(policy_params + lr * g, batch, model),
            batch_kl(p_pen, batch, model), _gain(model, p_pen, batch, adv),
        )

    return jax.vmap(row)(scales, shifts), lr, ref_step


def advantage_scale_study(
    model: ActorCritic,
    policy_params: jax.Array,
    batch: Batch,
    scales: Sequence[float] = (0.01, 1.0, 100.0),
    shifts: Sequence[float] | None = None,
    delta: float = 0.01,
    beta: float = 1.0,
    penalty_lr: float = 2.5e-3,
    penalty_steps: int = 50,
    cg_damping: float = 0.1,
) -> ScaleStudy:
    """What advantages c·A + b do to three kinds of update, on one fixed batch.

    The surrogate is linear in the advantages: scaling them by c scales its gradient g by c.

    * **TRPO** (:func:`course_lib.rl.trpo.trpo_policy_step`, with its line search): the step
      (F + μI)⁻¹g·√(2δ / gᵀ(F + μI)⁻¹g) does not depend on c (c cancels), so neither do its
      direction nor its KL; the line search's test "improvement > 0" only sees a sign. A
      shift b is different: E_t[r_t·b] has expectation b under π_old but not on a finite
      batch, so b adds the noise b·∇ mean_t(r_t) to g. The step keeps KL ≈ δ, but spends it
      on a direction partly set by that noise.
    * **A plain gradient step** θ_old + α·g_c with the learning rate α fixed (set so that the c = 1 step is as
      long as TRPO's): its length grows like c, its KL like c².
    * **A fixed-β penalty** E[r·A_c] − β·E[KL] (PPO paper eq. 8, :func:`course_lib.
      kl_penalty_objective`) maximised by ``penalty_steps`` full-batch Adam steps: its
      optimum sits where the gradients balance, about F⁻¹g_c / β, so the effective trust
      region grows with c: a β tuned for one advantage scale is wrong for another.

    Args:
      model: the :class:`ActorCritic`; policy_params: θ_old ``[P]``; batch: its batch
        (with ``batch.advantages`` the reference A).
      scales: ``[C]`` factors c > 0. shifts: ``[C]`` shifts b (default zeros).
      delta, beta, penalty_lr, cg_damping: δ > 0, β > 0, Adam's learning rate > 0, the damping μ ≥ 0.
      penalty_steps: int ≥ 1.

    Returns:
      a :class:`ScaleStudy` of NumPy arrays.
    """
    _check_model(model)
    check_rank(policy_params, 1, "policy_params")
    _check_batch(batch)
    scales_arr = np.asarray(scales, np.float32)
    if scales_arr.ndim != 1 or scales_arr.size == 0 or not np.all(scales_arr > 0):
        raise ValueError(f"scales must be a non-empty 1-D sequence of numbers > 0, got {scales}")
    shifts_arr = (np.zeros_like(scales_arr) if shifts is None
                  else np.asarray(shifts, np.float32))
    if shifts_arr.shape != scales_arr.shape or not np.all(np.isfinite(shifts_arr)):
        raise ValueError(f"shifts must be finite and shaped like scales {scales_arr.shape}, "
                         f"got {shifts}")
    check_positive(delta, "delta")
    check_positive(beta, "beta")
    check_positive(penalty_lr, "penalty_lr")
    check_int_at_least(penalty_steps, 1, "penalty_steps")
    check_non_negative(cg_damping, "cg_damping")
    f = jnp.float32
    hp = TRPOHyper.from_config(TrainConfig(), delta=delta, cg_damping=cg_damping, lr=0.0)
    rows, lr, ref_step = _scale_study(model, policy_params, batch, jnp.asarray(scales_arr),
                            jnp.asarray(shifts_arr), hp, f(beta), f(penalty_lr), penalty_steps)
    kl, cos, acc, imp, gain, gkl, pkl, pgain = (np.asarray(x) for x in rows)
    return ScaleStudy(scales_arr, shifts_arr, kl, cos, acc.astype(bool), imp, gain, gkl, pkl,
                      pgain, float(lr), float(delta), float(beta), np.asarray(ref_step))


# ------------------------------------------------------------------------------------------
# 4. One surrogate: L and L^CLIP along a step
# ------------------------------------------------------------------------------------------


class SurrogateLine(NamedTuple):
    """L(θ) and L^CLIP(θ) at θ_old + t·step for each fraction t (NumPy ``[T]`` arrays).

    Attributes:
      fractions: the t.
      surrogate, clipped: L = mean(r·A) and L^CLIP = mean(min(r·A, clip(r, 1−ε, 1+ε)·A)).
      grad_norm, clipped_grad_norm: ‖∇L‖₂ and ‖∇L^CLIP‖₂ at that point.
      grad_gap: ‖∇L − ∇L^CLIP‖₂ / ‖∇L‖₂.
      max_deviation: max_t |r_t − 1|: every ratio lies in [1−ε, 1+ε] when it is ≤ ε.
      clipfrac: fraction of samples with |r_t − 1| > ε.
      kl: exact mean KL(π_old‖π).
      eps: ε.
    """

    fractions: np.ndarray
    surrogate: np.ndarray
    clipped: np.ndarray
    grad_norm: np.ndarray
    clipped_grad_norm: np.ndarray
    grad_gap: np.ndarray
    max_deviation: np.ndarray
    clipfrac: np.ndarray
    kl: np.ndarray
    eps: float


@partial(jax.jit, static_argnames=("model",))
def _surrogate_line(model, policy_params, batch, step, fractions, eps):
    def plain(p):
        return surrogate(_logp(model, p, batch), batch.logp_old, batch.advantages)

    def clipped(p):
        return clipped_surrogate(_logp(model, p, batch), batch.logp_old, batch.advantages, eps)

    def at(t):
        p = policy_params + t * step
        l, g = jax.value_and_grad(plain)(p)
        lc, gc = jax.value_and_grad(clipped)(p)
        r = jnp.exp(_logp(model, p, batch) - batch.logp_old)
        dev = jnp.abs(r - 1.0)
        gn = jnp.linalg.norm(g)
        return (l, lc, gn, jnp.linalg.norm(gc), jnp.linalg.norm(g - gc) / gn, jnp.max(dev),
                jnp.mean((dev > eps).astype(jnp.float32)), batch_kl(p, batch, model))

    return jax.vmap(at)(fractions)


def surrogate_line(
    model: ActorCritic,
    policy_params: jax.Array,
    batch: Batch,
    step: jax.Array,
    fractions,
    eps: float = 0.2,
) -> SurrogateLine:
    """TRPO's surrogate and PPO's clipped surrogate side by side along θ_old + t·step.

    L^CLIP = mean(min(r·A, clip(r, 1−ε, 1+ε)·A)) equals L = mean(r·A) term by term where
    r ∈ [1−ε, 1+ε] (the clip does nothing there), so where every ratio is inside, the two
    objectives and their gradients are equal; at θ_old (t = 0, r ≡ 1) both gradients are
    the policy gradient E[∇log π·A]. Outside, L^CLIP ≤ L (a pessimistic bound) and samples
    whose ratio left the range in the direction A favours stop contributing gradient.

    Args:
      model, policy_params: the :class:`ActorCritic` and θ_old ``[P]``.
      batch: a :class:`Batch` collected by θ_old.
      step: ``[P]`` a direction in parameter space (e.g. TRPO's step).
      fractions: ``[T]`` the t to evaluate (t = 0 is θ_old).
      eps: ε ≥ 0.

    Returns:
      a :class:`SurrogateLine` of NumPy arrays.
    """
    _check_model(model)
    check_rank(policy_params, 1, "policy_params")
    _check_batch(batch)
    if jnp.shape(step) != jnp.shape(policy_params):
        raise ValueError(f"step must have the shape {jnp.shape(policy_params)} of "
                         f"policy_params, got {jnp.shape(step)}")
    t = np.asarray(fractions, np.float32)
    if t.ndim != 1 or t.size == 0 or not np.all(np.isfinite(t)):
        raise ValueError(f"fractions must be a non-empty 1-D sequence of finite numbers, "
                         f"got {fractions}")
    check_non_negative(eps, "eps")
    out = _surrogate_line(model, policy_params, batch, jnp.asarray(step), jnp.asarray(t),
                          jnp.float32(eps))
    return SurrogateLine(t, *(np.asarray(x) for x in out), float(eps))


def source_lines(fn: Callable, names: Sequence[str]) -> list[str]:
    """The lines of ``fn``'s source that call one of ``names`` (``name(``), stripped.

    >>> from course_lib import trpo
    >>> source_lines(trpo.trpo_policy_step, ["surrogate"])[0].startswith("return surrogate(")
    True
    """
    if not callable(fn):
        raise TypeError(f"fn must be a function, got {type(fn).__name__}")
    if isinstance(names, str) or not names:
        raise ValueError(f"names must be a non-empty sequence of names, got {names!r}")
    pattern = re.compile(r"(?<![\w.])(" + "|".join(map(re.escape, names)) + r")\(")
    return [line.strip() for line in inspect.getsource(fn).splitlines()
            if pattern.search(line) and not line.strip().startswith(("def ", "#"))]


# ------------------------------------------------------------------------------------------
# 5. TRPO's guarantee, checked on real updates
# ------------------------------------------------------------------------------------------


class GuaranteeCheck(NamedTuple):
    """Result of :func:`guarantee_check`: K TRPO steps from one policy (NumPy arrays).

    Attributes:
      return_before: mean return of θ_old over the evaluation episodes (a float).
      return_after: ``[K]`` mean return of each θ_new over the same episodes.
      paired_se: ``[K]`` standard error of the mean per-episode difference after − before.
      kl: ``[K]`` exact mean KL(π_old‖π_new) over the batch's states (TRPO's constraint).
      max_kl: ``[K]`` the largest per-state KL on the batch (the theorem's quantity).
      accepted: ``[K]`` whether the line search accepted a step.
      gain: ``[K]`` surrogate improvement mean[(r − 1)·Â] on the batch (normalised Â, as
        the line search saw it).
      heldout_gain: ``[K]`` the same step's surrogate improvement on a second, independent
        batch of θ_old: an estimate free of the batch's own noise.
      raw_gain: ``[K]`` the improvement in units of return: with the raw GAE advantages Â
        centred (their mean removed, as the true advantages have mean 0 under π_old) but
        not divided by their standard deviation.
      max_abs_advantage: ``[K]`` the largest of those centred |Â − mean Â| on the batch.
      delta: δ.
    """

    return_before: float
    return_after: np.ndarray
    paired_se: np.ndarray
    kl: np.ndarray
    max_kl: np.ndarray
    accepted: np.ndarray
    gain: np.ndarray
    heldout_gain: np.ndarray
    raw_gain: np.ndarray
    max_abs_advantage: np.ndarray
    delta: float


@partial(jax.jit, static_argnames=("model", "env", "episodes", "num_envs", "num_steps", "gamma",
                                   "lam"))
def _guarantee(model, env, params, keys, eval_key, hp, episodes, num_envs, num_steps, gamma,
               lam):
    theta = params.policy

    def one(key):
        k_batch, k_held = jax.random.split(key)
        batch = collect_batch(params, model, env, k_batch, num_envs, num_steps, gamma, lam)
        held = collect_batch(params, model, env, k_held, num_envs, num_steps, gamma, lam)
        new, diag = trpo_policy_step(theta, batch, hp, model)
        per_state = model.kl(batch.dist_old, model.policy(new, batch.obs))
        raw = batch.returns - batch.values_old
        centred = raw - jnp.mean(raw)
        after = episode_returns(new, model, env, eval_key, episodes)
        return (after, jnp.mean(per_state), jnp.max(per_state), diag["accepted"],
                _gain(model, new, batch, batch.advantages),
                _gain(model, new, held, held.advantages),
                _gain(model, new, batch, centred), jnp.max(jnp.abs(centred)))

    before = episode_returns(theta, model, env, eval_key, episodes)
    after, *rest = jax.vmap(one)(keys)
    diff = after - before[None, :]
    se = jnp.std(diff, axis=1, ddof=1) / jnp.sqrt(episodes)
    return jnp.mean(before), jnp.mean(after, axis=1), se, *rest


def guarantee_check(
    params: Params,
    model: ActorCritic,
    env: JaxEnv,
    key: jax.Array,
    n_updates: int = 16,
    delta: float = 0.01,
    episodes: int = 128,
    num_envs: int = 8,
    num_steps: int = 128,
    gamma: float = 0.99,
    lam: float = 0.95,
) -> GuaranteeCheck:
    """Take ``n_updates`` independent TRPO steps from θ_old and measure what each did.

    For each of K keys: collect a fresh batch of ``num_envs · num_steps`` steps with θ_old
    (:func:`course_lib.rl.rollout.collect_batch`: GAE, normalised advantages), take one library
    TRPO step (:func:`course_lib.rl.trpo.trpo_policy_step`: CG, δ-scaling, line search that
    demands KL ≤ δ and a surrogate improvement), then play ``episodes`` episodes with
    θ_old and with θ_new from the same start states and random numbers (common random
    numbers, :func:`course_lib.rl.evaluate.episode_returns`), so the difference of the two means
    is the step's doing plus a paired noise whose standard error is reported.

    Args:
      params: :class:`course_lib.rl.networks.Params` θ_old (policy and the critic for GAE).
      model, env: the categorical :class:`ActorCritic` and its JAX environment.
      key: splits into the K batch keys and the evaluation key.
      n_updates, episodes, num_envs, num_steps: ints ≥ 1 (episodes ≥ 2).
      delta: δ > 0. gamma, lam: in [0, 1].

    Returns:
      a :class:`GuaranteeCheck`.
    """
    check_rollout_args(params, model, env, num_envs, num_steps, gamma, lam)
    check_int_at_least(n_updates, 1, "n_updates")
    check_int_at_least(episodes, 2, "episodes")
    check_positive(delta, "delta")
    k_batches, k_eval = jax.random.split(key)
    hp = TRPOHyper.from_config(TrainConfig(), delta=delta, lr=0.0)
    out = _guarantee(model, env, params, jax.random.split(k_batches, n_updates), k_eval, hp,
                     episodes, num_envs, num_steps, float(gamma), float(lam))
    before, after, se, kl, max_kl, acc, gain, held, raw, amax = (np.asarray(x) for x in out)
    return GuaranteeCheck(float(before), after, se, kl, max_kl, acc.astype(bool), gain, held,
                          raw, amax, float(delta))


def broken_promises(return_before, return_after, gain, kl, delta: float,
                    drop: float = 0.1) -> np.ndarray:
    """Updates that did everything TRPO asks and still lost return: a bool array.

        gain > 0  and  kl ≤ δ  and  return_after < (1 − drop)·return_before

    All arguments broadcast together (``return_before`` may be a scalar).
    """
    if not float(delta) > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    if not 0.0 <= float(drop) < 1.0:
        raise ValueError(f"drop must lie in [0, 1), got {drop}")
    before, after, gain, kl = (np.asarray(x, dtype=np.float64)
                               for x in (return_before, return_after, gain, kl))
    return (gain > 0) & (kl <= float(delta)) & (after < (1.0 - float(drop)) * before)


class MonotonicBound(NamedTuple):
    """The terms of TRPO's Theorem 1 for one update (floats or arrays).

    J(π_new) − J(π_old) ≥ gain_term − penalty_term = bound, with
    gain_term = raw_gain / (1 − γ) and penalty_term = 4·A_max·γ / (1 − γ)² · max_kl.
    """

    gain_term: np.ndarray
    penalty_term: np.ndarray
    bound: np.ndarray


def monotonic_bound(raw_gain, max_abs_advantage, max_kl, gamma: float) -> MonotonicBound:
    """The lower bound on the change of the discounted return that TRPO's theory promises.

    Theorem 1 of Schulman et al. (2015), with D_TV² ≤ D_KL:

        J(π̃) ≥ L_π(π̃) − C·D_KL^max(π, π̃),   C = 4·A_max·γ / (1 − γ)²,   A_max = max_{s,a} |A_π(s,a)|

    where L_π(π̃) − J(π) = Σ_s ρ_π(s) Σ_a π̃(a|s) A_π(s,a) ≈ E_t[(r_t − 1)·A_t] / (1 − γ)
    (ρ_π the discounted state visitation, of total mass 1 / (1 − γ)). The theorem needs the
    exact advantages and the *maximum* KL over states; TRPO uses sampled advantages and
    constrains the *mean* KL. Fed with a batch's numbers (its max |A| as A_max, its largest
    per-state KL) the bound shows how much it can promise.

    Args:
      raw_gain: E_t[(r_t − 1)·A_t] with advantages in units of return (not divided by
        their standard deviation).
      max_abs_advantage: A_max ≥ 0. max_kl: ≥ 0. gamma: in [0, 1).
    """
    g = float(gamma)
    if not 0.0 <= g < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {gamma}")
    a_max = np.asarray(max_abs_advantage, dtype=np.float64)
    kl = np.asarray(max_kl, dtype=np.float64)
    if (a_max < 0).any():
        raise ValueError("max_abs_advantage must be >= 0")
    if (kl < 0).any():
        raise ValueError("max_kl must be >= 0")
    gain_term = np.asarray(raw_gain, dtype=np.float64) / (1.0 - g)
    penalty_term = 4.0 * a_max * g / (1.0 - g) ** 2 * kl
    return MonotonicBound(gain_term, penalty_term, gain_term - penalty_term)
