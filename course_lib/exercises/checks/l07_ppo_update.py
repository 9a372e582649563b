"""Lesson 07's capstone: the learner's PPO update, checked on hidden batches, then trained.

``my_ppo_update(params, opt_state, batch, key, hp, model, epochs, minibatches) ->
(params, opt_state)``: ``epochs × minibatches`` Adam steps (``course_lib.rl.ppo.optimizer``,
minibatches from ``course_lib.rl.rollout.minibatch_indices``) on ``−L^CLIP + c_v·½·E[(V − R)²]
− c_e·H``, skipping every step from the first minibatch whose k3 estimate of KL(π_old‖π),
measured before its step, exceeds ``hp.target_kl``. The check

1. runs it under ``jax.jit`` on hidden batches of a CartPole actor-critic and compares the new
   networks with :func:`course_lib.rl.ppo.ppo_update`; the registered wrong updates (the min
   replaced by max, no early stopping, no clip, the value loss
   left out) fail with a line naming the mistake;
2. plugs it into ``course_lib.train`` (``TrainConfig(algo="ppo", ppo_update=..., target_kl=
   0.02)``) on a hidden seed: the greedy policy must solve CartPole-v1 in gymnasium (mean return
   ≥ 475 over 10 episodes). About 15 s on a laptop, most of it compiling.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.core.surrogate import kl_estimate
from course_lib.exercises.checks.verdict import Case, Wrong, compare, trained_greedy, verdict

__all__ = ["PPO_UPDATE_SEED", "check_ppo_update", "variant_update"]

PPO_UPDATE_SEED = 5
"""The training seed of the check (not printed in the learner's notebook)."""
SOLVED = 475.0
TRAIN_TARGET_KL = 0.02

# (seed, lr, target_kl, epochs, minibatches, ent_coef)
CASES = [(0, 3e-3, float("inf"), 3, 4, 0.0), (1, 1e-2, float("inf"), 4, 2, 0.01),
         (2, 2e-2, 0.004, 4, 4, 0.0), (3, 3e-2, 0.01, 3, 2, 0.01)]
"""Hidden batches: small steps, large steps (the clip binds), and early stopping."""


@functools.cache
def _model():
    from course_lib.rl.config import TrainConfig
    from course_lib.rl.networks import model_from_config

    return model_from_config(TrainConfig(hidden=(16, 16)))


@functools.cache
def _problem(seed: int, lr: float, target_kl: float, ent_coef: float):
    from course_lib.rl.ppo import PPOHyper, optimizer
    from course_lib.rl.rollout import Batch

    model = _model()
    pi, v = (jnp.asarray(x) for x in model.init_numpy(100 + seed))
    rng = np.random.default_rng(seed)
    n = 128
    obs = jnp.asarray(rng.normal(0.0, 1.0, (n, 4)), jnp.float32)
    dist = model.policy(pi, obs)
    actions = model.sample(dist, jax.random.key(seed))
    logp = model.log_prob(dist, actions)
    values = model.value(v, obs)
    adv = rng.normal(0.0, 1.0, n)
    adv = jnp.asarray((adv - adv.mean()) / adv.std(), jnp.float32)
    returns = values + jnp.asarray(rng.normal(1.0, 1.0, n), jnp.float32)
    batch = Batch(obs, actions, logp, dist, values, adv, returns)
    f = jnp.float32
    hp = PPOHyper(lr=f(lr), eps=f(0.2), vf_coef=f(0.5), ent_coef=f(ent_coef),
                  max_grad_norm=f(0.5), target_kl=f(target_kl), beta=f(1.0), adam_eps=f(1e-5))
    params = (pi, v)
    return params, optimizer(hp.max_grad_norm, hp.adam_eps).init(params), batch, hp


def variant_update(params, opt_state, batch, key, hp, model, epochs, minibatches, *,
                   combine=jnp.minimum, early_stop=True, stop_after_step=False, clip=True,
                   value_loss=True):
    """PPO's update as the capstone asks for it; the keywords build the registered wrong
    updates (with the defaults it is :func:`course_lib.rl.ppo.ppo_update`, objective "clip")."""
    from course_lib.rl.ppo import optimizer
    from course_lib.rl.rollout import minibatch_indices, take

    tx = optimizer(hp.max_grad_norm, hp.adam_eps)
    index = minibatch_indices(key, batch.obs.shape[0], epochs, minibatches)

    def loss(p, mb):
        dist = model.policy(p[0], mb.obs)
        logp = model.log_prob(dist, mb.actions)
        r = jnp.exp(logp - jax.lax.stop_gradient(mb.logp_old))
        clipped = jnp.clip(r, 1.0 - hp.eps, 1.0 + hp.eps) if clip else r
        pg = jnp.mean(combine(r * mb.advantages, clipped * mb.advantages))
        v_loss = 0.5 * jnp.mean(jnp.square(model.value(p[1], mb.obs) - mb.returns))
        total = -pg - hp.ent_coef * jnp.mean(model.entropy(dist))
        if value_loss:
            total = total + hp.vf_coef * v_loss
        return total, kl_estimate(logp, mb.logp_old, "k3")

    def step(carry, idx):
        p, opt, stopped = carry
        grads, k3 = jax.grad(loss, has_aux=True)(p, take(batch, idx))
        if early_stop and not stop_after_step:
            stopped = stopped | (k3 > hp.target_kl)
        updates, new_opt = tx.update(grads, opt, p)
        new_p = jax.tree.map(lambda a, u: a - hp.lr * u, p, updates)
        keep = lambda old, new: jax.tree.map(lambda o, w: jnp.where(stopped, o, w), old, new)
        p, opt = keep(p, new_p), keep(opt, new_opt)
        if early_stop and stop_after_step:
            stopped = stopped | (loss(p, take(batch, idx))[1] > hp.target_kl)
        return (p, opt, stopped), None

    (params, opt_state, _), _ = jax.lax.scan(step, (params, opt_state, jnp.asarray(False)),
                                             index)
    return params, opt_state


def _flat(params) -> np.ndarray:
    return np.concatenate([np.asarray(x, np.float64).ravel() for x in params])


def _cases() -> list[Case]:
    out = []
    for seed, lr, target, epochs, mbs, ent in CASES:
        stop = "with early stopping" if np.isfinite(target) else "without early stopping"
        out.append(Case(f"a hidden batch ({epochs} epochs × {mbs} minibatches, lr = {lr:g}, "
                        f"{stop})", (seed, lr, target, epochs, mbs, ent)))
    return out


def _runner(update: Callable, **wrong) -> Callable:
    def run(seed, lr, target, epochs, mbs, ent):
        params, opt, batch, hp = _problem(seed, lr, target, ent)
        model = _model()
        fn = jax.jit(lambda p, o, b, h: update(p, o, b, jax.random.key(seed), h, model,
                                                epochs, mbs, **wrong))
        out = fn(params, opt, batch, hp)
        if not isinstance(out, tuple | list) or len(out) != 2:
            raise Wrong("return the pair (params, opt_state), params being (policy, value)")
        new = out[0]
        if not isinstance(new, tuple | list) or len(new) != 2:
            raise Wrong("return params as the pair (policy params, value params)")
        return _flat(new)
    return run


@functools.cache
def _reference(seed, lr, target, epochs, mbs, ent, wrong: tuple = ()) -> np.ndarray:
    if not wrong:
        from course_lib.rl.ppo import ppo_update

        def library(p, o, b, k, h, m, e, n):
            return ppo_update(p, o, b, k, h, m, epochs=e, minibatches=n)[:2]

        return _runner(library)(seed, lr, target, epochs, mbs, ent)
    return _runner(variant_update, **dict(wrong))(seed, lr, target, epochs, mbs, ent)


def _variant(**wrong) -> Callable:
    return lambda *case: _reference(*case, tuple(sorted(wrong.items())))


WRONG_UPDATES = [
    ({"combine": jnp.maximum},
     ("you took the max of r·A and clip(r)·A: the clip then never binds against the update, "
     "and PPO loses its pessimism. L^CLIP keeps the MIN of the two (section 1)")),
    ({"early_stop": False},
     ("no early stopping: on a hidden batch the k3 estimate passed hp.target_kl and your update "
     "kept stepping. Before each minibatch step, measure k3 on that minibatch and, once it "
     "exceeds the target, skip that step and all later ones")),
    ({"clip": False},
     ("no clip: your objective is the plain surrogate r·A; clip r to [1 − ε, 1 + ε] and keep "
     "the min of r·A and clip(r)·A")),
    ({"value_loss": False},
     ("your update leaves the critic out: add hp.vf_coef · ½·mean((V(s) − R)²) to the loss, "
     "the value parameters are trained by the same Adam steps")),
]


def check_ppo_update(fn: Callable, train: bool = True) -> bool:
    """``my_ppo_update(params, opt_state, batch, key, hp, model, epochs, minibatches) ->
    (params, opt_state)``: lesson 07's capstone. Hidden batches against the library's update,
    then (``train``) a PPO agent trained with it must solve CartPole-v1 (greedy, gymnasium) on
    a hidden seed."""

    def body() -> int:
        cases = _cases()
        compare(_runner(fn), cases, _variant(), rtol=2e-3, atol=2e-5,
                wrong=[(_variant(**w), m) for w, m in WRONG_UPDATES])
        if not train:
            return len(cases)
        from course_lib.rl.config import TrainConfig

        trained_greedy(TrainConfig(algo="ppo", ppo_update=fn, target_kl=TRAIN_TARGET_KL),
                       PPO_UPDATE_SEED, threshold=SOLVED, cases=f"{len(cases)} hidden batches",
                       agent="PPO agent trained with your update")
        return len(cases) + 1

    return verdict("PPO update", fn, body)
