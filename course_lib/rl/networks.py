"""Policy and value networks (flax), with their parameters kept as flat vectors.

A policy maps observations ``[B, O]`` to the parameters of an action distribution:

* categorical (discrete actions): logits ``[B, A]``;
* diagonal Gaussian (continuous actions): a mean ``[B, D]`` from the network and a learned,
  state-independent ``log_std [D]`` (Schulman et al. 2015, TRPO §8; PPO paper §6.1).

Hidden layers are tanh MLPs with orthogonal initialisation (gain √2, output gain 0.01 for the
policy and 1 for the value), as in the PPO reference implementations (Huang et al. 2022,
"The 37 Implementation Details of PPO").

TRPO solves a linear system in parameter space and optax updates faster on one array than on a
nested pytree, so :class:`ActorCritic` stores each network's parameters as ONE flat float32
vector and unflattens it inside the forward pass (``jax.flatten_util.ravel_pytree``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from course_lib._validate import check_rank
from course_lib.core import distributions as D
from course_lib.rl.envs import env_spec


class MLP(nn.Module):
    """tanh MLP ``[B, O] → [B, out]`` with orthogonal initialisation."""

    hidden: tuple[int, ...]
    out: int
    out_gain: float

    @nn.compact
    def __call__(self, x):
        for width in self.hidden:
            x = nn.Dense(width, kernel_init=nn.initializers.orthogonal(jnp.sqrt(2.0)))(x)
            x = jnp.tanh(x)
        return nn.Dense(self.out, kernel_init=nn.initializers.orthogonal(self.out_gain))(x)


class GaussianHead(nn.Module):
    """Mean network plus a learned state-independent ``log_std [D]``."""

    hidden: tuple[int, ...]
    action_dim: int
    init_log_std: float

    @nn.compact
    def __call__(self, x):
        mean = MLP(self.hidden, self.action_dim, 0.01)(x)
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
    diagonal Gaussian. All methods are pure and work under ``jit``/``vmap``.
    """

    obs_dim: int
    n_actions: int
    discrete: bool
    hidden: tuple[int, ...] = (64, 64)
    init_log_std: float = 0.0

    def _policy_module(self) -> nn.Module:
        if self.discrete:
            return MLP(self.hidden, self.n_actions, 0.01)
        return GaussianHead(self.hidden, self.n_actions, self.init_log_std)

    def _value_module(self) -> nn.Module:
        return MLP(self.hidden, 1, 1.0)

    def _unravel(self, module: nn.Module) -> Callable:
        shapes = jax.eval_shape(module.init, jax.random.key(0), jnp.zeros((1, self.obs_dim)))
        return ravel_pytree(jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), shapes))[1]

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

    def log_prob(self, dist: Dist, actions: jax.Array) -> jax.Array:
        """log π(a|s) ``[B]``."""
        if self.discrete:
            return D.categorical_log_prob(dist.logits, actions)
        return D.gaussian_log_prob(dist.logits, dist.log_std, actions)

    def entropy(self, dist: Dist) -> jax.Array:
        """Entropy of each distribution ``[B]``."""
        if self.discrete:
            return D.categorical_entropy(dist.logits)
        return D.gaussian_entropy(dist.logits, dist.log_std)

    def kl(self, p: Dist, q: Dist) -> jax.Array:
        """KL(p‖q) per state ``[B]``, from logits / (mean, log_std)."""
        if self.discrete:
            return D.categorical_kl(p.logits, q.logits)
        return D.gaussian_kl(p.logits, p.log_std, q.logits, q.log_std)

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
    ``config.env`` (:func:`course_lib.rl.envs.env_spec`), hidden layers ``config.hidden``."""
    spec = env_spec(config.env)
    return ActorCritic(spec.obs_dim, spec.n_actions, spec.discrete, tuple(config.hidden))
