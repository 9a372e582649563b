"""Lesson 01, the cliff: one too-large policy-gradient step wrecks a good policy.

The experiment behind the lesson, as small pure functions:

1. :func:`course_lib.rl.rollout.collect_batch` runs the trained actor-critic in the JAX-native environment for a
   fresh batch and computes its GAE advantages with the trained critic.
2. :func:`policy_gradient` is the gradient of the surrogate
   L(θ) = E_t[r_t(θ)·Â_t],  r_t(θ) = π_θ(a_t|s_t) / π_old(a_t|s_t)
   at θ = θ_old, where it equals the policy gradient E_t[∇ log π_θ(a_t|s_t)·Â_t]
   (Williams 1992; Schulman et al. 2015, "Trust Region Policy Optimization", eq. 14).
3. :func:`policy_gradient_step` takes one plain, unconstrained ascent step θ_old + α·g:
   an actor-critic update with learning rate α and no trust region.
4. :func:`policy_change` measures the step twice: in weight space (‖Δθ‖₂, relative to ‖θ_old‖₂)
   and in policy space (exact mean KL(π_old‖π_new) from the logits, the total-variation change
   of the action probabilities, the fraction of states whose most likely action flipped).
5. :func:`course_lib.rl.evaluate.episode_returns` plays fixed episodes of the jitted JAX environment, so the return of
   a policy can be measured in milliseconds, with the same random numbers for every policy.
6. :func:`step_outcome` / :func:`step_size_sweep` put it together for one step size, or for
   many at once with ``jax.vmap``: the return after the step and the distances of the step.

:func:`load_cliff_run` loads the lesson's trained policy, stored with the course (training is
chaotic: rounding that differs between CPUs gives another policy after a few iterations, with
its cliff at another step size); :func:`make_cliff_setup` precomputes what the panel of
``course_lib.widgets.l01_cliff`` needs (the batch, the gradient, the sweep).
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validate import (
    check_int_at_least,
    check_non_negative,
    check_rank,
    check_same_shape,
)
from course_lib.core.distributions import categorical_kl
from course_lib.core.surrogate import surrogate
from course_lib.rl.config import TrainConfig
from course_lib.rl.envs import JaxEnv, make_env
from course_lib.rl.evaluate import episode_returns
from course_lib.rl.networks import ActorCritic, Params, model_from_config
from course_lib.rl.rollout import Batch, collect_batch

__all__ = [
    "BATCH_SEED",
    "CLIFF_CONFIG",
    "CLIFF_RUN_FILE",
    "CLIFF_SEED",
    "CLIFF_STEP_SIZES",
    "EVAL_SEED",
    "CliffRun",
    "CliffSetup",
    "PolicyChange",
    "StepOutcome",
    "StepView",
    "action_probabilities",
    "crossing_step_size",
    "load_cliff_run",
    "make_cliff_setup",
    "policy_change",
    "policy_gradient",
    "policy_gradient_step",
    "predict_step_size",
    "random_step_like",
    "save_cliff_run",
    "setup_from_params",
    "step_outcome",
    "step_size_sweep",
    "step_view",
]

CLIFF_CONFIG = TrainConfig(total_steps=8 * 1024)
"""PPO with the course defaults, stopped after 8 iterations of 1024 steps: far from solved
(CartPole-v1 is solved at 475), with returns around 200 on the lesson's seed."""


def _check_discrete(model: ActorCritic) -> None:
    if not isinstance(model, ActorCritic):
        raise TypeError(f"model must be an ActorCritic, got {type(model).__name__}")
    if not model.discrete:
        raise ValueError("model must be a categorical (discrete-action) policy")


def _check_env(env: JaxEnv, model: ActorCritic) -> None:
    if not isinstance(env, JaxEnv):
        raise TypeError(f"env must be a JaxEnv (course_lib.make_env), got {type(env).__name__}")
    if env.obs_dim != model.obs_dim or env.n_actions != model.n_actions:
        raise ValueError(
            f"env {env.env_id} (obs_dim {env.obs_dim}, {env.n_actions} actions) does not fit "
            f"model (obs_dim {model.obs_dim}, {model.n_actions} actions)"
        )


def _check_params(policy_params: jax.Array, name: str = "policy_params") -> None:
    check_rank(policy_params, 1, name)


# ------------------------------------------------------------------------------------------
# A fresh batch
# ------------------------------------------------------------------------------------------


# ------------------------------------------------------------------------------------------
# The gradient and the step
# ------------------------------------------------------------------------------------------


def _surrogate_of(policy_params: jax.Array, batch: Batch, model: ActorCritic) -> jax.Array:
    """L(θ) = mean_t[r_t(θ)·Â_t] on ``batch`` (π_old's log-probs are fixed data)."""
    logp = model.log_prob(model.policy(policy_params, batch.obs), batch.actions)
    return surrogate(logp, batch.logp_old, batch.advantages)


def policy_gradient(policy_params: jax.Array, batch: Batch, model: ActorCritic) -> jax.Array:
    """g = ∇_θ L(θ) of the surrogate L(θ) = E_t[r_t(θ)·Â_t] on ``batch``, ``[P]``.

    At θ = θ_old (the policy that collected the batch) r_t = 1 and
    ∇_θ r_t = ∇_θ log π_θ(a_t|s_t), so g is the actor-critic policy gradient
    E_t[∇_θ log π_θ(a_t|s_t)·Â_t] (TRPO paper, eq. 14 and its first-order term).

    Args:
      policy_params: flat ``[P]`` policy parameters θ at which to take the gradient.
      batch: the :class:`Batch` (``obs [N, O]``, ``actions [N]``, ``logp_old [N]``,
        ``advantages [N]``).
      model: the categorical :class:`ActorCritic` of ``policy_params``.
    """
    _check_discrete(model)
    _check_params(policy_params)
    return jax.grad(_surrogate_of)(policy_params, batch, model)


def policy_gradient_step(
    policy_params: jax.Array, batch: Batch, model: ActorCritic, step_size: float | jax.Array
) -> jax.Array:
    """One plain gradient-ascent step on the surrogate: θ_new = θ + α·∇_θ L(θ), ``[P]``.

    No clip, no KL constraint, no line search: an actor-critic update with learning rate
    ``step_size`` α (>= 0). Works under ``jit``/``vmap`` (α may be traced).
    """
    check_non_negative(step_size, "step_size")
    return policy_params + step_size * policy_gradient(policy_params, batch, model)


class PolicyChange(NamedTuple):
    """How far one update moved, in weight space and in policy space (scalars, or ``[S]``).

    Attributes:
      l2: ‖θ_new − θ_old‖₂.
      rel_l2: ‖θ_new − θ_old‖₂ / ‖θ_old‖₂.
      kl: mean over the states of the exact KL(π_old‖π_new) (nats), from the logits.
      max_kl: the largest KL(π_old‖π_new) of a single state.
      tv: mean total-variation distance ½·Σ_a |π_new(a|s) − π_old(a|s)| (with two actions,
        the change |Δπ(a|s)| of either action's probability).
      flipped: fraction of states whose most likely action changed.
    """

    l2: jax.Array
    rel_l2: jax.Array
    kl: jax.Array
    max_kl: jax.Array
    tv: jax.Array
    flipped: jax.Array


def policy_change(
    old_params: jax.Array, new_params: jax.Array, obs: jax.Array, model: ActorCritic
) -> PolicyChange:
    """Weight distance vs policy distance of the update ``old_params → new_params``.

    Args:
      old_params, new_params: flat ``[P]`` policy parameters θ_old and θ_new.
      obs: ``[N, O]`` states on which the policies are compared (the batch's states).
      model: the categorical :class:`ActorCritic`.

    Returns:
      :class:`PolicyChange` of scalars; KL(π_old‖π_new) is computed exactly from the logits
      (:func:`course_lib.categorical_kl`), averaged over the states as in TRPO's constraint.
    """
    _check_discrete(model)
    _check_params(old_params, "old_params")
    _check_params(new_params, "new_params")
    check_same_shape(new_params, old_params, "new_params", "old_params")
    check_rank(obs, 2, "obs")
    old_logits = model.policy(old_params, obs).logits
    new_logits = model.policy(new_params, obs).logits
    kl = categorical_kl(old_logits, new_logits)
    p_old = jax.nn.softmax(old_logits, axis=-1)
    p_new = jax.nn.softmax(new_logits, axis=-1)
    l2 = jnp.linalg.norm(new_params - old_params)
    flipped = jnp.argmax(old_logits, axis=-1) != jnp.argmax(new_logits, axis=-1)
    return PolicyChange(
        l2=l2,
        rel_l2=l2 / jnp.linalg.norm(old_params),
        kl=jnp.mean(kl),
        max_kl=jnp.max(kl),
        tv=jnp.mean(0.5 * jnp.sum(jnp.abs(p_new - p_old), axis=-1)),
        flipped=jnp.mean(flipped.astype(jnp.float32)),
    )


# ------------------------------------------------------------------------------------------
# One step size, and a sweep over many
# ------------------------------------------------------------------------------------------


class StepOutcome(NamedTuple):
    """What a step of size α does: its :class:`PolicyChange` and the return after it.

    Attributes:
      step_size: α.
      mean_return: mean return of the sampled policy π_new over the fixed episodes.
      change: the :class:`PolicyChange` of θ_old → θ_old + α·g.
    """

    step_size: jax.Array
    mean_return: jax.Array
    change: PolicyChange


@partial(jax.jit, static_argnames=("model", "env", "n_episodes"))
def _outcome(policy_params, gradient, step_size, obs, model, env, key, n_episodes):
    new_params = policy_params + step_size * gradient
    returns = episode_returns(new_params, model, env, key, n_episodes)
    return StepOutcome(
        jnp.asarray(step_size, jnp.float32),
        jnp.mean(returns),
        policy_change(policy_params, new_params, obs, model),
    )


def _check_outcome_args(policy_params, gradient, obs, model, env, n_episodes):
    _check_discrete(model)
    _check_env(env, model)
    _check_params(policy_params)
    check_same_shape(gradient, policy_params, "gradient", "policy_params")
    check_rank(obs, 2, "obs")
    check_int_at_least(n_episodes, 1, "n_episodes")


def step_outcome(
    policy_params: jax.Array,
    gradient: jax.Array,
    step_size: float | jax.Array,
    obs: jax.Array,
    model: ActorCritic,
    env: JaxEnv,
    key: jax.Array,
    n_episodes: int = 32,
) -> StepOutcome:
    """Take the step θ_old + α·g and measure it: return after it, and its distances.

    Args:
      policy_params: θ_old ``[P]``.
      gradient: g ``[P]``, from :func:`policy_gradient` at θ_old.
      step_size: α >= 0.
      obs: ``[N, O]`` states on which KL, TV and flips are measured (the batch's states).
      model, env: the categorical :class:`ActorCritic` and its JAX environment.
      key: the key of the evaluation episodes (:func:`course_lib.rl.evaluate.episode_returns`, sampled actions).
      n_episodes: number of evaluation episodes.
    """
    _check_outcome_args(policy_params, gradient, obs, model, env, n_episodes)
    check_non_negative(step_size, "step_size")
    return _outcome(
        policy_params, gradient, jnp.float32(step_size), obs, model, env, key, n_episodes
    )


@partial(jax.jit, static_argnames=("model", "env", "n_episodes"))
def _sweep(policy_params, gradient, step_sizes, obs, model, env, key, n_episodes):
    one = lambda a: _outcome(policy_params, gradient, a, obs, model, env, key, n_episodes)
    return jax.vmap(one)(step_sizes)


def step_size_sweep(
    policy_params: jax.Array,
    gradient: jax.Array,
    step_sizes,
    obs: jax.Array,
    model: ActorCritic,
    env: JaxEnv,
    key: jax.Array,
    n_episodes: int = 32,
) -> StepOutcome:
    """:func:`step_outcome` for every step size of ``step_sizes [S]`` in one ``jax.vmap``.

    Every step size is evaluated on the same episodes (same ``key``), so the curve of the
    return against α is smooth where the policy barely changes and its drop is the step's
    doing. Returns a :class:`StepOutcome` whose arrays have a leading ``[S]`` axis.
    """
    _check_outcome_args(policy_params, gradient, obs, model, env, n_episodes)
    step_sizes = jnp.asarray(step_sizes, jnp.float32)
    check_rank(step_sizes, 1, "step_sizes")
    if step_sizes.shape[0] < 1:
        raise ValueError("step_sizes must hold at least one step size")
    if not bool(jnp.all(step_sizes >= 0)) or not bool(jnp.all(jnp.isfinite(step_sizes))):
        raise ValueError("step_sizes must be finite and >= 0")
    return _sweep(policy_params, gradient, step_sizes, obs, model, env, key, n_episodes)


def random_step_like(policy_params: jax.Array, step: jax.Array, key: jax.Array) -> jax.Array:
    """θ + ‖Δθ‖₂·u with u a uniformly random unit vector: a step as long as ``step`` (Δθ)
    in a random direction, ``[P]``.

    The control experiment of the lesson: the same weight distance as the gradient step,
    in a direction that is not special.
    """
    _check_params(policy_params)
    check_same_shape(step, policy_params, "step", "policy_params")
    u = jax.random.normal(key, policy_params.shape, policy_params.dtype)
    return policy_params + jnp.linalg.norm(step) * u / jnp.linalg.norm(u)


# ------------------------------------------------------------------------------------------
# Where the KL crosses a threshold
# ------------------------------------------------------------------------------------------


def predict_step_size(step_size: float, kl: float, target_kl: float) -> float:
    """The step size at which KL reaches ``target_kl``, predicted from one small step.

    Along a fixed direction g the KL of the step θ_old + α·g grows like ½·α²·gᵀF g for small
    α (F the Fisher matrix at θ_old: KL and its gradient vanish at α = 0), so
    KL(α) ≈ KL(α₀)·(α/α₀)² and

        α* = α₀ · √(target_kl / KL(α₀)).

    Lesson 05 derives the quadratic model; here it is a prediction to check on the sweep.
    """
    for value, name in ((step_size, "step_size"), (kl, "kl"), (target_kl, "target_kl")):
        if not float(value) > 0 or not np.isfinite(float(value)):
            raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return float(step_size) * float(np.sqrt(float(target_kl) / float(kl)))


def crossing_step_size(step_sizes, kls, target_kl: float) -> float:
    """The smallest step size at which the measured KL reaches ``target_kl``.

    Linear interpolation of log KL against log α between the last grid point below the
    target and the first one at or above it; ``nan`` when the KL never reaches it.

    Args:
      step_sizes: ``[S]`` increasing step sizes > 0.
      kls: ``[S]`` the KL of each step (e.g. ``sweep.change.kl``).
      target_kl: the threshold, > 0.
    """
    a = np.asarray(step_sizes, np.float64)
    k = np.asarray(kls, np.float64)
    if a.ndim != 1 or a.size < 1:
        raise ValueError(f"step_sizes must be a non-empty [S] array, got shape {a.shape}")
    if k.shape != a.shape:
        raise ValueError(f"kls must have the shape {a.shape} of step_sizes, got {k.shape}")
    if not (a > 0).all() or not (np.diff(a) > 0).all():
        raise ValueError("step_sizes must be > 0 and increasing")
    if not float(target_kl) > 0:
        raise ValueError(f"target_kl must be > 0, got {target_kl}")
    above = np.flatnonzero(k >= target_kl)
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0 or k[i - 1] <= 0:
        return float(a[i])
    la, lk = np.log(a[i - 1 : i + 1]), np.log(k[i - 1 : i + 1])
    t = (np.log(target_kl) - lk[0]) / (lk[1] - lk[0])
    return float(np.exp(la[0] + t * (la[1] - la[0])))


# ------------------------------------------------------------------------------------------
# Everything the lesson's panel precomputes
# ------------------------------------------------------------------------------------------

CLIFF_SEED = 18
"""Training seed of the stored run (:data:`CLIFF_RUN_FILE`): its episodes average about 200."""

CLIFF_RUN_FILE = Path(__file__).resolve().parents[1] / "data" / "cliff_run.npz"
"""``train(CLIFF_CONFIG, seed=CLIFF_SEED)`` as run when the lesson was written
(``python scripts/make_cliff_run.py`` writes it again)."""

BATCH_SEED = 8
"""Key of the lesson's fresh batch (another batch moves the edge of the cliff, not the cliff)."""

EVAL_SEED = 0
"""Key of the lesson's evaluation episodes."""

CLIFF_STEP_SIZES = np.logspace(-2, 2, 41)
"""The sweep's step sizes: 41 values from 10⁻² to 10², log-spaced."""


class CliffSetup(NamedTuple):
    """The trained policy and what every step-size query reuses.

    Attributes:
      model, env: the categorical :class:`ActorCritic` and its JAX environment.
      params: the trained :class:`Params`.
      batch: the fresh :class:`Batch` the step is computed on.
      gradient: g = ∇L(θ_old) on ``batch``, ``[P]``.
      eval_key: the key of the evaluation episodes (the same for every step size).
      n_episodes: evaluation episodes per policy.
      return_before: mean return of π_old on those episodes.
      sweep: :func:`step_size_sweep` over :data:`CLIFF_STEP_SIZES` (the cliff curve).
    """

    model: ActorCritic
    env: JaxEnv
    params: Params
    batch: Batch
    gradient: jax.Array
    eval_key: jax.Array
    n_episodes: int
    return_before: float
    sweep: StepOutcome


def setup_from_params(
    params: Params,
    model: ActorCritic,
    env: JaxEnv,
    batch_key: jax.Array,
    eval_key: jax.Array,
    n_episodes: int = 64,
    num_envs: int = 8,
    num_steps: int = 256,
    step_sizes=CLIFF_STEP_SIZES,
) -> CliffSetup:
    """Collect a fresh batch with ``params`` (``batch_key``), take its gradient, measure the
    return of π_old and sweep ``step_sizes`` on the episodes of ``eval_key``."""
    batch = collect_batch(params, model, env, batch_key, num_envs, num_steps)
    gradient = policy_gradient(params.policy, batch, model)
    sweep = step_size_sweep(
        params.policy, gradient, step_sizes, batch.obs, model, env, eval_key, n_episodes
    )
    before = float(jnp.mean(episode_returns(params.policy, model, env, eval_key, n_episodes)))
    return CliffSetup(model, env, params, batch, gradient, eval_key, n_episodes, before, sweep)


class CliffRun(NamedTuple):
    """A stored training run: final :class:`Params`, ``env_steps`` ``[I]``, ``mean_return`` ``[I]``."""

    params: Params
    env_steps: np.ndarray
    mean_return: np.ndarray


def save_cliff_run(result, path: Path | str = CLIFF_RUN_FILE) -> None:
    """Store a :class:`~course_lib.rl.train.TrainResult`'s parameters and learning curve as ``.npz``."""
    np.savez(path, policy=np.asarray(result.params.policy), value=np.asarray(result.params.value),
             env_steps=np.asarray(result.env_steps), mean_return=np.asarray(result.mean_return))


def load_cliff_run(path: Path | str = CLIFF_RUN_FILE) -> CliffRun:
    """The run :func:`save_cliff_run` stored, with the parameters as float32 JAX arrays."""
    with np.load(path) as f:
        params = Params(jnp.asarray(f["policy"], jnp.float32), jnp.asarray(f["value"], jnp.float32))
        return CliffRun(params, f["env_steps"], f["mean_return"])


def make_cliff_setup(config: TrainConfig = CLIFF_CONFIG, run: CliffRun | None = None) -> CliffSetup:
    """The lesson's setup: the stored run (:func:`load_cliff_run` by default), a batch of
    8 × 256 steps from ``jax.random.key(BATCH_SEED)``, 64 evaluation episodes from
    ``jax.random.key(EVAL_SEED)``."""
    params = (load_cliff_run() if run is None else run).params
    return setup_from_params(
        params,
        model_from_config(config),
        make_env(config.env),
        jax.random.key(BATCH_SEED),
        jax.random.key(EVAL_SEED),
    )


class StepView(NamedTuple):
    """What the step-size panel shows for one step size.

    Attributes:
      outcome: the :class:`StepOutcome` of the step.
      p_old, p_new: ``[n_states]`` probability of action 1 (CartPole: push right) under
        π_old and π_new, on the first ``n_states`` batch states, ordered by ``p_old``.
    """

    outcome: StepOutcome
    p_old: np.ndarray
    p_new: np.ndarray


def action_probabilities(policy_params: jax.Array, obs: jax.Array, model: ActorCritic) -> jax.Array:
    """π(·|s) = softmax(logits) for observations ``[N, O]``, ``[N, A]``."""
    _check_discrete(model)
    _check_params(policy_params)
    return jax.nn.softmax(model.policy(policy_params, obs).logits, axis=-1)


@partial(jax.jit, static_argnames=("model",))
def _probs_before_after(theta, gradient, step_size, obs, model):
    p_old = jax.nn.softmax(model.policy(theta, obs).logits, axis=-1)[:, 1]
    p_new = jax.nn.softmax(model.policy(theta + step_size * gradient, obs).logits, axis=-1)[:, 1]
    return p_old, p_new


def step_view(setup: CliffSetup, step_size: float, n_states: int = 128) -> StepView:
    """Apply the step of size α from the stored θ_old and gradient and measure it.

    Reuses everything in ``setup``: one jitted :func:`step_outcome` (the return over the
    fixed evaluation episodes, the distances) and the probability of action 1 before and
    after on the first ``n_states`` batch states (ordered by π_old).
    """
    if not isinstance(setup, CliffSetup):
        raise TypeError(f"setup must be a CliffSetup, got {type(setup).__name__}")
    check_int_at_least(n_states, 1, "n_states")
    theta = setup.params.policy
    outcome = step_outcome(
        theta,
        setup.gradient,
        step_size,
        setup.batch.obs,
        setup.model,
        setup.env,
        setup.eval_key,
        setup.n_episodes,
    )
    p_old, p_new = _probs_before_after(
        theta, setup.gradient, jnp.float32(step_size), setup.batch.obs[:n_states], setup.model
    )
    order = np.argsort(np.asarray(p_old), kind="stable")
    return StepView(outcome, np.asarray(p_old)[order], np.asarray(p_new)[order])
