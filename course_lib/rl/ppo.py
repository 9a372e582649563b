"""One PPO update: epochs × minibatches of Adam on the same batch.

Objectives (Schulman et al. 2017, "Proximal Policy Optimization Algorithms"):

* clip (eq. 7): ``L^CLIP = E[min(r·A, clip(r, 1−ε, 1+ε)·A)]``;
* no clip (the ablation): ``E[r·A]``, the TRPO surrogate without any constraint;
* penalty (eq. 8): ``E[r·A] − β·E[KL(π_old‖π)]`` with β adapted between updates
  (:func:`adapt_beta`).

The loss minimised per minibatch is ``−objective + c_v·L^V − c_e·entropy``. Early stopping:
before each minibatch step the k3 estimate of KL(π_old‖π) on that minibatch is computed; once
it exceeds ``target_kl`` the remaining minibatch steps of this update are skipped.
Stable-Baselines3 makes the same check but stops at 1.5 × ``target_kl``; OpenAI Spinning Up
checks the k1 estimate on the whole batch before each full-batch step, also at 1.5 ×.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from course_lib._validate import check_int_at_least
from course_lib.core.surrogate import clipped_surrogate, kl_estimate, surrogate
from course_lib.rl.config import hyper_from_config
from course_lib.rl.networks import ActorCritic
from course_lib.rl.rollout import Batch, minibatch_indices, normalise, policy_diagnostics, take

OBJECTIVES = ("clip", "none", "penalty")


class PPOHyper(NamedTuple):
    """Traced hyper-parameters of one PPO update (scalars)."""

    lr: jax.Array
    eps: jax.Array
    vf_coef: jax.Array
    ent_coef: jax.Array
    max_grad_norm: jax.Array
    target_kl: jax.Array
    beta: jax.Array
    adam_eps: jax.Array

    from_config = classmethod(hyper_from_config)


def optimizer(max_grad_norm: jax.Array,
              eps: jax.Array | float = 1e-5) -> optax.GradientTransformation:
    """Global-norm clipping then Adam's scaling with ε = ``eps`` (``config.adam_eps``, traced
    in training); the caller multiplies by −lr. Adam's state does not depend on ε, so
    ``optimizer(m).init(params)`` serves any ε."""
    return optax.chain(optax.clip_by_global_norm(max_grad_norm), optax.scale_by_adam(eps=eps))


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
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, got {objective!r}")
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
    tx = optimizer(hp.max_grad_norm, hp.adam_eps)
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


EPOCH_DIAGNOSTICS = ("kl", "kl_k3", "max_ratio", "clipfrac", "updates_done")
"""What :func:`run_epochs` records after each epoch."""


def run_epochs(
    params,
    opt_state,
    batch: Batch,
    key: jax.Array,
    hp: PPOHyper,
    model: ActorCritic,
    *,
    epochs: int,
    diagnostic_eps: jax.Array | None = None,
    **update_options,
) -> dict[str, jax.Array]:
    """Run a PPO update one epoch at a time and measure the policy after every epoch.

    Each epoch is one call of ``course_lib.rl.ppo.ppo_update(..., epochs=1)`` with its own key
    (``jax.random.split(key, epochs)``), carrying the parameters and Adam's state over. Early
    stopping works as in a single ``ppo_update`` call: once the k3 estimate on a minibatch has
    exceeded ``hp.target_kl``, that minibatch step, the rest of the epoch and every later
    epoch are skipped.

    After epoch e (e = 1 … epochs), on the whole batch:

    * ``kl``: the exact mean KL(π_old‖π_e) from the distributions' parameters;
    * ``kl_k3``: the k3 estimate mean((r − 1) − log r) from the batch's actions;
    * ``max_ratio``: the largest r = π_e(a|s) / π_old(a|s);
    * ``clipfrac``: the fraction of samples with |r − 1| > ε (ε = ``diagnostic_eps``, by
      default ``hp.eps``);
    * ``updates_done``: the fraction of epoch e's minibatch steps that were taken.

    ``update_options`` are :func:`ppo_update`'s keywords (``minibatches``, ``objective``,
    ``clip_value``, ``minibatch_advantages``), passed on to it. Pure and jittable (``epochs``
    and the options static).

    Returns:
      ``{name: [epochs]}`` for the names in :data:`EPOCH_DIAGNOSTICS`.
    """
    check_int_at_least(epochs, 1, "epochs")
    report_eps = hp.eps if diagnostic_eps is None else diagnostic_eps

    def one_epoch(carry, k):
        params, opt_state, stopped = carry
        new_params, new_opt, info = ppo_update(params, opt_state, batch, k, hp, model, epochs=1,
                                               **update_options)
        keep = lambda old, new: jax.tree.map(lambda o, w: jnp.where(stopped, o, w), old, new)
        params, opt_state = keep(params, new_params), keep(opt_state, new_opt)
        done = jnp.where(stopped, 0.0, info["updates_done"])
        stopped = stopped | (info["updates_done"] < 1.0)
        diag = policy_diagnostics(model, params[0], batch, report_eps)
        out = {name: diag[name] for name in EPOCH_DIAGNOSTICS[:-1]}
        return (params, opt_state, stopped), {**out, "updates_done": done}

    keys = jax.random.split(key, epochs)
    _, per_epoch = jax.lax.scan(one_epoch, (params, opt_state, jnp.asarray(False)), keys)
    return per_epoch
