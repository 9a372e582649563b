"""The KL trust region: what δ means, on a two-parameter toy and on a real CartPole policy.

TRPO (Schulman et al., 2015, "Trust Region Policy Optimization", eq. 12–14) improves a policy
by solving, from the samples of π_old,

    maximise_θ  L(θ) = E_t[r_t(θ) A_t]   subject to   E_s[KL(π_old(·|s) ‖ π_θ(·|s))] ≤ δ,

with δ ≈ 0.01 nats per update. The constraint is on the *policies* (their action
probabilities), not on the weights: the same ‖Δθ‖ can leave a policy unchanged or wreck it.

This module holds the computations of lesson 04:

* **A softmax toy** (:class:`SoftmaxToy`): one state, three actions, two parameters, so the
  feasible region {θ : KL ≤ δ} can be drawn. :func:`toy_constrained_optimum` solves the
  constrained problem on the exact KL boundary; :func:`toy_natural_step` is TRPO's
  quadratic-model answer ``s = F⁻¹g·√(2δ / gᵀF⁻¹g)``; :func:`toy_trust_region` gathers all a
  figure or a panel needs.
* **The KL table checked on CartPole**: :func:`kl_sweep` takes a trained policy, builds
  updates of many sizes (exact KL from 1e-4 to 1) along three directions (surrogate
  gradient, natural gradient, random) on several fresh batches, and measures each update's
  exact KL and its change in return with a jitted rollout (:func:`course_lib.rl.evaluate.episode_returns`);
  :func:`regime_table` sorts them into the KL regimes of the table.
* **Advantage scale against δ**: :func:`advantage_scale_table` shows that scaling the
  advantages by c multiplies the gradient by c, so a plain gradient step's KL grows like c²
  (and so does a fixed-β penalty's optimum), while the δ-constrained step keeps KL ≈ δ.
* **Where the bound comes from**: :func:`trpo_lower_bound` (Schulman et al. 2015, Theorem 1:
  J(π') − J(π) ≥ L − C·max KL, C = 4·A_max·γ/(1 − γ)²), :func:`achiam_lower_bound`
  (Achiam et al. 2017: the same with √(mean KL)) and :func:`improvement_bounds`, which
  evaluates both, and every step of their derivation, exactly on one update of a tabular MDP
  given as arrays (lesson 03's MDP supplies them; this module does not import lesson 03).

Every function is pure JAX (jit/vmap friendly) unless its docstring says it returns NumPy,
and checks its arguments, raising ``ValueError``/``TypeError`` naming the argument.
"""

from __future__ import annotations

import math
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validate import (
    check_int_at_least,
    check_positive,
    check_rank,
    check_same_shape,
    concrete_float,
)
from course_lib.core.curvature import dense_fisher
from course_lib.core.distributions import categorical_kl
from course_lib.core.solvers import conjugate_gradient, trust_region_step
from course_lib.rl.envs import make_env
from course_lib.rl.evaluate import episode_returns
from course_lib.rl.networks import ActorCritic, Params
from course_lib.rl.rollout import Batch, collect_batch
from course_lib.rl.trpo import batch_fvp, batch_kl, batch_surrogate

__all__ = [
    "DEFAULT_TOY",
    "DIRECTION_KINDS",
    "KL_REGIMES",
    "SWEEP_TARGET_KLS",
    "AdvantageScaleTable",
    "ImprovementBounds",
    "KLSweep",
    "RegimeRow",
    "SoftmaxToy",
    "ToyTrustRegion",
    "achiam_lower_bound",
    "advantage_scale_table",
    "batch_kl",
    "bisect_step_size",
    "improvement_bounds",
    "kl_sweep",
    "policy_directions",
    "regime_table",
    "total_variation",
    "toy_constrained_optimum",
    "toy_fisher",
    "toy_gradient",
    "toy_kl",
    "toy_kl_boundary",
    "toy_kl_on_circle",
    "toy_logits",
    "toy_natural_step",
    "toy_surrogate_gain",
    "toy_trust_region",
    "trpo_lower_bound",
    "trpo_penalty_coefficient",
    "two_action_split",
]


# ------------------------------------------------------------------------------------------
# 1. A two-parameter softmax toy
# ------------------------------------------------------------------------------------------


class SoftmaxToy(NamedTuple):
    """One state, three actions, two parameters: logits ``z(θ) = (w₁θ₁, w₂θ₂, 0)``.

    The two weights ``w`` play the part of layers of different sensitivity in a network: a
    unit step in θ₁ moves the logits ``w₁/w₂`` times more than a unit step in θ₂, so the KL
    region is a long, tilted ellipse in θ while a weight-space ball is a circle.

    Attributes:
      theta_old: ``[2]`` the parameters of π_old.
      weights: ``[2]`` ``w``, the sensitivity of each logit to its parameter.
      advantages: ``[3]`` the advantage A(a) of each action (the state has one sample per
        action, weighted by π_old, so the surrogate is exact: L(θ) = Σ_a π_θ(a) A(a)).
    """

    theta_old: jax.Array
    weights: jax.Array
    advantages: jax.Array


DEFAULT_TOY = SoftmaxToy(
    theta_old=jnp.array([0.3, 1.0], jnp.float32),
    weights=jnp.array([1.5, 0.6], jnp.float32),
    advantages=jnp.array([-0.5, 1.0, 0.0], jnp.float32),
)
"""π_old ≈ (0.36, 0.42, 0.23); action 2 is the good one (A = +1), action 1 the bad one (A = −½).

A unit step in θ₁ moves the logits 2.5 times more than one in θ₂: the Fisher's eigenvalues
differ about 12-fold, so the KL region is an ellipse 3.4 times longer than it is wide."""


def _check_toy(toy: SoftmaxToy) -> None:
    if not isinstance(toy, SoftmaxToy):
        raise TypeError(f"toy must be a SoftmaxToy, got {type(toy).__name__}")
    for name, size in (("theta_old", 2), ("weights", 2), ("advantages", 3)):
        value = getattr(toy, name)
        if jnp.shape(value) != (size,):
            raise ValueError(f"toy.{name} must have shape ({size},), got {jnp.shape(value)}")


def _check_theta(theta: jax.Array) -> jax.Array:
    theta = jnp.asarray(theta, jnp.float32)
    if theta.shape != (2,):
        raise ValueError(f"theta must have shape (2,), got {theta.shape}")
    return theta


def toy_logits(theta: jax.Array, toy: SoftmaxToy = DEFAULT_TOY) -> jax.Array:
    """The logits ``[3]`` = ``(w₁θ₁, w₂θ₂, 0)`` of the toy policy at ``theta [2]``."""
    theta = _check_theta(theta)
    _check_toy(toy)
    return jnp.concatenate([toy.weights * theta, jnp.zeros((1,), theta.dtype)])


def toy_kl(theta: jax.Array, toy: SoftmaxToy = DEFAULT_TOY) -> jax.Array:
    """KL(π_old ‖ π_θ) of the toy, a scalar in nats (0 at ``toy.theta_old``)."""
    _check_toy(toy)
    old = toy_logits(toy.theta_old, toy)
    return categorical_kl(old[None, :], toy_logits(theta, toy)[None, :])[0]


def toy_surrogate_gain(theta: jax.Array, toy: SoftmaxToy = DEFAULT_TOY) -> jax.Array:
    """L(θ) − L(θ_old) with L(θ) = E_{a∼π_old}[r(a) A(a)] = Σ_a π_θ(a) A(a), a scalar."""
    _check_toy(toy)
    new = jax.nn.softmax(toy_logits(theta, toy))
    old = jax.nn.softmax(toy_logits(toy.theta_old, toy))
    return jnp.sum((new - old) * toy.advantages)


def toy_gradient(toy: SoftmaxToy = DEFAULT_TOY) -> jax.Array:
    """g = ∇_θ L at θ_old, ``[2]``: the steepest ascent direction in *weight* space."""
    return jax.grad(toy_surrogate_gain)(jnp.asarray(toy.theta_old, jnp.float32), toy)


def toy_fisher(toy: SoftmaxToy = DEFAULT_TOY) -> jax.Array:
    """F = ∇²_θ KL(π_old‖π_θ) at θ_old, ``[2, 2]`` (the Fisher information of the toy).

    Near θ_old, KL ≈ ½ Δθᵀ F Δθ: the quadratic model whose ellipse TRPO steps to.
    """
    return dense_fisher(lambda t: toy_kl(t, toy), jnp.asarray(toy.theta_old, jnp.float32))


def toy_natural_step(delta: float | jax.Array, toy: SoftmaxToy = DEFAULT_TOY) -> jax.Array:
    """TRPO's step Δθ ``[2]`` for the toy: ``s = F⁻¹g · √(2δ / gᵀF⁻¹g)``.

    It maximises the linear model gᵀs under the quadratic KL model ½ sᵀF s ≤ δ
    (Schulman et al., 2015, Appendix C); its *true* KL is close to δ only while δ is small.

    Raises:
      ValueError: ``delta`` is a concrete number ≤ 0.
    """
    check_positive(delta, "delta")
    fisher = toy_fisher(toy)
    direction = jnp.linalg.solve(fisher, toy_gradient(toy))
    return trust_region_step(direction, lambda v: fisher @ v, delta)


def _radius_on_ray(kl_of_radius, delta, iters: int = 48, lo: float = 1e-6, hi: float = 1e3):
    """The radius ρ at which the KL along a ray reaches δ, by bisection in log ρ.

    The toy's KL is convex in θ (a log-sum-exp minus a linear function of the logits, and
    the logits are linear in θ) with its minimum 0 at θ_old, so along a ray it increases.
    """

    def body(_, bracket):
        a, b = bracket
        mid = 0.5 * (a + b)
        above = kl_of_radius(jnp.exp(mid)) > delta
        return jnp.where(above, a, mid), jnp.where(above, mid, b)

    a, b = jax.lax.fori_loop(0, iters, body, (jnp.log(lo), jnp.log(hi)))
    return jnp.exp(0.5 * (a + b))


def toy_kl_boundary(
    delta: float | jax.Array, toy: SoftmaxToy = DEFAULT_TOY, n_angles: int = 720
) -> jax.Array:
    """Points ``[n_angles, 2]`` of the true boundary {θ : KL(π_old‖π_θ) = δ}, by angle.

    Point k lies on the ray from θ_old at angle 2πk/n_angles, at the radius found by
    bisection (48 halvings of log ρ in [log 1e-6, log 1e3]).

    Raises:
      ValueError: ``delta`` ≤ 0; TypeError/ValueError: ``n_angles`` not an int ≥ 8.
    """
    check_positive(delta, "delta")
    check_int_at_least(n_angles, 8, "n_angles")
    _check_toy(toy)
    theta_old = jnp.asarray(toy.theta_old, jnp.float32)
    angles = jnp.arange(n_angles, dtype=jnp.float32) * (2.0 * math.pi / n_angles)
    units = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)

    def point(u):
        rho = _radius_on_ray(lambda r: toy_kl(theta_old + r * u, toy), delta)
        return theta_old + rho * u

    return jax.vmap(point)(units)


def toy_kl_on_circle(
    radius: float | jax.Array, toy: SoftmaxToy = DEFAULT_TOY, n_angles: int = 360
) -> jax.Array:
    """KL(π_old‖π_θ) ``[n_angles]`` of the steps of one weight-space length ‖Δθ‖ = ``radius``.

    Point k is θ_old + radius·(cos φ_k, sin φ_k), φ_k = 2πk/n_angles. A constraint on ‖Δθ‖
    allows all of them; their KLs show how differently they change the policy.
    """
    check_positive(radius, "radius")
    check_int_at_least(n_angles, 1, "n_angles")
    _check_toy(toy)
    angles = jnp.arange(n_angles, dtype=jnp.float32) * (2.0 * math.pi / n_angles)
    units = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    theta_old = jnp.asarray(toy.theta_old, jnp.float32)
    return jax.vmap(lambda u: toy_kl(theta_old + radius * u, toy))(units)


def toy_constrained_optimum(
    delta: float | jax.Array, toy: SoftmaxToy = DEFAULT_TOY, n_angles: int = 1440
) -> tuple[jax.Array, jax.Array, jax.Array]:
    """The exact solution of max L(θ) s.t. KL(π_old‖π_θ) ≤ δ for the toy.

    L has no stationary point at a finite θ (its supremum is the best action's advantage,
    reached only at infinite logits), so the optimum lies on the boundary KL = δ. It is
    found by evaluating L on ``n_angles`` boundary points (:func:`toy_kl_boundary`) and
    keeping the best (angle resolution 360°/n_angles).

    Returns:
      ``(theta_star [2], gain, kl)``: the optimum, L(θ*) − L(θ_old) and KL(θ*) (= δ up to
      the bisection's precision).
    """
    boundary = toy_kl_boundary(delta, toy, n_angles)
    gains = jax.vmap(lambda t: toy_surrogate_gain(t, toy))(boundary)
    best = boundary[jnp.argmax(gains)]
    return best, toy_surrogate_gain(best, toy), toy_kl(best, toy)


class ToyTrustRegion(NamedTuple):
    """Everything a figure of the toy's trust region needs, at one δ.

    Attributes:
      delta: the trust-region radius δ (nats).
      theta_old: ``[2]``.
      xs, ys: ``[G]`` the grid's θ₁ and θ₂ values (a square window around θ_old that holds
        the KL = δ region with a margin).
      gain_grid: ``[G, G]`` L(θ) − L(θ_old), rows over ``ys``, columns over ``xs``.
      kl_grid: ``[G, G]`` KL(π_old‖π_θ) on the same grid.
      boundary: ``[N, 2]`` the true KL = δ curve.
      quadratic_boundary: ``[N, 2]`` the ellipse ½ ΔθᵀF Δθ = δ of TRPO's quadratic model.
      optimum, optimum_gain, optimum_kl: the exact constrained optimum.
      natural, natural_gain, natural_kl: θ_old + TRPO's step (:func:`toy_natural_step`).
      gradient, gradient_gain, gradient_kl: θ_old + α g, the plain gradient step.
      lr: α, the learning rate of the plain gradient step.
      gradient_cut, gradient_cut_gain: where the gradient direction crosses KL = δ, and its
        gain there: the best a step along g can do inside the region.
    """

    delta: jax.Array
    theta_old: jax.Array
    xs: jax.Array
    ys: jax.Array
    gain_grid: jax.Array
    kl_grid: jax.Array
    boundary: jax.Array
    quadratic_boundary: jax.Array
    optimum: jax.Array
    optimum_gain: jax.Array
    optimum_kl: jax.Array
    natural: jax.Array
    natural_gain: jax.Array
    natural_kl: jax.Array
    gradient: jax.Array
    gradient_gain: jax.Array
    gradient_kl: jax.Array
    lr: jax.Array
    gradient_cut: jax.Array
    gradient_cut_gain: jax.Array


@partial(jax.jit, static_argnames=("grid", "n_angles"))
def _toy_trust_region(delta, toy, lr, grid, n_angles):
    theta_old = jnp.asarray(toy.theta_old, jnp.float32)
    boundary = toy_kl_boundary(delta, toy, n_angles)
    gains = jax.vmap(lambda t: toy_surrogate_gain(t, toy))(boundary)
    optimum = boundary[jnp.argmax(gains)]

    fisher = toy_fisher(toy)
    angles = jnp.arange(n_angles, dtype=jnp.float32) * (2.0 * math.pi / n_angles)
    units = jnp.stack([jnp.cos(angles), jnp.sin(angles)], axis=-1)
    quad = jnp.einsum("ni,ij,nj->n", units, fisher, units)
    quadratic_boundary = theta_old[None, :] + units * jnp.sqrt(2.0 * delta / quad)[:, None]

    natural = theta_old + toy_natural_step(delta, toy)
    g = toy_gradient(toy)
    gradient = theta_old + lr * g
    unit_g = g / jnp.linalg.norm(g)
    gradient_cut = theta_old + unit_g * _radius_on_ray(
        lambda r: toy_kl(theta_old + r * unit_g, toy), delta
    )

    half = 1.3 * jnp.max(jnp.abs(boundary - theta_old[None, :]))
    xs = theta_old[0] + jnp.linspace(-half, half, grid)
    ys = theta_old[1] + jnp.linspace(-half, half, grid)
    points = jnp.stack(jnp.meshgrid(xs, ys), axis=-1).reshape(-1, 2)
    gain_grid = jax.vmap(lambda t: toy_surrogate_gain(t, toy))(points).reshape(grid, grid)
    kl_grid = jax.vmap(lambda t: toy_kl(t, toy))(points).reshape(grid, grid)

    gain = lambda t: toy_surrogate_gain(t, toy)
    kl = lambda t: toy_kl(t, toy)
    return ToyTrustRegion(
        jnp.asarray(delta, jnp.float32), theta_old, xs, ys, gain_grid, kl_grid, boundary,
        quadratic_boundary, optimum, gain(optimum), kl(optimum), natural, gain(natural),
        kl(natural), gradient, gain(gradient), kl(gradient), jnp.asarray(lr, jnp.float32),
        gradient_cut, gain(gradient_cut),
    )


def toy_trust_region(
    delta: float,
    toy: SoftmaxToy = DEFAULT_TOY,
    lr: float = 1.0,
    grid: int = 61,
    n_angles: int = 720,
) -> ToyTrustRegion:
    """The toy's trust-region picture at ``delta``: grids, boundaries and three steps.

    Jitted once per ``(grid, n_angles)``; a new δ, α or toy reuses the compiled program
    (a few milliseconds), which is what lets the δ slider answer instantly.

    Args:
      delta: δ > 0, the KL bound in nats.
      toy: the :class:`SoftmaxToy`.
      lr: α > 0, the learning rate of the plain (unconstrained) gradient step θ_old + α g.
      grid: points per axis of the surrogate/KL grids (≥ 8).
      n_angles: points on each boundary curve (≥ 8).
    """
    check_positive(delta, "delta")
    check_positive(lr, "lr")
    check_int_at_least(grid, 8, "grid")
    check_int_at_least(n_angles, 8, "n_angles")
    _check_toy(toy)
    return _toy_trust_region(jnp.float32(delta), toy, jnp.float32(lr), grid, n_angles)


# ------------------------------------------------------------------------------------------
# 2. A real policy: batches, exact KL, returns
# ------------------------------------------------------------------------------------------


def _check_model(model: ActorCritic) -> None:
    if not isinstance(model, ActorCritic):
        raise TypeError(f"model must be an ActorCritic, got {type(model).__name__}")
    if not model.discrete:
        raise ValueError("model must be a categorical (discrete-action) policy")


def _surrogate_gain(model: ActorCritic, policy_params: jax.Array, batch: Batch) -> jax.Array:
    """L(θ) − L(θ_old) = mean_t[(r_t − 1)·A_t] on the batch."""
    return batch_surrogate(policy_params, batch, model) - jnp.mean(batch.advantages)


DIRECTION_KINDS = ("gradient", "natural", "random")
"""The update directions of :func:`policy_directions`, in order."""


def policy_directions(
    model: ActorCritic,
    policy_params: jax.Array,
    batch: Batch,
    key: jax.Array,
    cg_iters: int = 10,
    damping: float = 0.1,
) -> jax.Array:
    """Three unit-norm update directions ``[3, P]`` for the flat policy parameters.

    * ``gradient``: g = ∇_θ L, the surrogate's gradient (steepest ascent in weight space);
    * ``natural``: F⁻¹g by ``cg_iters`` steps of conjugate gradient on Gauss–Newton
      Fisher-vector products with ``damping`` (the direction TRPO steps along);
    * ``random``: a standard normal vector (a change of weights unrelated to the task).

    Each is divided by its L2 norm, so a step ``α·d`` has ‖Δθ‖ = α.
    """
    _check_model(model)
    check_rank(policy_params, 1, "policy_params")
    grad = jax.grad(lambda p: _surrogate_gain(model, p, batch))(policy_params)
    fvp = batch_fvp(policy_params, batch, model, damping)
    natural, _ = conjugate_gradient(fvp, grad, iters=cg_iters)
    rand = jax.random.normal(key, policy_params.shape, policy_params.dtype)
    dirs = jnp.stack([grad, natural, rand])
    return dirs / jnp.linalg.norm(dirs, axis=1, keepdims=True)


def bisect_step_size(
    kl_of_step, target: float | jax.Array, iters: int = 20, lo: float = 1e-4, hi: float = 1e2
) -> jax.Array:
    """The step size α in [lo, hi] with ``kl_of_step(α) = target``, by bisection in log α.

    Assumes the KL grows along the ray (true near α = 0, where KL ≈ ½α² dᵀFd); where it does
    not, it returns one crossing. ``iters`` halvings of the bracket [log lo, log hi] give
    a relative precision of (hi/lo)^(2^−iters) (20 halvings: 1e-5). Returns ``lo`` or
    ``hi`` when the target lies outside the bracket.
    """
    check_positive(target, "target")
    check_int_at_least(iters, 1, "iters")
    lo_f, hi_f = concrete_float(lo), concrete_float(hi)
    if lo_f is not None and hi_f is not None and not 0 < lo_f < hi_f:
        raise ValueError(f"lo and hi must satisfy 0 < lo < hi, got lo={lo_f}, hi={hi_f}")

    def body(_, bracket):
        a, b = bracket
        mid = 0.5 * (a + b)
        above = kl_of_step(jnp.exp(mid)) > target
        return jnp.where(above, a, mid), jnp.where(above, mid, b)

    a, b = jax.lax.fori_loop(0, iters, body, (jnp.log(jnp.float32(lo)), jnp.log(jnp.float32(hi))))
    return jnp.exp(0.5 * (a + b))


SWEEP_TARGET_KLS = (1e-4, 3e-4, 1e-3, 3e-3, 6e-3, 1e-2, 2e-2, 5e-2, 7e-2, 0.15, 0.3, 0.6, 1.0)
"""The default target KLs of :func:`kl_sweep`: 3, 4, 2 and 4 of them in the bands of
:data:`KL_REGIMES`, none near a band's edge."""


class KLSweep(NamedTuple):
    """Result of :func:`kl_sweep` (NumPy arrays), axes ``[batch, direction, target]``.

    Attributes:
      target_kl: ``[T]`` the KLs the step sizes were tuned to.
      kl: ``[B, K, T]`` the exact mean KL(π_old‖π_new) of each update on its batch.
      step_norm: ``[B, K, T]`` ‖Δθ‖₂ of each update.
      surrogate_gain: ``[B, K, T]`` L(θ_new) − L(θ_old) on the batch.
      return_after: ``[B, K, T]`` mean return of the updated policy.
      return_before: scalar, mean return of π_old on the same episodes.
      kinds: the direction names, :data:`DIRECTION_KINDS`.
    """

    target_kl: np.ndarray
    kl: np.ndarray
    step_norm: np.ndarray
    surrogate_gain: np.ndarray
    return_after: np.ndarray
    return_before: float
    kinds: tuple[str, ...]


@partial(jax.jit, static_argnames=("model", "n_batches", "episodes", "num_envs", "num_steps"))
def _kl_sweep(model, policy_params, value_params, key, targets, n_batches, episodes,
              num_envs, num_steps):
    k_batch, k_dir, k_eval = jax.random.split(key, 3)

    def one_batch(kb, kd):
        batch = collect_batch(Params(policy_params, value_params), model,
                              make_env("CartPole-v1"), kb, num_envs=num_envs, num_steps=num_steps)
        dirs = policy_directions(model, policy_params, batch, kd)

        def one_update(d, target):
            alpha = bisect_step_size(
                lambda a: batch_kl(policy_params + a * d, batch, model), target, iters=16
            )
            new = policy_params + alpha * d
            return (new, batch_kl(new, batch, model), alpha,
                    _surrogate_gain(model, new, batch))

        per_target = jax.vmap(one_update, in_axes=(None, 0))
        return jax.vmap(per_target, in_axes=(0, None))(dirs, targets)

    new, kl, norm, gain = jax.vmap(one_batch)(
        jax.random.split(k_batch, n_batches), jax.random.split(k_dir, n_batches)
    )
    flat_new = new.reshape(-1, new.shape[-1])
    env = make_env("CartPole-v1")
    evaluate = lambda p: jnp.mean(episode_returns(p, model, env, k_eval, episodes))
    after = jax.vmap(evaluate)(flat_new).reshape(kl.shape)
    return kl, norm, gain, after, evaluate(policy_params)


def kl_sweep(
    model: ActorCritic,
    policy_params: jax.Array,
    value_params: jax.Array,
    key: jax.Array,
    target_kls=SWEEP_TARGET_KLS,
    n_batches: int = 6,
    episodes: int = 64,
    num_envs: int = 8,
    num_steps: int = 256,
) -> KLSweep:
    """Many updates of a trained policy, each measured by its exact KL and its return change.

    For each of ``n_batches`` fresh batches of π_old (:func:`course_lib.rl.rollout.collect_batch`, ``num_envs ×
    num_steps`` transitions), each direction d of :func:`policy_directions` (gradient,
    natural, random) and each target KL κ, the step size α is tuned by bisection
    (:func:`bisect_step_size`, 16 halvings) so that the exact mean KL(π_old‖π_new) on the
    batch equals κ; the update is θ_new = θ_old + α·d. Its surrogate gain on the batch is
    recorded, and the mean return of θ_new over ``episodes`` episodes is measured with
    :func:`course_lib.rl.evaluate.episode_returns` on the same episodes (and action noise) as π_old. One jitted,
    vmapped program does everything.

    Args:
      model: the categorical :class:`~course_lib.rl.networks.ActorCritic` (CartPole-v1).
      policy_params, value_params: flat parameters ``[P]``, ``[V]`` of π_old and its critic.
      key: randomness of the batches, the random directions and the evaluation episodes.
      target_kls: ``[T]`` positive KLs (nats), by default :data:`SWEEP_TARGET_KLS` (1e-4 … 1).
      n_batches, episodes, num_envs, num_steps: sizes (ints ≥ 1).

    Returns:
      a :class:`KLSweep` of NumPy arrays.
    """
    _check_model(model)
    check_rank(policy_params, 1, "policy_params")
    check_rank(value_params, 1, "value_params")
    targets = np.asarray(target_kls, np.float32)
    if targets.ndim != 1 or targets.size == 0:
        raise ValueError(f"target_kls must be a non-empty 1-D sequence, got shape {targets.shape}")
    if not np.all(np.isfinite(targets) & (targets > 0)):
        raise ValueError("target_kls must all be finite numbers > 0")
    for name, value in (("n_batches", n_batches), ("episodes", episodes),
                        ("num_envs", num_envs), ("num_steps", num_steps)):
        check_int_at_least(value, 1, name)
    kl, norm, gain, after, before = _kl_sweep(
        model, policy_params, value_params, key, jnp.asarray(targets), n_batches, episodes,
        num_envs, num_steps,
    )
    return KLSweep(targets, np.asarray(kl), np.asarray(norm), np.asarray(gain),
                   np.asarray(after), float(before), DIRECTION_KINDS)


KL_REGIMES = (
    ("≈ 0", 0.0, 2e-3),
    ("≈ 0.01", 2e-3, 3e-2),
    ("0.03 – 0.1", 3e-2, 0.1),
    ("> 0.1", 0.1, math.inf),
)
"""(name, low, high) of the KL bands: the seed's table (≈ 0, 0.01, > 0.1) and the gap between."""


def two_action_split(kl: float) -> float:
    """What a KL means for one two-action choice: the p ≥ ½ with KL((½, ½)‖(p, 1 − p)) = ``kl``.

    KL((½, ½)‖(p, 1 − p)) = −½·log(4p(1 − p)), so p = (1 + √(1 − e^(−2·kl))) / 2: a 50/50
    choice that moves by a KL of 0.01 nats becomes about 57/43 (NumPy, not jit).

    Args:
      kl: a KL in nats, ≥ 0.
    """
    kl = float(kl)
    if not kl >= 0.0:
        raise ValueError(f"kl must be >= 0, got {kl}")
    return 0.5 * (1.0 + math.sqrt(-math.expm1(-2.0 * kl)))


class RegimeRow(NamedTuple):
    """One KL band of :func:`regime_table`: its updates and how many collapsed."""

    name: str
    low: float
    high: float
    count: int
    collapses: int
    collapse_fraction: float
    median_change: float


def regime_table(
    kl, return_before: float, return_after, collapse_drop: float = 0.5, regimes=KL_REGIMES
) -> list[RegimeRow]:
    """Sort updates into KL bands and count collapses (NumPy, not jit).

    An update *collapses* when its return falls by more than ``collapse_drop`` of the old
    return: ``return_after < (1 − collapse_drop) · return_before``. A band holds the updates
    with ``low ≤ kl < high``.

    Args:
      kl: updates' exact KLs, any shape.
      return_before: π_old's mean return (> 0).
      return_after: the updated policies' mean returns, the shape of ``kl``.
      collapse_drop: in (0, 1), the relative fall that counts as a collapse.
      regimes: ``(name, low, high)`` bands.

    Returns:
      one :class:`RegimeRow` per band; ``collapse_fraction`` and ``median_change`` (mean
      return after − before) are NaN for an empty band.
    """
    kl = np.asarray(kl, np.float64).ravel()
    after = np.asarray(return_after, np.float64)
    if after.size != kl.size:
        raise ValueError(
            f"return_after must have the size of kl ({kl.size}), got shape {after.shape}"
        )
    after = after.ravel()
    if not return_before > 0:
        raise ValueError(f"return_before must be > 0, got {return_before}")
    if not 0 < collapse_drop < 1:
        raise ValueError(f"collapse_drop must be in (0, 1), got {collapse_drop}")
    collapsed = after < (1.0 - collapse_drop) * return_before
    rows = []
    for name, low, high in regimes:
        inside = (kl >= low) & (kl < high)
        n = int(inside.sum())
        c = int(collapsed[inside].sum())
        rows.append(RegimeRow(
            name, float(low), float(high), n, c, c / n if n else math.nan,
            float(np.median(after[inside] - return_before)) if n else math.nan,
        ))
    return rows


# ------------------------------------------------------------------------------------------
# 3. Advantage scale against δ
# ------------------------------------------------------------------------------------------


class AdvantageScaleTable(NamedTuple):
    """Result of :func:`advantage_scale_table`, one entry per scale c (NumPy arrays).

    Attributes:
      scales: ``[C]`` the factors c the advantages were multiplied by.
      grad_norm: ``[C]`` ‖g_c‖₂ of the surrogate gradient with advantages c·A.
      gradient_kl: ``[C]`` exact KL of the plain gradient step θ + α g_c.
      trust_region_kl: ``[C]`` exact KL of TRPO's step s_c = F⁻¹g_c·√(2δ / g_cᵀF⁻¹g_c).
      trust_region_norm: ``[C]`` ‖s_c‖₂.
      penalty_kl: ``[C]`` exact KL of the optimum of the quadratic model of the penalised
        objective g_cᵀs − β·½ sᵀF s, i.e. s = F⁻¹g_c / β.
      lr: α, tuned so that the gradient step has KL = ``reference_kl`` at c = 1.
      delta, beta: the trust region δ and the penalty coefficient β used.
    """

    scales: np.ndarray
    grad_norm: np.ndarray
    gradient_kl: np.ndarray
    trust_region_kl: np.ndarray
    trust_region_norm: np.ndarray
    penalty_kl: np.ndarray
    lr: float
    delta: float
    beta: float


@partial(jax.jit, static_argnames=("model", "cg_iters"))
def _advantage_scale(model, policy_params, batch, scales, delta, beta, reference_kl, damping,
                     cg_iters):
    fvp = batch_fvp(policy_params, batch, model, damping)

    def gradient(c):
        scaled = batch._replace(advantages=c * batch.advantages)
        return jax.grad(lambda p: _surrogate_gain(model, p, scaled))(policy_params)

    g1 = gradient(jnp.float32(1.0))
    lr = bisect_step_size(lambda a: batch_kl(policy_params + a * g1, batch, model),
                          reference_kl, iters=30, lo=1e-6, hi=1e4)

    def row(c):
        g = gradient(c)
        direction, _ = conjugate_gradient(fvp, g, iters=cg_iters)
        step = trust_region_step(direction, fvp, delta)
        kl_of = lambda s: batch_kl(policy_params + s, batch, model)
        return (jnp.linalg.norm(g), kl_of(lr * g), kl_of(step), jnp.linalg.norm(step),
                kl_of(direction / beta))

    return jax.vmap(row)(scales), lr


def advantage_scale_table(
    model: ActorCritic,
    policy_params: jax.Array,
    batch: Batch,
    scales=(0.1, 1.0, 10.0, 100.0),
    delta: float = 0.01,
    beta: float = 1.0,
    reference_kl: float = 0.01,
    damping: float = 0.1,
    cg_iters: int = 10,
) -> AdvantageScaleTable:
    """What multiplying the advantages by c does to three kinds of update (exact KLs).

    The surrogate is linear in A, so g_c = c·g. Then

    * a plain gradient step α·g_c has KL ≈ ½ c² α² gᵀF g: it grows like c²;
    * TRPO's step F⁻¹g_c·√(2δ / g_cᵀF⁻¹g_c) does not depend on c at all (c cancels): its
      KL stays ≈ δ, because the constraint fixes the step's size and g only its direction;
    * the optimum of a fixed-β penalty, F⁻¹g_c / β, grows like c (KL like c²): a penalty
      coefficient tuned for one advantage scale is wrong for another (lesson 09).

    The learning rate α is tuned by bisection so that the c = 1 gradient step has KL =
    ``reference_kl``; the Fisher-vector products use ``damping`` (also inside the TRPO
    step's scaling, as in :func:`course_lib.rl.trpo.trpo_policy_step`).

    Returns:
      an :class:`AdvantageScaleTable` of NumPy arrays.
    """
    _check_model(model)
    check_rank(policy_params, 1, "policy_params")
    scales_arr = np.asarray(scales, np.float32)
    if scales_arr.ndim != 1 or scales_arr.size == 0 or not np.all(scales_arr > 0):
        raise ValueError(f"scales must be a non-empty 1-D sequence of numbers > 0, got {scales}")
    check_positive(delta, "delta")
    check_positive(beta, "beta")
    check_positive(reference_kl, "reference_kl")
    check_int_at_least(cg_iters, 1, "cg_iters")
    if not damping >= 0:
        raise ValueError(f"damping must be >= 0, got {damping}")
    (gn, gkl, tkl, tnorm, pkl), lr = _advantage_scale(
        model, policy_params, batch, jnp.asarray(scales_arr), jnp.float32(delta),
        jnp.float32(beta), jnp.float32(reference_kl), jnp.float32(damping), cg_iters,
    )
    return AdvantageScaleTable(
        scales_arr, np.asarray(gn), np.asarray(gkl), np.asarray(tkl), np.asarray(tnorm),
        np.asarray(pkl), float(lr), float(delta), float(beta),
    )


# ------------------------------------------------------------------------------------------
# 4. Where the bound comes from: TRPO's Theorem 1 and its mean-KL form
# ------------------------------------------------------------------------------------------


def _check_gamma(gamma) -> None:
    check_rank(gamma, 0, "gamma")
    g = concrete_float(gamma)
    if g is not None and not 0.0 <= g < 1.0:
        raise ValueError(f"gamma must lie in [0, 1), got {g}")


def _check_terms(**terms) -> tuple[jax.Array, ...]:
    """The named terms as arrays: scalars, or all of one shape (no silent broadcasting)."""
    arrays = {name: jnp.asarray(value) for name, value in terms.items()}
    shapes = {name: a.shape for name, a in arrays.items() if a.ndim > 0}
    if len(set(shapes.values())) > 1:
        raise ValueError(
            "the terms must be scalars or share one shape, got "
            + ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        )
    return tuple(arrays.values())


def _check_non_negative_array(x: jax.Array, name: str) -> None:
    """Raise ``ValueError`` if a concrete array ``x`` has an entry < 0 (or NaN)."""
    if isinstance(x, jax.core.Tracer):
        return
    values = np.asarray(x, np.float64)
    if not np.all(values >= 0):
        raise ValueError(f"{name} must be >= 0, got {values}")


def total_variation(p, q) -> jax.Array:
    """D_TV(p‖q) = ½ Σ_a |p(a) − q(a)| per row (symmetric in p and q).

    Args:
      p: ``[..., A]`` probabilities.
      q: ``[..., A]`` probabilities, the shape of ``p``.

    Returns:
      ``[...]`` total variations in [0, 1].

    >>> round(float(total_variation(jnp.array([0.5, 0.5]), jnp.array([0.8, 0.2]))), 3)
    0.3
    """
    p, q = jnp.asarray(p), jnp.asarray(q)
    if jnp.ndim(p) < 1:
        raise ValueError(f"p must have an action axis, got shape {jnp.shape(p)}")
    check_same_shape(p, q, "p", "q")
    return 0.5 * jnp.sum(jnp.abs(p - q), axis=-1)


def trpo_penalty_coefficient(a_max, gamma) -> jax.Array:
    """C = 4·A_max·γ / (1 − γ)², the KL penalty of Schulman et al. (2015), Theorem 1 and eq. 9.

    Args:
      a_max: A_max = max_{s,a} |A_π(s, a)| >= 0 (scalar or array).
      gamma: the discount γ in [0, 1), a scalar.

    Returns:
      C, the shape of ``a_max``.

    >>> round(float(trpo_penalty_coefficient(1.0, 0.99)))
    39600
    """
    (a_max,) = _check_terms(a_max=a_max)
    _check_non_negative_array(a_max, "a_max")
    _check_gamma(gamma)
    return 4.0 * a_max * gamma / (1.0 - gamma) ** 2


def trpo_lower_bound(surrogate_gain, max_kl, a_max, gamma) -> jax.Array:
    """TRPO's Theorem 1 in its KL form: a lower bound on J(π') − J(π).

    Schulman et al. (2015), "Trust Region Policy Optimization", Theorem 1 with
    D_TV(p‖q)² ≤ D_KL(p‖q) (their eq. 9):

        J(π') − J(π) ≥ [L_π(π') − J(π)] − C·D_KL^max(π, π'),   C = 4·A_max·γ / (1 − γ)²,

    with A_max = max_{s,a} |A_π(s, a)|, D_KL^max(π, π') = max_s KL(π(·|s) ‖ π'(·|s)) (old
    policy first) and L_π(π') − J(π) = Σ_s ρ_π(s) Σ_a π'(a|s) A_π(s, a), ρ_π the unnormalised
    discounted occupancy: lesson 03's ``surrogate_gain``.

    Args:
      surrogate_gain: L_π(π') − J(π), in units of return.
      max_kl: D_KL^max(π, π') >= 0.
      a_max: A_max >= 0.
      gamma: γ in [0, 1), a scalar.
      (The first three: scalars or arrays of one shape, e.g. ``[N]`` updates.)

    Returns:
      The lower bound, the shape of the arguments.
    """
    surrogate_gain, max_kl, a_max = _check_terms(
        surrogate_gain=surrogate_gain, max_kl=max_kl, a_max=a_max)
    _check_non_negative_array(max_kl, "max_kl")
    return surrogate_gain - trpo_penalty_coefficient(a_max, gamma) * max_kl


def achiam_lower_bound(surrogate_gain, mean_kl, expected_adv_max, gamma) -> jax.Array:
    """The mean-KL bound of Achiam et al. (2017), "Constrained Policy Optimization".

    Their Corollary 1 with the substitution of Corollary 3 (Pinsker, then Jensen):

        J(π') − J(π) ≥ 1/(1 − γ)·E_{s~(1−γ)ρ_π, a~π'}[A_π(s, a)]
                        − √2·γ·Ā_max / (1 − γ)² · √(E_{s~(1−γ)ρ_π}[KL(π'‖π)[s]]),

    with π = π_old, π' = π_new, Ā_max = max_s |E_{a~π'}[A_π(s, a)]| (the paper's ε^{π'}; in
    this course ε is PPO's clip range) and (1 − γ)ρ_π, ρ_π(s) = Σ_t γᵗ P(s_t = s | π), the
    discounted state distribution (the paper's d^π). The first term is the surrogate gain
    L_π(π') − J(π) of :func:`trpo_lower_bound`. The paper writes KL(π'‖π) (new policy first);
    the bound holds as well with KL(π‖π'), TRPO's direction, since total variation is symmetric
    and Pinsker's inequality holds in both directions.

    Args:
      surrogate_gain: 1/(1 − γ)·E_{s~(1−γ)ρ_π, a~π'}[A_π(s, a)], in units of return.
      mean_kl: E_{s~(1−γ)ρ_π}[KL] >= 0, the KL averaged over the discounted distribution.
      expected_adv_max: Ā_max >= 0.
      gamma: γ in [0, 1), a scalar.
      (The first three: scalars or arrays of one shape.)

    Returns:
      The lower bound, the shape of the arguments.
    """
    surrogate_gain, mean_kl, expected_adv_max = _check_terms(
        surrogate_gain=surrogate_gain, mean_kl=mean_kl, expected_adv_max=expected_adv_max)
    _check_non_negative_array(mean_kl, "mean_kl")
    _check_non_negative_array(expected_adv_max, "expected_adv_max")
    _check_gamma(gamma)
    coefficient = jnp.sqrt(2.0) * gamma * expected_adv_max / (1.0 - gamma) ** 2
    return surrogate_gain - coefficient * jnp.sqrt(mean_kl)


class ImprovementBounds(NamedTuple):
    """Every term of the two improvement bounds for one update π → π' of a tabular MDP.

    ā(s) = Σ_a π'(a|s) A_π(s, a) is the new policy's expected old advantage in state s;
    ρ, ρ' are the unnormalised discounted occupancies of π = π_old and π' = π_new
    (Σ_t γᵗ P(s_t = s)); E_ρ[f] = (1 − γ)·Σ_s ρ(s) f(s) averages over the papers' discounted
    distribution (1 − γ)ρ (its missing mass, when episodes end, sits on an absorbing end state
    where nothing changes). KLs are KL(π‖π') (old first), in nats.

    Attributes:
      true_gain: Σ_s ρ'(s) ā(s) = J(π') − J(π) (performance-difference lemma).
      surrogate_gain: Σ_s ρ(s) ā(s) = L_π(π') − J(π).
      mismatch: Σ_s (ρ'(s) − ρ(s)) ā(s), the part of the true gain the surrogate misses.
      occupancy_l1: ‖ρ' − ρ‖₁.
      max_kl: max_s KL(π‖π')[s] (Theorem 1's D_KL^max).
      mean_kl: Σ_s ρ(s) KL[s] / Σ_s ρ(s), the course's mean KL (what δ bounds).
      discounted_kl: E_ρ[KL] = (1 − γ)·Σ_s ρ(s) KL[s] (Achiam et al.'s average).
      max_tv: max_s D_TV(π‖π')[s].
      discounted_tv: E_ρ[D_TV].
      a_max: max_{s,a} |A_π(s, a)|.
      expected_adv_max: Ā_max = max_s |ā(s)| (Achiam et al.'s ε^{π'}).
      trpo_tv_bound: surrogate_gain − 4·A_max·γ/(1 − γ)²·max_tv² (Theorem 1 before Pinsker).
      trpo_bound: surrogate_gain − C·max_kl (Theorem 1, KL form).
      achiam_tv_bound: surrogate_gain − 2·γ·Ā_max/(1 − γ)²·discounted_tv (Corollary 1).
      achiam_bound: surrogate_gain − √2·γ·Ā_max/(1 − γ)²·√discounted_kl (Corollary 3).
    """

    true_gain: jax.Array
    surrogate_gain: jax.Array
    mismatch: jax.Array
    occupancy_l1: jax.Array
    max_kl: jax.Array
    mean_kl: jax.Array
    discounted_kl: jax.Array
    max_tv: jax.Array
    discounted_tv: jax.Array
    a_max: jax.Array
    expected_adv_max: jax.Array
    trpo_tv_bound: jax.Array
    trpo_bound: jax.Array
    achiam_tv_bound: jax.Array
    achiam_bound: jax.Array


@jax.jit
def _improvement_bounds(old_logits, new_logits, advantages, occupancy_old, occupancy_new, gamma):
    pi_old = jax.nn.softmax(old_logits, axis=-1)
    pi_new = jax.nn.softmax(new_logits, axis=-1)
    kl = categorical_kl(old_logits, new_logits)
    tv = total_variation(pi_old, pi_new)
    expected_adv = jnp.sum(pi_new * advantages, axis=-1)
    d_old = (1.0 - gamma) * occupancy_old
    surrogate_gain = jnp.sum(occupancy_old * expected_adv)
    max_kl, max_tv = jnp.max(kl), jnp.max(tv)
    discounted_kl = jnp.sum(d_old * kl)
    discounted_tv = jnp.sum(d_old * tv)
    a_max = jnp.max(jnp.abs(advantages))
    expected_adv_max = jnp.max(jnp.abs(expected_adv))
    scale = gamma / (1.0 - gamma) ** 2
    return ImprovementBounds(
        true_gain=jnp.sum(occupancy_new * expected_adv),
        surrogate_gain=surrogate_gain,
        mismatch=jnp.sum((occupancy_new - occupancy_old) * expected_adv),
        occupancy_l1=jnp.sum(jnp.abs(occupancy_new - occupancy_old)),
        max_kl=max_kl,
        mean_kl=jnp.sum(occupancy_old * kl) / jnp.sum(occupancy_old),
        discounted_kl=discounted_kl,
        max_tv=max_tv,
        discounted_tv=discounted_tv,
        a_max=a_max,
        expected_adv_max=expected_adv_max,
        trpo_tv_bound=surrogate_gain - 4.0 * a_max * scale * max_tv**2,
        trpo_bound=surrogate_gain - 4.0 * a_max * scale * max_kl,
        achiam_tv_bound=surrogate_gain - 2.0 * expected_adv_max * scale * discounted_tv,
        achiam_bound=surrogate_gain - jnp.sqrt(2.0) * expected_adv_max * scale * jnp.sqrt(discounted_kl),
    )


def improvement_bounds(
    old_logits, new_logits, advantages, occupancy_old, occupancy_new, gamma
) -> ImprovementBounds:
    """Evaluate TRPO's Theorem 1 and Achiam et al.'s mean-KL bound exactly on one update.

    From the exact quantities of a tabular MDP (e.g. lesson 03's ``policy_logits``,
    ``policy_evaluation`` and ``state_occupancy``), computes the true gain by the
    performance-difference lemma, the surrogate gain, the KLs and total variations, and the
    four lower bounds of :class:`ImprovementBounds`:

    * Schulman et al. (2015), Theorem 1: J(π') − J(π) ≥ L − 4·A_max·γ/(1 − γ)²·(D_TV^max)²,
      and with (D_TV)² ≤ D_KL: ≥ L − C·D_KL^max (:func:`trpo_lower_bound`);
    * Achiam et al. (2017), Corollary 1: ≥ L − 2γ·Ā_max/(1 − γ)²·E_ρ[D_TV], and with
      Pinsker and Jensen (Corollary 3): ≥ L − √2·γ·Ā_max/(1 − γ)²·√(E_ρ[KL])
      (:func:`achiam_lower_bound`), here with KL(π‖π').

    Jitted; ``jax.vmap`` it over a family of updates (``new_logits`` and ``occupancy_new``).

    Args:
      old_logits: ``[S, A]`` logits of π in every state.
      new_logits: ``[S, A]`` logits of π'.
      advantages: ``[S, A]`` the exact advantages A_π(s, a) of the OLD policy.
      occupancy_old: ``[S]`` ρ_π(s) = Σ_t γᵗ P(s_t = s | π), unnormalised (lesson 03's
        ``state_occupancy``; Σ_s ρ(s) = 1/(1 − γ) when no episode ends).
      occupancy_new: ``[S]`` ρ_π'(s).
      gamma: the discount γ in [0, 1), a scalar.

    Returns:
      An :class:`ImprovementBounds` of scalars.
    """
    old_logits, new_logits, advantages = (
        jnp.asarray(x) for x in (old_logits, new_logits, advantages))
    occupancy_old, occupancy_new = jnp.asarray(occupancy_old), jnp.asarray(occupancy_new)
    check_rank(old_logits, 2, "old_logits")
    check_same_shape(new_logits, old_logits, "new_logits", "old_logits")
    check_same_shape(advantages, old_logits, "advantages", "old_logits")
    check_rank(occupancy_old, 1, "occupancy_old")
    check_same_shape(occupancy_new, occupancy_old, "occupancy_new", "occupancy_old")
    if occupancy_old.shape[0] != old_logits.shape[0]:
        raise ValueError(
            f"occupancy_old must have one entry per state of old_logits "
            f"({old_logits.shape[0]}), got shape {occupancy_old.shape}"
        )
    _check_non_negative_array(occupancy_old, "occupancy_old")
    _check_non_negative_array(occupancy_new, "occupancy_new")
    _check_gamma(gamma)
    return _improvement_bounds(old_logits, new_logits, advantages, occupancy_old,
                               occupancy_new, jnp.asarray(gamma, old_logits.dtype))
