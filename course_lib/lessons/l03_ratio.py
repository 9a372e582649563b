"""Lesson 03: the probability ratio, the surrogate objective, and where the surrogate stops being true.

Three small computations behind the lesson ``03_ratio_and_surrogate``:

* **One sample** (:func:`worked_example`, :func:`contribution_curves`). The ratio
  r = π_new(a|s) / π_old(a|s), the sample's contribution r·A to the surrogate, PPO's clipped
  contribution min(r·A, clip(r, 1−ε, 1+ε)·A), and the gradient of each with respect to
  log π_new(a|s). The syllabus's example: π_old = 0.2, π_new = 0.8, A = +5 gives r = 4,
  r·A = 20, clipped 1.2·5 = 6.
* **Importance sampling** (:func:`importance_sampling_estimates`,
  :func:`importance_sampling_std`). E_{a~π_old}[r(a) f(a)] = E_{a~π_new}[f(a)]: old samples,
  reweighted by r, estimate an expectation under the new policy. The estimate is unbiased, but
  its variance E_old[r² f²] − E_new[f]² grows as π_new moves away from π_old.
* **Surrogate against the true objective** (:class:`TabularMDP`, :func:`cliff_edge_mdp`,
  :func:`objective_along_line`). On a tiny MDP with exact policy evaluation, the true gain
  J(θ) − J(θ_old) and the surrogate
  L(θ) = Σ_s ρ_old(s) Σ_a π_old(a|s) r_θ(s, a) A_old(s, a)
  (Kakade & Langford, 2002; Schulman et al., 2015, "Trust Region Policy Optimization", eq. 14
  with the exact expectation in place of samples) are compared along a line
  θ_old + t·d. By the performance-difference lemma the true gain is the same sum with the
  NEW policy's state occupancy ρ_θ in place of ρ_old; the two agree to first order at t = 0
  (the policy-gradient theorem) and drift apart as the new policy visits other states.

Everything is pure JAX, works under ``jax.jit`` and ``jax.vmap`` and checks its arguments at
trace time; the objectives are to be maximised.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from course_lib._validate import (
    check_int_at_least,
    check_non_negative,
    check_rank,
    check_same_shape,
    concrete_float,
)
from course_lib.core.distributions import categorical_kl
from course_lib.core.surrogate import clipped_surrogate, ratio, surrogate

__all__ = [
    "ImportanceSampling",
    "LineScan",
    "TabularMDP",
    "WorkedExample",
    "cliff_edge_mdp",
    "cliff_edge_old_params",
    "contextual_bandit",
    "contribution_curves",
    "first_overestimate",
    "importance_sampling_estimates",
    "importance_sampling_std",
    "initial_slopes",
    "mean_kl",
    "objective_along_line",
    "policy_evaluation",
    "policy_logits",
    "policy_probs",
    "state_occupancy",
    "surrogate_gain",
    "surrogate_gradient",
    "true_gain",
    "true_objective",
    "worked_example",
]


# --------------------------------------------------------------------------- argument checks


def _check_probability(value, name: str) -> None:
    """Raise ``ValueError`` unless a concrete scalar ``value`` lies in (0, 1]."""
    check_rank(value, 0, name)
    v = concrete_float(value)
    if v is not None and not 0.0 < v <= 1.0:
        raise ValueError(f"{name} must be a probability in (0, 1], got {v}")


def _importance_inputs(p_old, p_new, values) -> tuple[jax.Array, jax.Array, jax.Array]:
    """``p_old``, ``p_new`` and ``values`` as float32 ``[A]`` vectors, checked (names in errors)."""
    p_old, p_new, values = (jnp.asarray(x, jnp.float32) for x in (p_old, p_new, values))
    _check_distribution(p_old, "p_old")
    _check_distribution(p_new, "p_new")
    check_rank(values, 1, "values")
    check_same_shape(p_new, p_old, "p_new", "p_old")
    check_same_shape(values, p_old, "values", "p_old")
    return p_old, p_new, values


def _check_distribution(p, name: str) -> None:
    """Raise ``ValueError`` unless ``p`` is a rank-1 vector of probabilities > 0 summing to 1."""
    check_rank(p, 1, name)
    if isinstance(p, jax.core.Tracer):
        return
    if not (bool(jnp.all(p > 0)) and abs(float(jnp.sum(p)) - 1.0) < 1e-4):
        raise ValueError(f"{name} must hold probabilities > 0 that sum to 1, got {p}")


# --------------------------------------------------------------------------- one sample


class WorkedExample(NamedTuple):
    """One sample (s, a, A) scored by a new policy; every field has the shape of ``p_new``.

    Attributes:
      ratio: r = π_new(a|s) / π_old(a|s).
      contribution: the sample's term of the surrogate, r·A.
      clipped_contribution: its term of PPO's clipped surrogate, min(r·A, clip(r, 1−ε, 1+ε)·A).
      grad_contribution: ∂(r·A) / ∂log π_new(a|s) = r·A: the further r has moved in the
        direction A rewards, the harder the surrogate pushes it on.
      grad_clipped: ∂(clipped contribution) / ∂log π_new(a|s): r·A where the unclipped term is
        the minimum, 0 where the clip has taken over.
    """

    ratio: jax.Array
    contribution: jax.Array
    clipped_contribution: jax.Array
    grad_contribution: jax.Array
    grad_clipped: jax.Array


def _worked_example(p_old, p_new, advantage, eps) -> WorkedExample:
    logp_old = jnp.log(jnp.reshape(p_old, (1,)))
    logp_new = jnp.log(jnp.reshape(p_new, (1,)))
    adv = jnp.reshape(advantage, (1,))
    r = ratio(logp_new, logp_old)[0]
    value, grad = jax.value_and_grad(surrogate)(logp_new, logp_old, adv)
    clipped, grad_clipped = jax.value_and_grad(clipped_surrogate)(logp_new, logp_old, adv, eps)
    return WorkedExample(r, value, clipped, grad[0], grad_clipped[0])


_worked_example_jit = jax.jit(_worked_example)
_contribution_curves = jax.jit(jax.vmap(_worked_example, in_axes=(None, 0, None, None)))


def worked_example(p_old, p_new, advantage, eps=0.2) -> WorkedExample:
    """Ratio, surrogate and clipped-surrogate terms of ONE sample, and their gradients.

    r = p_new / p_old (computed as exp(log p_new − log p_old) by :func:`course_lib.ratio`),
    contribution r·A (:func:`course_lib.core.surrogate` of a batch of one), clipped contribution
    min(r·A, clip(r, 1−ε, 1+ε)·A) (:func:`course_lib.clipped_surrogate`, PPO paper eq. 7), and the
    gradient of both with respect to log p_new (by ``jax.grad``).

    Args:
      p_old: π_old(a|s), a scalar in (0, 1].
      p_new: π_new(a|s), a scalar in (0, 1].
      advantage: A(s, a), a scalar.
      eps: clip range ε >= 0.

    Returns:
      A :class:`WorkedExample` of float32 scalars.

    >>> ex = worked_example(0.2, 0.8, 5.0, 0.2)
    >>> round(float(ex.ratio), 3), round(float(ex.contribution), 3)
    (4.0, 20.0)
    >>> round(float(ex.clipped_contribution), 3), float(ex.grad_clipped)
    (6.0, 0.0)
    """
    p_old = jnp.asarray(p_old, jnp.float32)
    p_new = jnp.asarray(p_new, jnp.float32)
    advantage = jnp.asarray(advantage, jnp.float32)
    _check_probability(p_old, "p_old")
    _check_probability(p_new, "p_new")
    check_rank(advantage, 0, "advantage")
    check_rank(eps, 0, "eps")
    check_non_negative(eps, "eps")
    return _worked_example_jit(p_old, p_new, advantage, jnp.asarray(eps, jnp.float32))


def contribution_curves(p_old, advantage, eps, p_new) -> WorkedExample:
    """:func:`worked_example` for a grid of new probabilities, in one vmapped, jitted call.

    Args:
      p_old: π_old(a|s), a scalar in (0, 1].
      advantage: A(s, a), a scalar.
      eps: clip range ε >= 0.
      p_new: ``[N]`` values of π_new(a|s) in (0, 1].

    Returns:
      A :class:`WorkedExample` whose fields are ``[N]``.
    """
    p_old = jnp.asarray(p_old, jnp.float32)
    p_new = jnp.asarray(p_new, jnp.float32)
    advantage = jnp.asarray(advantage, jnp.float32)
    _check_probability(p_old, "p_old")
    check_rank(p_new, 1, "p_new")
    if not isinstance(p_new, jax.core.Tracer) and not bool(jnp.all((p_new > 0) & (p_new <= 1))):
        raise ValueError("p_new must hold probabilities in (0, 1]")
    check_rank(advantage, 0, "advantage")
    check_rank(eps, 0, "eps")
    check_non_negative(eps, "eps")
    return _contribution_curves(p_old, p_new, advantage, jnp.asarray(eps, jnp.float32))


# --------------------------------------------------------------------------- importance sampling


class ImportanceSampling(NamedTuple):
    """Batch estimates of E_{a~π_new}[f(a)] from actions drawn from π_old.

    Attributes:
      exact: Σ_a π_new(a) f(a), the quantity estimated (scalar).
      estimates: ``[n_batches]`` estimates mean_i r(a_i) f(a_i), one per batch of old samples.
    """

    exact: jax.Array
    estimates: jax.Array


def importance_sampling_estimates(
    key: jax.Array, p_old, p_new, values, batch_size: int, n_batches: int
) -> ImportanceSampling:
    """Importance-sampled estimates of E_{π_new}[f] from batches of actions drawn from π_old.

    E_{a~π_old}[r(a) f(a)] = Σ_a π_old(a) (π_new(a)/π_old(a)) f(a) = E_{a~π_new}[f(a)], so the
    mean of r·f over old samples is an unbiased estimate of the new policy's expectation; with
    f = A_old it is the surrogate of one state. Each batch's estimate is
    :func:`course_lib.core.surrogate` of its samples.

    Args:
      key: a ``jax.random`` key.
      p_old: ``[A]`` old action probabilities (all > 0: an action the old policy never takes
        cannot be reweighted).
      p_new: ``[A]`` new action probabilities.
      values: ``[A]`` f(a), e.g. the old policy's advantages.
      batch_size: samples per batch (Python int >= 1).
      n_batches: number of independent batches (Python int >= 1).

    Returns:
      An :class:`ImportanceSampling` with the exact value and ``[n_batches]`` estimates.
    """
    p_old, p_new, values = _importance_inputs(p_old, p_new, values)
    check_int_at_least(batch_size, 1, "batch_size")
    check_int_at_least(n_batches, 1, "n_batches")
    actions = jax.random.categorical(key, jnp.log(p_old), shape=(n_batches, batch_size))
    logp_old, logp_new = jnp.log(p_old), jnp.log(p_new)

    def one_batch(a):
        return surrogate(logp_new[a], logp_old[a], values[a])

    return ImportanceSampling(jnp.sum(p_new * values), jax.vmap(one_batch)(actions))


def importance_sampling_std(p_old, p_new, values, batch_size: int) -> jax.Array:
    """Exact standard deviation of the batch estimate of :func:`importance_sampling_estimates`.

    Var[mean of N samples of r·f] = (E_old[r² f²] − E_new[f]²) / N, with
    E_old[r² f²] = Σ_a π_new(a)² f(a)² / π_old(a): an action whose probability grew from a small
    π_old enters with weight π_new² / π_old, so the spread grows with r.

    Args:
      p_old: ``[A]`` old action probabilities (> 0).
      p_new: ``[A]`` new action probabilities.
      values: ``[A]`` f(a).
      batch_size: N, samples per batch (Python int >= 1).

    Returns:
      A scalar standard deviation.
    """
    p_old, p_new, values = _importance_inputs(p_old, p_new, values)
    check_int_at_least(batch_size, 1, "batch_size")
    second_moment = jnp.sum(jnp.square(p_new * values) / p_old)
    mean = jnp.sum(p_new * values)
    return jnp.sqrt(jnp.maximum(second_moment - jnp.square(mean), 0.0) / batch_size)


# --------------------------------------------------------------------------- a tiny MDP


class TabularMDP(NamedTuple):
    """A finite discounted MDP with a linear-softmax policy class (a pytree of arrays).

    The policy with parameters ``theta [K, A]`` is π_θ(·|s) = softmax(φ(s) θ). With one-hot
    features (φ = I) it is a tabular policy; with fewer features than states, like any neural
    network, it cannot change its behaviour in one state without touching the others.

    Attributes:
      transitions: ``[S, A, S]`` P(s'|s, a). A row may sum to less than 1: the rest is the
        probability that the episode ends.
      rewards: ``[S, A]`` expected reward r(s, a).
      start: ``[S]`` start-state distribution μ.
      features: ``[S, K]`` policy features φ(s).
      gamma: discount γ in [0, 1), a scalar.
    """

    transitions: jax.Array
    rewards: jax.Array
    start: jax.Array
    features: jax.Array
    gamma: jax.Array


def _check_mdp(mdp: TabularMDP) -> None:
    if not isinstance(mdp, TabularMDP):
        raise TypeError(f"mdp must be a TabularMDP, got {type(mdp).__name__}")
    check_rank(mdp.transitions, 3, "mdp.transitions")
    check_rank(mdp.rewards, 2, "mdp.rewards")
    check_rank(mdp.start, 1, "mdp.start")
    check_rank(mdp.features, 2, "mdp.features")
    check_rank(mdp.gamma, 0, "mdp.gamma")
    n_states, n_actions = jnp.shape(mdp.rewards)
    if jnp.shape(mdp.transitions) != (n_states, n_actions, n_states):
        raise ValueError(
            f"mdp.transitions must have shape {(n_states, n_actions, n_states)} "
            f"([S, A, S] of mdp.rewards), got {jnp.shape(mdp.transitions)}"
        )
    if jnp.shape(mdp.start) != (n_states,) or jnp.shape(mdp.features)[0] != n_states:
        raise ValueError(
            f"mdp.start [S] and mdp.features [S, K] must have S = {n_states} states, got "
            f"{jnp.shape(mdp.start)} and {jnp.shape(mdp.features)}"
        )
    g = concrete_float(mdp.gamma)
    if g is not None and not 0.0 <= g < 1.0:
        raise ValueError(f"mdp.gamma must lie in [0, 1), got {g}")


def _check_theta(mdp: TabularMDP, theta, name: str) -> None:
    expected = (jnp.shape(mdp.features)[1], jnp.shape(mdp.rewards)[1])
    if jnp.shape(theta) != expected:
        raise ValueError(f"{name} must have shape [K, A] = {expected}, got {jnp.shape(theta)}")


def policy_logits(mdp: TabularMDP, theta) -> jax.Array:
    """Logits φ(s) θ of every state, ``[S, A]``."""
    _check_mdp(mdp)
    _check_theta(mdp, theta, "theta")
    return mdp.features @ theta


def policy_probs(mdp: TabularMDP, theta) -> jax.Array:
    """π_θ(a|s) = softmax(φ(s) θ)_a for every state, ``[S, A]``."""
    return jax.nn.softmax(policy_logits(mdp, theta), axis=-1)


def _policy_matrices(mdp: TabularMDP, pi):
    """P_π ``[S, S]`` and r_π ``[S]`` of a policy ``pi [S, A]``."""
    p_pi = jnp.einsum("sa,sat->st", pi, mdp.transitions)
    r_pi = jnp.sum(pi * mdp.rewards, axis=-1)
    return p_pi, r_pi


def policy_evaluation(mdp: TabularMDP, theta) -> tuple[jax.Array, jax.Array]:
    """Exact values of π_θ: V = (I − γ P_π)⁻¹ r_π and Q(s, a) = r(s, a) + γ Σ_s' P(s'|s, a) V(s').

    Args:
      mdp: a :class:`TabularMDP`.
      theta: ``[K, A]`` policy parameters.

    Returns:
      ``(v [S], q [S, A])``.
    """
    pi = policy_probs(mdp, theta)
    p_pi, r_pi = _policy_matrices(mdp, pi)
    n_states = pi.shape[0]
    v = jnp.linalg.solve(jnp.eye(n_states) - mdp.gamma * p_pi, r_pi)
    q = mdp.rewards + mdp.gamma * jnp.einsum("sat,t->sa", mdp.transitions, v)
    return v, q


def state_occupancy(mdp: TabularMDP, theta) -> jax.Array:
    """Discounted state occupancy ρ_θ(s) = Σ_t γᵗ P(s_t = s | π_θ), i.e. ρᵀ = μᵀ (I − γ P_π)⁻¹.

    It is not normalised: J(θ) = Σ_s ρ_θ(s) r_π(s), and Σ_s ρ_θ(s) = 1/(1−γ) when no episode ends.

    Returns:
      ``[S]``.
    """
    pi = policy_probs(mdp, theta)
    p_pi, _ = _policy_matrices(mdp, pi)
    n_states = pi.shape[0]
    return jnp.linalg.solve((jnp.eye(n_states) - mdp.gamma * p_pi).T, mdp.start)


def true_objective(mdp: TabularMDP, theta) -> jax.Array:
    """The expected discounted return J(θ) = Σ_s μ(s) V_θ(s), exactly (a scalar)."""
    v, _ = policy_evaluation(mdp, theta)
    return jnp.sum(mdp.start * v)


def true_gain(mdp: TabularMDP, theta_old, theta) -> jax.Array:
    """J(θ) − J(θ_old), exactly (a scalar)."""
    _check_mdp(mdp)
    _check_theta(mdp, theta_old, "theta_old")
    return true_objective(mdp, theta) - true_objective(mdp, theta_old)


def surrogate_gain(mdp: TabularMDP, theta_old, theta) -> jax.Array:
    """The surrogate L(θ) = Σ_s ρ_old(s) Σ_a π_old(a|s) r_θ(s, a) A_old(s, a), exactly.

    It is E[r·A] over the old policy's (discounted) state-action distribution, the expectation
    that :func:`course_lib.core.surrogate` estimates from a batch, with r from
    :func:`course_lib.ratio`. L(θ_old) = 0 (E_old[A_old] = 0 in every state), so L(θ) is the
    gain the surrogate predicts. θ_old is treated as fixed data (``stop_gradient``).

    Performance-difference lemma (Kakade & Langford, 2002):
    J(θ) − J(θ_old) = Σ_s ρ_θ(s) Σ_a π_θ(a|s) A_old(s, a). L is the same sum with ρ_θ replaced
    by ρ_old: exact for a contextual bandit (the states do not depend on the policy), a local
    approximation otherwise (TRPO, Schulman et al. 2015, eq. 3 and 14).

    Args:
      mdp: a :class:`TabularMDP`.
      theta_old: ``[K, A]`` parameters of the policy that collected the data.
      theta: ``[K, A]`` parameters of the new policy.

    Returns:
      A scalar.
    """
    _check_mdp(mdp)
    _check_theta(mdp, theta_old, "theta_old")
    theta_old = jax.lax.stop_gradient(theta_old)
    v_old, q_old = policy_evaluation(mdp, theta_old)
    advantages = q_old - v_old[:, None]
    rho_old = state_occupancy(mdp, theta_old)
    pi_old = policy_probs(mdp, theta_old)
    logp_old = jax.nn.log_softmax(policy_logits(mdp, theta_old), axis=-1)
    logp_new = jax.nn.log_softmax(policy_logits(mdp, theta), axis=-1)
    r = ratio(logp_new.ravel(), logp_old.ravel()).reshape(logp_new.shape)
    weights = rho_old[:, None] * pi_old
    return jnp.sum(weights * r * advantages)


def mean_kl(mdp: TabularMDP, theta_old, theta) -> jax.Array:
    """E_{s~d_old}[KL(π_old(·|s) ‖ π_θ(·|s))], d_old the normalised occupancy of θ_old.

    This is the quantity TRPO's trust region bounds by δ (Schulman et al. 2015, eq. 12), here
    computed exactly with :func:`course_lib.categorical_kl`.

    Returns:
      A scalar in nats.
    """
    _check_mdp(mdp)
    _check_theta(mdp, theta_old, "theta_old")
    rho_old = state_occupancy(mdp, theta_old)
    kl = categorical_kl(policy_logits(mdp, theta_old), policy_logits(mdp, theta))
    return jnp.sum(rho_old * kl) / jnp.sum(rho_old)


def surrogate_gradient(mdp: TabularMDP, theta_old) -> jax.Array:
    """∇_θ L(θ) at θ = θ_old, ``[K, A]``: the exact policy gradient ∇J(θ_old).

    At θ_old, ∇r_θ = ∇log π_θ, so ∇L = Σ_s ρ_old(s) Σ_a π_old ∇log π · A_old: the
    policy-gradient theorem (Sutton et al., 2000).
    """
    _check_mdp(mdp)
    theta_old = jnp.asarray(theta_old, jnp.float32)
    _check_theta(mdp, theta_old, "theta_old")
    return _surrogate_gradient(mdp, theta_old)


@jax.jit
def _surrogate_gradient(mdp: TabularMDP, theta_old: jax.Array) -> jax.Array:
    return jax.grad(lambda th: surrogate_gain(mdp, theta_old, th))(theta_old)


class LineScan(NamedTuple):
    """The true objective, the surrogate and the KL along θ_old + t·d; fields are ``[T]``.

    Attributes:
      steps: the step sizes t.
      true_gain: J(θ_old + t·d) − J(θ_old).
      surrogate_gain: L(θ_old + t·d) − L(θ_old) (L(θ_old) = 0).
      kl: mean KL(π_old ‖ π_{θ_old + t·d}) over the old policy's states.
    """

    steps: jax.Array
    true_gain: jax.Array
    surrogate_gain: jax.Array
    kl: jax.Array


@jax.jit
def _objective_along_line(mdp, theta_old, direction, steps) -> LineScan:
    def at(t):
        theta = theta_old + t * direction
        return (
            true_gain(mdp, theta_old, theta),
            surrogate_gain(mdp, theta_old, theta),
            mean_kl(mdp, theta_old, theta),
        )

    gain, surr, kl = jax.vmap(at)(steps)
    return LineScan(steps, gain, surr, kl)


def objective_along_line(mdp: TabularMDP, theta_old, direction, steps) -> LineScan:
    """True gain, surrogate gain and mean KL at θ_old + t·d for every t, vmapped over t.

    Args:
      mdp: a :class:`TabularMDP`.
      theta_old: ``[K, A]`` parameters of the old policy.
      direction: ``[K, A]`` direction d (e.g. :func:`surrogate_gradient`).
      steps: ``[T]`` step sizes t.

    Returns:
      A :class:`LineScan` of ``[T]`` arrays.
    """
    _check_mdp(mdp)
    theta_old = jnp.asarray(theta_old, jnp.float32)
    direction = jnp.asarray(direction, jnp.float32)
    steps = jnp.asarray(steps, jnp.float32)
    _check_theta(mdp, theta_old, "theta_old")
    _check_theta(mdp, direction, "direction")
    check_rank(steps, 1, "steps")
    return _objective_along_line(mdp, theta_old, direction, steps)


def initial_slopes(mdp: TabularMDP, theta_old, direction) -> tuple[jax.Array, jax.Array]:
    """d/dt at t = 0 of J(θ_old + t·d) and of L(θ_old + t·d), by forward-mode ``jax.jvp``.

    Both equal ∇J(θ_old)·d (policy-gradient theorem): the surrogate is a first-order model of
    the true objective at θ_old. Returns ``(true_slope, surrogate_slope)``, scalars.
    """
    _check_mdp(mdp)
    theta_old = jnp.asarray(theta_old, jnp.float32)
    direction = jnp.asarray(direction, jnp.float32)
    _check_theta(mdp, theta_old, "theta_old")
    _check_theta(mdp, direction, "direction")
    return _initial_slopes(mdp, theta_old, direction)


@jax.jit
def _initial_slopes(mdp: TabularMDP, theta_old: jax.Array, direction: jax.Array):
    _, true_slope = jax.jvp(lambda th: true_objective(mdp, th), (theta_old,), (direction,))
    _, surr_slope = jax.jvp(
        lambda th: surrogate_gain(mdp, theta_old, th), (theta_old,), (direction,)
    )
    return true_slope, surr_slope


def first_overestimate(scan: LineScan, factor: float = 2.0) -> jax.Array:
    """The smallest step t > 0 at which the surrogate promises more than ``factor`` × the true gain.

    The condition is L > factor · ΔJ with L > 0, so a step where the true gain is already
    negative counts too. Returns NaN when no step of the scan qualifies.

    Args:
      scan: a :class:`LineScan` (fields ``[T]``, steps increasing).
      factor: the overestimation factor (> 0).

    Returns:
      A scalar step size, or NaN.
    """
    f = concrete_float(factor)
    if f is not None and not f > 0:
        raise ValueError(f"factor must be > 0, got {f}")
    check_rank(scan.steps, 1, "scan.steps")
    over = (
        (scan.steps > 0)
        & (scan.surrogate_gain > 0)
        & (scan.surrogate_gain > factor * scan.true_gain)
    )
    return jnp.where(jnp.any(over), scan.steps[jnp.argmax(over)], jnp.nan)


def cliff_edge_mdp(
    p_edge: float = 0.1,
    run_bonus: float = 1.0,
    fall_penalty: float = 20.0,
    gamma: float = 0.9,
    edge_feature: float = 0.5,
) -> TabularMDP:
    """Meadow and cliff edge: running pays, but running more takes you to the edge more often.

    States: 0 = meadow, 1 = cliff edge. Actions: 0 = walk, 1 = run.

    * meadow, walk: reward 0, stay in the meadow.
    * meadow, run: reward ``run_bonus``; with probability ``p_edge`` you end up at the edge.
    * edge, walk: reward 0, back to the meadow.
    * edge, run: reward −``fall_penalty`` and the episode ends (you fell).

    The episode starts in the meadow. Features: φ(meadow) = (1, 0), φ(edge) = (1, edge_feature):
    the policy sees the edge only through a weak second feature, so the parameters that make it
    run more in the meadow also make it run more at the edge.

    Returns:
      A :class:`TabularMDP` with S = 2, A = 2, K = 2.
    """
    for value, name in (
        (p_edge, "p_edge"),
        (run_bonus, "run_bonus"),
        (fall_penalty, "fall_penalty"),
    ):
        check_non_negative(value, name)
    if not 0.0 <= p_edge <= 1.0:
        raise ValueError(f"p_edge must lie in [0, 1], got {p_edge}")
    transitions = jnp.array(
        [
            [[1.0, 0.0], [1.0 - p_edge, p_edge]],  # meadow: walk, run
            [[1.0, 0.0], [0.0, 0.0]],  # edge: walk back, run off the cliff
        ],
        jnp.float32,
    )
    rewards = jnp.array([[0.0, run_bonus], [0.0, -fall_penalty]], jnp.float32)
    start = jnp.array([1.0, 0.0], jnp.float32)
    features = jnp.array([[1.0, 0.0], [1.0, edge_feature]], jnp.float32)
    mdp = TabularMDP(transitions, rewards, start, features, jnp.asarray(gamma, jnp.float32))
    _check_mdp(mdp)
    return mdp


def cliff_edge_old_params(p_run: float = 0.2) -> jax.Array:
    """θ_old ``[2, 2]`` for :func:`cliff_edge_mdp`: run with probability ``p_run`` in both states."""
    v = concrete_float(p_run)
    if v is None or not 0.0 < v < 1.0:
        raise ValueError(f"p_run must lie in (0, 1), got {p_run}")
    return jnp.array([[0.0, jnp.log(v / (1.0 - v))], [0.0, 0.0]], jnp.float32)


def contextual_bandit(rewards, state_probs, features=None, gamma: float = 0.9) -> TabularMDP:
    """A one-step problem: a state drawn from ``state_probs``, one action, its reward, the end.

    The state distribution does not depend on the policy, so :func:`surrogate_gain` equals
    :func:`true_gain` for every θ: in expectation, importance sampling is exact.

    Args:
      rewards: ``[S, A]`` rewards.
      state_probs: ``[S]`` distribution of the state.
      features: ``[S, K]`` policy features (default: one-hot, a tabular policy).
      gamma: discount (irrelevant after one step; kept for the :class:`TabularMDP` type).

    Returns:
      A :class:`TabularMDP` whose transitions are all 0.
    """
    rewards = jnp.asarray(rewards, jnp.float32)
    state_probs = jnp.asarray(state_probs, jnp.float32)
    check_rank(rewards, 2, "rewards")
    n_states, n_actions = rewards.shape
    features = jnp.eye(n_states) if features is None else jnp.asarray(features, jnp.float32)
    mdp = TabularMDP(
        jnp.zeros((n_states, n_actions, n_states), jnp.float32),
        rewards,
        state_probs,
        features,
        jnp.asarray(gamma, jnp.float32),
    )
    _check_mdp(mdp)
    return mdp
