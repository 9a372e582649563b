"""Lesson 10, the rest of PPO: the full objective and the implementation details, each ablated.

The PPO that people run is more than the clipped surrogate. Its minibatch loss (Schulman et
al. 2017, eq. 9, with the coefficients named as in :class:`~course_lib.rl.config.TrainConfig`)
is the negative of

    L^CLIP(θ) − vf_coef·L^VF(φ) + ent_coef·E_t[H(π_θ(·|s_t))],
    L^VF(φ) = ½·E_t[(V_φ(s_t) − Ĝ_t)²],   Ĝ_t = Â_t + V_old(s_t)  (the GAE return),

and around it sit the "code-level optimisations" of the reference implementation (Engstrom et
al. 2020, "Implementation Matters in Deep Policy Gradients"; Huang et al. 2022, "The 37
Implementation Details of Proximal Policy Optimization"): value-loss clipping, the entropy
bonus, advantage normalisation, learning-rate annealing, global gradient clipping,
observation normalisation, reward scaling, bootstrapping at time limits, action clipping,
orthogonal initialisation and Adam's eps.

This module holds what the lesson needs to ablate them:

* :data:`DETAILS`, a table of :class:`Detail`: what each one is and why, the
  :class:`TrainConfig` field and values that switch it on and off, the environments it applies
  to and the course_lib function that implements it (:func:`implementation` quotes the line);
* :func:`plan_calls` turns the details into ``train_many`` calls: every structural switch
  (one compiled program each) gets its own call, the numeric ones are swept together with the
  full recipe in one call (an outer product, so pairs of numeric ablations come for free);
* :func:`ablation_grid` runs the plan for one environment over ≥ 10 seeds and keeps what the
  tables and the panel read (:class:`AblationGrid`, learning curves and per-update
  diagnostics, no parameters); :func:`save_grids` / :func:`load_grids` store the grids the
  lesson reads (:data:`ABLATIONS_FILE`, trained once by ``scripts/make_ablations.py``: the
  full grids take minutes, the lesson a minute at most);
* :func:`summarize_run` / :func:`ablation_rows` give each variant's final return as an
  interquartile mean with its 95 % bootstrap interval and its difference to the full recipe
  (within or beyond the noise of the seeds), the same for the mean return over training, the
  mean and largest KL(π_old‖π_new) per update and the clip fraction (tables:
  :func:`format_returns`, :func:`format_kl`); :func:`kl_effects` answers Engstrom et al.'s
  question: which details hold the KL, which only change the return;
* :func:`combination_view` is what the lesson's panel shows for a set of switched details.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import itertools
import json
import math
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validate import check_int_at_least
from course_lib.lessons.common import final_return
from course_lib.lessons.stats import Difference, Estimate, iqm_difference, iqm_interval
from course_lib.rl.config import TrainConfig
from course_lib.rl.envs import make_env
from course_lib.rl.networks import ActorCritic, Dist, Params, model_from_config
from course_lib.rl.rollout import Batch, reset_envs, run_envs
from course_lib.rl.train import train_many

__all__ = [
    "ABLATIONS_FILE",
    "DETAILS",
    "ENVS",
    "MAX_GRID",
    "MIN_SEEDS",
    "PENDULUM_ITERATIONS",
    "SEEDS",
    "VERDICTS",
    "AblationGrid",
    "AblationRow",
    "Call",
    "ClipCheck",
    "CombinationView",
    "Detail",
    "Implementation",
    "KLEffect",
    "LossTerms",
    "Recommendation",
    "RunCurves",
    "RunSummary",
    "ablation_change",
    "ablation_grid",
    "ablation_rows",
    "clip_actions_check",
    "combination_view",
    "detail_table",
    "format_effects",
    "format_kl",
    "format_plan",
    "format_returns",
    "format_summary",
    "implementation",
    "kl_effects",
    "load_grids",
    "loss_terms",
    "plan_calls",
    "recipe_config",
    "recommend",
    "run_key",
    "run_plan",
    "save_grids",
    "split_details",
    "summarize_run",
    "switched",
    "trust_region",
]

ENVS = ("CartPole-v1", "Pendulum-v1")
"""The two environments of the lesson: discrete (categorical policy) and continuous (Gaussian)."""

MIN_SEEDS = 10
"""An ablation compares settings over at least this many seeds (DESIGN §7)."""

PENDULUM_ITERATIONS = 50
"""Pendulum runs as in lesson 08: ``for_env`` settings, 50 iterations of 8 × 256 steps."""


# ------------------------------------------------------------------------------------------
# The full objective, term by term
# ------------------------------------------------------------------------------------------


class LossTerms(NamedTuple):
    """The terms of PPO's minibatch objective at some parameters (scalars).

    ``loss = −clip_objective + vf_coef·value_loss − ent_coef·entropy`` is what Adam minimises
    (``course_lib.rl.ppo.ppo_loss``); ``value_loss`` already holds the ½ of L^VF.
    """

    clip_objective: jax.Array
    value_loss: jax.Array
    entropy: jax.Array
    loss: jax.Array


def loss_terms(params: Params | tuple, batch: Batch, model: ActorCritic, *, eps: float,
               vf_coef: float, ent_coef: float, clip_value: bool = False) -> LossTerms:
    """PPO's objective split into its three terms (Schulman et al. 2017, eq. 9).

    * ``clip_objective`` = L^CLIP = E[min(r·Â, clip(r, 1−ε, 1+ε)·Â)], r = π_θ(a|s)/π_old(a|s);
    * ``value_loss`` = L^VF = ½·E[(V_φ(s) − Ĝ)²], Ĝ = ``batch.returns``; with ``clip_value``
      the PPO2 form ½·E[max((V − Ĝ)², (V_old + clip(V − V_old, −ε, ε) − Ĝ)²)];
    * ``entropy`` = E[H(π_θ(·|s))];
    * ``loss`` = −L^CLIP + vf_coef·L^VF − ent_coef·H, the quantity Adam minimises.

    ``params``: ``(policy [P], value [V])``; ``batch``: a :class:`Batch` of ``[N]`` rows.
    Raises ``ValueError`` naming ``eps``, ``vf_coef`` or ``ent_coef`` when negative.
    """
    for name, value in (("eps", eps), ("vf_coef", vf_coef), ("ent_coef", ent_coef)):
        if not float(value) >= 0.0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    pi_params, v_params = params
    dist: Dist = model.policy(pi_params, batch.obs)
    ratio = jnp.exp(model.log_prob(dist, batch.actions) - batch.logp_old)
    clipped = jnp.clip(ratio, 1.0 - eps, 1.0 + eps)
    l_clip = jnp.mean(jnp.minimum(ratio * batch.advantages, clipped * batch.advantages))
    values = model.value(v_params, batch.obs)
    err = jnp.square(values - batch.returns)
    if clip_value:
        v_clipped = batch.values_old + jnp.clip(values - batch.values_old, -eps, eps)
        err = jnp.maximum(err, jnp.square(v_clipped - batch.returns))
    l_vf = 0.5 * jnp.mean(err)
    entropy = jnp.mean(model.entropy(dist))
    return LossTerms(l_clip, l_vf, entropy, -l_clip + vf_coef * l_vf - ent_coef * entropy)


# ------------------------------------------------------------------------------------------
# The table of details
# ------------------------------------------------------------------------------------------


class Detail(NamedTuple):
    """One implementation detail of PPO and the switch that ablates it.

    Attributes:
      key: a short id (``"clip_value"``), also the panel's checkbox name.
      name: what the lesson calls it ("value-loss clipping").
      what: one line: what it does and why.
      field: the :class:`TrainConfig` field that switches it.
      on, off: the field's value with the detail on and off. The ablation sets the other one
        of the two than the recipe has (:func:`ablation_change`).
      envs: the environments it applies to (action clipping needs continuous actions).
      implemented_by: ``"module:function"`` in course_lib that implements it.
      marker: text on the implementing line (:func:`implementation` quotes that line).
      source: where it is documented (Huang et al. 2022's list, Engstrom et al. 2020's).
      note: why it is not trained on an environment it is not listed for (empty: it does not
        apply there).
    """

    key: str
    name: str
    what: str
    field: str
    on: Any
    off: Any
    envs: tuple[str, ...]
    implemented_by: str
    marker: str
    source: str
    note: str = ""


DETAILS: tuple[Detail, ...] = (
    Detail("clip", "the clip itself",
           "r is clipped to [1−ε, 1+ε] inside a min, so a sample gains nothing from pushing r "
           "further; PPO's stand-in for TRPO's trust region",
           "clip", True, False, ENVS, "course_lib.rl.ppo:ppo_loss",
           "clipped_surrogate(logp, mb.logp_old", "PPO paper eq. 7; Huang core #8"),
    Detail("clip_value", "value-loss clipping",
           "the critic's squared error is the larger of the plain one and that of a prediction "
           "kept within ε of the old value: meant to keep the critic near its old self too",
           "clip_value", True, False, ENVS, "course_lib.rl.ppo:ppo_loss",
           "clipped = mb.values_old + jnp.clip(", "Huang core #9; Engstrom #1"),
    Detail("ent_coef", "entropy bonus",
           "ent_coef·H[π(·|s)] is added to the objective: a push towards more random actions, "
           "to keep exploring",
           "ent_coef", 0.01, 0.0, ENVS, "course_lib.rl.ppo:ppo_loss",
           "hp.ent_coef", "PPO paper eq. 9; Huang core #10"),
    Detail("normalize_advantages", "advantage normalisation",
           "Â rescaled to zero mean and unit std over the batch: the size of a step no longer "
           "depends on the scale of the rewards",
           "normalize_advantages", "batch", "none", ENVS, "course_lib.rl.rollout:trajectory_batch",
           "normalise(flat(adv)", "Huang core #7 (there per minibatch)"),
    Detail("anneal_lr", "learning-rate annealing",
           "Adam's step size α decays linearly to 0 over the run: late updates are small",
           "anneal_lr", True, False, ENVS, "course_lib.rl.train:learning_rate",
           "static.anneal_lr", "Huang core #4; Engstrom #4"),
    Detail("max_grad_norm", "global gradient clipping",
           "each minibatch gradient (policy and critic together) is rescaled so that its norm "
           "is at most max_grad_norm before Adam sees it",
           "max_grad_norm", 0.5, math.inf, ENVS, "course_lib.rl.ppo:optimizer",
           "clip_by_global_norm", "Huang core #11; Engstrom #9"),
    Detail("adam_eps", "Adam's eps",
           "the constant in Adam's denominator √v̂ + eps: PPO's code uses 1e-5 where PyTorch "
           "defaults to 1e-8; a larger one damps steps of parameters with tiny gradients",
           "adam_eps", 1e-5, 1e-8, ENVS, "course_lib.rl.ppo:optimizer",
           "scale_by_adam", "Huang core #3"),
    Detail("ortho_init", "orthogonal initialisation",
           "orthogonal weights with gains √2 (hidden), 0.01 (policy output) and 1 (value "
           "output), zero biases: the first policy is close to uniform / zero-mean",
           "ortho_init", True, False, ENVS, "course_lib.rl.networks:_mlp_leaf",
           "return orthogonal_numpy(", "Huang core #2; Engstrom #3"),
    Detail("normalize_obs", "observation normalisation",
           "observations standardised by a running mean and variance (and clipped), so every "
           "input of the networks has a similar scale",
           "normalize_obs", True, False, ENVS, "course_lib.rl.normalize:normalize",
           "jnp.clip((x - mean) / std", "Huang continuous #6-7; Engstrom #6-7"),
    Detail("scale_rewards", "reward scaling",
           "rewards divided by the running std of the discounted return: the critic's targets "
           "and the value loss keep a scale near 1",
           "scale_rewards", True, False, ENVS, "course_lib.rl.normalize:scale_rewards",
           "scaled = reward / jnp.sqrt(", "Huang continuous #8; Engstrom #2"),
    Detail("bootstrap_truncation", "bootstrapping at time limits",
           "an episode cut by the time limit is not a terminal state: its GAE target "
           "bootstraps with V of the last observation instead of 0",
           "bootstrap_truncation", True, False, ENVS, "course_lib.rl.rollout:trajectory_batch",
           "terminations = traj.terminated if bootstrap_truncation", "Huang core #5 (note)"),
    Detail("clip_actions", "action clipping",
           "a Gaussian sample is clipped to the action bounds before the environment sees it; "
           "the unclipped sample is what the log-probability is computed from",
           "clip_actions", True, False, (), "course_lib.rl.rollout:run_envs",
           "env_action = jnp.clip(", "Huang continuous #5",
           "continuous actions only, and Pendulum-v1 clips its torque itself: the switch changes "
           "nothing there (clip_actions_check shows it without training)"),
)
"""The details of the lesson, in the order it discusses them."""


def split_details(details: Sequence[Detail] = DETAILS,
                  env: str | None = None) -> tuple[list[Detail], list[tuple[Detail, str]]]:
    """``(run, skipped)``: the details that can be ablated (on ``env`` when given) and, for the
    others, ``(detail, reason)`` with the reason in words."""
    run, skipped = [], []
    for d in details:
        if env is not None and env not in d.envs:
            skipped.append((d, d.note or f"does not apply to {env}"))
        else:
            run.append(d)
    return run, skipped


def ablation_change(detail: Detail, base: TrainConfig) -> dict[str, Any]:
    """``{field: value}`` that switches ``detail`` away from what ``base`` has: its ``off``
    value when the recipe has it on, its ``on`` value when the recipe has it off.

    Raises ``ValueError`` naming ``base`` when the recipe's value is neither (the table's entry
    then does not describe this recipe), or naming ``detail`` when the field does not exist.
    """
    if not isinstance(base, TrainConfig):
        raise TypeError(f"base must be a TrainConfig, got {type(base).__name__}")
    if not hasattr(base, detail.field):
        raise ValueError(f"detail {detail.key!r}: TrainConfig has no field {detail.field!r}")
    value = getattr(base, detail.field)
    if _same(value, detail.on):
        return {detail.field: detail.off}
    if _same(value, detail.off):
        return {detail.field: detail.on}
    raise ValueError(f"base has {detail.field}={value!r}, neither the detail's on "
                     f"({detail.on!r}) nor its off ({detail.off!r}) value")


def _same(a, b) -> bool:
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return bool(np.isclose(float(a), float(b), rtol=1e-9, atol=0.0) or a == b)
    return type(a) is type(b) and a == b


def switched(detail: Detail, base: TrainConfig) -> str:
    """``"off"`` when the ablation turns ``detail`` off (the recipe has it on), else ``"on"``."""
    return "off" if _same(getattr(base, detail.field), detail.on) else "on"


def recipe_config(env: str) -> TrainConfig:
    """The full recipe the lesson ablates on ``env``: the course's defaults for CartPole-v1
    (``TrainConfig()``) and lesson 08's Pendulum-v1 settings (``TrainConfig.for_env`` with
    :data:`PENDULUM_ITERATIONS` iterations instead of 80)."""
    if env == "CartPole-v1":
        return TrainConfig()
    if env == "Pendulum-v1":
        base = TrainConfig.for_env("Pendulum-v1")
        return base.replace(total_steps=base.batch_size * PENDULUM_ITERATIONS)
    raise ValueError(f"env must be one of {ENVS}, got {env!r}")


def trust_region(env: str) -> float:
    """The yardstick for a KL per update on ``env``: TRPO's δ in the course's tuned settings
    (``TrainConfig.for_env(env, "trpo").delta``: 0.01 on CartPole-v1, 0.02 on Pendulum-v1)."""
    return float(TrainConfig.for_env(env, "trpo").delta)


class ClipCheck(NamedTuple):
    """Two rollouts of one policy from the same random numbers, actions clipped or not.

    Attributes:
      outside: fraction of the sampled actions outside the env's action bounds.
      reward_diff, obs_diff: the largest absolute difference between the two rollouts'
        rewards and next observations (0.0: the environment saw no difference).
    """

    outside: float
    reward_diff: float
    obs_diff: float


def clip_actions_check(env: str = "Pendulum-v1", seed: int = 0, num_envs: int = 8,
                       num_steps: int = 200) -> ClipCheck:
    """Does ``clip_actions`` change what ``env`` does? Roll the recipe's untrained policy
    (:func:`recipe_config`, networks from ``seed``) out for ``num_steps`` steps of ``num_envs``
    environments twice, with ``run_envs(..., clip_actions=True)`` and ``False`` and the same
    key, and compare. Pendulum-v1 clips the torque itself, so its rewards and observations come
    out identical although some sampled actions lie outside [−2, 2]. Raises ``ValueError``
    naming ``env`` for discrete actions (never clipped)."""
    check_int_at_least(num_envs, 1, "num_envs")
    check_int_at_least(num_steps, 1, "num_steps")
    jax_env = make_env(env)
    if jax_env.discrete:
        raise ValueError(f"env must have continuous actions, {env!r} has discrete ones")
    model = model_from_config(recipe_config(env) if env in ENVS else TrainConfig(env=env))
    policy = jnp.asarray(model.init_numpy(seed)[0])
    k_reset, k_run = jax.random.split(jax.random.key(seed))
    env_part = reset_envs(jax_env, k_reset, num_envs)
    roll = jax.jit(run_envs, static_argnames=("env", "model", "num_steps", "clip_actions"))
    _, clipped, _, _ = roll(jax_env, model, policy, env_part, k_run, num_steps, clip_actions=True)
    _, raw, _, _ = roll(jax_env, model, policy, env_part, k_run, num_steps, clip_actions=False)
    actions = np.asarray(raw.actions)
    outside = (actions < jax_env.action_low) | (actions > jax_env.action_high)
    return ClipCheck(float(np.mean(outside)),
                     float(np.max(np.abs(np.asarray(clipped.rewards) - np.asarray(raw.rewards)))),
                     float(np.max(np.abs(np.asarray(clipped.final_obs) - np.asarray(raw.final_obs)))))


# ------------------------------------------------------------------------------------------
# Where each detail lives in course_lib
# ------------------------------------------------------------------------------------------


class Implementation(NamedTuple):
    """A line of course_lib: ``ref`` is ``"module:function"``, ``line`` the stripped source line."""

    ref: str
    line: str


def _function(ref: str) -> Callable:
    module_name, _, qualname = ref.partition(":")
    if not module_name.startswith("course_lib.") or not qualname:
        raise ValueError(f"ref must look like 'course_lib.module:function', got {ref!r}")
    obj: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return inspect.unwrap(obj)


def _line_with(fn: Callable, marker: str) -> str | None:
    for line in inspect.getsource(fn).splitlines():
        if marker in line:
            return line.strip()
    return None


def implementation(detail: Detail) -> Implementation:
    """The course_lib line that implements ``detail``: the first line of
    ``detail.implemented_by`` holding ``detail.marker``. Raises ``ValueError`` naming
    ``detail`` when the function has no such line (the table no longer matches the code)."""
    line = _line_with(_function(detail.implemented_by), detail.marker)
    if line is None:
        raise ValueError(f"detail {detail.key!r}: no line of {detail.implemented_by} "
                         f"holds {detail.marker!r}")
    return Implementation(detail.implemented_by, line)


def detail_table(details: Sequence[Detail] = DETAILS, width: int = 100) -> str:
    """The table of details as text: per detail its name, field, on/off values, environments,
    and the implementing function with its line quoted."""
    out = []
    for d in details:
        envs = ", ".join(d.envs) if d.envs else "no env of the lesson"
        out.append(f"{d.name}: {d.field} on = {_fmt_value(d.on)}, off = {_fmt_value(d.off)}; "
                   f"{envs}; {d.source}")
        if not d.envs and d.note:
            out.append(f"    not trained: {d.note}")
        impl = implementation(d)
        out.append(f"    {impl.ref}")
        out.append("        " + textwrap.shorten(impl.line, width=width - 8, placeholder=" …"))
    return "\n".join(out)


# ------------------------------------------------------------------------------------------
# The plan: which train_many calls train which variants
# ------------------------------------------------------------------------------------------


def run_key(keys: Iterable[str] = ()) -> frozenset[str]:
    """The key of a run: the set of detail keys switched away from the recipe (empty: the
    full recipe)."""
    return frozenset(keys)


class Call(NamedTuple):
    """One ``train_many(config, seeds, **sweep)`` call and the runs it trains.

    ``cells`` maps each run's key (:func:`run_key`) to its index into the sweep axes
    (``()`` when nothing is swept).
    """

    config: TrainConfig
    sweep: dict[str, list[float]]
    cells: dict[frozenset[str], tuple[int, ...]]


def plan_calls(details: Sequence[Detail], base: TrainConfig, max_grid: int = 4) -> list[Call]:
    """The ``train_many`` calls that train the full recipe ``base`` and every detail of
    ``details`` switched alone.

    A structural switch (a bool or str field) compiles its own program, so it gets its own
    call of ``base`` with that change. Numeric switches reuse the recipe's program: the first
    of them are swept in one call together with the recipe, as an outer product (recipe, each
    alone, and their combinations), as long as that grid has at most ``max_grid`` points; any
    further numeric switch gets a call of its own. Without numeric switches the recipe is a
    call of its own.
    """
    check_int_at_least(max_grid, 1, "max_grid")
    numeric_fields = set(TrainConfig.numeric_fields())
    numeric = [d for d in details if d.field in numeric_fields]
    structural = [d for d in details if d.field not in numeric_fields]
    keys = [d.key for d in details]
    if len(set(keys)) != len(keys):
        raise ValueError(f"details must have distinct keys, got {keys}")
    swept, alone = [], []
    for d in numeric:
        (swept if 2 ** (len(swept) + 1) <= max_grid else alone).append(d)
    calls: list[Call] = []
    sweep = {}
    for d in swept:
        ((_, value),) = ablation_change(d, base).items()
        sweep[d.field] = [float(getattr(base, d.field)), float(value)]
    cells = {}
    for index in itertools.product(*[range(2)] * len(swept)):
        cells[run_key(d.key for d, i in zip(swept, index) if i)] = tuple(index)
    calls.append(Call(base, sweep, cells))
    for d in alone + structural:
        calls.append(Call(base.replace(**ablation_change(d, base)), {}, {run_key([d.key]): ()}))
    return calls


class RunCurves(NamedTuple):
    """What is kept of one trained setting over S seeds and I iterations (no parameters).

    ``env_steps [I]``; ``mean_return``, ``kl`` (exact mean KL(π_old‖π_new) of the update on its
    batch), ``clipfrac`` (fraction of |r − 1| > ε), ``max_ratio`` (largest r): ``[S, I]``.
    """

    env_steps: np.ndarray
    mean_return: np.ndarray
    kl: np.ndarray
    clipfrac: np.ndarray
    max_ratio: np.ndarray


def _curves(result, index: tuple[int, ...]) -> RunCurves:
    take = lambda x: np.asarray(x, dtype=np.float64)[index] if index else np.asarray(x, np.float64)
    steps = np.asarray(result.env_steps).reshape(-1, np.shape(result.mean_return)[-1])[0]
    d = result.diagnostics
    return RunCurves(steps.astype(np.float64), take(result.mean_return), take(d["kl"]),
                     take(d["clipfrac"]), take(d["max_ratio"]))


def run_plan(calls: Sequence[Call], seeds: Sequence[int],
             train: Callable = train_many) -> tuple[dict[frozenset[str], RunCurves], list[float]]:
    """Run each :class:`Call` with ``train(config, seeds, **sweep)`` (``train_many``); returns
    the :class:`RunCurves` of every cell by key and the wall time of each call in seconds."""
    runs: dict[frozenset[str], RunCurves] = {}
    seconds = []
    for call in calls:
        start = time.perf_counter()
        result = train(call.config, list(seeds), **call.sweep)
        seconds.append(time.perf_counter() - start)
        for key, index in call.cells.items():
            runs[key] = _curves(result, index)
    return runs, seconds


class AblationGrid(NamedTuple):
    """Everything trained for one environment (what the tables and the panel read).

    Attributes:
      env: the gymnasium id. base: the full recipe. seeds: the training seeds.
      details: the details ablated here. changes: ``{key: {field: value}}`` of each ablation.
      runs: ``{run_key: RunCurves}``: the recipe (empty key), each detail alone, and the
        combinations the numeric sweep trained.
      skipped: ``(detail, reason)`` for the details of the table not run here.
      delta: the trust-region yardstick (:func:`trust_region`).
      seconds: wall time of each ``train_many`` call.
    """

    env: str
    base: TrainConfig
    seeds: tuple[int, ...]
    details: tuple[Detail, ...]
    changes: dict[str, dict[str, Any]]
    runs: dict[frozenset[str], RunCurves]
    skipped: tuple[tuple[Detail, str], ...]
    delta: float
    seconds: tuple[float, ...]


def ablation_grid(env: str, seeds: Sequence[int], details: Sequence[Detail] = DETAILS,
                  base: TrainConfig | None = None, max_grid: int = 4,
                  train: Callable = train_many, min_seeds: int = MIN_SEEDS) -> AblationGrid:
    """Train the full recipe and each applicable detail switched alone on ``env``
    (:func:`plan_calls`, one ``train_many`` call per structural variant, the numeric ones
    swept together), over ``seeds`` (at least ``min_seeds``), and keep the curves."""
    seeds = tuple(int(s) for s in seeds)
    check_int_at_least(min_seeds, 2, "min_seeds")
    if len(seeds) < min_seeds:
        raise ValueError(f"seeds must hold at least {min_seeds} seeds to compare settings, "
                         f"got {len(seeds)}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must be distinct, got {seeds}")
    base = recipe_config(env) if base is None else base
    if base.env != env:
        raise ValueError(f"base trains {base.env!r}, not env={env!r}")
    run, skipped = split_details(details, env)
    runs, seconds = run_plan(plan_calls(run, base, max_grid), seeds, train)
    changes = {d.key: ablation_change(d, base) for d in run}
    return AblationGrid(env, base, seeds, tuple(run), changes, runs, tuple(skipped),
                        trust_region(env), tuple(seconds))


ABLATIONS_FILE = Path(__file__).resolve().parents[1] / "data" / "ablations.npz"
"""The grids the lesson reads: :func:`ablation_grid` for each of :data:`ENVS` over
:data:`SEEDS`, stored by ``scripts/make_ablations.py`` (several minutes on 2 cores)."""

SEEDS = tuple(range(MIN_SEEDS))
"""The training seeds of the stored grids."""

MAX_GRID = {"CartPole-v1": 4, "Pendulum-v1": 2}
"""``max_grid`` of each environment's grid: CartPole also trains its two first numeric switches
together; Pendulum, the expensive half, trains each switch alone."""

_CURVES = RunCurves._fields


def _run_name(key: frozenset[str]) -> str:
    return "+".join(sorted(key)) or "recipe"


def save_grids(grids: Mapping[str, AblationGrid], path: Path | str = ABLATIONS_FILE) -> None:
    """Store ``{env: AblationGrid}`` as one ``.npz``: each run's curves as arrays
    (``"env/run/field"``) and the rest (recipe, seeds, details, changes, δ, call times) as JSON."""
    arrays, meta = {}, {}
    for env, g in grids.items():
        if g.env != env:
            raise ValueError(f"grids: the grid under {env!r} trains {g.env!r}")
        for key, curves in g.runs.items():
            for field in _CURVES:
                arrays[f"{env}/{_run_name(key)}/{field}"] = np.asarray(getattr(curves, field))
        meta[env] = {
            "base": dataclasses.asdict(g.base), "seeds": list(g.seeds),
            "details": [d.key for d in g.details], "changes": g.changes,
            "runs": [sorted(k) for k in g.runs], "skipped": [[d.key, why] for d, why in g.skipped],
            "delta": g.delta, "seconds": list(g.seconds),
        }
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), **arrays)


def load_grids(path: Path | str = ABLATIONS_FILE) -> dict[str, AblationGrid]:
    """The ``{env: AblationGrid}`` that :func:`save_grids` stored."""
    by_key = {d.key: d for d in DETAILS}
    grids = {}
    with np.load(path) as f:
        meta = json.loads(str(f["meta"]))
        for env, m in meta.items():
            base = TrainConfig(**{k: tuple(v) if isinstance(v, list) else v
                                  for k, v in m["base"].items()})
            runs = {}
            for names in m["runs"]:
                key = run_key(names)
                runs[key] = RunCurves(*(f[f"{env}/{_run_name(key)}/{field}"] for field in _CURVES))
            grids[env] = AblationGrid(
                env, base, tuple(m["seeds"]), tuple(by_key[k] for k in m["details"]),
                m["changes"], runs, tuple((by_key[k], why) for k, why in m["skipped"]),
                m["delta"], tuple(m["seconds"]))
    return grids


# ------------------------------------------------------------------------------------------
# Summaries and the answer to Engstrom et al.'s question
# ------------------------------------------------------------------------------------------


class RunSummary(NamedTuple):
    """One trained setting against the full recipe.

    Attributes:
      final: IQM over seeds of the final return (each seed's mean return over its last
        ``last`` iterations) with its 95 % bootstrap interval.
      training: the same for each seed's mean return over all iterations (the area under its
        learning curve per iteration: a measure of how fast it learned).
      diff, training_diff: IQM(setting) − IQM(recipe) of those two, with intervals (``None``
        for the recipe itself); ``.within_noise`` when the interval holds 0.
      mean_kl, max_kl: the mean and the largest KL(π_old‖π_new) per update, all seeds.
      above_delta: fraction of updates whose KL exceeds the trust region δ.
      clipfrac: mean clip fraction of the updates.
      kl_mean_diff, kl_max_diff: IQM differences (setting − recipe) of each seed's mean KL per
        update and of each seed's largest KL per update (``None`` for the recipe).
    """

    final: Estimate
    training: Estimate
    diff: Difference | None
    training_diff: Difference | None
    mean_kl: float
    max_kl: float
    above_delta: float
    clipfrac: float
    kl_mean_diff: Difference | None
    kl_max_diff: Difference | None


def summarize_run(curves: RunCurves, recipe: RunCurves | None, delta: float,
                  last: int = 5) -> RunSummary:
    """A :class:`RunSummary` of ``curves`` against the ``recipe``'s (``None``: it is the
    recipe). Bootstrap intervals from :mod:`course_lib.lessons.stats` (fixed resampling)."""
    if not delta > 0:
        raise ValueError(f"delta must be > 0, got {delta}")
    ret = np.asarray(curves.mean_return, dtype=np.float64)
    kl = np.asarray(curves.kl, dtype=np.float64)
    if ret.ndim != 2 or kl.shape != ret.shape:
        raise ValueError(f"curves must hold [seeds, iterations] arrays, got mean_return "
                         f"{ret.shape} and kl {kl.shape}")
    final, training = final_return(ret, last), ret.mean(axis=-1)
    diff = training_diff = kl_mean = kl_max = None
    if recipe is not None:
        base_ret = np.asarray(recipe.mean_return, dtype=np.float64)
        base_kl = np.asarray(recipe.kl, dtype=np.float64)
        diff = iqm_difference(final, final_return(base_ret, last))
        training_diff = iqm_difference(training, base_ret.mean(axis=-1))
        kl_mean = iqm_difference(kl.mean(axis=-1), base_kl.mean(axis=-1))
        kl_max = iqm_difference(kl.max(axis=-1), base_kl.max(axis=-1))
    return RunSummary(iqm_interval(final), iqm_interval(training), diff, training_diff,
                      float(kl.mean()), float(kl.max()), float(np.mean(kl > delta)),
                      float(np.mean(curves.clipfrac)), kl_mean, kl_max)


class AblationRow(NamedTuple):
    """One line of the ablation tables: the detail (``None`` for the full recipe), the change,
    whether it switched the detail ``"off"`` or ``"on"``, and the :class:`RunSummary`."""

    detail: Detail | None
    change: dict[str, Any]
    direction: str
    summary: RunSummary


def ablation_rows(grid: AblationGrid, last: int = 5) -> list[AblationRow]:
    """The full recipe, then each detail of ``grid`` switched alone, summarised."""
    recipe = grid.runs[run_key()]
    rows = [AblationRow(None, {}, "", summarize_run(recipe, None, grid.delta, last))]
    for d in grid.details:
        rows.append(AblationRow(d, grid.changes[d.key], switched(d, grid.base),
                                summarize_run(grid.runs[run_key([d.key])], recipe, grid.delta,
                                              last)))
    return rows


def _fmt_value(value) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:g}"
    return repr(value) if isinstance(value, str) else str(value)


def _change_text(change: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={_fmt_value(v)}" for k, v in change.items()) or "—"


def _signed(x: float, fmt: str) -> str:
    return ("+" if x >= 0 else "−") + f"{abs(x):{fmt}}"


def _diff_text(d: Difference | None, fmt: str) -> str:
    if d is None:
        return ""
    verdict = "within" if d.within_noise else "beyond"
    return f"{_signed(d.value, fmt)} [{_signed(d.lo, fmt)}, {_signed(d.hi, fmt)}] {verdict}"


def _table(head: Sequence[str], lines: Sequence[Sequence[str]]) -> str:
    widths = [max(len(r[k]) for r in (head, *lines)) for k in range(len(head))]
    fmt_line = lambda r: "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    return "\n".join([fmt_line(head), "  ".join("-" * w for w in widths), *map(fmt_line, lines)])


def _name(row: AblationRow) -> str:
    return "full recipe" if row.detail is None else row.detail.name


def format_returns(rows: Sequence[AblationRow], fmt: str = ".0f") -> str:
    """The returns of :func:`ablation_rows` as a text table: per setting whether the detail was
    switched off or on, the final return's IQM [95 % interval], and the differences to the
    recipe of the final return and of the mean return over training, each with its interval
    and "within"/"beyond" the noise of the seeds."""
    head = ("detail", "switched", "final return [95% CI]", "final - recipe [95% CI]",
            "training mean - recipe [95% CI]")
    lines = []
    for row in rows:
        s = row.summary
        lines.append((_name(row), row.direction or "—",
                      f"{s.final.value:{fmt}} [{s.final.lo:{fmt}}, {s.final.hi:{fmt}}]",
                      _diff_text(s.diff, fmt), _diff_text(s.training_diff, fmt)))
    return _table(head, lines)


def format_kl(rows: Sequence[AblationRow], delta: float) -> str:
    """The KL per update of :func:`ablation_rows` as a text table: per setting the mean and the
    largest KL(π_old‖π_new) of an update (all seeds), the share of updates above ``delta``,
    the mean clip fraction, and whether each seed's mean and largest KL moved against the
    recipe's beyond the noise (``higher``/``lower``) or not (``same``)."""
    head = ("detail", "mean KL", "max KL", f"KL > {delta:g}", "clip frac",
            "mean KL vs recipe", "max KL vs recipe")
    lines = []
    for row in rows:
        s = row.summary
        lines.append((_name(row), f"{s.mean_kl:.4f}", f"{s.max_kl:.3f}",
                      f"{100 * s.above_delta:.0f}%", f"{s.clipfrac:.3f}",
                      "" if s.kl_mean_diff is None else _effect(s.kl_mean_diff),
                      "" if s.kl_max_diff is None else _effect(s.kl_max_diff)))
    return _table(head, lines)


def _effect(diff: Difference | None) -> str:
    if diff is None or diff.within_noise:
        return "same"
    return "higher" if diff.value > 0 else "lower"


class KLEffect(NamedTuple):
    """How switching one detail moved the KL per update and the return, each judged against
    the noise of the seeds: ``"higher"``, ``"lower"`` or ``"same"`` (within the noise).

    ``direction`` is ``"off"`` when the switch turned the detail off (the recipe has it on) and
    ``"on"`` when it turned it on. ``final_return`` compares final returns, ``training_return``
    the mean return over training (how fast the runs learned).
    """

    detail: Detail
    direction: str
    mean_kl: str
    max_kl: str
    final_return: str
    training_return: str

    @property
    def holds_kl(self) -> bool:
        """The recipe has the detail on, and turning it off raised the mean or the largest KL
        per update beyond the noise: the detail keeps PPO's updates small."""
        return self.direction == "off" and "higher" in (self.mean_kl, self.max_kl)

    @property
    def moves_kl(self) -> bool:
        return self.mean_kl != "same" or self.max_kl != "same"

    @property
    def moves_return(self) -> bool:
        return self.final_return != "same" or self.training_return != "same"

    @property
    def verdict(self) -> str:
        """One of :data:`VERDICTS`: ``"holds the KL"`` (:attr:`holds_kl`); else, when the final
        return or the mean return over training moved beyond the noise, ``"changes the return
        and the KL"`` if a KL moved too and ``"changes the return only"`` if not; else
        ``"moves the KL only"`` or ``"no effect beyond the noise"``."""
        if self.holds_kl:
            return VERDICTS[0]
        if self.moves_return:
            return VERDICTS[1] if self.moves_kl else VERDICTS[2]
        return VERDICTS[3] if self.moves_kl else VERDICTS[4]


VERDICTS = ("holds the KL", "changes the return and the KL", "changes the return only",
            "moves the KL only",
            "no effect beyond the noise")
"""The answers :attr:`KLEffect.verdict` gives to Engstrom et al.'s question for one detail."""


def kl_effects(rows: Sequence[AblationRow]) -> list[KLEffect]:
    """Engstrom et al.'s question for each detail of ``rows`` (:func:`ablation_rows`): did
    switching it move the mean or the largest KL per update, the final return and the mean
    return over training beyond the noise of the seeds? Each seed's number is compared with
    the recipe's by IQM difference and its 95 % bootstrap interval."""
    return [KLEffect(r.detail, r.direction, _effect(r.summary.kl_mean_diff),
                     _effect(r.summary.kl_max_diff), _effect(r.summary.diff),
                     _effect(r.summary.training_diff))
            for r in rows if r.detail is not None]


def format_effects(effects: Sequence[KLEffect]) -> str:
    """A text table of :func:`kl_effects`: per detail the switch, the effect on the mean and
    the largest KL per update, on the final return and on the mean return over training,
    and the verdict."""
    head = ("detail", "switched", "mean KL", "max KL", "final return", "training mean",
            "verdict")
    return _table(head, [(e.detail.name, e.direction, e.mean_kl, e.max_kl, e.final_return,
                          e.training_return, e.verdict) for e in effects])


class Recommendation(NamedTuple):
    """The setting of one detail that the measurements favour on one task.

    ``setting`` is ``"on"`` or ``"off"``; ``because`` names the measurement that decided it:
    ``"final return"``, ``"return over training"``, ``"smaller KL"`` or ``"no difference"``
    (then the recipe's setting is kept).
    """

    detail: Detail
    setting: str
    because: str


def recommend(row: AblationRow) -> Recommendation:
    """The setting of ``row.detail`` (a row of :func:`ablation_rows`, not the recipe's) that
    the numbers favour, decided by the first of these that differs beyond the noise of the
    seeds: the final return (higher wins), the mean return over training (higher wins, i.e.
    faster learning), the mean KL per update (smaller wins: the same return with smaller
    updates); the recipe's setting when none does."""
    if row.detail is None:
        raise ValueError("row must be a detail's row, not the full recipe's")
    s = row.summary
    recipe = "on" if row.direction == "off" else "off"
    for diff, because in ((s.diff, "final return"), (s.training_diff, "return over training")):
        if not diff.within_noise:
            return Recommendation(row.detail, row.direction if diff.value > 0 else recipe, because)
    if not s.kl_mean_diff.within_noise:
        return Recommendation(row.detail, row.direction if s.kl_mean_diff.value < 0 else recipe,
                              "smaller KL")
    return Recommendation(row.detail, recipe, "no difference")


def _times(ratio: float) -> str:
    return f"×{ratio:.0f}" if ratio >= 10 else f"×{ratio:.1f}"


def format_summary(rows: Sequence[AblationRow]) -> str:
    """The lesson's summary table for one task: per detail, the change of the final return
    (IQM difference to the recipe, 95 % interval), the mean KL per update as a multiple of the
    recipe's, and the recommended setting with the measurement that decided it
    (:func:`recommend`)."""
    recipe_kl = rows[0].summary.mean_kl
    lines = []
    for r in rows[1:]:
        rec = recommend(r)
        lines.append([r.detail.name, r.direction, _diff_text(r.summary.diff, ".0f"),
                      _times(r.summary.mean_kl / recipe_kl), rec.setting, rec.because])
    return _table(["detail", "switched", "final return - recipe [95% CI]",
                   "mean KL / recipe's", "recommended", "because of"], lines)


def format_plan(calls: Sequence[Call], details: Sequence[Detail], seeds: int) -> str:
    """The ``train_many`` calls of :func:`plan_calls` in words: per call what it sweeps or
    switches and the settings it trains, and the number of agents in all."""
    by_key = {d.key: d for d in details}
    base = calls[0].config
    lines = []
    for n, call in enumerate(calls, start=1):
        if call.sweep:
            what = " x ".join(f"{k} in [{', '.join(_fmt_value(v) for v in vals)}]"
                              for k, vals in call.sweep.items())
        else:
            what = _change_text({f: getattr(call.config, f) for f in
                                 {by_key[k].field for key in call.cells for k in key}}) or "recipe"
        names = []
        for key in call.cells:
            if not key:
                names.append("full recipe")
            else:
                names.append(" + ".join(f"{by_key[k].name} {switched(by_key[k], base)}"
                                        for k in sorted(key, key=list(by_key).index)))
        lines.append(f"call {n}: {what} -> {len(call.cells) * seeds} agents: {'; '.join(names)}")
    total = sum(len(c.cells) for c in calls) * seeds
    lines.append(f"{len(calls)} train_many calls, {total} agents in all")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------
# The panel's view: a combination of switched details
# ------------------------------------------------------------------------------------------


class CombinationView(NamedTuple):
    """What the panel shows for the set ``ablated`` of switched (unchecked) details.

    Attributes:
      ablated: the detail keys switched away from the recipe.
      trained: whether exactly this combination was trained.
      shown: the run keys drawn besides the recipe: the combination itself when trained,
        else each switched detail alone (those that were trained).
      summaries: :class:`RunSummary` of the recipe (key ``run_key()``) and of each shown run.
      message: one sentence for the readout: what is shown, or that the combination was not
        trained.
    """

    ablated: frozenset[str]
    trained: bool
    shown: tuple[frozenset[str], ...]
    summaries: dict[frozenset[str], RunSummary]
    message: str


def _names(grid: AblationGrid, keys: Iterable[str]) -> str:
    by_key = {d.key: d.name for d in grid.details}
    return " + ".join(by_key[k] for k in sorted(keys, key=list(by_key).index))


def combination_view(grid: AblationGrid, ablated: Iterable[str], last: int = 5) -> CombinationView:
    """The runs the panel draws when the details ``ablated`` (keys) are switched: the trained
    combination, or, when that combination was not trained, each of them alone, with a
    sentence that says so. Raises ``ValueError`` naming ``ablated`` for an unknown key."""
    ablated = run_key(ablated)
    known = {d.key for d in grid.details}
    unknown = ablated - known
    if unknown:
        raise ValueError(f"ablated holds keys not ablated on {grid.env}: {sorted(unknown)}")
    recipe = grid.runs[run_key()]
    summaries = {run_key(): summarize_run(recipe, None, grid.delta, last)}
    if not ablated:
        return CombinationView(ablated, True, (), summaries, "the full recipe")
    if ablated in grid.runs:
        shown = (ablated,)
        message = f"trained: {_names(grid, ablated)} switched"
        trained = True
    else:
        shown = tuple(run_key([k]) for k in sorted(ablated, key=[d.key for d in grid.details].index)
                      if run_key([k]) in grid.runs)
        message = (f"{_names(grid, ablated)} together was not trained: "
                   f"each is shown switched alone")
        trained = False
    for key in shown:
        summaries[key] = summarize_run(grid.runs[key], recipe, grid.delta, last)
    return CombinationView(ablated, trained, shown, summaries, message)
