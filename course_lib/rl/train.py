"""The training loop: rollout → GAE → update, jitted end to end, vmapped over seeds and sweeps.

One iteration collects ``num_envs × num_steps`` transitions from the JAX-native environment
with the current policy, computes GAE advantages (bootstrapping truncated episodes with
V(final observation) unless ``bootstrap_truncation`` is off), runs the algorithm's update (PPO,
PPO-penalty, TRPO or NPG) and records diagnostics. Iterations run under one ``lax.scan``
(PureJaxRL, Lu et al. 2022). The running statistics of observation normalisation and reward
scaling (``normalize_obs``, ``scale_rewards``; :mod:`course_lib.rl.normalize`) travel in the
loop's carry with the environments' state.

Compilation is the expensive part on a laptop, so the program is compiled once per
*structure*: the config's numeric fields (δ, ε, learning rate, ...) and the seed are traced
arguments, and a persistent compilation cache (``.cache/jax`` in the project, or
``~/.cache/course_lib/jax``) lets a new kernel skip the compile as well.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validate import check_seed
from course_lib.rl.algos import get_algo, init_opt_state
from course_lib.rl.config import TrainConfig, check_numeric
from course_lib.rl.envs import JAX_ENV_IDS, env_spec, make_env
from course_lib.rl.networks import ActorCritic, Params, model_from_config
from course_lib.rl.normalize import (
    Normalizers,
    RunningMeanStd,
    init_normalizers,
    normalize,
    observe,
    scale_rewards,
)
from course_lib.rl.rollout import (
    Batch,
    Trajectory,
    explained_variance,
    policy_diagnostics,
    reset_envs,
    run_envs,
    trajectory_batch,
)

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
      obs_stats: with ``normalize_obs``, the observation statistics at the end of training
        (:class:`~course_lib.rl.normalize.RunningMeanStd`, ``mean``/``var`` ``[O]``): the
        networks expect observations normalised by them, and :func:`course_lib.evaluate`
        applies them frozen. None without ``normalize_obs``.
    """

    params: Params
    env_steps: np.ndarray
    mean_return: np.ndarray
    diagnostics: dict[str, np.ndarray]
    obs_stats: RunningMeanStd | None = None


# ------------------------------------------------------------------------------------------
# Static/numeric split of the config
# ------------------------------------------------------------------------------------------


def _structure(config: TrainConfig) -> TrainConfig:
    """The config with every numeric field zeroed: the compile-cache key."""
    return dataclasses.replace(config, **{f: 0.0 for f in TrainConfig.numeric_fields()})


def numbers(config: TrainConfig) -> dict[str, jax.Array]:
    return {f: jnp.float32(getattr(config, f)) for f in TrainConfig.numeric_fields()}


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
    """The learner plus the state of the JAX-native environments: ``obs`` as the envs returned
    it (raw), ``norm`` the running statistics of the normalisers that are switched on."""

    learner: Learner
    env_state: Any
    obs: jax.Array
    ep_return: jax.Array
    norm: Normalizers = Normalizers()


def initial_params(static: TrainConfig, seeds) -> Params:
    """The starting networks of ``seeds`` (ints), drawn on the host: ``Params`` of ``[S, P]``
    and ``[S, V]`` NumPy arrays (:meth:`~course_lib.rl.networks.ActorCritic.init_numpy`)."""
    model = model_from_config(static)
    pis, vs = zip(*(model.init_numpy(int(s)) for s in np.atleast_1d(seeds)))
    return Params(np.stack(pis), np.stack(vs))


def _init_learner(static: TrainConfig, num: dict, seed: jax.Array,
                  params: Params | None = None) -> Learner:
    model = model_from_config(static)
    key, k_init = jax.random.split(jax.random.key(seed))
    if params is None:
        params = Params(*model.init(k_init))
    opt_state = init_opt_state(static.algo, params, num["max_grad_norm"])
    return Learner(params, opt_state, key, num["beta"], jnp.zeros(()))


def init_carry(static: TrainConfig, num: dict, seed: jax.Array,
               params: Params | None = None) -> Carry:
    """The loop's state before the first iteration: the learner (networks, optimiser, key)
    and freshly reset environments. ``params`` are the starting networks
    (:func:`initial_params`, as :func:`train` uses); without them the networks are drawn
    in-graph from ``seed`` with :meth:`~course_lib.rl.networks.ActorCritic.init`."""
    learner = _init_learner(static, num, seed, params)
    key, k_env = jax.random.split(learner.key)
    env = make_env(static.env)
    env_part = reset_envs(env, k_env, static.num_envs)
    norm = init_normalizers(env.obs_dim, static.num_envs, static.normalize_obs,
                            static.scale_rewards)
    return Carry(learner._replace(key=key), *env_part, norm)


def learning_rate(static: TrainConfig, num: dict, it: jax.Array) -> jax.Array:
    """``lr`` at iteration ``it``: decayed linearly to 0 over the run when ``anneal_lr``."""
    frac = 1.0 - it.astype(jnp.float32) / static.iterations if static.anneal_lr else 1.0
    return num["lr"] * frac


def _learn(
    static: TrainConfig, num: dict, learner: Learner, traj: Trajectory,
    ret_sum: jax.Array, ep_count: jax.Array, it: jax.Array,
):
    """GAE, the algorithm's update and the diagnostics of one iteration."""
    model = model_from_config(static)
    key, k_update = jax.random.split(learner.key)
    batch = _batch(static, num, model, learner, traj)
    lr = learning_rate(static, num, it)
    beta = learner.beta
    algo = get_algo(static.algo)
    params, opt_state, diag = algo.update(static, num, learner.params, learner.opt_state, batch,
                                          k_update, model, lr, beta)
    pdiag = policy_diagnostics(model, params.policy, batch, num["eps"])
    beta = algo.next_beta(beta, pdiag["kl"], num)
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


def _roll(static: TrainConfig, num: dict, carry: Carry):
    """Split the learner's key and run the envs for one iteration (:func:`run_envs`)."""
    key, k_roll = jax.random.split(carry.learner.key)
    learner = carry.learner._replace(key=key)
    env_part = (carry.env_state, carry.obs, carry.ep_return, carry.norm)
    return learner, run_envs(make_env(static.env), model_from_config(static),
                             learner.params.policy, env_part, k_roll, static.num_steps,
                             clip_actions=static.clip_actions, gamma=num["gamma"])


def _batch(static: TrainConfig, num: dict, model: ActorCritic, learner: Learner, traj) -> Batch:
    return trajectory_batch(model, learner.params.value, traj, num["gamma"], num["gae_lambda"],
                            static.normalize_advantages == "batch",
                            bootstrap_truncation=static.bootstrap_truncation)


def iteration(static: TrainConfig, num: dict, carry: Carry, it: jax.Array):
    """One iteration of training: roll out, GAE, the algorithm's update, diagnostics.

    ``static``/``num`` from :func:`prepare`/:func:`numbers`; ``carry`` from :func:`init_carry`.
    Returns the next :class:`Carry` and ``(mean_return, diagnostics)`` of the iteration.
    """
    learner, (env_part, traj, ret_sum, ep_count) = _roll(static, num, carry)
    learner, out = _learn(static, num, learner, traj, ret_sum, ep_count, it)
    return Carry(learner, *env_part), out


def training_batch(static: TrainConfig, num: dict, carry: Carry, it: jax.Array):
    """The batch, learning rate and key that the training loop's iteration ``it`` updates on.

    The first half of :func:`iteration`, with the same pieces: split the learner's key, roll
    out ``num_envs × num_steps`` steps (:func:`course_lib.rl.rollout.run_envs`, with the
    config's observation normalisation, reward scaling and action clipping),
    compute GAE advantages with the critic (bootstrapping truncated episodes), normalise
    them over the batch when ``normalize_advantages == "batch"``, and anneal the learning rate
    to ``lr · (1 − it / iterations)`` when ``anneal_lr``.

    Args:
      static: the config's structure (:func:`prepare`).
      num: its numeric fields as float32 scalars (:func:`numbers`).
      carry: a :class:`Carry` (learner and environment state, :func:`init_carry`).
      it: the iteration index (int32 scalar).

    Returns:
      ``(batch, lr, k_update)``: a :class:`course_lib.rl.rollout.Batch` of ``[N]`` rows, the
      learning rate of this iteration and the key ``ppo_update`` receives in training.
    """
    model = model_from_config(static)
    learner, (_, traj, _, _) = _roll(static, num, carry)
    _, k_update = jax.random.split(learner.key)
    return _batch(static, num, model, learner, traj), learning_rate(static, num, it), k_update


def _run_chunk(static: TrainConfig, num: dict, carry: Carry, iters: jax.Array):
    return jax.lax.scan(lambda c, i: iteration(static, num, c, i), carry, iters)


_init_jit = jax.jit(init_carry, static_argnums=0)
_chunk_jit = jax.jit(_run_chunk, static_argnums=0)
_init_many = jax.jit(jax.vmap(init_carry, in_axes=(None, 0, 0, 0)), static_argnums=0)
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


def _drive(static, num, seeds, params, init_fn, chunk_fn, steps, desc):
    chunks = _chunks(static.iterations, steps)
    carry = init_fn(static, num, seeds, params)
    outs = []
    with _progress(static.iterations, desc, disable=len(chunks) == 1) as bar:
        for iters in chunks:
            carry, out = chunk_fn(static, num, carry, jnp.asarray(iters, jnp.int32))
            outs.append(out)
            bar.update(len(iters))
    mean_return, diag = jax.tree.map(lambda *xs: np.concatenate(xs, axis=-1), *outs)
    return carry.learner.params, mean_return, diag, carry.norm.obs


def check_finite(named: dict[str, Any], allow_inf: tuple[str, ...] = ()) -> None:
    """Raise ``FloatingPointError`` naming the first quantity of ``named`` (arrays ``[..., I]``,
    iterations last) that went NaN, or ±inf unless its name is in ``allow_inf``, and the
    iteration where it first did."""
    first = None
    for name, values in named.items():
        values = np.asarray(values)
        bad = np.isnan(values) if name in allow_inf else ~np.isfinite(values)
        if bad.any():
            it = int(np.argmax(bad.reshape(-1, bad.shape[-1]).any(axis=0)))
            if first is None or it < first[1]:
                first = (name, it)
    if first is not None:
        raise FloatingPointError(
            f"training went non-finite: {first[0]} is NaN/inf at iteration {first[1]}"
        )


def _check_finite(mean_return: np.ndarray, diag: dict[str, np.ndarray]) -> None:
    """:func:`check_finite` of a training run's curves; the largest ratio may be inf."""
    check_finite({"mean_return": mean_return, **diag}, allow_inf=("max_ratio",))


def prepare(config: TrainConfig) -> TrainConfig:
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    config.validate()
    env_spec(config.env)
    enable_compilation_cache()
    return _structure(config)


def _env_steps(config: TrainConfig) -> np.ndarray:
    return (np.arange(1, config.iterations + 1) * config.batch_size).astype(np.int64)


def train(config: TrainConfig, seed: int = 0) -> TrainResult:
    """Train one agent; see :class:`TrainResult`.

    The seed and the config's numeric fields are traced: a second call that changes only
    those reuses the compiled program. Raises ``FloatingPointError`` when a quantity goes
    non-finite (naming it and the iteration).
    """
    static = prepare(config)
    seed = check_seed(seed)
    num = numbers(config)
    if config.env not in JAX_ENV_IDS:
        params, mean_return, diag, obs_stats = _train_gymnasium(static, num, seed)
        _check_finite(mean_return, diag)
        return TrainResult(params, _env_steps(config), mean_return, diag, obs_stats)
    start = jax.tree.map(lambda x: jnp.asarray(x[0]), initial_params(static, [seed]))
    params, mean_return, diag, obs_stats = _drive(
        static, num, jnp.int32(seed), start, _init_jit, _chunk_jit, config.total_steps,
        f"{config.algo} {config.env}",
    )
    _check_finite(mean_return, diag)
    return TrainResult(params, _env_steps(config), mean_return, diag, obs_stats)


def train_many(config: TrainConfig, seeds, **sweep) -> TrainResult:
    """Train a grid of agents in ONE compiled, vmapped call.

    ``sweep`` maps numeric field names to lists of values (``delta=[0.001, 0.01, 0.1]``);
    the grid is the outer product of the swept values (in keyword order) and the seeds, and
    every array of the result gains those leading axes, e.g. ``mean_return [3, S, I]``
    (``obs_stats`` too). Structural fields (switches such as ``normalize_obs``) come from
    ``config``: one call trains one structure.
    The grid is spread over all local devices (``jax.sharding``).
    """
    static = prepare(config)
    seeds = [check_seed(s) for s in np.atleast_1d(np.asarray(seeds)).tolist()]
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
    num, seed_arr, start = _shard(num, seed_arr, initial_params(static, np.unique(seed_arr)))
    params, mean_return, diag, obs_stats = _drive(
        static, num, seed_arr, start, _init_many, _chunk_many, config.total_steps * len(grid),
        f"{config.algo} {config.env} ×{len(grid)}",
    )
    unpad = lambda x: np.asarray(x)[: len(grid)].reshape(shape + np.shape(x)[1:])
    mean_return, diag = unpad(mean_return), {k: unpad(v) for k, v in diag.items()}
    _check_finite(mean_return, diag)
    params = jax.tree.map(lambda x: jnp.asarray(unpad(x)), params)
    obs_stats = jax.tree.map(lambda x: jnp.asarray(unpad(x)), obs_stats)
    env_steps = np.broadcast_to(_env_steps(config), shape + (config.iterations,))
    return TrainResult(params, env_steps, mean_return, diag, obs_stats)


def _shard(num: dict, seeds: np.ndarray, params: Params):
    """Pad the grid to a multiple of the device count and lay it out over the devices, with
    each grid point's starting networks (``params`` of the sorted unique seeds)."""
    devices = jax.local_devices()
    g = len(seeds)
    pad = (-g) % len(devices)
    if pad:
        num = {k: np.concatenate([v, np.repeat(v[-1:], pad)]) for k, v in num.items()}
        seeds = np.concatenate([seeds, np.repeat(seeds[-1:], pad)])
    mesh = jax.sharding.Mesh(np.array(devices), ("grid",))
    spec = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("grid"))
    put = lambda x: jax.device_put(jnp.asarray(x), spec)
    row = np.searchsorted(np.unique(seeds), seeds)
    return ({k: put(v) for k, v in num.items()}, put(seeds),
            jax.tree.map(lambda x: put(x[row]), params))


# ------------------------------------------------------------------------------------------
# Any other gymnasium environment: rollouts on the host, the same jitted update
# ------------------------------------------------------------------------------------------


def _host_learn(static, num, learner, obs, actions, rewards, terminated, done, final_obs, ret_sum,
                ep_count, it):
    model = model_from_config(static)
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
    same jitted code as the JAX-native path, and so are the normalisers
    (:func:`~course_lib.rl.normalize.observe`, :func:`~course_lib.rl.normalize.scale_rewards`,
    called step by step). Much slower, but any environment works.
    """
    import gymnasium

    model = model_from_config(static)
    spec = env_spec(static.env)
    venv = gymnasium.make_vec(
        static.env, num_envs=static.num_envs, vectorization_mode="sync",
        vector_kwargs={"autoreset_mode": gymnasium.vector.AutoresetMode.SAME_STEP},
    )
    act = jax.jit(lambda p, o, k: model.sample(model.policy(p, o), k))
    start = jax.tree.map(lambda x: jnp.asarray(x[0]), initial_params(static, [seed]))
    learner = jax.jit(_init_learner, static_argnums=0)(static, num, jnp.int32(seed), start)
    rng = np.random.default_rng(seed)
    key = jax.random.key(seed + 1)
    norm = init_normalizers(spec.obs_dim, static.num_envs, static.normalize_obs,
                            static.scale_rewards)
    wrapped = static.normalize_obs or static.scale_rewards
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
                seen = obs
                if wrapped:
                    norm, seen = _observe_jit(norm, jnp.asarray(obs, jnp.float32))
                a = np.asarray(act(learner.params.policy, jnp.asarray(seen, jnp.float32), k))
                clip = static.clip_actions and not spec.discrete
                env_a = np.clip(a, spec.action_low, spec.action_high) if clip else a
                next_obs, rew, term, trunc, info = venv.step(env_a)
                done = term | trunc
                final = np.array(next_obs, dtype=np.float32)
                if done.any():
                    for i in np.flatnonzero(done):
                        final[i] = info["final_obs"][i]
                if wrapped:
                    if norm.obs is not None:
                        final = _normalize_jit(norm.obs, jnp.asarray(final))
                    norm, learn_rew = _scale_jit(norm, jnp.asarray(rew, jnp.float32),
                                                 jnp.asarray(done), num["gamma"])
                else:
                    learn_rew = rew
                obs_row, obs = seen, next_obs
                ep_return += rew
                ret_sum += float(ep_return[done].sum())
                ep_count += int(done.sum())
                ep_return[done] = 0.0
                for name, v in zip(cols, (obs_row, a, learn_rew, term, done, final)):
                    cols[name].append(np.asarray(v))
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
    return learner.params, mean_return, diag, norm.obs


_observe_jit = jax.jit(observe)
_normalize_jit = jax.jit(normalize)
_scale_jit = jax.jit(scale_rewards)


# ------------------------------------------------------------------------------------------
# Evaluation in the real gymnasium environment
# ------------------------------------------------------------------------------------------
