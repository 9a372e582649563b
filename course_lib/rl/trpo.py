"""One TRPO (or natural policy gradient) update of the policy, and the value fit beside it.

TRPO (Schulman et al. 2015, §6 and Appendix C) solves

    maximise_θ  L(θ) = E[r_t(θ)·A_t]   subject to   E[KL(π_old‖π_θ)] ≤ δ

by a quadratic model of the KL around θ_old: the Fisher F is its Hessian, the step direction
is ``d = F⁻¹g`` (conjugate gradient on Fisher-vector products, g = ∇L), scaled to the
boundary of the model's trust region ``s = d·√(2δ/dᵀFd)``; a backtracking line search
then shrinks s until the true KL is within δ and L improves.

The natural policy gradient (Kakade 2001) takes the same scaled step ``s`` with no line
search: when the quadratic model is wrong the step can overshoot δ.

The value function is fitted separately by Adam on the squared error to the returns.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from course_lib.core.curvature import gauss_newton_fvp
from course_lib.core.solvers import backtracking_line_search, conjugate_gradient, trust_region_step
from course_lib.core.surrogate import surrogate
from course_lib.rl.config import hyper_from_config
from course_lib.rl.networks import ActorCritic
from course_lib.rl.ppo import optimizer
from course_lib.rl.rollout import Batch, minibatch_indices, take


class TRPOHyper(NamedTuple):
    """Traced hyper-parameters of one TRPO/NPG update (scalars)."""

    delta: jax.Array
    cg_damping: jax.Array
    backtrack_ratio: jax.Array
    lr: jax.Array
    max_grad_norm: jax.Array
    adam_eps: jax.Array

    from_config = classmethod(hyper_from_config)


def batch_surrogate(policy_params: jax.Array, batch: Batch, model: ActorCritic) -> jax.Array:
    """The surrogate ``L(θ) = mean_t[r_t(θ)·Â_t]``, ``r_t = π_θ(a_t|s_t) / π_old(a_t|s_t)``.

    ``policy_params [P]``; π_old's log-probabilities and the advantages are fixed data of
    ``batch``, so ``L(θ_old) = mean(Â)`` and ``∇L(θ_old)`` is the policy gradient.
    """
    logp = model.log_prob(model.policy(policy_params, batch.obs), batch.actions)
    return surrogate(logp, batch.logp_old, batch.advantages)


def batch_kl(policy_params: jax.Array, batch: Batch, model: ActorCritic) -> jax.Array:
    """The exact mean ``KL(π_old‖π_θ)`` over the batch's states, from the distributions' parameters.

    π_old (``batch.dist_old``) is held fixed with ``stop_gradient``: the value and gradient
    at θ_old are 0 and the Hessian there is the Fisher matrix F.
    """
    dist_old = jax.lax.stop_gradient(batch.dist_old)
    return jnp.mean(model.kl(dist_old, model.policy(policy_params, batch.obs)))


def batch_fvp(
    policy_params: jax.Array,
    batch: Batch,
    model: ActorCritic,
    damping: float | jax.Array,
    fisher_subsample: int = 1,
):
    """``v ↦ (F + μI)v``, F the Hessian of :func:`batch_kl` at ``policy_params`` (the Fisher).

    A Gauss–Newton product (:func:`course_lib.core.curvature.gauss_newton_fvp`) over every
    ``fisher_subsample``-th state of ``batch`` (the TRPO paper used 10 %), ``μ = damping``.
    """
    obs = batch.obs[::fisher_subsample]
    old = jax.tree.map(lambda x: x[::fisher_subsample], jax.lax.stop_gradient(batch.dist_old))
    return gauss_newton_fvp(
        lambda p: model.policy(p, obs),
        lambda dist: jnp.mean(model.kl(old, dist)),
        policy_params,
        damping,
    )


def trpo_policy_step(
    policy_params: jax.Array,
    batch: Batch,
    hp: TRPOHyper,
    model: ActorCritic,
    *,
    cg_iters: int = 10,
    max_backtracks: int = 10,
    line_search: bool = True,
    fisher_subsample: int = 1,
) -> tuple[jax.Array, dict[str, jax.Array]]:
    """One trust-region step of the flat policy parameters ``[P]``.

    ``fisher_subsample = k`` builds the Fisher-vector product from every k-th state (the
    TRPO paper used 10 %); the gradient and the line search use the whole batch.
    ``line_search=False`` gives the natural policy gradient step.

    Returns the new parameters and diagnostics: ``cg_residual`` (last CG residual norm),
    ``step_norm`` (‖s‖₂ of the applied step), ``backtracks`` and ``accepted``.
    """
    def surrogate_fn(p):
        return batch_surrogate(p, batch, model)

    def kl_fn(p):
        return batch_kl(p, batch, model)

    fvp = batch_fvp(policy_params, batch, model, hp.cg_damping, fisher_subsample)
    grad = jax.grad(surrogate_fn)(policy_params)
    direction, cg_info = conjugate_gradient(fvp, grad, iters=cg_iters)
    full_step = trust_region_step(direction, fvp, hp.delta)
    if line_search:
        new_params, ls = backtracking_line_search(
            surrogate_fn, kl_fn, policy_params, full_step, hp.delta,
            max_backtracks=max_backtracks, shrink=hp.backtrack_ratio,
        )
        step_norm = jnp.linalg.norm(new_params - policy_params)
        backtracks, accepted = ls.n_backtracks, ls.accepted
    else:
        new_params = policy_params + full_step
        step_norm = jnp.linalg.norm(full_step)
        backtracks, accepted = jnp.zeros((), jnp.int32), jnp.ones((), bool)
    return new_params, {
        "cg_residual": cg_info.residual_norms[-1],
        "step_norm": step_norm,
        "backtracks": backtracks.astype(jnp.float32),
        "accepted": accepted.astype(jnp.float32),
    }


def fit_value(
    value_params: jax.Array,
    opt_state: optax.OptState,
    batch: Batch,
    key: jax.Array,
    hp: TRPOHyper,
    model: ActorCritic,
    *,
    epochs: int,
    minibatches: int,
) -> tuple[jax.Array, optax.OptState]:
    """``epochs`` × ``minibatches`` Adam steps on ½·E[(V(s) − R)²]."""
    n = batch.obs.shape[0]
    tx = optimizer(hp.max_grad_norm, hp.adam_eps)
    index = minibatch_indices(key, n, epochs, minibatches)

    def loss(v, mb):
        return 0.5 * jnp.mean(jnp.square(model.value(v, mb.obs) - mb.returns))

    def step(carry, idx):
        v, opt_state = carry
        grads = jax.grad(loss)(v, take(batch, idx))
        updates, opt_state = tx.update(grads, opt_state, v)
        return (v - hp.lr * updates, opt_state), None

    (value_params, opt_state), _ = jax.lax.scan(step, (value_params, opt_state), index)
    return value_params, opt_state
