"""Distance between weights versus distance between policies (lesson 02).

A policy update moves the parameters θ by some vector; what matters for the agent is how far
the *action distributions* move. This module measures both on the same perturbation:

* the **L2 distance** ‖θ_new − θ_old‖₂ (what a learning rate controls), and
* the **mean KL divergence** KL(π_old‖π_new) over a batch of states (what TRPO constrains;
  Schulman et al., 2015, "Trust Region Policy Optimization", eq. 12).

Near θ_old the KL is a quadratic form in the step, KL(θ_old + r·d) ≈ ½ r² dᵀF d with F the
Fisher information matrix (Kakade, 2001, "A Natural Policy Gradient"; Amari, 1998). So two
perturbations of the same length r can move the policy by wildly different amounts: along the
top eigenvector of F the KL is ½ ν_max r², along a random direction it is about ½ (tr F / P) r².
:func:`sensitive_direction` and :func:`random_direction` build those two directions,
:func:`kl_along` measures the KL along a ray for many radii at once (``vmap``).

The policy is given as ``logits_fn: params [P] → logits [B, A]`` over a fixed batch of states
(a closure over the network and the observations), so every function here works for any
categorical policy with flat parameters. :func:`distance_setup` builds the one the lesson
uses: a small :class:`course_lib.rl.networks.ActorCritic` policy fitted to a pole-balancing
controller on CartPole observations.

:func:`naive_kl_from_probs` is the textbook formula Σ p (log p − log q) on probabilities. It is
here to *demonstrate* why the course computes KL from logits
(:func:`course_lib.core.distributions.categorical_kl`): it returns ``nan`` when p has a
zero-probability action and ``inf`` when q underflows.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from course_lib._validate import (
    check_int_at_least,
    check_non_negative,
    check_positive,
    check_rank,
    check_same_shape,
    concrete_float,
)
from course_lib.core.curvature import dense_fisher, fisher_vector_product
from course_lib.core.distributions import categorical_kl
from course_lib.rl.networks import ActorCritic

LogitsFn = Callable[[jax.Array], jax.Array]
"""``params [P] → logits [B, A]``: a categorical policy evaluated on a fixed batch of states."""

__all__ = [
    "CARTPOLE_OBS_HIGH",
    "DISPLAY_STATES",
    "DistanceSetup",
    "DistanceView",
    "balancing_controller",
    "cartpole_observations",
    "distance_setup",
    "distance_view",
    "fisher_matrix",
    "fit_policy",
    "kl_along",
    "mean_kl",
    "mix_directions",
    "naive_kl_from_probs",
    "perturb",
    "quadratic_kl",
    "radius_at_kl",
    "radius_grid",
    "random_direction",
    "sensitive_direction",
    "shift_for_kl",
    "unit",
]


# --------------------------------------------------------------------------- directions


def _check_vector(x: jax.Array, name: str) -> jax.Array:
    x = jnp.asarray(x)
    check_rank(x, 1, name)
    return x


def unit(direction: jax.Array) -> jax.Array:
    """``direction / ‖direction‖₂``, a ``[P]`` vector of length 1.

    Raises:
      ValueError: ``direction`` is not a vector, or is (concretely) the zero vector.
    """
    direction = _check_vector(direction, "direction")
    norm = jnp.linalg.norm(direction)
    value = concrete_float(norm)
    if value is not None and not value > 0:
        raise ValueError("direction must be a non-zero vector")
    return direction / norm


def perturb(params: jax.Array, direction: jax.Array, radius: float | jax.Array) -> jax.Array:
    """θ_old + r · d/‖d‖: the parameters moved by exactly ``radius`` in L2 along ``direction``.

    Args:
      params: ``[P]`` flat parameters θ_old.
      direction: ``[P]`` any non-zero vector (it is normalised here).
      radius: r >= 0, the L2 norm of the perturbation.

    Returns:
      ``[P]`` perturbed parameters with ‖result − params‖₂ = radius.
    """
    params = _check_vector(params, "params")
    direction = _check_vector(direction, "direction")
    check_same_shape(direction, params, "direction", "params")
    check_non_negative(radius, "radius")
    return params + jnp.asarray(radius, params.dtype) * unit(direction)


def random_direction(key: jax.Array, params: jax.Array) -> jax.Array:
    """A direction drawn uniformly on the unit sphere of parameter space, ``[P]``.

    A random direction spreads its length over all P parameters, most of which the policy
    barely responds to: its KL is ½ r² dᵀF d ≈ ½ r² tr(F)/P on average, far below the
    ½ r² ν_max of :func:`sensitive_direction` when F has a few large eigenvalues.
    """
    params = _check_vector(params, "params")
    return unit(jax.random.normal(key, params.shape, params.dtype))


def mix_directions(
    insensitive: jax.Array, sensitive: jax.Array, mix: float | jax.Array
) -> jax.Array:
    """The unit vector along (1 − mix) · insensitive + mix · sensitive.

    ``mix = 0`` gives ``insensitive``, ``mix = 1`` gives ``sensitive`` (both normalised first),
    values in between turn one into the other.

    Raises:
      ValueError: mismatched shapes, or a concrete ``mix`` outside [0, 1].
    """
    insensitive = unit(insensitive)
    sensitive = unit(sensitive)
    check_same_shape(insensitive, sensitive, "insensitive", "sensitive")
    m = concrete_float(mix)
    if m is not None and not 0.0 <= m <= 1.0:
        raise ValueError(f"mix must lie in [0, 1], got {m}")
    return unit((1.0 - mix) * insensitive + mix * sensitive)


def _kl_from(logits_fn: LogitsFn, params: jax.Array) -> Callable[[jax.Array], jax.Array]:
    """``θ ↦ mean KL(π_params‖π_θ)`` with π_params held fixed (its Hessian at params is F)."""
    old_logits = jax.lax.stop_gradient(logits_fn(params))
    return lambda theta: jnp.mean(categorical_kl(old_logits, logits_fn(theta)))


def sensitive_direction(logits_fn: LogitsFn, params: jax.Array) -> tuple[jax.Array, jax.Array]:
    """The most KL-sensitive direction: the top eigenvector of the Fisher matrix at ``params``.

    F = ∇²_θ mean KL(π_old‖π_θ) at θ_old (built with :func:`course_lib.core.curvature.dense_fisher`).
    Among all unit vectors d, the top eigenvector maximises dᵀF d = ν_max, so for small r it is
    the length-r perturbation with the largest KL, ≈ ½ ν_max r². The eigenvector's sign is
    arbitrary; it is fixed here so that its largest-magnitude entry is positive.

    Args:
      logits_fn: ``params [P] → logits [B, A]``.
      params: ``[P]`` the parameters θ_old. P should be small (the matrix is ``[P, P]``).

    Returns:
      ``(direction [P] of unit length, ν_max scalar)``.
    """
    fisher = fisher_matrix(logits_fn, params)
    eigenvalues, eigenvectors = jnp.linalg.eigh(0.5 * (fisher + fisher.T))
    top = eigenvectors[:, -1]
    top = top * jnp.sign(top[jnp.argmax(jnp.abs(top))])
    return top, eigenvalues[-1]


def fisher_matrix(logits_fn: LogitsFn, params: jax.Array) -> jax.Array:
    """The ``[P, P]`` Fisher matrix F = ∇²_θ mean KL(π_params‖π_θ) at θ = params.

    :func:`course_lib.core.curvature.dense_fisher` of the mean KL with π_params held fixed, jitted
    once per ``logits_fn``. Near ``params``, KL(π_params‖π_(params + Δθ)) ≈ ½ Δθᵀ F Δθ.
    """
    params = _check_vector(params, "params")
    return _fisher(logits_fn, params)


@functools.partial(jax.jit, static_argnums=0)
def _fisher(logits_fn, params):
    return dense_fisher(_kl_from(logits_fn, params), params)


# --------------------------------------------------------------------------- KL along a ray


def mean_kl(logits_fn: LogitsFn, params_p: jax.Array, params_q: jax.Array) -> jax.Array:
    """Mean over the states of KL(π_p‖π_q) = Σ_a π_p(a|s) (log π_p(a|s) − log π_q(a|s)).

    With ``params_p = θ_old`` this is TRPO's constraint quantity KL(π_old‖π_new); swap the
    arguments for the reverse KL(π_new‖π_old). Computed from logits by
    :func:`course_lib.core.distributions.categorical_kl`.

    Returns:
      A scalar, in nats.
    """
    params_p = _check_vector(params_p, "params_p")
    params_q = _check_vector(params_q, "params_q")
    check_same_shape(params_q, params_p, "params_q", "params_p")
    return _mean_kl(logits_fn, params_p, params_q)


@functools.partial(jax.jit, static_argnums=0)
def _mean_kl(logits_fn, params_p, params_q):
    return jnp.mean(categorical_kl(logits_fn(params_p), logits_fn(params_q)))


def kl_along(
    logits_fn: LogitsFn,
    params: jax.Array,
    direction: jax.Array,
    radii: jax.Array,
    reverse: bool = False,
) -> jax.Array:
    """Mean KL between π_θ_old and π_(θ_old + r·d/‖d‖) for every radius r, ``vmap``-ed.

    Args:
      logits_fn: ``params [P] → logits [B, A]``.
      params: ``[P]`` θ_old.
      direction: ``[P]`` non-zero direction (normalised here).
      radii: ``[R]`` radii r >= 0 (L2 lengths of the perturbation).
      reverse: ``False`` gives KL(π_old‖π_new) (TRPO's direction), ``True`` KL(π_new‖π_old).

    Returns:
      ``[R]`` mean KL per radius, in nats.
    """
    params = _check_vector(params, "params")
    direction = unit(_check_vector(direction, "direction"))
    check_same_shape(direction, params, "direction", "params")
    radii = _check_vector(radii, "radii")
    if not isinstance(reverse, bool):
        raise TypeError(f"reverse must be a bool, got {type(reverse).__name__}")
    return _kl_along(logits_fn, params, direction, radii.astype(params.dtype), reverse)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _kl_along(logits_fn, params, direction, radii, reverse):
    old_logits = logits_fn(params)

    def one(r):
        new_logits = logits_fn(params + r * direction)
        if reverse:
            return jnp.mean(categorical_kl(new_logits, old_logits))
        return jnp.mean(categorical_kl(old_logits, new_logits))

    return jax.vmap(one)(radii)


def quadratic_kl(
    logits_fn: LogitsFn, params: jax.Array, direction: jax.Array, radii: jax.Array
) -> jax.Array:
    """The second-order prediction ½ r² dᵀF d of :func:`kl_along`, d normalised, ``[R]``.

    dᵀF d comes from one Fisher-vector product
    (:func:`course_lib.core.curvature.fisher_vector_product`, no damping). For small r it matches
    the true KL in both directions, KL(old‖new) and KL(new‖old): they share the Hessian F.
    """
    params = _check_vector(params, "params")
    direction = unit(_check_vector(direction, "direction"))
    check_same_shape(direction, params, "direction", "params")
    radii = _check_vector(radii, "radii")
    return _quadratic(logits_fn, params, direction, radii.astype(params.dtype))


@functools.partial(jax.jit, static_argnums=0)
def _quadratic(logits_fn, params, direction, radii):
    fvp = fisher_vector_product(_kl_from(logits_fn, params), params, 0.0)
    return 0.5 * (direction @ fvp(direction)) * jnp.square(radii)


def radius_at_kl(
    logits_fn: LogitsFn,
    params: jax.Array,
    direction: jax.Array,
    target: float,
    r_max: float = 100.0,
    iters: int = 60,
) -> jax.Array:
    """The radius r at which KL(π_old‖π_(θ_old + r·d)) first reaches ``target``, by bisection.

    Bisection on [0, r_max] keeps the invariant KL(lo) < target <= KL(hi); after ``iters``
    halvings the bracket is r_max / 2^iters wide. It assumes the KL grows along the ray up to
    the crossing (true near θ_old, where KL ≈ ½ r² dᵀF d).

    Args:
      logits_fn: ``params [P] → logits [B, A]``.
      params: ``[P]`` θ_old.
      direction: ``[P]`` non-zero direction.
      target: the KL level, > 0 (TRPO's δ, e.g. 0.01).
      r_max: the largest radius searched, > 0.
      iters: number of halvings, >= 1.

    Returns:
      A scalar radius, or ``nan`` when the KL stays below ``target`` up to ``r_max``.
    """
    params = _check_vector(params, "params")
    direction = unit(_check_vector(direction, "direction"))
    check_same_shape(direction, params, "direction", "params")
    check_positive(target, "target")
    check_positive(r_max, "r_max")
    check_int_at_least(iters, 1, "iters")
    return _radius(
        logits_fn,
        params,
        direction,
        jnp.asarray(target, params.dtype),
        jnp.asarray(r_max, params.dtype),
        iters,
    )


@functools.partial(jax.jit, static_argnums=(0, 5))
def _radius(logits_fn, params, direction, target, r_max, iters):
    kl_of = _kl_from(logits_fn, params)

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = kl_of(params + mid * direction) >= target
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    _, hi = jax.lax.fori_loop(0, iters, halve, (jnp.zeros_like(r_max), r_max))
    reached = kl_of(params + r_max * direction) >= target
    return jnp.where(reached, hi, jnp.nan)


def shift_for_kl(p_old: float | jax.Array, target: float | jax.Array) -> jax.Array:
    """For two actions: the new probability q > p_old with KL(π_old‖π_new) = ``target``.

    KL(Bern(p)‖Bern(q)) = p log(p/q) + (1 − p) log((1 − p)/(1 − q)) grows from 0 to ∞ as q
    goes from p to 1, so the answer exists and is unique; it is found by bisection on the
    logit of q (60 halvings). It turns a KL level into a change of probability one can picture:
    at p_old = 0.5, KL 0.01 is q ≈ 0.57 and KL 0.1 is q ≈ 0.72.

    Args:
      p_old: probability of the action under π_old, in (0, 1).
      target: KL level in nats, > 0.

    Returns:
      q, a scalar in (p_old, 1).
    """
    p = concrete_float(p_old)
    if p is not None and not 0.0 < p < 1.0:
        raise ValueError(f"p_old must lie in (0, 1), got {p}")
    check_positive(target, "target")
    return _shift(jnp.asarray(p_old, jnp.float32), jnp.asarray(target, jnp.float32))


@jax.jit
def _shift(p_old, target):
    z_old = jnp.log(p_old) - jnp.log1p(-p_old)
    old_logits = jnp.stack([jnp.zeros_like(z_old), z_old])[None, :]

    def kl_at(z):
        return categorical_kl(old_logits, jnp.stack([jnp.zeros_like(z), z])[None, :])[0]

    def halve(_, bracket):
        lo, hi = bracket
        mid = 0.5 * (lo + hi)
        above = kl_at(mid) >= target
        return jnp.where(above, lo, mid), jnp.where(above, mid, hi)

    _, hi = jax.lax.fori_loop(0, 60, halve, (z_old, z_old + 40.0))
    return jax.nn.sigmoid(hi)


# --------------------------------------------------------------------------- the naive formula


def naive_kl_from_probs(p: jax.Array, q: jax.Array, mask_zeros: bool = False) -> jax.Array:
    """KL(p‖q) = Σ_a p(a) (log p(a) − log q(a)) computed from PROBABILITIES. Do not use.

    This is the formula of the seed's PyTorch snippet, ``(p * (p.log() - q.log())).sum(-1)``,
    kept to show what goes wrong:

    * p(a) = 0 gives 0 · (−∞) = ``nan`` for that term, so the whole row is ``nan``;
    * q(a) = 0 because it underflowed (a logit gap beyond ~104 in float32) gives ``inf``
      although the true KL is finite;
    * ``mask_zeros=True`` uses one ``jnp.where(p > 0, term, 0)``: the value is then right when
      p(a) = 0, but the gradient is still ``nan`` (the masked-out branch's ``nan`` leaks into
      the backward pass). :func:`course_lib.core.distributions.categorical_kl` avoids all three by
      working from logits and masking *before* the logs are combined.

    Args:
      p, q: ``[B, A]`` probabilities.
      mask_zeros: mask the p(a) = 0 terms with a single ``where``.

    Returns:
      ``[B]``.
    """
    p = jnp.asarray(p)
    q = jnp.asarray(q)
    check_rank(p, 2, "p")
    check_rank(q, 2, "q")
    check_same_shape(p, q, "p", "q")
    terms = p * (jnp.log(p) - jnp.log(q))
    if mask_zeros:
        terms = jnp.where(p > 0, terms, 0.0)
    return jnp.sum(terms, axis=-1)


# --------------------------------------------------------------------------- the lesson's policy

CARTPOLE_OBS_HIGH = (2.4, 2.0, 0.21, 2.0)
"""Half-widths of the box :func:`cartpole_observations` samples: x (m), ẋ (m/s), θ (rad), θ̇ (rad/s).

x and θ span CartPole-v1's non-terminal range (|x| <= 2.4, |θ| <= 12° ≈ 0.21 rad)."""

DISPLAY_STATES = (
    ("upright and still", (0.0, 0.0, 0.0, 0.0)),
    ("leans right", (0.0, 0.0, 0.08, 0.0)),
    ("leans and falls right", (0.0, 0.0, 0.05, 0.5)),
    ("leans and falls left", (0.0, 0.0, -0.05, -0.5)),
    ("leans left, swings back", (0.0, 0.0, -0.05, 0.3)),
)
"""A few named CartPole observations ``(x, ẋ, θ, θ̇)`` on which lessons show action probabilities."""


def cartpole_observations(key: jax.Array, n: int) -> jax.Array:
    """``[n, 4]`` CartPole observations drawn uniformly from the box ±:data:`CARTPOLE_OBS_HIGH`."""
    check_int_at_least(n, 1, "n")
    high = jnp.asarray(CARTPOLE_OBS_HIGH, jnp.float32)
    return jax.random.uniform(key, (n, 4), jnp.float32, minval=-high, maxval=high)


def balancing_controller(obs: jax.Array, temperature: float = 0.1) -> jax.Array:
    """A soft pole-balancing controller: ``[B, 4]`` observations → ``[B, 2]`` action probabilities.

    It pushes right (action 1) with probability σ(s / T), with the score
    s = θ + 0.5 θ̇ + 0.01 x + 0.1 ẋ: push towards the side the pole leans and falls to, and
    a little against the cart's drift. Its greedy version keeps CartPole-v1's pole up for
    the full 500 steps; the temperature T makes it uncertain near the balance point, as a
    trained stochastic policy is.

    Raises:
      ValueError: ``obs`` is not ``[B, 4]``, or ``temperature`` <= 0.
    """
    obs = jnp.asarray(obs)
    check_rank(obs, 2, "obs")
    if obs.shape[1] != 4:
        raise ValueError(f"obs must have 4 columns (x, x_dot, theta, theta_dot), got {obs.shape}")
    check_positive(temperature, "temperature")
    weights = jnp.asarray([0.01, 0.1, 1.0, 0.5], obs.dtype)
    p_right = jax.nn.sigmoid((obs @ weights) / temperature)
    return jnp.stack([1.0 - p_right, p_right], axis=-1)


def fit_policy(
    logits_fn: LogitsFn,
    params: jax.Array,
    targets: jax.Array,
    steps: int = 300,
    learning_rate: float = 1e-2,
) -> tuple[jax.Array, jax.Array]:
    """Fit a categorical policy to target action probabilities (behaviour cloning), by Adam.

    Minimises the cross-entropy mean_s −Σ_a target(a|s) log π_θ(a|s), which equals
    mean KL(target‖π_θ) plus a constant; ``steps`` Adam steps in one ``lax.scan``.

    Args:
      logits_fn: ``params [P] → logits [B, A]``.
      params: ``[P]`` initial parameters.
      targets: ``[B, A]`` target probabilities (rows sum to 1).
      steps: number of Adam steps, >= 1.
      learning_rate: Adam's step size, > 0.

    Returns:
      ``(params [P], losses [steps])``: the fitted parameters and the loss before each step.
    """
    params = _check_vector(params, "params")
    targets = jnp.asarray(targets)
    check_rank(targets, 2, "targets")
    check_int_at_least(steps, 1, "steps")
    check_positive(learning_rate, "learning_rate")
    return _fit(logits_fn, params, targets, steps, float(learning_rate))


@functools.partial(jax.jit, static_argnums=(0, 3, 4))
def _fit(logits_fn, params, targets, steps, learning_rate):
    optimizer = optax.adam(learning_rate)

    def loss(theta):
        log_pi = jax.nn.log_softmax(logits_fn(theta), axis=-1)
        return -jnp.mean(jnp.sum(targets * log_pi, axis=-1))

    def step(carry, _):
        theta, state = carry
        value, grad = jax.value_and_grad(loss)(theta)
        updates, state = optimizer.update(grad, state, theta)
        return (optax.apply_updates(theta, updates), state), value

    (params, _), losses = jax.lax.scan(step, (params, optimizer.init(params)), None, steps)
    return params, losses


class DistanceSetup(NamedTuple):
    """Everything lesson 02 measures, built once by :func:`distance_setup`.

    Attributes:
      model: the :class:`ActorCritic` (categorical, 4 observations, 2 actions).
      obs: ``[B, 4]`` the states over which KLs are averaged.
      params: ``[P]`` θ_old, the fitted policy parameters.
      logits_fn: ``params → logits [B, 2]`` on ``obs`` (jitted).
      display_obs: ``[S, 4]`` the :data:`DISPLAY_STATES`.
      random_dir: ``[P]`` unit random direction.
      sensitive_dir: ``[P]`` unit top eigenvector of the Fisher at θ_old.
      top_eigenvalue: ν_max of that Fisher.
      fit_losses: ``[steps]`` cross-entropy during the fit.
    """

    model: ActorCritic
    obs: jax.Array
    params: jax.Array
    logits_fn: LogitsFn
    display_obs: jax.Array
    random_dir: jax.Array
    sensitive_dir: jax.Array
    top_eigenvalue: jax.Array
    fit_losses: jax.Array


@functools.lru_cache(maxsize=4)
def distance_setup(seed: int = 0, n_states: int = 256, hidden: tuple[int, ...] = (16, 16)):
    """The lesson's policy, states and two directions (cached: call it as often as needed).

    A categorical :class:`ActorCritic` policy (tanh MLP ``hidden``) is initialised from
    ``seed`` and fitted (:func:`fit_policy`, 300 Adam steps) to :func:`balancing_controller`
    on ``n_states`` observations from :func:`cartpole_observations`. The two directions are
    :func:`random_direction` and :func:`sensitive_direction` at the fitted parameters.

    Returns:
      A :class:`DistanceSetup`.
    """
    check_int_at_least(seed, 0, "seed")
    check_int_at_least(n_states, 1, "n_states")
    k_obs, k_init, k_dir = jax.random.split(jax.random.key(seed), 3)
    obs = cartpole_observations(k_obs, n_states)
    model = ActorCritic(obs_dim=4, n_actions=2, discrete=True, hidden=tuple(hidden))
    init_params, _ = model.init(k_init)

    @jax.jit
    def logits_fn(theta):
        return model.policy(theta, obs).logits

    params, losses = fit_policy(logits_fn, init_params, balancing_controller(obs))
    direction, eigenvalue = sensitive_direction(logits_fn, params)
    display = jnp.asarray([s for _, s in DISPLAY_STATES], jnp.float32)
    return DistanceSetup(
        model=model,
        obs=obs,
        params=params,
        logits_fn=logits_fn,
        display_obs=display,
        random_dir=random_direction(k_dir, params),
        sensitive_dir=direction,
        top_eigenvalue=eigenvalue,
        fit_losses=losses,
    )


class DistanceView(NamedTuple):
    """What the distance panel shows for one (radius, mix).

    Attributes:
      l2: ‖θ_new − θ_old‖₂ (equals the radius).
      kl_old_new: mean KL(π_old‖π_new) over the setup's states.
      kl_new_old: mean KL(π_new‖π_old).
      probs_old: ``[S, 2]`` π_old on the display states.
      probs_new: ``[S, 2]`` π_new on the display states.
      radii: ``[R]`` radius grid.
      kl_curve: ``[R]`` KL(π_old‖π_new) along the current direction at each radius.
    """

    l2: jax.Array
    kl_old_new: jax.Array
    kl_new_old: jax.Array
    probs_old: jax.Array
    probs_new: jax.Array
    radii: jax.Array
    kl_curve: jax.Array


def radius_grid(r_min: float = 1e-2, r_max: float = 10.0, n: int = 61) -> jax.Array:
    """``[n]`` log-spaced radii from ``r_min`` to ``r_max``."""
    check_positive(r_min, "r_min")
    check_positive(r_max, "r_max")
    check_int_at_least(n, 2, "n")
    if not r_min < r_max:
        raise ValueError(f"r_min must be < r_max, got {r_min} and {r_max}")
    return jnp.logspace(jnp.log10(r_min), jnp.log10(r_max), n, dtype=jnp.float32)


def distance_view(setup: DistanceSetup, radius: float, mix: float) -> DistanceView:
    """Perturb θ_old by ``radius`` along :func:`mix_directions` (random → sensitive) and measure.

    Args:
      setup: from :func:`distance_setup`.
      radius: L2 length of the perturbation, >= 0.
      mix: 0 = the random direction, 1 = the most sensitive direction.

    Returns:
      A :class:`DistanceView`.
    """
    check_non_negative(radius, "radius")
    m = concrete_float(mix)
    if m is None or not 0.0 <= m <= 1.0:
        raise ValueError(f"mix must lie in [0, 1], got {mix!r}")
    direction = mix_directions(setup.random_dir, setup.sensitive_dir, m)
    new_params = perturb(setup.params, direction, radius)
    radii = radius_grid()
    return DistanceView(
        l2=jnp.linalg.norm(new_params - setup.params),
        kl_old_new=mean_kl(setup.logits_fn, setup.params, new_params),
        kl_new_old=mean_kl(setup.logits_fn, new_params, setup.params),
        probs_old=_probs(setup.model, setup.params, setup.display_obs),
        probs_new=_probs(setup.model, new_params, setup.display_obs),
        radii=radii,
        kl_curve=kl_along(setup.logits_fn, setup.params, direction, radii),
    )


@functools.partial(jax.jit, static_argnums=0)
def _probs(model, params, obs):
    return jax.nn.softmax(model.policy(params, obs).logits, axis=-1)
