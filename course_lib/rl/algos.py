"""The one place that maps an algorithm's name to its update.

``train`` and every lesson that runs updates step by step look an algorithm up here
(:func:`get_algo`), so "ppo", "ppo_penalty", "trpo" and "npg" each mean one thing everywhere:

* **ppo** (Schulman et al. 2017, §3): ``epochs × minibatches`` Adam steps on the policy and
  critic of ``−L^CLIP + c_v·L^V − c_e·H`` (``config.clip=False``: the unclipped surrogate);
* **ppo_penalty** (§4): the same steps on ``−(L − β·KL)``; β adapts to ``target_kl`` after
  each update (:func:`course_lib.rl.ppo.adapt_beta`);
* **trpo** (Schulman et al. 2015): one natural-gradient step scaled to the trust region δ,
  then a backtracking line search on the exact KL; the critic by Adam;
* **npg** (Kakade 2001): the same step without the line search.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from course_lib.rl.config import ALGOS, hyper_fields
from course_lib.rl.networks import ActorCritic, Params
from course_lib.rl.ppo import PPOHyper, adapt_beta, optimizer, ppo_update
from course_lib.rl.rollout import Batch
from course_lib.rl.trpo import TRPOHyper, batch_kl, batch_surrogate, fit_value, trpo_policy_step

__all__ = ["Algo", "get_algo", "init_opt_state"]


class Algo(NamedTuple):
    """An algorithm as the training loop runs it.

    Attributes:
      name: "ppo", "ppo_penalty", "trpo" or "npg".
      update: ``(config, num, params, opt_state, batch, key, model, lr, beta) →
        (Params, opt_state, diagnostics)``; ``config`` holds the structural fields (epochs,
        minibatches, switches), ``num`` the numeric ones (a TrainConfig or a mapping of
        float32 scalars), ``lr``/``beta`` this iteration's values.
      adam_on_policy: whether Adam's state covers the policy as well as the critic (PPO) or
        the critic only (TRPO, NPG: the policy takes the natural-gradient step).
      next_beta: ``(beta, exact_kl, num) → beta`` for the next update (PPO-penalty's rule;
        the others keep β).
    """

    name: str
    update: Callable[..., tuple[Params, Any, dict]]
    adam_on_policy: bool
    next_beta: Callable[[jax.Array, jax.Array, Any], jax.Array]


def _ppo(config, num, params, opt_state, batch: Batch, key, model: ActorCritic, lr, beta,
         objective: str):
    penalty = objective == "penalty"
    hp = PPOHyper.from_config(num, lr=lr, beta=beta,
                              **({"target_kl": jnp.inf} if penalty else {}))
    if config.ppo_update is not None and objective == "clip":
        new, opt_state = config.ppo_update(params, opt_state, batch, key, hp, model,
                                           config.epochs, config.minibatches)
        return tuple(new), opt_state, {"updates_done": jnp.ones((), jnp.float32)}
    return ppo_update(
        params, opt_state, batch, key, hp, model, epochs=config.epochs,
        minibatches=config.minibatches, objective=objective, clip_value=config.clip_value,
        minibatch_advantages=config.normalize_advantages == "minibatch",
    )


def _ppo_clip(config, num, params, opt_state, batch, key, model, lr, beta):
    new, opt_state, diag = _ppo(config, num, params, opt_state, batch, key, model, lr, beta,
                                "clip" if config.clip else "none")
    return Params(*new), opt_state, diag


def _ppo_penalty(config, num, params, opt_state, batch, key, model, lr, beta):
    new, opt_state, diag = _ppo(config, num, params, opt_state, batch, key, model, lr, beta,
                                "penalty")
    return Params(*new), opt_state, diag


def _natural(line_search: bool):
    def update(config, num, params, opt_state, batch, key, model, lr, beta):
        hp = TRPOHyper.from_config(num, lr=lr)
        if config.policy_step is not None:
            new_pi, diag = _given_policy_step(config.policy_step, params.policy, batch, hp, model)
        else:
            new_pi, diag = trpo_policy_step(
                params.policy, batch, hp, model, cg_iters=config.cg_iters,
                max_backtracks=config.max_backtracks, line_search=line_search,
                fisher_subsample=config.fisher_subsample,
            )
        new_v, opt_state = fit_value(params.value, opt_state, batch, key, hp, model,
                                     epochs=config.epochs, minibatches=config.minibatches)
        return Params(new_pi, new_v), opt_state, diag

    return update


def _given_policy_step(policy_step, pi, batch, hp, model):
    """``TrainConfig.policy_step`` in place of the library's step (a learner's TRPO step): it
    gets the batch's surrogate and mean KL as functions of the flat policy parameters. The
    diagnostics report its step norm, ``accepted`` whether it moved, the rest 0."""
    new = policy_step(lambda p: batch_surrogate(p, batch, model),
                      lambda p: batch_kl(p, batch, model), pi, hp.delta)
    new = jnp.asarray(new, pi.dtype).reshape(pi.shape)
    norm, zero = jnp.linalg.norm(new - pi), jnp.zeros((), jnp.float32)
    return new, {"cg_residual": zero, "step_norm": norm, "backtracks": zero,
                 "accepted": (norm > 0).astype(jnp.float32)}


def _keep_beta(beta, kl, num):
    return beta


def _adapt_beta(beta, kl, num):
    return adapt_beta(beta, kl, hyper_fields(("target_kl",), num, {})["target_kl"])


_ALGOS = {
    "ppo": Algo("ppo", _ppo_clip, True, _keep_beta),
    "ppo_penalty": Algo("ppo_penalty", _ppo_penalty, True, _adapt_beta),
    "trpo": Algo("trpo", _natural(line_search=True), False, _keep_beta),
    "npg": Algo("npg", _natural(line_search=False), False, _keep_beta),
}
assert tuple(_ALGOS) == ALGOS


def get_algo(name: str) -> Algo:
    """The :class:`Algo` called ``name``; a ``ValueError`` naming ``algo`` for any other."""
    if name not in _ALGOS:
        raise ValueError(f"algo must be one of {ALGOS}, got {name!r}")
    return _ALGOS[name]


def init_opt_state(name: str, params: Params, max_grad_norm) -> Any:
    """Adam's initial state for ``name``: over both networks (PPO) or the critic only."""
    target = params if get_algo(name).adam_on_policy else params.value
    return optimizer(max_grad_norm).init(target)
