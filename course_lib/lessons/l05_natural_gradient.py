"""Tiny problems for intuition: the softmax bandit on the probability simplex, and a small
network policy on which the Fisher-vector product, conjugate gradient and the quadratic KL
model can be checked against dense linear algebra.

**The softmax bandit.** A one-state problem with ``A`` arms and known expected rewards ``r``
``[A]``. The policy is ``π = softmax(M θ)``: logits linear in the parameters ``θ`` ``[P]``
through a fixed matrix ``M`` ``[A, P]`` (``M = I`` is the usual logit parameterisation; any
other ``M`` is a reparameterisation of the same family of policies). Everything is exact, no
sampling:

* objective       ``J(θ) = Σ_i π_i r_i``
* gradient        ``∇J = Mᵀ (π ⊙ (r − J))``
* Fisher          ``F = Mᵀ (diag(π) − ππᵀ) M``, the Hessian of ``KL(π_θ ‖ π_θ')`` at ``θ' = θ``
* natural grad.   ``F⁺ ∇J`` (Amari, 1998; Kakade, 2001, "A Natural Policy Gradient")

``F`` is always singular (adding a constant to every logit leaves ``π`` unchanged), so the
natural gradient uses the pseudo-inverse ``F⁺``: the minimum-norm solution of ``F x = ∇J``
(computed stably from the score Jacobian, :func:`natural_direction`). For ``M = I`` it is
``r − mean(r)``, the centred reward vector itself, whatever ``π`` is: it does not vanish near
a vertex of the simplex, where the vanilla gradient ``π ⊙ (r − J)`` does.

:func:`bandit_path` follows either direction with ``lax.scan``, with a fixed learning rate or
with every step scaled so that the *exact* KL between consecutive policies is ``δ``
(:func:`kl_step_size`); :func:`simplex_xy` maps the probabilities to a triangle for plots;
:func:`scan_directions` measures, direction by direction, the gain of a step in a KL ball and
in a Euclidean ball (the best directions are the natural and the vanilla gradient).

**The network problem.** :func:`network_policy_problem` builds a small categorical policy
network (:class:`course_lib.rl.networks.ActorCritic`) on a batch of random states, with its
``kl_fn``, its network outputs and a policy gradient, so the curvature tools of
:mod:`course_lib.core.curvature` and :mod:`course_lib.core.solvers` can be compared with the dense
Fisher. :func:`kl_along_step` compares the quadratic model ``½ t² sᵀF s`` with the true KL
along a step ``t·s``: the model is why TRPO can pick a step size from δ, its failure far
from ``θ_old`` is why TRPO needs a line search.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp

from course_lib._validate import (
    check_choice,
    check_int_at_least,
    check_positive,
    check_rank,
    concrete_float,
)
from course_lib.core.distributions import categorical_kl, categorical_log_prob
from course_lib.core.surrogate import surrogate
from course_lib.rl.networks import ActorCritic

__all__ = [
    "BANDIT_REWARDS",
    "BANDIT_START",
    "SIMPLEX_VERTICES",
    "BanditPath",
    "DirectionScan",
    "KLCurve",
    "NetworkProblem",
    "bandit_fisher",
    "bandit_gradient",
    "bandit_kl",
    "bandit_objective",
    "bandit_path",
    "bandit_probs",
    "direction_angle",
    "kl_along_step",
    "kl_matched_paths",
    "kl_step_size",
    "natural_direction",
    "network_policy_problem",
    "reward_threshold",
    "scan_directions",
    "score_jacobian",
    "simplex_xy",
    "softmax_fisher",
    "steps_to_reach",
]

BANDIT_REWARDS = (1.0, 0.5, 0.0)
"""Expected rewards of the lesson's 3-armed bandit: arm 0 is best, arm 2 worst."""

BANDIT_START = (0.0, 3.0, 6.0)
"""Start logits of the lesson's bandit: π ≈ (0.002, 0.047, 0.95), nearly always the worst arm."""

METHODS = ("vanilla", "natural")
STEP_RULES = ("fixed", "kl")


# --------------------------------------------------------------------------------------
# The softmax bandit
# --------------------------------------------------------------------------------------


def _matrix(matrix: jax.Array | None, params: jax.Array) -> jax.Array:
    """The parameterisation ``M`` ``[A, P]`` (the identity when ``None``), shape-checked."""
    params = jnp.asarray(params)
    check_rank(params, 1, "params")
    if matrix is None:
        return jnp.eye(params.shape[0], dtype=params.dtype)
    matrix = jnp.asarray(matrix)
    check_rank(matrix, 2, "matrix")
    if matrix.shape[1] != params.shape[0]:
        raise ValueError(
            f"matrix of shape {matrix.shape} needs params of size {matrix.shape[1]}, "
            f"got shape {params.shape}"
        )
    return matrix


def _check_rewards(rewards: jax.Array, n_arms: int) -> jax.Array:
    rewards = jnp.asarray(rewards)
    check_rank(rewards, 1, "rewards")
    if rewards.shape[0] != n_arms:
        raise ValueError(f"rewards must have one entry per arm ({n_arms}), got {rewards.shape}")
    return rewards


def bandit_probs(params: jax.Array, matrix: jax.Array | None = None) -> jax.Array:
    """The policy ``π = softmax(M θ)`` ``[A]`` of the softmax bandit.

    Args:
      params: ``θ`` ``[P]``.
      matrix: ``M`` ``[A, P]``, logits ``= M θ``; ``None`` for ``M = I`` (``P = A``).

    >>> import jax.numpy as jnp
    >>> [round(float(p), 3) for p in bandit_probs(jnp.zeros(3))]
    [0.333, 0.333, 0.333]
    """
    m = _matrix(matrix, params)
    return jax.nn.softmax(m @ params)


def bandit_objective(
    params: jax.Array, rewards: jax.Array, matrix: jax.Array | None = None
) -> jax.Array:
    """The exact expected reward ``J(θ) = Σ_i π_i r_i`` (a scalar).

    Args:
      params: ``θ`` ``[P]``.
      rewards: ``r`` ``[A]``, the expected reward of each arm.
      matrix: ``M`` ``[A, P]`` or ``None`` (identity).
    """
    pi = bandit_probs(params, matrix)
    rewards = _check_rewards(rewards, pi.shape[0])
    return jnp.dot(pi, rewards)


def bandit_gradient(
    params: jax.Array, rewards: jax.Array, matrix: jax.Array | None = None
) -> jax.Array:
    """The exact policy gradient ``∇J = Mᵀ (π ⊙ (r − J))`` ``[P]``.

    ``r_i − J`` is computed as ``Σ_j π_j (r_i − r_j)``, which keeps its relative precision
    when ``π`` is close to a vertex (``r_i − J`` as a difference of two nearly equal numbers
    would round to 0 in float32 long before the exact value does).

    Args:
      params: ``θ`` ``[P]``.
      rewards: ``r`` ``[A]``.
      matrix: ``M`` ``[A, P]`` or ``None`` (identity).
    """
    m = _matrix(matrix, params)
    pi = jax.nn.softmax(m @ params)
    rewards = _check_rewards(rewards, pi.shape[0])
    return m.T @ (pi * _advantages(pi, rewards))


def softmax_fisher(logits: jax.Array) -> jax.Array:
    """Fisher matrix of a categorical distribution w.r.t. its logits: ``diag(π) − ππᵀ``.

    It equals ``E_{a∼π}[∇ log π(a) ∇ log π(a)ᵀ]`` and the Hessian of ``KL(π_z ‖ π_{z'})`` in
    ``z'`` at ``z' = z``. It is positive semi-definite with the null vector ``1``.

    Args:
      logits: ``z`` ``[A]``.

    Returns:
      ``[A, A]``.
    """
    logits = jnp.asarray(logits)
    check_rank(logits, 1, "logits")
    pi = jax.nn.softmax(logits)
    return jnp.diag(pi) - pi[:, None] * pi[None, :]


def bandit_fisher(params: jax.Array, matrix: jax.Array | None = None) -> jax.Array:
    """The Fisher matrix of the bandit policy in ``θ``: ``Mᵀ (diag(π) − ππᵀ) M`` ``[P, P]``.

    Equal to ``dense_fisher(lambda p: bandit_kl(θ, p, M), θ)`` (the Hessian of the KL),
    computed in closed form.
    """
    m = _matrix(matrix, params)
    return m.T @ softmax_fisher(m @ params) @ m


def bandit_kl(
    params_old: jax.Array, params: jax.Array, matrix: jax.Array | None = None
) -> jax.Array:
    """``KL(π_old ‖ π_θ)`` between two bandit policies (a scalar), from their logits.

    Args:
      params_old: ``θ_old`` ``[P]``.
      params: ``θ`` ``[P]``.
      matrix: ``M`` ``[A, P]`` or ``None`` (identity).
    """
    m = _matrix(matrix, params)
    m_old = _matrix(matrix, params_old)
    return categorical_kl((m_old @ params_old)[None, :], (m @ params)[None, :])[0]


def _advantages(pi: jax.Array, rewards: jax.Array) -> jax.Array:
    """``r_i − J = Σ_j π_j (r_i − r_j)`` ``[A]``, accurate near a vertex (see bandit_gradient)."""
    return (rewards[:, None] - rewards[None, :]) @ pi


def score_jacobian(params: jax.Array, matrix: jax.Array | None = None) -> jax.Array:
    """``B = ∂ log π / ∂θ = (I − 1πᵀ) M`` ``[A, P]``: row ``i`` is ``∇_θ log π_i``.

    The Fisher is ``F = Bᵀ diag(π) B`` (the expected outer product of the score) and the
    gradient is ``∇J = Bᵀ diag(π) (r − J)``.
    """
    m = _matrix(matrix, params)
    pi = jax.nn.softmax(m @ params)
    return m - jnp.ones_like(pi)[:, None] * (pi @ m)[None, :]


def natural_direction(
    params: jax.Array, rewards: jax.Array, matrix: jax.Array | None = None
) -> jax.Array:
    """The natural gradient ``F⁺ ∇J`` ``[P]``, the minimum-norm solution of ``F x = ∇J``.

    Computed without forming ``F``, by Kakade's (2001, Theorem 1) compatible function
    approximation: the natural gradient is the ``w`` whose linear score features fit the
    advantages, ``min_w E_π[(∇log π · w − (r − J))²]``. With ``F = Bᵀ diag(π) B`` and
    ``∇J = Bᵀ diag(π) (r − J)`` (:func:`score_jacobian`), and every ``π_i > 0``, ``F x = ∇J``
    holds exactly when ``B x = r − J``; the fit is exact and
    ``x = B⁺ (r − J)``. Unlike ``pinv(F)``, whose small eigenvalues are the small ``π_i``,
    ``B`` stays well conditioned near a vertex of the simplex, so this works in float32 for
    nearly deterministic policies too.

    ``F`` is singular (a constant added to every logit does not change ``π``); the minimum-norm
    solution is orthogonal to that null space. For ``M = I`` it is ``r − mean(r)``, the
    centred reward vector, independent of ``π``: it does not vanish near a vertex, where the
    vanilla gradient ``π ⊙ (r − J)`` does.

    Args:
      params: ``θ`` ``[P]``.
      rewards: ``r`` ``[A]``.
      matrix: ``M`` ``[A, P]`` of full row rank, or ``None`` (identity).
    """
    m = _matrix(matrix, params)
    pi = jax.nn.softmax(m @ params)
    rewards = _check_rewards(rewards, pi.shape[0])
    return jnp.linalg.pinv(score_jacobian(params, m)) @ _advantages(pi, rewards)


def kl_step_size(
    params: jax.Array,
    direction: jax.Array,
    delta: float | jax.Array,
    matrix: jax.Array | None = None,
    iters: int = 48,
) -> jax.Array:
    """The ``t > 0`` with ``KL(π_θ ‖ π_{θ + t d}) = δ`` exactly (bisection on ``log t``).

    ``t ↦ KL(π_θ ‖ π_{θ+td})`` is convex (the log-partition function is) with value and slope
    0 at ``t = 0``, so it increases for ``t > 0`` and bisection finds the unique root. The
    search brackets ``t ∈ [1e-8, 1e8]`` (``iters = 48`` halvings of ``log t`` reach a
    relative precision of about 1e-13, below float32's). A direction that does not change
    ``π`` (zero, or a constant shift of every logit) gets the upper end of the bracket.

    Args:
      params: ``θ`` ``[P]``.
      direction: ``d`` ``[P]``.
      delta: ``δ > 0`` in nats.
      matrix: ``M`` ``[A, P]`` or ``None`` (identity).
      iters: a Python int ≥ 1, the number of bisection steps.

    Returns:
      the scalar ``t``.
    """
    check_positive(delta, "delta")
    check_int_at_least(iters, 1, "iters")
    m = _matrix(matrix, params)
    direction = jnp.asarray(direction, params.dtype)
    if direction.shape != params.shape:
        raise ValueError(
            f"direction must have the shape {params.shape} of params, got {direction.shape}"
        )
    logits = m @ params
    step_logits = m @ direction

    def kl_at(log_t):
        new = logits + jnp.exp(log_t) * step_logits
        return categorical_kl(logits[None, :], new[None, :])[0]

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = kl_at(mid) < delta
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    bounds = (jnp.asarray(math.log(1e-8), params.dtype), jnp.asarray(math.log(1e8), params.dtype))
    lo, hi = jax.lax.fori_loop(0, iters, body, bounds)
    return jnp.exp(0.5 * (lo + hi))


class BanditPath(NamedTuple):
    """A trajectory of :func:`bandit_path`: ``T`` steps, ``T + 1`` points (the start first).

    Attributes:
      params: ``[T+1, P]`` the parameters ``θ_t``.
      probs: ``[T+1, A]`` the policies ``π_t``.
      expected_reward: ``[T+1]`` ``J(θ_t)``.
      step_kl: ``[T]`` the exact ``KL(π_t ‖ π_{t+1})`` of each step.
      grad_norm: ``[T+1]`` ``‖∇J(θ_t)‖₂``, the Euclidean gradient's norm.
    """

    params: jax.Array
    probs: jax.Array
    expected_reward: jax.Array
    step_kl: jax.Array
    grad_norm: jax.Array


@partial(jax.jit, static_argnames=("n_steps", "method", "step_rule"))
def _bandit_path(params0, rewards, matrix, size, n_steps, method, step_rule):
    def direction(theta):
        if method == "vanilla":
            return bandit_gradient(theta, rewards, matrix)
        return natural_direction(theta, rewards, matrix)

    def step(theta, _):
        d = direction(theta)
        if step_rule == "fixed":
            scale = size
        else:
            scale = kl_step_size(theta, d, size, matrix)
        new = theta + scale * d
        return new, (new, bandit_kl(theta, new, matrix))

    _, (thetas, kls) = jax.lax.scan(step, params0, None, length=n_steps)
    thetas = jnp.concatenate([params0[None, :], thetas], axis=0)
    probs = jax.vmap(lambda t: bandit_probs(t, matrix))(thetas)
    grads = jax.vmap(lambda t: bandit_gradient(t, rewards, matrix))(thetas)
    return BanditPath(
        params=thetas,
        probs=probs,
        expected_reward=probs @ rewards,
        step_kl=kls,
        grad_norm=jnp.sqrt(jnp.sum(jnp.square(grads), axis=-1)),
    )


def bandit_path(
    params0: jax.Array,
    rewards: jax.Array,
    n_steps: int,
    *,
    method: str,
    step_rule: str,
    size: float | jax.Array,
    matrix: jax.Array | None = None,
) -> BanditPath:
    """Gradient ascent on the exact bandit objective, ``θ_{t+1} = θ_t + η_t d(θ_t)``.

    * ``method="vanilla"``: ``d = ∇J`` (steepest ascent in the Euclidean metric on ``θ``).
    * ``method="natural"``: ``d = F⁺ ∇J`` (steepest ascent per unit of KL; Kakade, 2001).
    * ``step_rule="fixed"``: ``η_t = size`` (a learning rate).
    * ``step_rule="kl"``: ``η_t`` such that ``KL(π_t ‖ π_{t+1}) = size`` exactly
      (:func:`kl_step_size`): every step moves the policy by the same ``δ`` nats, whatever
      the direction, which makes the two methods comparable.

    One ``lax.scan`` over the steps, jitted (compiled once per ``n_steps``, method, rule and
    shapes; ``size``, ``rewards``, ``params0`` and ``matrix`` are traced).

    Args:
      params0: ``θ_0`` ``[P]``.
      rewards: ``r`` ``[A]``.
      n_steps: a Python int ≥ 1, ``T``.
      method: ``"vanilla"`` or ``"natural"``.
      step_rule: ``"fixed"`` or ``"kl"``.
      size: the learning rate (``"fixed"``) or ``δ`` (``"kl"``), > 0.
      matrix: ``M`` ``[A, P]`` or ``None`` (identity).

    Returns:
      a :class:`BanditPath`.

    >>> import jax.numpy as jnp
    >>> path = bandit_path(jnp.zeros(3), jnp.array([1., 0., 0.]), 5,
    ...                    method="natural", step_rule="kl", size=0.01)
    >>> [round(float(kl), 4) for kl in path.step_kl]
    [0.01, 0.01, 0.01, 0.01, 0.01]
    """
    check_int_at_least(n_steps, 1, "n_steps")
    check_choice(method, METHODS, "method")
    check_choice(step_rule, STEP_RULES, "step_rule")
    check_positive(size, "size")
    params0 = jnp.asarray(params0, jnp.float32)
    m = _matrix(matrix, params0).astype(params0.dtype)
    rewards = _check_rewards(jnp.asarray(rewards, params0.dtype), m.shape[0])
    size = jnp.asarray(size, params0.dtype)
    return _bandit_path(params0, rewards, m, size, n_steps, method, step_rule)


def kl_matched_paths(
    params0: jax.Array, rewards: jax.Array, delta: float | jax.Array, n_steps: int
) -> tuple[BanditPath, BanditPath]:
    """``(vanilla, natural)`` paths in the logit parameterisation, both with steps of KL δ.

    The computation behind :func:`course_lib.widgets.l05_natural_gradient.natural_gradient_panel`:
    two calls of the jitted :func:`bandit_path` (``δ`` is traced, so moving the slider does
    not recompile, and any other ``bandit_path`` with the same ``n_steps`` shares the
    compiled programs).

    Args:
      params0: logits ``[A]`` of the start policy.
      rewards: ``r`` ``[A]``.
      delta: ``δ > 0``, the exact KL of every step.
      n_steps: a Python int ≥ 1.
    """
    check_positive(delta, "delta")
    params0 = jnp.asarray(params0, jnp.float32)
    check_rank(params0, 1, "params0")
    return tuple(
        bandit_path(params0, rewards, n_steps, method=m, step_rule="kl", size=delta)
        for m in METHODS
    )


def reward_threshold(rewards: jax.Array, fraction: float = 0.95) -> jax.Array:
    """``min(r) + fraction · (max(r) − min(r))``: "fraction of the optimal reward".

    With ``min(r) = 0`` (the course's bandits) this is ``fraction · max(r)``; the general form
    keeps the meaning when every reward is shifted.
    """
    rewards = jnp.asarray(rewards)
    check_rank(rewards, 1, "rewards")
    f = concrete_float(fraction)
    if f is not None and not 0.0 <= f <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {f}")
    lo, hi = jnp.min(rewards), jnp.max(rewards)
    return lo + fraction * (hi - lo)


def steps_to_reach(
    expected_reward: jax.Array, rewards: jax.Array, fraction: float = 0.95
) -> jax.Array:
    """The first step ``t`` with ``J_t ≥`` :func:`reward_threshold` (int32), ``-1`` if never.

    Args:
      expected_reward: ``[T+1]`` ``J`` along a path (``BanditPath.expected_reward``); entry 0
        is the start, so the answer counts steps taken.
      rewards: ``r`` ``[A]``.
      fraction: in ``[0, 1]``.
    """
    expected_reward = jnp.asarray(expected_reward)
    check_rank(expected_reward, 1, "expected_reward")
    reached = expected_reward >= reward_threshold(rewards, fraction)
    return jnp.where(jnp.any(reached), jnp.argmax(reached), -1).astype(jnp.int32)


class DirectionScan(NamedTuple):
    """Gain of a step in every direction of the logit plane, in a KL ball and a Euclidean one.

    Attributes:
      angles: ``[K]`` direction angles in radians (see :func:`direction_angle`).
      kl_gain: ``[K]`` ``J(z + t u) − J(z)`` with ``t`` such that ``KL(π_z ‖ π_{z+tu}) = δ``.
      euclid_gain: ``[K]`` ``J(z + ε u) − J(z)`` for the unit vector ``u`` and radius ``ε``.
    """

    angles: jax.Array
    kl_gain: jax.Array
    euclid_gain: jax.Array


_PLANE = jnp.array([[1.0, -1.0, 0.0], [1.0, 1.0, -2.0]]) / jnp.array(
    [[math.sqrt(2.0)], [math.sqrt(6.0)]]
)
"""Orthonormal basis ``[2, 3]`` of the logit directions that change a 3-arm policy (⟂ 1)."""


def direction_angle(direction: jax.Array) -> jax.Array:
    """Angle (radians) of a 3-arm logit direction in the plane orthogonal to ``1``.

    Adding a constant to every logit does not change π, so a logit direction ``d`` ``[3]``
    acts through its projection on the plane ``Σ d_i = 0``; the angle is measured from
    ``(1, −1, 0)/√2`` towards ``(1, 1, −2)/√6``.
    """
    direction = jnp.asarray(direction)
    if direction.shape != (3,):
        raise ValueError(f"direction must have shape (3,), got {direction.shape}")
    x, y = _PLANE.astype(direction.dtype) @ direction
    return jnp.arctan2(y, x)


@partial(jax.jit, static_argnames=("n_directions",))
def _scan_directions(logits, rewards, delta, radius, n_directions):
    angles = jnp.linspace(-jnp.pi, jnp.pi, n_directions, endpoint=False)
    units = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=1) @ _PLANE
    base = bandit_objective(logits, rewards)

    def gains(u):
        t = kl_step_size(logits, u, delta)
        kl_gain = bandit_objective(logits + t * u, rewards) - base
        return kl_gain, bandit_objective(logits + radius * u, rewards) - base

    kl_gain, euclid_gain = jax.vmap(gains)(units)
    return DirectionScan(angles=angles, kl_gain=kl_gain, euclid_gain=euclid_gain)


def scan_directions(
    logits: jax.Array,
    rewards: jax.Array,
    delta: float,
    radius: float,
    n_directions: int = 720,
) -> DirectionScan:
    """Which step direction improves ``J`` most: in a KL ball, and in a Euclidean ball?

    For ``K`` unit directions ``u`` of the logit plane (3 arms, logit parameterisation), the
    gain of the step of exact KL ``δ`` and of the step of Euclidean length ``ε``. For small
    balls the best KL direction is the natural gradient ``F⁺∇J`` and the best Euclidean one
    the vanilla gradient ``∇J`` (steepest ascent is defined by the metric: Amari, 1998;
    Kakade, 2001).

    Args:
      logits: ``z`` ``[3]``, the current policy.
      rewards: ``r`` ``[3]``.
      delta: ``δ > 0``, the KL radius in nats.
      radius: ``ε > 0``, the Euclidean radius in logit units.
      n_directions: a Python int ≥ 3, ``K`` evenly spaced angles.

    Returns:
      a :class:`DirectionScan`.
    """
    check_positive(delta, "delta")
    check_positive(radius, "radius")
    check_int_at_least(n_directions, 3, "n_directions")
    logits = jnp.asarray(logits, jnp.float32)
    if logits.shape != (3,):
        raise ValueError(f"logits must have shape (3,), got {logits.shape}")
    rewards = _check_rewards(jnp.asarray(rewards, jnp.float32), 3)
    return _scan_directions(logits, rewards, jnp.float32(delta), jnp.float32(radius), n_directions)


SIMPLEX_VERTICES = jnp.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3.0) / 2.0]])
"""Corners of the triangle of :func:`simplex_xy`: arm 0 bottom left, arm 1 bottom right,
arm 2 on top."""


def simplex_xy(probs: jax.Array) -> jax.Array:
    """Barycentric projection of 3-arm policies onto an equilateral triangle, ``[..., 2]``.

    ``xy = Σ_i π_i v_i`` with the corners ``v_i`` of :data:`SIMPLEX_VERTICES` (side 1): a
    deterministic policy sits on a corner, the uniform one at the centre.

    Args:
      probs: ``[..., 3]`` probabilities.
    """
    probs = jnp.asarray(probs)
    if probs.ndim < 1 or probs.shape[-1] != 3:
        raise ValueError(f"probs must have a last axis of size 3, got shape {probs.shape}")
    return probs @ SIMPLEX_VERTICES.astype(probs.dtype)


# --------------------------------------------------------------------------------------
# A small network policy for the curvature checks
# --------------------------------------------------------------------------------------


class NetworkProblem(NamedTuple):
    """A categorical policy network, a batch of states, its trust-region KL and a gradient.

    Attributes:
      net: the :class:`~course_lib.rl.networks.ActorCritic` (only its policy is used).
      params: ``θ_old`` ``[P]``, flat policy parameters.
      obs: ``[B, O]`` states.
      old_logits: ``[B, A]`` logits of π_old on ``obs``.
      logits_fn: ``θ → [B, A]`` logits on ``obs``.
      kl_of_logits: ``z → `` mean ``KL(π_old ‖ softmax(z))`` (π_old fixed).
      kl_fn: ``θ → `` mean ``KL(π_old ‖ π_θ)``, ``kl_of_logits ∘ logits_fn``.
      surrogate_fn: ``θ → `` the surrogate ``mean(r_t A_t)`` on actions sampled from π_old.
      gradient: ``[P]``, ``∇ surrogate_fn(θ_old)``, the policy gradient ``g``.
    """

    net: ActorCritic
    params: jax.Array
    obs: jax.Array
    old_logits: jax.Array
    logits_fn: Callable[[jax.Array], jax.Array]
    kl_of_logits: Callable[[jax.Array], jax.Array]
    kl_fn: Callable[[jax.Array], jax.Array]
    surrogate_fn: Callable[[jax.Array], jax.Array]
    gradient: jax.Array


@partial(jax.jit, static_argnames=("net", "batch"))
def _network_batch(net, key, batch, noise):
    """θ_old (init + noise), states, π_old's logits, actions sampled from π_old, advantages."""
    k_init, k_noise, k_obs, k_act, k_adv = jax.random.split(key, 5)
    params, _ = net.init(k_init)
    params = params + noise * jax.random.normal(k_noise, params.shape, params.dtype)
    obs = jax.random.normal(k_obs, (batch, net.obs_dim))
    logits = net.policy(params, obs).logits
    actions = jax.random.categorical(k_act, logits).astype(jnp.int32)
    advantages = jax.random.normal(k_adv, (batch,))
    return params, obs, logits, actions, advantages


def network_policy_problem(
    key: jax.Array,
    batch: int = 64,
    obs_dim: int = 4,
    n_actions: int = 3,
    hidden: tuple[int, ...] = (8,),
    param_noise: float = 0.5,
) -> NetworkProblem:
    """A small policy-gradient problem to check curvature tools against dense algebra.

    The policy is ``ActorCritic(obs_dim, n_actions, discrete=True, hidden)``'s policy head,
    its initial parameters plus ``param_noise ·`` standard normal noise (so π_old is far from
    uniform, as after some training). States are standard normal ``[batch, obs_dim]``;
    actions are sampled from π_old and advantages are standard normal. The surrogate is
    ``mean(π_θ(a|s) / π_old(a|s) · A)`` (TRPO eq. 14), its gradient at ``θ_old`` the policy
    gradient ``g`` that TRPO preconditions with ``F⁻¹``.

    Args:
      key: a PRNG key.
      batch: ``B`` ≥ 1 states.
      obs_dim: ``O`` ≥ 1.
      n_actions: ``A`` ≥ 2.
      hidden: hidden layer widths.
      param_noise: ≥ 0, the scale of the noise added to the initial parameters.

    Returns:
      a :class:`NetworkProblem`.
    """
    check_int_at_least(batch, 1, "batch")
    check_int_at_least(obs_dim, 1, "obs_dim")
    check_int_at_least(n_actions, 2, "n_actions")
    noise = concrete_float(param_noise)
    if noise is None or noise < 0:
        raise ValueError(f"param_noise must be a number >= 0, got {param_noise!r}")
    net = ActorCritic(obs_dim=obs_dim, n_actions=n_actions, discrete=True, hidden=tuple(hidden))
    params, obs, old_logits, actions, advantages = _network_batch(net, key, batch, noise)

    def logits_fn(p):
        return net.policy(p, obs).logits

    logp_old = categorical_log_prob(old_logits, actions)

    def kl_of_logits(z):
        return jnp.mean(categorical_kl(old_logits, z))

    def kl_fn(p):
        return kl_of_logits(logits_fn(p))

    def surrogate_fn(p):
        return surrogate(categorical_log_prob(logits_fn(p), actions), logp_old, advantages)

    return NetworkProblem(
        net=net,
        params=params,
        obs=obs,
        old_logits=old_logits,
        logits_fn=logits_fn,
        kl_of_logits=kl_of_logits,
        kl_fn=kl_fn,
        surrogate_fn=surrogate_fn,
        gradient=jax.jit(jax.grad(surrogate_fn))(params),
    )


class KLCurve(NamedTuple):
    """True and quadratic KL along ``θ_old + t·s`` (all ``[T]``).

    Attributes:
      t: the step fractions.
      true_kl: ``kl_fn(θ_old + t s)``.
      quadratic_kl: ``½ t² sᵀF s``, the second-order model TRPO uses to size the step.
    """

    t: jax.Array
    true_kl: jax.Array
    quadratic_kl: jax.Array

    def first_divergence(self, rtol: float = 0.1) -> jax.Array:
        """The first ``t > 0`` where ``|true − quadratic| > rtol · quadratic``; NaN if none."""
        gap = jnp.abs(self.true_kl - self.quadratic_kl) > rtol * self.quadratic_kl
        gap = gap & (self.t > 0)
        return jnp.where(jnp.any(gap), self.t[jnp.argmax(gap)], jnp.nan)


def kl_along_step(
    kl_fn: Callable[[jax.Array], jax.Array],
    fvp: Callable[[jax.Array], jax.Array],
    params: jax.Array,
    step: jax.Array,
    ts: jax.Array,
) -> KLCurve:
    """Compare the true KL with its quadratic model along the line ``params + t · step``.

    ``KL(π_old ‖ π_{θ_old + t s}) = ½ t² sᵀF s + O(t³)`` (the KL and its gradient vanish at
    ``θ_old``, its Hessian there is ``F``). TRPO (Schulman et al., 2015, Appendix C) picks
    ``s`` so that ``½ sᵀF s = δ``; the line search then checks the true KL, because the
    ``O(t³)`` term is not small once the step is large.

    Args:
      kl_fn: ``θ → `` mean ``KL(π_old ‖ π_θ)``.
      fvp: ``v ↦ F v`` at ``params`` (undamped, to model the KL itself).
      params: ``θ_old`` ``[P]``.
      step: ``s`` ``[P]``.
      ts: ``[T]`` step fractions.

    Returns:
      a :class:`KLCurve`.
    """
    params = jnp.asarray(params)
    step = jnp.asarray(step)
    ts = jnp.asarray(ts)
    check_rank(params, 1, "params")
    check_rank(ts, 1, "ts")
    if step.shape != params.shape:
        raise ValueError(f"step must have the shape {params.shape} of params, got {step.shape}")
    sfs = jnp.vdot(step, fvp(step))
    true_kl = jax.jit(jax.vmap(lambda t: kl_fn(params + t * step)))(ts)
    return KLCurve(t=ts, true_kl=true_kl, quadratic_kl=0.5 * jnp.square(ts) * sfs)
