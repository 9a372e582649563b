"""Policy and value networks (flax), with their parameters kept as flat vectors.

A policy maps observations ``[B, O]`` to the parameters of an action distribution:

* categorical (discrete actions): logits ``[B, A]``;
* diagonal Gaussian (continuous actions): a mean ``[B, D]`` from the network and a learned,
  state-independent ``log_std [D]`` (Schulman et al. 2015, TRPO §8; PPO paper §6.1).

Hidden layers are tanh MLPs with orthogonal initialisation (gain √2, output gain 0.01 for the
policy and 1 for the value), as in the PPO reference implementations (Huang et al. 2022,
"The 37 Implementation Details of PPO"); ``ortho_init=False`` gives flax's default instead
(LeCun normal: a normal truncated to ±2 standard deviations, scaled to variance 1/fan_in),
the ablation of Engstrom et al. (2020).

TRPO solves a linear system in parameter space and optax updates faster on one array than on a
nested pytree, so :class:`ActorCritic` stores each network's parameters as ONE flat float32
vector and unflattens it inside the forward pass (``jax.flatten_util.ravel_pytree``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from course_lib._validate import check_rank
from course_lib.core import distributions as D
from course_lib.rl.envs import env_spec


class MLP(nn.Module):
    """tanh MLP ``[B, O] → [B, out]`` with orthogonal initialisation (gain √2, ``out_gain`` at
    the output), or flax's default LeCun normal when ``ortho`` is False."""

    hidden: tuple[int, ...]
    out: int
    out_gain: float
    ortho: bool = True

    @nn.compact
    def __call__(self, x):
        init = (lambda gain: nn.initializers.orthogonal(gain)) if self.ortho else (
            lambda gain: nn.initializers.lecun_normal())
        for width in self.hidden:
            x = nn.Dense(width, kernel_init=init(jnp.sqrt(2.0)))(x)
            x = jnp.tanh(x)
        return nn.Dense(self.out, kernel_init=init(self.out_gain))(x)


def orthogonal_numpy(rng: np.random.Generator, shape: tuple[int, int], gain: float) -> np.ndarray:
    """A ``shape`` matrix with orthonormal rows or columns, times ``gain`` (Saxe et al. 2014).

    The same construction as ``flax.linen.initializers.orthogonal``: QR of a standard normal
    matrix, signs fixed by R's diagonal so the result is uniform over orthogonal matrices.
    Computed in NumPy on the host: compiling QR and the normal sampler in XLA costs seconds
    on a laptop CPU, the NumPy call microseconds.
    """
    n_rows, n_cols = shape
    q, r = np.linalg.qr(rng.standard_normal((max(n_rows, n_cols), min(n_rows, n_cols))))
    q = q * np.sign(np.diag(r))
    return (gain * (q.T if n_rows < n_cols else q)).astype(np.float32)


TRUNCATED_NORMAL_STD = 0.87962566103423978
"""The standard deviation of a standard normal truncated to [−2, 2] (flax's variance scaling)."""


def lecun_normal_numpy(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A ``[fan_in, fan_out]`` matrix with flax's default kernel distribution, LeCun normal
    (LeCun et al. 1998): a standard normal truncated to [−2, 2] (redrawn outside), divided by
    that truncated normal's std and scaled by √(1/fan_in), so each entry has variance 1/fan_in.
    The distribution of ``flax.linen.initializers.lecun_normal()``, drawn in NumPy."""
    x = rng.standard_normal(shape)
    while (outside := np.abs(x) > 2.0).any():
        x[outside] = rng.standard_normal(int(outside.sum()))
    return (x * (np.sqrt(1.0 / shape[0]) / TRUNCATED_NORMAL_STD)).astype(np.float32)


def _mlp_leaf(path: tuple[str, ...], shape, hidden: int, out_gain: float, rng,
              ortho: bool = True) -> np.ndarray:
    layer, kind = path[-2], path[-1]
    if kind == "bias":
        return np.zeros(shape, np.float32)
    if not ortho:
        return lecun_normal_numpy(rng, shape)
    last = int(layer.split("_")[1]) == hidden
    return orthogonal_numpy(rng, shape, out_gain if last else float(np.sqrt(2.0)))


@functools.lru_cache(maxsize=64)
def _param_shapes(module: nn.Module, obs_dim: int):
    """The parameter pytree of ``module`` as shapes (traced once per module and input size)."""
    return jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, obs_dim)))


@functools.lru_cache(maxsize=64)
def _unravel_fn(module: nn.Module, obs_dim: int) -> Callable:
    shapes = _param_shapes(module, obs_dim)
    return ravel_pytree(jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes))[1]


class GaussianHead(nn.Module):
    """Mean network plus a learned state-independent ``log_std [D]``."""

    hidden: tuple[int, ...]
    action_dim: int
    init_log_std: float
    ortho: bool = True

    @nn.compact
    def __call__(self, x):
        mean = MLP(self.hidden, self.action_dim, 0.01, self.ortho)(x)
        log_std = self.param(
            "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
        )
        return mean, log_std


class Dist(NamedTuple):
    """Parameters of a batch of action distributions.

    Categorical: ``logits [B, A]`` and ``log_std`` is ``None``.
    Gaussian: ``logits`` holds the mean ``[B, D]`` and ``log_std [B, D]``.
    """

    logits: jax.Array
    log_std: jax.Array | None = None


@dataclass(frozen=True)
class ActorCritic:
    """A policy network and a separate value network over flat parameter vectors.

    ``discrete``: categorical over ``n_actions`` actions, else a ``n_actions``-dimensional
    diagonal Gaussian. ``ortho_init``: orthogonal initial weights (gains √2, 0.01 policy output,
    1 value output), else flax's default LeCun normal. All methods are pure and work under
    ``jit``/``vmap``. ``gaussian_fns``: None, or ``(log_prob, entropy, kl)`` with the
    signatures of :mod:`course_lib.core.distributions`' Gaussian functions, used in their place
    (``TrainConfig.gaussian_fns``).
    """

    obs_dim: int
    n_actions: int
    discrete: bool
    hidden: tuple[int, ...] = (64, 64)
    init_log_std: float = 0.0
    ortho_init: bool = True
    gaussian_fns: tuple[Callable, Callable, Callable] | None = None

    def _policy_module(self) -> nn.Module:
        if self.discrete:
            return MLP(self.hidden, self.n_actions, 0.01, self.ortho_init)
        return GaussianHead(self.hidden, self.n_actions, self.init_log_std, self.ortho_init)

    def _value_module(self) -> nn.Module:
        return MLP(self.hidden, 1, 1.0, self.ortho_init)

    def _unravel(self, module: nn.Module) -> Callable:
        return _unravel_fn(module, self.obs_dim)

    def _init_numpy(self, module: nn.Module, out_gain: float, rng) -> np.ndarray:
        leaves, _ = jax.tree_util.tree_flatten_with_path(_param_shapes(module, self.obs_dim))
        flat = []
        for path, leaf in leaves:  # the order of ravel_pytree, so unravelling matches
            names = tuple(getattr(k, "key", str(k)) for k in path)
            if names[-1] == "log_std":
                flat.append(np.full(leaf.shape, self.init_log_std, np.float32))
            else:
                flat.append(_mlp_leaf(names, leaf.shape, len(self.hidden), out_gain, rng,
                                      self.ortho_init))
        return np.concatenate([x.ravel() for x in flat])

    def init_numpy(self, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Fresh ``(policy_params [P], value_params [V])`` drawn on the host from ``seed``.

        The same distribution as :meth:`init` (orthogonal weights with the same gains, or
        LeCun normal when not ``ortho_init``; zero biases), from NumPy's generator: the
        training loop starts from these so that no initialiser has to be compiled.
        """
        rng = np.random.default_rng(seed)
        return (self._init_numpy(self._policy_module(), 0.01, rng),
                self._init_numpy(self._value_module(), 1.0, rng))

    def init(self, key: jax.Array) -> tuple[jax.Array, jax.Array]:
        """Fresh ``(policy_params [P], value_params [V])`` as flat float32 vectors."""
        k_pi, k_v = jax.random.split(key)
        x = jnp.zeros((1, self.obs_dim), jnp.float32)
        pi = ravel_pytree(self._policy_module().init(k_pi, x))[0]
        v = ravel_pytree(self._value_module().init(k_v, x))[0]
        return pi, v

    def policy(self, policy_params: jax.Array, obs: jax.Array) -> Dist:
        """Distribution parameters for observations ``[B, O]``."""
        check_rank(obs, 2, "obs")
        module = self._policy_module()
        out = module.apply(self._unravel(module)(policy_params), obs)
        if self.discrete:
            return Dist(out)
        mean, log_std = out
        return Dist(mean, jnp.broadcast_to(log_std, mean.shape))

    def value(self, value_params: jax.Array, obs: jax.Array) -> jax.Array:
        """State values ``[B]`` for observations ``[B, O]``."""
        check_rank(obs, 2, "obs")
        module = self._value_module()
        return module.apply(self._unravel(module)(value_params), obs)[:, 0]

    @property
    def _gaussian(self) -> tuple[Callable, Callable, Callable]:
        return self.gaussian_fns or (D.gaussian_log_prob, D.gaussian_entropy, D.gaussian_kl)

    def log_prob(self, dist: Dist, actions: jax.Array) -> jax.Array:
        """log π(a|s) ``[B]``."""
        if self.discrete:
            return D.categorical_log_prob(dist.logits, actions)
        return self._gaussian[0](dist.logits, dist.log_std, actions)

    def entropy(self, dist: Dist) -> jax.Array:
        """Entropy of each distribution ``[B]``."""
        if self.discrete:
            return D.categorical_entropy(dist.logits)
        return self._gaussian[1](dist.logits, dist.log_std)

    def kl(self, p: Dist, q: Dist) -> jax.Array:
        """KL(p‖q) per state ``[B]``, from logits / (mean, log_std)."""
        if self.discrete:
            return D.categorical_kl(p.logits, q.logits)
        return self._gaussian[2](p.logits, p.log_std, q.logits, q.log_std)

    def sample(self, dist: Dist, key: jax.Array) -> jax.Array:
        """One action per state: ``[B]`` int32 or ``[B, D]`` float32."""
        if self.discrete:
            return jax.random.categorical(key, dist.logits).astype(jnp.int32)
        noise = jax.random.normal(key, dist.logits.shape, dist.logits.dtype)
        return dist.logits + jnp.exp(dist.log_std) * noise

    def greedy(self, dist: Dist) -> jax.Array:
        """The most likely action (discrete) or the mean (continuous)."""
        if self.discrete:
            return jnp.argmax(dist.logits, axis=-1).astype(jnp.int32)
        return dist.logits


class Params(NamedTuple):
    """Flat policy parameters ``[P]`` and value parameters ``[V]``."""

    policy: jax.Array
    value: jax.Array


def model_from_config(config) -> ActorCritic:
    """The :class:`ActorCritic` a :class:`course_lib.rl.config.TrainConfig` trains: sized by
    ``config.env`` (:func:`course_lib.rl.envs.env_spec`), hidden layers ``config.hidden``,
    initialised as ``config.ortho_init`` says."""
    spec = env_spec(config.env)
    fns = getattr(config, "gaussian_fns", None)
    if fns is not None and spec.discrete:
        raise ValueError(f"gaussian_fns replaces a Gaussian policy's functions, but {config.env} "
                         "has discrete actions (a categorical policy)")
    return ActorCritic(spec.obs_dim, spec.n_actions, spec.discrete, tuple(config.hidden),
                       ortho_init=bool(getattr(config, "ortho_init", True)), gaussian_fns=fns)
