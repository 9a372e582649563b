"""The training loop: rollout → GAE → update, jitted end to end, vmapped over seeds and sweeps.

One iteration collects ``num_envs × num_steps`` transitions from the JAX-native environment
with the current policy, computes GAE advantages (bootstrapping truncated episodes with
V(final observation)), runs the algorithm's update (PPO, PPO-penalty, TRPO or NPG) and
records diagnostics. Iterations run under one ``lax.scan`` (PureJaxRL, Lu et al. 2022).

Compilation is the expensive part on a laptop, so the program is compiled once per
*structure*: the config's numeric fields (δ, ε, learning rate, ...) and the seed are traced
arguments, and a persistent compilation cache (``.cache/jax`` in the project, or
``~/.cache/course_lib/jax``) lets a new kernel skip the compile as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import itertools
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib.core.advantages import gae_from_next_values
from course_lib.rl.config import TrainConfig, check_numeric
from course_lib.rl.envs import JAX_ENV_IDS, JaxEnv, make_env
from course_lib.rl.networks import ActorCritic
from course_lib.rl.ppo import PPOHyper, adapt_beta, optimizer, ppo_update
from course_lib.rl.rollout import Batch, explained_variance, normalise, policy_diagnostics
from course_lib.rl.trpo import TRPOHyper, fit_value, trpo_policy_step

PROGRESS_STEPS = 300_000
"""Runs of more environment steps than this (all seeds together) show a progress bar."""


# ------------------------------------------------------------------------------------------
# Compilation cache
# ------------------------------------------------------------------------------------------


def _cache_dir() -> Path:
    project = Path(__file__).resolve().parents[2]
    if (project / "pyproject.toml").exists() and os.access(project, os.W_OK):
        return project / ".cache" / "jax"
    return Path.home() / ".cache" / "course_lib" / "jax"


def enable_compilation_cache(path: str | os.PathLike | None = None) -> Path:
    """Store compiled programs on disk so a second kernel skips the compile.

    Without ``path``, a cache directory already configured (``JAX_COMPILATION_CACHE_DIR`` or
    an earlier call) is kept; otherwise the project's ``.cache/jax`` is used.
    """
    if path is None and jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    path = Path(path) if path is not None else _cache_dir()
    path.mkdir(parents=True, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.2)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return path


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


class Params(NamedTuple):
    """Flat policy parameters ``[P]`` and value parameters ``[V]``."""

    policy: jax.Array
    value: jax.Array


class TrainResult(NamedTuple):
    """What :func:`train` returns (``train_many`` adds leading sweep/seed axes to each array).

    Attributes:
      params: the final :class:`Params`.
      env_steps: ``[I]`` environment steps taken after each iteration.
      mean_return: ``[I]`` mean return of the episodes that finished in iteration i (the
        previous value when none finished).
      diagnostics: dict of ``[I]`` arrays: ``kl`` (exact mean KL(π_old‖π_new) on the batch),
        ``kl_k1``, ``kl_k3`` (sample estimates), ``clipfrac``, ``max_ratio``, ``entropy``,
        ``explained_variance``, ``episodes`` (finished in the iteration), ``surrogate_gain``
        (the surrogate of π_new minus that of π_old on the batch), ``param_norm``; PPO adds
        ``updates_done`` (fraction of minibatch steps before early stopping) and ``beta``;
        TRPO/NPG add ``cg_residual``, ``step_norm``, ``backtracks``, ``accepted``.
    """

    params: Params
    env_steps: np.ndarray
    mean_return: np.ndarray
    diagnostics: dict[str, np.ndarray]


# ------------------------------------------------------------------------------------------
# Static/numeric split of the config
# ------------------------------------------------------------------------------------------


def _structure(config: TrainConfig) -> TrainConfig:
    """The config with every numeric field zeroed: the compile-cache key."""
    return dataclasses.replace(config, **{f: 0.0 for f in TrainConfig.numeric_fields()})


def _numbers(config: TrainConfig) -> dict[str, jax.Array]:
    return {f: jnp.float32(getattr(config, f)) for f in TrainConfig.numeric_fields()}


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


def _model(config: TrainConfig) -> ActorCritic:
    spec = env_spec(config.env)
    return ActorCritic(spec.obs_dim, spec.n_actions, spec.discrete, tuple(config.hidden))


# ------------------------------------------------------------------------------------------
# The program
# ------------------------------------------------------------------------------------------


class Learner(NamedTuple):
    """What the learner carries from one iteration to the next."""

    params: Params
    opt_state: Any
    key: jax.Array
    beta: jax.Array
    last_mean_return: jax.Array


class Carry(NamedTuple):
    """The learner plus the state of the JAX-native environments."""

    learner: Learner
    env_state: Any
    obs: jax.Array
    ep_return: jax.Array


class Trajectory(NamedTuple):
    """``num_steps × num_envs`` transitions (leaves ``[T, N, ...]``); ``final_obs`` is the real
    next observation (before any reset), ``done`` = terminated or truncated."""

    obs: jax.Array
    actions: jax.Array
    logp: jax.Array
    dist: Any
    rewards: jax.Array
    terminated: jax.Array
    done: jax.Array
    final_obs: jax.Array


def _init_learner(static: TrainConfig, num: dict, seed: jax.Array) -> Learner:
    model = _model(static)
    key, k_init = jax.random.split(jax.random.key(seed))
    params = Params(*model.init(k_init))
    opt_target = params if static.algo in ("ppo", "ppo_penalty") else params.value
    opt_state = optimizer(num["max_grad_norm"]).init(opt_target)
    return Learner(params, opt_state, key, num["beta"], jnp.zeros(()))


def _init(static: TrainConfig, num: dict, seed: jax.Array) -> Carry:
    env = make_env(static.env)
    learner = _init_learner(static, num, seed)
    key, k_env = jax.random.split(learner.key)
    env_state, obs = jax.vmap(env.reset)(jax.random.split(k_env, static.num_envs))
    return Carry(learner._replace(key=key), env_state, obs, jnp.zeros(static.num_envs))


def _where_done(done: jax.Array, a, b):
    """Per environment: ``a`` where ``done [N]`` else ``b`` (leaves ``[N, ...]``)."""
    return jax.tree.map(
        lambda x, y: jnp.where(done.reshape(done.shape + (1,) * (x.ndim - 1)), x, y), a, b
    )


def _rollout(static: TrainConfig, env: JaxEnv, model: ActorCritic, carry: Carry, key):
    """``num_steps`` steps of ``num_envs`` JAX envs, restarting episodes as they end.

    All random numbers of the iteration (action noise, the states new episodes start
    from) are drawn before the loop, in one batch. Returns the new env part of the carry,
    the trajectory, and the sum and count of the returns of episodes that ended.
    """
    k_noise, k_reset = jax.random.split(key)
    t, n = static.num_steps, static.num_envs
    if env.discrete:
        noise = jax.random.gumbel(k_noise, (t, n, env.n_actions))
    else:
        noise = jax.random.normal(k_noise, (t, n, env.n_actions))
    resets = jax.vmap(jax.vmap(env.reset))(jax.random.split(k_reset, (t, n)))
    policy_params = carry.learner.params.policy

    def step(c, xs):
        env_state, obs, ep_return, ret_sum, ep_count = c
        eps_t, (reset_state, reset_obs) = xs
        dist = model.policy(policy_params, obs)
        if env.discrete:  # Gumbel-max: argmax(logits + Gumbel noise) ~ Categorical(logits)
            action = jnp.argmax(dist.logits + eps_t, axis=-1).astype(jnp.int32)
        else:
            action = dist.logits + jnp.exp(dist.log_std) * eps_t
        logp = model.log_prob(dist, action)
        next_state, final_obs, reward, term, trunc = jax.vmap(env.step)(env_state, action)
        done = term | trunc
        env_state = _where_done(done, reset_state, next_state)
        next_obs = _where_done(done, reset_obs, final_obs)
        ep_return = ep_return + reward
        ret_sum = ret_sum + jnp.sum(jnp.where(done, ep_return, 0.0))
        ep_count = ep_count + jnp.sum(done)
        ep_return = jnp.where(done, 0.0, ep_return)
        out = Trajectory(obs, action, logp, dist, reward, term, done, final_obs)
        return (env_state, next_obs, ep_return, ret_sum, ep_count), out

    init = (carry.env_state, carry.obs, carry.ep_return, jnp.zeros(()), jnp.zeros((), jnp.int32))
    (env_state, obs, ep_return, ret_sum, ep_count), traj = jax.lax.scan(step, init, (noise, resets))
    return (env_state, obs, ep_return), traj, ret_sum, ep_count


def make_batch(
    static: TrainConfig, num: dict, model: ActorCritic, value_params: jax.Array,
    traj: Trajectory,
) -> Batch:
    """Flatten a ``[T, N]`` trajectory into a :class:`Batch` with GAE advantages (bootstrapped
    with V(final observation) where an episode was truncated), normalised per batch when the
    config says so."""
    t, n = traj.rewards.shape

    def flat(x):
        return x.reshape((t * n,) + x.shape[2:])

    values = model.value(value_params, flat(traj.obs)).reshape(t, n)
    next_values = model.value(value_params, flat(traj.final_obs)).reshape(t, n)
    adv, returns = gae_from_next_values(
        traj.rewards, values, next_values, traj.terminated.astype(jnp.float32),
        traj.done.astype(jnp.float32), num["gamma"], num["gae_lambda"],
    )
    return Batch(
        flat(traj.obs), flat(traj.actions), flat(traj.logp), jax.tree.map(flat, traj.dist),
        flat(values), normalise(flat(adv), static.normalize_advantages == "batch"),
        flat(returns),
    )


def learning_rate(static: TrainConfig, num: dict, it: jax.Array) -> jax.Array:
    """``lr`` at iteration ``it``: decayed linearly to 0 over the run when ``anneal_lr``."""
    frac = 1.0 - it.astype(jnp.float32) / static.iterations if static.anneal_lr else 1.0
    return num["lr"] * frac


def _learn(
    static: TrainConfig, num: dict, learner: Learner, traj: Trajectory,
    ret_sum: jax.Array, ep_count: jax.Array, it: jax.Array,
):
    """GAE, the algorithm's update and the diagnostics of one iteration."""
    model = _model(static)
    key, k_update = jax.random.split(learner.key)
    v_params = learner.params.value
    batch = make_batch(static, num, model, v_params, traj)
    lr = learning_rate(static, num, it)
    beta = learner.beta
    if static.algo in ("ppo", "ppo_penalty"):
        penalty = static.algo == "ppo_penalty"
        hp = PPOHyper(lr, num["eps"], num["vf_coef"], num["ent_coef"], num["max_grad_norm"],
                      jnp.inf if penalty else num["target_kl"], beta)
        objective = "penalty" if penalty else ("clip" if static.clip else "none")
        params, opt_state, diag = ppo_update(
            learner.params, learner.opt_state, batch, k_update, hp, model,
            epochs=static.epochs, minibatches=static.minibatches, objective=objective,
            clip_value=static.clip_value,
            minibatch_advantages=static.normalize_advantages == "minibatch",
        )
    else:
        hp = TRPOHyper(num["delta"], num["cg_damping"], num["backtrack_ratio"], lr,
                       num["max_grad_norm"])
        new_pi, diag = trpo_policy_step(
            learner.params.policy, batch, hp, model, cg_iters=static.cg_iters,
            max_backtracks=static.max_backtracks, line_search=static.algo == "trpo",
            fisher_subsample=static.fisher_subsample,
        )
        new_v, opt_state = fit_value(
            v_params, learner.opt_state, batch, k_update, hp, model,
            epochs=static.epochs, minibatches=static.minibatches,
        )
        params = Params(new_pi, new_v)
    pdiag = policy_diagnostics(model, params.policy, batch, num["eps"])
    if static.algo == "ppo_penalty":
        beta = adapt_beta(beta, pdiag["kl"], num["target_kl"])
    mean_return = jnp.where(
        ep_count > 0, ret_sum / jnp.maximum(ep_count, 1), learner.last_mean_return
    )
    diag = {
        **diag, **pdiag,
        "beta": beta,
        "explained_variance": explained_variance(batch.values_old, batch.returns),
        "episodes": ep_count.astype(jnp.float32),
        "param_norm": jnp.linalg.norm(params.policy),
    }
    return Learner(params, opt_state, key, beta, mean_return), (mean_return, diag)


def _iteration(static: TrainConfig, num: dict, carry: Carry, it: jax.Array):
    env = make_env(static.env)
    key, k_roll = jax.random.split(carry.learner.key)
    carry = carry._replace(learner=carry.learner._replace(key=key))
    env_part, traj, ret_sum, ep_count = _rollout(static, env, _model(static), carry, k_roll)
    learner, out = _learn(static, num, carry.learner, traj, ret_sum, ep_count, it)
    return Carry(learner, *env_part), out


def _run_chunk(static: TrainConfig, num: dict, carry: Carry, iters: jax.Array):
    return jax.lax.scan(lambda c, i: _iteration(static, num, c, i), carry, iters)


_init_jit = jax.jit(_init, static_argnums=0)
_chunk_jit = jax.jit(_run_chunk, static_argnums=0)
_init_many = jax.jit(jax.vmap(_init, in_axes=(None, 0, 0)), static_argnums=0)
_chunk_many = jax.jit(
    jax.vmap(_run_chunk, in_axes=(None, 0, 0, None)), static_argnums=0
)


# ------------------------------------------------------------------------------------------
# Driver: chunks, progress bar, checks
# ------------------------------------------------------------------------------------------


def _chunks(iterations: int, steps: int) -> list[np.ndarray]:
    """Split the iterations into ~10 equal chunks for a progress bar when the run is long.

    Equal lengths keep it to one compiled program; a prime count runs as one chunk.
    """
    if steps <= PROGRESS_STEPS or iterations < 4:
        return [np.arange(iterations)]
    size = min(
        (d for d in range(1, iterations + 1) if iterations % d == 0),
        key=lambda d: abs(iterations / d - 10),
    )
    return [np.arange(s, s + size) for s in range(0, iterations, size)]


@contextlib.contextmanager
def _progress(total: int, desc: str, disable: bool):
    """A tqdm progress bar for as long as the run lasts, gone when it ends.

    In a notebook (and in Voilà) the bar is an ipywidgets widget shown under a display id; when
    the run ends that output is replaced by an empty one before the widget is closed. An output
    left pointing at a closed widget reads "Error displaying widget: model not found" in Voilà
    and in a reopened notebook.
    """
    from tqdm.auto import tqdm
    from tqdm.notebook import tqdm as notebook_tqdm

    if disable or not issubclass(tqdm, notebook_tqdm):
        with tqdm(total=total, desc=desc, unit="it", disable=disable, leave=False) as bar:
            yield bar
        return
    from IPython.display import display

    bar = tqdm(total=total, desc=desc, unit="it", leave=False, display=False)
    handle = display(bar.container, display_id=True)
    try:
        yield bar
    finally:
        handle.update({"text/plain": ""}, raw=True)
        bar.close()


def _tracked(iterable, total: int, desc: str, disable: bool):
    """``iterable`` with a :func:`_progress` bar that advances by one per item."""
    with _progress(total, desc, disable) as bar:
        for item in iterable:
            yield item
            bar.update(1)


def _drive(static, num, seeds, init_fn, chunk_fn, steps, desc):
    chunks = _chunks(static.iterations, steps)
    carry = init_fn(static, num, seeds)
    outs = []
    with _progress(static.iterations, desc, disable=len(chunks) == 1) as bar:
        for iters in chunks:
            carry, out = chunk_fn(static, num, carry, jnp.asarray(iters, jnp.int32))
            outs.append(out)
            bar.update(len(iters))
    mean_return, diag = jax.tree.map(lambda *xs: np.concatenate(xs, axis=-1), *outs)
    return carry.learner.params, mean_return, diag


def _check_finite(mean_return: np.ndarray, diag: dict[str, np.ndarray]) -> None:
    """Raise ``FloatingPointError`` naming the first quantity and iteration that went non-finite."""
    first = None
    for name, values in {"mean_return": mean_return, **diag}.items():
        bad = ~np.isfinite(values)
        if name == "max_ratio":
            bad = np.isnan(values)
        if bad.any():
            it = int(np.argmax(bad.reshape(-1, bad.shape[-1]).any(axis=0)))
            if first is None or it < first[1]:
                first = (name, it)
    if first is not None:
        raise FloatingPointError(
            f"training went non-finite: {first[0]} is NaN/inf at iteration {first[1]}"
        )


def _prepare(config: TrainConfig) -> TrainConfig:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    env_spec(config.env)
    enable_compilation_cache()
    return _structure(config)


def _env_steps(config: TrainConfig) -> np.ndarray:
    return (np.arange(1, config.iterations + 1) * config.batch_size).astype(np.int64)


def _check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    return int(seed)


def train(config: TrainConfig, seed: int = 0) -> TrainResult:
    """Train one agent; see :class:`TrainResult`.

    The seed and the config's numeric fields are traced: a second call that changes only
    those reuses the compiled program. Raises ``FloatingPointError`` when a quantity goes
    non-finite (naming it and the iteration).
    """
    static = _prepare(config)
    seed = _check_seed(seed)
    num = _numbers(config)
    if config.env not in JAX_ENV_IDS:
        params, mean_return, diag = _train_gymnasium(static, num, seed)
        _check_finite(mean_return, diag)
        return TrainResult(params, _env_steps(config), mean_return, diag)
    params, mean_return, diag = _drive(
        static, num, jnp.int32(seed), _init_jit, _chunk_jit, config.total_steps,
        f"{config.algo} {config.env}",
    )
    _check_finite(mean_return, diag)
    return TrainResult(params, _env_steps(config), mean_return, diag)


def train_many(config: TrainConfig, seeds, **sweep) -> TrainResult:
    """Train a grid of agents in ONE compiled, vmapped call.

    ``sweep`` maps numeric field names to lists of values (``delta=[0.001, 0.01, 0.1]``);
    the grid is the outer product of the swept values (in keyword order) and the seeds, and
    every array of the result gains those leading axes, e.g. ``mean_return [3, S, I]``.
    The grid is spread over all local devices (``jax.sharding``).
    """
    static = _prepare(config)
    seeds = [_check_seed(s) for s in np.atleast_1d(np.asarray(seeds)).tolist()]
    if not seeds:
        raise ValueError("seeds must hold at least one seed")
    numeric = TrainConfig.numeric_fields()
    for name, values in sweep.items():
        if name not in numeric:
            raise ValueError(
                f"{name} cannot be swept: only numeric fields can ({', '.join(numeric)})"
            )
        check_numeric(name, values)
    axes = [np.atleast_1d(np.asarray(v, np.float32)) for v in sweep.values()]
    for name, values in zip(sweep, axes):
        if values.size == 0:
            raise ValueError(f"{name} must list at least one value to sweep")
    shape = tuple(len(a) for a in axes) + (len(seeds),)
    grid = list(itertools.product(*[range(len(a)) for a in axes], range(len(seeds))))
    num = {f: np.full(len(grid), getattr(config, f), np.float32) for f in numeric}
    for k, (name, values) in enumerate(zip(sweep, axes)):
        num[name] = np.array([values[g[k]] for g in grid], np.float32)
    seed_arr = np.array([seeds[g[-1]] for g in grid], np.int32)
    num, seed_arr = _shard(num, seed_arr)
    params, mean_return, diag = _drive(
        static, num, seed_arr, _init_many, _chunk_many, config.total_steps * len(grid),
        f"{config.algo} {config.env} ×{len(grid)}",
    )
    unpad = lambda x: np.asarray(x)[: len(grid)].reshape(shape + np.shape(x)[1:])
    mean_return, diag = unpad(mean_return), {k: unpad(v) for k, v in diag.items()}
    _check_finite(mean_return, diag)
    params = jax.tree.map(lambda x: jnp.asarray(unpad(x)), params)
    env_steps = np.broadcast_to(_env_steps(config), shape + (config.iterations,))
    return TrainResult(params, env_steps, mean_return, diag)


def _shard(num: dict, seeds: np.ndarray):
    """Pad the grid to a multiple of the device count and lay it out over the devices."""
    devices = jax.local_devices()
    g = len(seeds)
    pad = (-g) % len(devices)
    if pad:
        num = {k: np.concatenate([v, np.repeat(v[-1:], pad)]) for k, v in num.items()}
        seeds = np.concatenate([seeds, np.repeat(seeds[-1:], pad)])
    mesh = jax.sharding.Mesh(np.array(devices), ("grid",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("grid"))
    put = lambda x: jax.device_put(jnp.asarray(x), spec)
    return {k: put(v) for k, v in num.items()}, put(seeds)


# ------------------------------------------------------------------------------------------
# Any other gymnasium environment: rollouts on the host, the same jitted update
# ------------------------------------------------------------------------------------------


def _host_learn(static, num, learner, obs, actions, rewards, terminated, done, final_obs, ret_sum,
                ep_count, it):
    model = _model(static)
    t, n = rewards.shape
    dist = model.policy(learner.params.policy, obs.reshape(t * n, -1))
    flat_actions = actions.reshape((t * n,) + actions.shape[2:])
    logp = model.log_prob(dist, flat_actions).reshape(t, n)
    dist = jax.tree.map(lambda x: x.reshape((t, n) + x.shape[1:]), dist)
    traj = Trajectory(obs, actions, logp, dist, rewards, terminated, done, final_obs)
    return _learn(static, num, learner, traj, ret_sum, ep_count, it)


_host_learn_jit = jax.jit(_host_learn, static_argnums=0)


def _train_gymnasium(static: TrainConfig, num: dict, seed: int):
    """Train on gymnasium's own vector env (any Discrete or 1-D Box action space).

    The policy acts on the host step by step; GAE, the update and the diagnostics are the
    same jitted code as the JAX-native path. Much slower, but any environment works.
    """
    import gymnasium

    model = _model(static)
    spec = env_spec(static.env)
    venv = gymnasium.make_vec(
        static.env, num_envs=static.num_envs, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
    )
    act = jax.jit(lambda p, o, k: model.sample(model.policy(p, o), k))
    learner = jax.jit(_init_learner, static_argnums=0)(static, num, jnp.int32(seed))
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed + 1)
    outs = []
    try:
        obs, _ = venv.reset(seed=int(rng.integers(2**31)))
        ep_return = np.zeros(static.num_envs)
        for it in _tracked(range(static.iterations), static.iterations,
                           f"{static.algo} {static.env}",
                           disable=static.total_steps <= PROGRESS_STEPS // 10):
            cols = {k: [] for k in ("obs", "act", "rew", "term", "done", "final")}
            ret_sum, ep_count = 0.0, 0
            for _ in range(static.num_steps):
                key, k = jax.random.split(key)
                a = np.asarray(act(learner.params.policy, jnp.asarray(obs, jnp.float32), k))
                env_a = a if spec.discrete else np.clip(a, spec.action_low, spec.action_high)
                next_obs, rew, term, trunc, info = venv.step(env_a)
                done = term | trunc
                final = np.array(next_obs, dtype=np.float32)
                if done.any():
                    for i in np.flatnonzero(done):
                        final[i] = info["final_obs"][i]
                ep_return += rew
                ret_sum += float(ep_return[done].sum())
                ep_count += int(done.sum())
                ep_return[done] = 0.0
                for name, v in zip(cols, (obs, a, rew, term, done, final)):
                    cols[name].append(np.asarray(v))
                obs = next_obs
            arrays = [jnp.asarray(np.stack(cols[k]), dt) for k, dt in zip(
                cols, (jnp.float32, None, jnp.float32, bool, bool, jnp.float32))]
            learner, out = _host_learn_jit(
                static, num, learner, *arrays, jnp.float32(ret_sum), jnp.int32(ep_count),
                jnp.int32(it),
            )
            outs.append(out)
    finally:
        venv.close()
    mean_return, diag = jax.tree.map(lambda *xs: np.stack(xs, axis=-1), *outs)
    return learner.params, mean_return, diag


# ------------------------------------------------------------------------------------------
# Evaluation in the real gymnasium environment
# ------------------------------------------------------------------------------------------


def evaluate(params: Params, config: TrainConfig, episodes: int = 10, seed: int = 0) -> float:
    """Mean return of the greedy (discrete) / mean (continuous) policy over ``episodes``
    episodes of the real gymnasium environment ``config.env``, seeded ``seed, seed+1, ...``."""
    import gymnasium

    if isinstance(episodes, bool) or not isinstance(episodes, int) or episodes < 1:
        raise ValueError(f"episodes must be an int >= 1, got {episodes!r}")
    model = _model(config)
    act = jax.jit(lambda p, o: model.greedy(model.policy(p, o)))
    venv = gymnasium.make_vec(config.env, num_envs=episodes, vectorization_mode="sync")
    try:
        obs, _ = venv.reset(seed=_check_seed(seed))
        totals = np.zeros(episodes)
        finished = np.zeros(episodes, bool)
        while not finished.all():
            action = np.asarray(act(params.policy, jnp.asarray(obs, jnp.float32)))
            obs, reward, term, trunc, _ = venv.step(action)
            totals += np.where(finished, 0.0, reward)
            finished |= term | trunc
    finally:
        venv.close()
    return float(totals.mean())
