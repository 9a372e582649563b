"""One PPO update: epochs × minibatches of Adam on the same batch.

Objectives (Schulman et al. 2017, "Proximal Policy Optimization Algorithms"):

* clip (eq. 7): ``L^CLIP = E[min(r·A, clip(r, 1−ε, 1+ε)·A)]``;
* no clip (the ablation): ``E[r·A]``, the TRPO surrogate without any constraint;
* penalty (eq. 8): ``E[r·A] − β·E[KL(π_old‖π)]`` with β adapted between updates
  (:func:`adapt_beta`).

The loss minimised per minibatch is ``−objective + c_v·L^V − c_e·entropy``. Early stopping
(as in OpenAI Spinning Up and Stable-Baselines3): before each minibatch step the k3 estimate
of KL(π_old‖π) on that minibatch is computed; once it exceeds ``target_kl`` the remaining
minibatch steps of this update are skipped.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from course_lib.rl.networks import ActorCritic
from course_lib.rl.rollout import Batch, minibatch_indices, normalise, take
from course_lib.core.surrogate import clipped_surrogate, kl_estimate, surrogate


class PPOHyper(NamedTuple):
    """Traced hyper-parameters of one PPO update (scalars)."""

    lr: jax.Array
    eps: jax.Array
    vf_coef: jax.Array
    ent_coef: jax.Array
    max_grad_norm: jax.Array
    target_kl: jax.Array
    beta: jax.Array


def optimizer(max_grad_norm: jax.Array) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's scaling; the caller multiplies by −lr."""
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(eps=1e-5))


def ppo_loss(
    params: tuple[jax.Array, jax.Array],
    mb: Batch,
    hp: PPOHyper,
    model: ActorCritic,
    objective: str,
    clip_value: bool,
) -> tuple[jax.Array, jax.Array]:
    """``(loss, k3)``: the minibatch loss and the k3 KL estimate at ``params``.

    ``objective`` is "clip", "none" (plain surrogate) or "penalty".
    """
    pi_params, v_params = params
    dist = model.policy(pi_params, mb.obs)
    logp = model.log_prob(dist, mb.actions)
    if objective == "clip":
        pg = clipped_surrogate(logp, mb.logp_old, mb.advantages, hp.eps)
    elif objective == "penalty":
        pg = surrogate(logp, mb.logp_old, mb.advantages) - hp.beta * jnp.mean(
            model.kl(jax.lax.stop_gradient(mb.dist_old), dist)
        )
    else:
        pg = surrogate(logp, mb.logp_old, mb.advantages)
    values = model.value(v_params, mb.obs)
    v_loss = jnp.square(values - mb.returns)
    if clip_value:
        clipped = mb.values_old + jnp.clip(values - mb.values_old, -hp.eps, hp.eps)
        v_loss = jnp.maximum(v_loss, jnp.square(clipped - mb.returns))
    loss = -pg + hp.vf_coef * 0.5 * jnp.mean(v_loss) - hp.ent_coef * jnp.mean(model.entropy(dist))
    return loss, kl_estimate(logp, mb.logp_old, "k3")


def ppo_update(
    params: tuple[jax.Array, jax.Array],
    opt_state: optax.OptState,
    batch: Batch,
    key: jax.Array,
    hp: PPOHyper,
    model: ActorCritic,
    *,
    epochs: int,
    minibatches: int,
    objective: str = "clip",
    clip_value: bool = False,
    minibatch_advantages: bool = False,
) -> tuple[tuple[jax.Array, jax.Array], optax.OptState, dict[str, jax.Array]]:
    """Run ``epochs`` passes of ``minibatches`` Adam steps over ``batch``.

    Returns the new ``(policy_params, value_params)``, the optimiser state and
    ``{"updates_done": fraction of the minibatch steps taken before early stopping}``.
    """
    n = batch.obs.shape[0]
    tx = optimizer(hp.max_grad_norm)
    index = minibatch_indices(key, n, epochs, minibatches)
    grad_fn = jax.grad(ppo_loss, has_aux=True)

    def step(carry, idx):
        params, opt_state, stopped = carry
        mb = take(batch, idx)
        mb = mb._replace(advantages=normalise(mb.advantages, minibatch_advantages))
        grads, k3 = grad_fn(params, mb, hp, model, objective, clip_value)
        stopped = stopped | (k3 > hp.target_kl)
        updates, new_opt = tx.update(grads, opt_state, params)
        new_params = jax.tree.map(lambda p, u: p - hp.lr * u, params, updates)
        keep = lambda old, new: jax.tree.map(lambda o, w: jnp.where(stopped, o, w), old, new)
        return (keep(params, new_params), keep(opt_state, new_opt), stopped), ~stopped

    (params, opt_state, _), taken = jax.lax.scan(step, (params, opt_state, False), index)
    return params, opt_state, {"updates_done": jnp.mean(taken.astype(jnp.float32))}


def adapt_beta(beta: jax.Array, kl: jax.Array, target: jax.Array) -> jax.Array:
    """PPO-penalty's adaptive β (PPO paper §4): halve it when KL < d_targ/1.5, double it when
    KL > 1.5·d_targ, else keep it."""
    return jnp.where(kl < target / 1.5, beta / 2.0, jnp.where(kl > target * 1.5, beta * 2.0, beta))
