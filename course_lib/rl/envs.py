"""Environments: the real gymnasium API and JAX-native ports that jit end to end.

Learners know gymnasium (``env.reset()``, ``env.step(a)``); a jitted training loop needs
environments written in JAX. This module ports gymnasium's ``CartPole-v1`` and
``Pendulum-v1`` to pure functions in the functional style of gymnax: the state is an
explicit value, ``reset(key)`` and ``step(state, action)`` return new values and never
mutate, so they work under ``jax.jit`` and ``jax.vmap`` (one env → a batch of envs).

The ports follow gymnasium 1.x line by line (dynamics, reward, termination, the
``TimeLimit`` truncation, the reset distribution, the observation, Pendulum's torque
clip). Gymnasium computes in float64 and casts observations to float32; the ports
compute in float32, so states agree to about 1e-6 relative and a termination test can
differ only for a state within rounding of a threshold. ``tests/test_envs.py`` checks
thousands of transitions against gymnasium itself.

>>> import jax
>>> env = make_env("CartPole-v1")
>>> state, obs = env.reset(jax.random.key(0))
>>> state, obs, reward, terminated, truncated = env.step(state, 1)
>>> obs.shape, float(reward), bool(terminated), int(state.t)
((4,), 1.0, False, 1)
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "JAX_ENV_IDS",
    "EnvState",
    "JaxEnv",
    "cartpole_obs",
    "cartpole_reset",
    "cartpole_step",
    "gymnasium_env",
    "make_env",
    "pendulum_obs",
    "pendulum_reset",
    "pendulum_step",
    "set_gymnasium_state",
    "step_autoreset",
]


class EnvState(NamedTuple):
    """The full state of one JAX-native environment.

    Attributes:
      physics: ``[S]`` float32 physical state (CartPole: ``x, x_dot, theta, theta_dot``;
        Pendulum: ``th, thdot``), the values gymnasium keeps in ``env.unwrapped.state``.
      t: int32 scalar, steps taken in this episode (gymnasium's ``TimeLimit`` counter).
    """

    physics: jax.Array
    t: jax.Array


# --------------------------------------------------------------------------------------
# CartPole-v1 (gymnasium/envs/classic_control/cartpole.py, Barto, Sutton & Anderson 1983)
# --------------------------------------------------------------------------------------

CARTPOLE_GRAVITY = 9.8
CARTPOLE_MASSCART = 1.0
CARTPOLE_MASSPOLE = 0.1
CARTPOLE_TOTAL_MASS = CARTPOLE_MASSPOLE + CARTPOLE_MASSCART
CARTPOLE_LENGTH = 0.5  # half the pole's length
CARTPOLE_POLEMASS_LENGTH = CARTPOLE_MASSPOLE * CARTPOLE_LENGTH
CARTPOLE_FORCE_MAG = 10.0
CARTPOLE_TAU = 0.02  # seconds between state updates
CARTPOLE_THETA_THRESHOLD = 12 * 2 * math.pi / 360  # 12 degrees in radians
CARTPOLE_X_THRESHOLD = 2.4
CARTPOLE_RESET_BOUND = 0.05


def cartpole_reset(key: jax.Array) -> jax.Array:
    """CartPole's initial physics: each of the 4 values uniform in ``(-0.05, 0.05)``."""
    return jax.random.uniform(
        key, (4,), jnp.float32, minval=-CARTPOLE_RESET_BOUND, maxval=CARTPOLE_RESET_BOUND
    )


def cartpole_obs(physics: jax.Array) -> jax.Array:
    """CartPole's observation is its physical state, ``[4]`` float32."""
    return physics.astype(jnp.float32)


def cartpole_step(physics: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One explicit-Euler step of the cart-pole (Florian 2007, the corrected equations).

    With F = +10 for action 1 and -10 otherwise, m = m_pole, M = m_cart + m_pole,
    l = half the pole's length and τ = 0.02 s:

        temp     = (F + m·l·θ̇²·sin θ) / M
        θ̈        = (g·sin θ − cos θ·temp) / (l·(4/3 − m·cos²θ / M))
        ẍ        = temp − m·l·θ̈·cos θ / M
        x ← x + τ·ẋ,  ẋ ← ẋ + τ·ẍ,  θ ← θ + τ·θ̇,  θ̇ ← θ̇ + τ·θ̈

    The episode terminates when |x| > 2.4 or |θ| > 12°; the reward is 1 on every step,
    the terminating one included.

    Args:
      physics: ``[4]`` float32 ``(x, x_dot, theta, theta_dot)``.
      action: int scalar, 0 (push left) or 1 (push right).

    Returns:
      ``(next_physics [4] float32, reward [] float32, terminated [] bool)``.
    """
    x, x_dot, theta, theta_dot = physics.astype(jnp.float32)
    force = jnp.where(action == 1, CARTPOLE_FORCE_MAG, -CARTPOLE_FORCE_MAG).astype(jnp.float32)
    costheta = jnp.cos(theta)
    sintheta = jnp.sin(theta)

    temp = (force + CARTPOLE_POLEMASS_LENGTH * jnp.square(theta_dot) * sintheta) / (
        CARTPOLE_TOTAL_MASS
    )
    thetaacc = (CARTPOLE_GRAVITY * sintheta - costheta * temp) / (
        CARTPOLE_LENGTH
        * (4.0 / 3.0 - CARTPOLE_MASSPOLE * jnp.square(costheta) / CARTPOLE_TOTAL_MASS)
    )
    xacc = temp - CARTPOLE_POLEMASS_LENGTH * thetaacc * costheta / CARTPOLE_TOTAL_MASS

    x = x + CARTPOLE_TAU * x_dot
    x_dot = x_dot + CARTPOLE_TAU * xacc
    theta = theta + CARTPOLE_TAU * theta_dot
    theta_dot = theta_dot + CARTPOLE_TAU * thetaacc
    next_physics = jnp.stack([x, x_dot, theta, theta_dot])

    terminated = (
        (x < -CARTPOLE_X_THRESHOLD)
        | (x > CARTPOLE_X_THRESHOLD)
        | (theta < -CARTPOLE_THETA_THRESHOLD)
        | (theta > CARTPOLE_THETA_THRESHOLD)
    )
    reward = jnp.ones((), jnp.float32)
    return next_physics, reward, terminated


# --------------------------------------------------------------------------------------
# Pendulum-v1 (gymnasium/envs/classic_control/pendulum.py)
# --------------------------------------------------------------------------------------

PENDULUM_MAX_SPEED = 8.0
PENDULUM_MAX_TORQUE = 2.0
PENDULUM_DT = 0.05
PENDULUM_G = 10.0
PENDULUM_M = 1.0
PENDULUM_L = 1.0
PENDULUM_RESET_TH = math.pi
PENDULUM_RESET_THDOT = 1.0


def angle_normalize(x: jax.Array) -> jax.Array:
    """Wrap an angle to ``[-π, π)``: ``((x + π) mod 2π) − π``, as gymnasium does."""
    return ((x + math.pi) % (2 * math.pi)) - math.pi


def pendulum_reset(key: jax.Array) -> jax.Array:
    """Pendulum's initial physics: θ uniform in ``[-π, π]``, θ̇ uniform in ``[-1, 1]``."""
    high = jnp.array([PENDULUM_RESET_TH, PENDULUM_RESET_THDOT], jnp.float32)
    return jax.random.uniform(key, (2,), jnp.float32, minval=-high, maxval=high)


def pendulum_obs(physics: jax.Array) -> jax.Array:
    """Pendulum's observation ``[cos θ, sin θ, θ̇]``, ``[3]`` float32."""
    th, thdot = physics.astype(jnp.float32)
    return jnp.stack([jnp.cos(th), jnp.sin(th), thdot])


def pendulum_step(physics: jax.Array, action: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """One semi-implicit Euler step of the torque-driven pendulum (θ = 0 is upright).

    With u = clip(action, −2, 2), g = 10, m = l = 1 and dt = 0.05:

        reward = −(normalize(θ)² + 0.1·θ̇² + 0.001·u²)      (of the state before the step)
        θ̇ ← clip(θ̇ + (3g/(2l)·sin θ + 3/(m·l²)·u)·dt, −8, 8)
        θ ← θ + θ̇·dt

    θ itself is not wrapped (only the reward normalises it); the task never terminates.

    Args:
      physics: ``[2]`` float32 ``(th, thdot)``.
      action: ``[1]`` float torque.

    Returns:
      ``(next_physics [2] float32, reward [] float32, terminated [] bool)``.
    """
    th, thdot = physics.astype(jnp.float32)
    g, m, l, dt = PENDULUM_G, PENDULUM_M, PENDULUM_L, PENDULUM_DT

    u = jnp.clip(jnp.asarray(action, jnp.float32), -PENDULUM_MAX_TORQUE, PENDULUM_MAX_TORQUE)[0]
    costs = angle_normalize(th) ** 2 + 0.1 * thdot**2 + 0.001 * (u**2)

    newthdot = thdot + (3 * g / (2 * l) * jnp.sin(th) + 3.0 / (m * l**2) * u) * dt
    newthdot = jnp.clip(newthdot, -PENDULUM_MAX_SPEED, PENDULUM_MAX_SPEED)
    newth = th + newthdot * dt

    next_physics = jnp.stack([newth, newthdot])
    return next_physics, -costs, jnp.zeros((), bool)


# --------------------------------------------------------------------------------------
# The environment object
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class JaxEnv:
    """A JAX-native environment with gymnasium's semantics, in functional form.

    Frozen and hashable, so it can be a static argument of ``jax.jit``. Its methods are
    pure: vmap them over a batch of environments (``jax.vmap(env.step)``).

    Attributes:
      env_id: the gymnasium id this env follows (``"CartPole-v1"``, ``"Pendulum-v1"``).
      obs_dim: length of the observation vector.
      discrete: whether actions are integers in ``[0, n_actions)``.
      n_actions: discrete: the number of actions; continuous: the action dimension.
      action_low, action_high: continuous: the action bounds (the env clips to them);
        discrete: ``0`` and ``n_actions - 1``.
      max_episode_steps: gymnasium's ``TimeLimit``: an episode is truncated at this step.
    """

    env_id: str
    obs_dim: int
    discrete: bool
    n_actions: int
    action_low: float
    action_high: float
    max_episode_steps: int
    reset_physics: Callable[[jax.Array], jax.Array] = field(repr=False)
    step_physics: Callable[..., tuple[jax.Array, jax.Array, jax.Array]] = field(repr=False)
    physics_obs: Callable[[jax.Array], jax.Array] = field(repr=False)

    def reset(self, key: jax.Array) -> tuple[EnvState, jax.Array]:
        """Start an episode: ``(state, obs [obs_dim])`` with ``state.t == 0``."""
        state = EnvState(self.reset_physics(key), jnp.zeros((), jnp.int32))
        return state, self.obs(state)

    def step(
        self, state: EnvState, action: Any
    ) -> tuple[EnvState, jax.Array, jax.Array, jax.Array, jax.Array]:
        """Take one step; never resets (see ``step_autoreset``).

        Args:
          state: the current ``EnvState``.
          action: discrete: an int scalar; continuous: a ``[n_actions]`` float vector.

        Returns:
          ``(next_state, obs, reward, terminated, truncated)``: ``obs [obs_dim]`` is the
          real next observation; ``reward`` float32 scalar; ``terminated`` (the MDP
          reached a terminal state) and ``truncated`` (``next_state.t >=
          max_episode_steps``) bool scalars, independent as in gymnasium.
        """
        self._check_action(action)
        physics, reward, terminated = self.step_physics(state.physics, action)
        t = state.t + 1
        next_state = EnvState(physics, t)
        truncated = t >= self.max_episode_steps
        return next_state, self.obs(next_state), reward, terminated, truncated

    def obs(self, state: EnvState) -> jax.Array:
        """The observation of ``state``, ``[obs_dim]`` float32."""
        return self.physics_obs(state.physics)

    def _check_action(self, action: Any) -> None:
        shape = jnp.shape(action)
        expected = () if self.discrete else (self.n_actions,)
        if shape != expected:
            kind = "an int scalar" if self.discrete else f"a [{self.n_actions}] vector"
            raise ValueError(
                f"action for {self.env_id} must be {kind} (shape {expected}), got shape {shape}"
                " (vmap env.step to act in a batch of environments)"
            )


_ENVS: dict[str, JaxEnv] = {
    "CartPole-v1": JaxEnv(
        env_id="CartPole-v1",
        obs_dim=4,
        discrete=True,
        n_actions=2,
        action_low=0.0,
        action_high=1.0,
        max_episode_steps=500,
        reset_physics=cartpole_reset,
        step_physics=cartpole_step,
        physics_obs=cartpole_obs,
    ),
    "Pendulum-v1": JaxEnv(
        env_id="Pendulum-v1",
        obs_dim=3,
        discrete=False,
        n_actions=1,
        action_low=-PENDULUM_MAX_TORQUE,
        action_high=PENDULUM_MAX_TORQUE,
        max_episode_steps=200,
        reset_physics=pendulum_reset,
        step_physics=pendulum_step,
        physics_obs=pendulum_obs,
    ),
}

JAX_ENV_IDS: tuple[str, ...] = tuple(_ENVS)


def make_env(env_id: str) -> JaxEnv:
    """The JAX-native port of the gymnasium environment ``env_id``.

    Raises:
      ValueError: ``env_id`` has no JAX-native port (the message lists those that do).
    """
    if env_id not in _ENVS:
        raise ValueError(
            f"env_id {env_id!r} has no JAX-native port; available: {', '.join(JAX_ENV_IDS)}"
        )
    return _ENVS[env_id]


def step_autoreset(
    env: JaxEnv, state: EnvState, action: Any, key: jax.Array
) -> tuple[EnvState, jax.Array, jax.Array, jax.Array, jax.Array, jax.Array]:
    """Step, and start a new episode (with ``key``) where this one ended.

    Returns:
      ``(state, obs, reward, terminated, truncated, final_obs)``. When the step ended the
      episode (``terminated | truncated``), ``state``/``obs`` are the new episode's reset
      state and observation, and ``final_obs`` is the real next observation, which a
      learner needs to bootstrap the value of a truncated episode, V(final_obs).
      Otherwise ``obs == final_obs``.
    """
    next_state, final_obs, reward, terminated, truncated = env.step(state, action)
    reset_state, reset_obs = env.reset(key)
    done = terminated | truncated
    state = jax.tree.map(lambda r, s: jnp.where(done, r, s), reset_state, next_state)
    obs = jnp.where(done, reset_obs, final_obs)
    return state, obs, reward, terminated, truncated, final_obs


class EnvSpec(NamedTuple):
    """What the networks need to know of an environment."""

    obs_dim: int
    n_actions: int
    discrete: bool
    action_low: float
    action_high: float


@functools.cache
def env_spec(env_id: str) -> EnvSpec:
    """Observation size and action space of ``env_id``: a JAX-native env, else gymnasium's.

    Raises ``ValueError`` naming ``env`` for an unknown id or an action space other than
    ``Discrete`` or a 1-D ``Box``.
    """
    if env_id in JAX_ENV_IDS:
        e = make_env(env_id)
        return EnvSpec(e.obs_dim, e.n_actions, e.discrete, e.action_low, e.action_high)
    import gymnasium

    try:
        env = gymnasium.make(env_id)
    except gymnasium.error.Error as err:
        raise ValueError(f"env {env_id!r} is not a gymnasium environment id ({err})") from None
    try:
        obs_space, act_space = env.observation_space, env.action_space
    finally:
        env.close()
    if not isinstance(obs_space, gymnasium.spaces.Box) or len(obs_space.shape) != 1:
        raise ValueError(f"env {env_id!r}: observations must be a 1-D Box, got {obs_space}")
    if isinstance(act_space, gymnasium.spaces.Discrete):
        return EnvSpec(obs_space.shape[0], int(act_space.n), True, 0.0, float(act_space.n - 1))
    if isinstance(act_space, gymnasium.spaces.Box) and len(act_space.shape) == 1:
        return EnvSpec(obs_space.shape[0], act_space.shape[0], False,
                       float(act_space.low.min()), float(act_space.high.max()))
    raise ValueError(
        f"env {env_id!r}: the action space must be Discrete or a 1-D Box, got {act_space}"
    )


# --------------------------------------------------------------------------------------
# The real gymnasium environments (evaluation, tests)
# --------------------------------------------------------------------------------------


def gymnasium_env(env_id: str, **kwargs: Any) -> Any:
    """``gymnasium.make(env_id, **kwargs)``: the real environment, with its wrappers."""
    import gymnasium

    return gymnasium.make(env_id, **kwargs)


def set_gymnasium_state(gym_env: Any, physics: Any, t: int = 0) -> None:
    """Put a gymnasium env into the state ``physics`` at episode step ``t``.

    Writes ``physics`` (as float64) into ``gym_env.unwrapped.state``, sets the
    ``TimeLimit`` wrapper's step counter to ``t`` and clears CartPole's "stepped after
    termination" flag, so the next ``gym_env.step`` behaves as it would mid-episode. The
    env is reset first if it never was (gymnasium refuses to step an env before reset).
    """
    import gymnasium

    if not _has_reset(gym_env):
        gym_env.reset()
    unwrapped = gym_env.unwrapped
    unwrapped.state = np.array(physics, dtype=np.float64)
    if hasattr(unwrapped, "steps_beyond_terminated"):
        unwrapped.steps_beyond_terminated = None
    env = gym_env
    while isinstance(env, gymnasium.Wrapper):
        if isinstance(env, gymnasium.wrappers.TimeLimit):
            env._elapsed_steps = int(t)
        env = env.env


def _has_reset(gym_env: Any) -> bool:
    import gymnasium

    env = gym_env
    while isinstance(env, gymnasium.Wrapper):
        if isinstance(env, gymnasium.wrappers.OrderEnforcing) and not env.has_reset:
            return False
        env = env.env
    return True
