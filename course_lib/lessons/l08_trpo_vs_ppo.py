"""Lesson 08, TRPO vs PPO: summaries of training sweeps, the measured table, code size.

Both algorithms maximise the same surrogate ``L(θ) = E_t[r_t(θ)·Â_t]``,
``r_t = π_θ(a_t|s_t) / π_old(a_t|s_t)``, and both keep π_θ close to π_old:

* TRPO (Schulman et al. 2015) with a hard constraint ``E[KL(π_old‖π_θ)] ≤ δ``, solved by
  conjugate gradient on Fisher-vector products, a step scaled to the trust region's edge and
  a backtracking line search;
* PPO (Schulman et al. 2017) with the clipped objective
  ``E[min(r·Â, clip(r, 1−ε, 1+ε)·Â)]``, maximised by several epochs of minibatch Adam on the
  same batch.

This module turns what :func:`course_lib.train_many` returns for each algorithm into the
numbers the lesson compares: seed bands of the learning curves and of the KL per update
(:func:`seed_band`, :func:`smooth`), the environment steps to reach a return
(:func:`steps_to_threshold`, :func:`median_steps`), the greedy solve rate
(:func:`evaluate_seeds`, :func:`solve_rate`), the wall time per update
(:func:`time_per_update`) and the lines of code behind each update
(:func:`count_code_lines`, :func:`update_code_lines`); then the seed's TRPO-vs-PPO table
extended with those measurements (:func:`measured_rows`, :func:`format_table`), and the
view behind the lesson's panel (:func:`compare_view`).

Every comparison over seeds is an interquartile mean with a 95 % bootstrap interval
(:mod:`course_lib.lessons.stats`): :func:`compare_seeds` puts two algorithms' per-seed numbers
side by side with their difference; :func:`seed_medians` gives each seed's median KL per
update, :func:`reached_or_cap` each seed's steps to a threshold, :func:`worst_after_reaching`
each seed's deepest fall after first reaching it. :func:`matched_delta` picks the δ at which
TRPO's KL per update matches another algorithm's, and :func:`select_run` takes one setting out
of a swept ``train_many`` result.
"""

from __future__ import annotations

import ast
import inspect
import textwrap
import time
import types
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from course_lib._validate import check_int_at_least
from course_lib.lessons.common import SeedBand, seed_band
from course_lib.lessons.stats import Difference, Estimate, iqm_difference, iqm_interval
from course_lib.rl.algos import get_algo, init_opt_state
from course_lib.rl.config import TrainConfig
from course_lib.rl.networks import ActorCritic, Params, model_from_config
from course_lib.rl.normalize import normalize
from course_lib.rl.ppo import ppo_update
from course_lib.rl.rollout import Batch
from course_lib.rl.train import TrainResult, enable_compilation_cache
from course_lib.rl.trpo import trpo_policy_step

__all__ = [
    "SEED_TABLE",
    "SOLVE_THRESHOLD",
    "AlgoSummary",
    "CompareView",
    "SeedComparison",
    "compare_seeds",
    "compare_view",
    "count_code_lines",
    "evaluate_seeds",
    "format_table",
    "kl_bins",
    "kl_histogram",
    "matched_delta",
    "measured_rows",
    "median_steps",
    "reached_or_cap",
    "seed_medians",
    "select_run",
    "smooth",
    "solve_rate",
    "steps_to_threshold",
    "summarize",
    "synthetic_batch",
    "time_per_update",
    "update_code_lines",
    "update_functions",
    "worst_after_reaching",
]

SOLVE_THRESHOLD = {"CartPole-v1": 475.0, "Pendulum-v1": -250.0}
"""The return that counts as "solved": CartPole-v1's official 475 (of 500); for Pendulum-v1
(no official threshold; a random policy scores about −1200) a swing-up that holds the pole
up, −250 per 200-step episode."""

SEED_TABLE = (
    ("Constraint", "hard KL: E[KL(π_old‖π)] ≤ δ", "clip r to [1−ε, 1+ε]"),
    ("Implementation", "CG + line search", "several SGD epochs on the same batch"),
    ("Adoption", "research reference", "industry default"),
)
"""The syllabus's TRPO-vs-PPO table: (aspect, TRPO, PPO) rows."""

KL_BINS = np.logspace(-4.0, 0.0, 21)
"""Default bin edges of :func:`kl_histogram`: 5 per decade from 1e-4 to 1 nat."""


def kl_bins(anchor: float = 0.01, lo: float = 1e-4, hi: float = 1.0,
            per_decade: int = 5) -> np.ndarray:
    """Log-spaced KL bin edges ``anchor · 10^(k / per_decade)`` covering ``[lo, hi]``.

    ``anchor`` (TRPO's δ) is always an edge, so a histogram never puts KLs on both sides
    of δ into one bin.
    """
    if not 0 < lo < hi:
        raise ValueError(f"lo and hi must satisfy 0 < lo < hi, got lo={lo}, hi={hi}")
    if not anchor > 0:
        raise ValueError(f"anchor must be > 0, got {anchor}")
    check_int_at_least(per_decade, 1, "per_decade")
    k_lo = int(np.floor(per_decade * np.log10(lo / anchor) + 1e-9))
    k_hi = int(np.ceil(per_decade * np.log10(hi / anchor) - 1e-9))
    return anchor * 10.0 ** (np.arange(k_lo, k_hi + 1) / per_decade)


# ------------------------------------------------------------------------------------------
# Curves over seeds
# ------------------------------------------------------------------------------------------


def _seeds_by_iterations(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must have shape [seeds, iterations], got shape {arr.shape}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise ValueError(f"{name} must have at least one seed and one iteration, got {arr.shape}")
    return arr


def smooth(values, window: int) -> np.ndarray:
    """Trailing moving average over the last axis: ``y_i = mean(x_j, max(0, i−w+1) ≤ j ≤ i)``.

    The first ``w − 1`` entries average the values available so far, so the shape is kept
    (``[..., I] → [..., I]``) and ``window = 1`` returns the values unchanged.
    """
    check_int_at_least(window, 1, "window")
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 1 or x.shape[-1] < 1:
        raise ValueError(f"values must have at least one entry on the last axis, got {x.shape}")
    csum = np.cumsum(x, axis=-1)
    lagged = np.zeros_like(csum)
    lagged[..., window:] = csum[..., :-window]
    count = np.minimum(np.arange(1, x.shape[-1] + 1), window)
    return (csum - lagged) / count


def steps_to_threshold(mean_return, env_steps, threshold: float) -> np.ndarray:
    """Environment steps after the first iteration whose mean return is ≥ ``threshold``.

    ``mean_return [..., I]`` (any leading seed axes), ``env_steps [I]`` (steps taken after
    each iteration) → ``[...]`` float64, NaN where the curve never reaches the threshold.
    """
    ret = np.asarray(mean_return, dtype=np.float64)
    steps = np.asarray(env_steps, dtype=np.float64)
    if steps.ndim != 1:
        raise ValueError(f"env_steps must have rank 1, got shape {steps.shape}")
    if ret.ndim < 1 or ret.shape[-1] != steps.shape[0]:
        raise ValueError(
            f"mean_return must end in the {steps.shape[0]} iterations of env_steps, "
            f"got shape {ret.shape}"
        )
    reached = ret >= threshold
    first = np.argmax(reached, axis=-1)
    return np.where(reached.any(axis=-1), steps[first], np.nan)


def median_steps(steps) -> float:
    """Median over seeds of :func:`steps_to_threshold`, a seed that never got there counting
    as +∞: the result is ∞ when half the seeds or more never reached the threshold."""
    arr = np.asarray(steps, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("steps must hold at least one seed")
    return float(np.median(np.where(np.isnan(arr), np.inf, arr)))


def solve_rate(scores, threshold: float) -> float:
    """Fraction of ``scores [S]`` (one evaluation per seed) that are ≥ ``threshold``."""
    arr = np.asarray(scores, dtype=np.float64).ravel()
    if arr.size == 0:
        raise ValueError("scores must hold at least one seed")
    return float(np.mean(arr >= threshold))


# ------------------------------------------------------------------------------------------
# Comparisons over seeds
# ------------------------------------------------------------------------------------------


def seed_medians(values) -> np.ndarray:
    """Each seed's median over its updates: ``values [..., S, I]`` → ``[..., S]``.

    Applied to ``diagnostics["kl"]`` it gives one typical KL per update for each seed, the
    per-seed number that :func:`compare_seeds` compares between algorithms.
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-1] < 1:
        raise ValueError(f"values must have shape [..., seeds, iterations], got shape {arr.shape}")
    return np.median(arr, axis=-1)


def reached_or_cap(steps, cap: float) -> np.ndarray:
    """:func:`steps_to_threshold` with a seed that never got there counted as ``cap`` steps.

    ``cap`` is the run's length: a lower bound on the steps such a seed would need, so an
    algorithm with unreached seeds looks faster than it is, never slower. Returns ``[S]``
    float64, all finite, ready for :func:`compare_seeds`.
    """
    arr = np.asarray(steps, dtype=np.float64)
    if not np.isfinite(cap) or cap <= 0:
        raise ValueError(f"cap must be a positive finite number of steps, got {cap}")
    if np.any(arr[np.isfinite(arr)] > cap):
        raise ValueError(f"cap ({cap}) must be at least every seed's steps, got {arr}")
    return np.where(np.isnan(arr), float(cap), arr)


def worst_after_reaching(mean_return, threshold: float) -> np.ndarray:
    """Each seed's lowest mean return after it first reached ``threshold``.

    ``mean_return [..., I]`` → ``[...]`` float64: the minimum over the iterations from the
    first one at ``threshold`` (included) to the end; NaN for a seed that never reached it.
    A value well below ``threshold`` means the seed fell back after solving.
    """
    ret = np.asarray(mean_return, dtype=np.float64)
    if ret.ndim < 1 or ret.shape[-1] < 1:
        raise ValueError(f"mean_return must have at least one iteration, got shape {ret.shape}")
    reached = ret >= threshold
    after = np.cumsum(reached, axis=-1) > 0
    worst = np.where(after, ret, np.inf).min(axis=-1)
    return np.where(reached.any(axis=-1), worst, np.nan)


def matched_delta(target_kl: float, kl, delta: float, digits: int = 1) -> float:
    """The trust region δ at which TRPO's median KL per update should be ``target_kl``.

    TRPO's updates end at a steady fraction of δ: ``f = median(kl) / delta`` over the updates
    ``kl`` of a TRPO run at ``delta`` (lesson 06 measured 0.7 to 0.8 over a hundredfold range
    of δ). The returned δ is ``target_kl / f``, rounded to ``digits`` significant figures so
    that the setting reads as a plain number.
    """
    check_int_at_least(digits, 1, "digits")
    if not (np.isfinite(target_kl) and target_kl > 0):
        raise ValueError(f"target_kl must be a positive KL, got {target_kl}")
    if not (np.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a positive trust region, got {delta}")
    arr = np.asarray(kl, dtype=np.float64).ravel()
    if arr.size == 0 or not np.all(np.isfinite(arr)) or np.median(arr) <= 0:
        raise ValueError("kl must hold finite KLs of TRPO updates with a positive median")
    fraction = float(np.median(arr)) / float(delta)
    raw = float(target_kl) / fraction
    scale = 10.0 ** (np.floor(np.log10(raw)) - (digits - 1))
    return float(np.round(raw / scale) * scale)


class SeedComparison(NamedTuple):
    """Two algorithms' per-seed numbers compared: each one's IQM with its 95 % bootstrap
    interval, and IQM(a) − IQM(b) with its interval (``within_noise`` when it holds 0).

    ``str()`` gives one line, e.g. ``TRPO 500 [500, 500]  PPO 500 [500, 500]  TRPO − PPO +0
    [+0, +0]: within the noise of 10 seeds``; ``fmt`` formats the numbers (default ``.3g``).
    """

    names: tuple[str, str]
    a: Estimate
    b: Estimate
    diff: Difference
    seeds: tuple[int, int]
    fmt: str = ".3g"

    @property
    def within_noise(self) -> bool:
        return self.diff.within_noise

    def __str__(self) -> str:
        f, (na, nb) = self.fmt, self.names
        est = lambda e: f"{e.value:{f}} [{e.lo:{f}}, {e.hi:{f}}]"
        sign = lambda x: ("+" if x >= 0 else "−") + f"{abs(x):{f}}"
        d = self.diff
        seeds = (f"{self.seeds[0]} seeds" if self.seeds[0] == self.seeds[1]
                 else f"{self.seeds[0]} and {self.seeds[1]} seeds")
        verdict = "within" if d.within_noise else "beyond"
        return (f"{na} {est(self.a)}  {nb} {est(self.b)}  {na} − {nb} {sign(d.value)} "
                f"[{sign(d.lo)}, {sign(d.hi)}]: {verdict} the noise of {seeds}")


def compare_seeds(a, b, names: tuple[str, str] = ("TRPO", "PPO"), fmt: str = ".3g",
                  seed: int = 0) -> SeedComparison:
    """A :class:`SeedComparison` of ``a [S_a]`` and ``b [S_b]``, one number per seed
    (:func:`course_lib.lessons.stats.iqm_interval`, :func:`~course_lib.lessons.stats.iqm_difference`,
    bootstrap fixed by ``seed``)."""
    xa = np.asarray(a, dtype=np.float64).ravel()
    xb = np.asarray(b, dtype=np.float64).ravel()
    if len(names) != 2:
        raise ValueError(f"names must hold two names, got {names!r}")
    return SeedComparison(tuple(names), iqm_interval(xa, seed=seed), iqm_interval(xb, seed=seed),
                          iqm_difference(xa, xb, seed=seed), (xa.size, xb.size), fmt)


def select_run(result: TrainResult, index: int) -> TrainResult:
    """One setting of a swept ``train_many(config, seeds, field=[v0, v1, ...])`` result: every
    array's leading sweep axis indexed at ``index`` (``mean_return [V, S, I] → [S, I]``)."""
    ret = np.asarray(result.mean_return)
    if ret.ndim != 3:
        raise ValueError(f"result must come from train_many with one swept field "
                         f"([values, seeds, iterations]), got mean_return of shape {ret.shape}")
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < ret.shape[0]:
        raise ValueError(f"index must be an int in [0, {ret.shape[0]}), got {index!r}")
    take = lambda x: x[int(index)]
    return TrainResult(jax.tree.map(take, result.params), np.asarray(result.env_steps)[int(index)],
                       ret[int(index)], {k: np.asarray(v)[int(index)]
                                         for k, v in result.diagnostics.items()},
                       jax.tree.map(take, result.obs_stats))


def evaluate_seeds(result: TrainResult, config: TrainConfig, episodes: int = 10,
                   seed: int = 100) -> np.ndarray:
    """Greedy (discrete) or mean-action (continuous) return of each seed's final policy.

    ``result`` from ``train_many(config, seeds)`` (one leading seed axis). Each seed's policy
    runs ``episodes`` episodes of the real gymnasium ``config.env``, seeded ``seed, seed+1,
    ...``, exactly as :func:`course_lib.evaluate` does for one policy (each seed's frozen
    ``result.obs_stats`` normalising its observations when ``config.normalize_obs``); here all
    seeds' episodes run side by side in one vector environment (one compiled call per step for
    all of them). Returns ``[S]``, the mean return of each seed's episodes.
    """
    import gymnasium

    mean_return = np.asarray(result.mean_return)
    if mean_return.ndim != 2:
        raise ValueError(
            f"result must come from train_many over seeds only ([seeds, iterations]), "
            f"got mean_return of shape {mean_return.shape}"
        )
    check_int_at_least(episodes, 1, "episodes")
    n = mean_return.shape[0]
    model = model_from_config(config)
    policy = jnp.asarray(result.params.policy)
    if policy.shape[0] != n:
        raise ValueError(f"result.params.policy must have {n} seeds, got shape {policy.shape}")
    stats = result.obs_stats
    if bool(config.normalize_obs) != (stats is not None):
        raise ValueError("result.obs_stats must be present exactly when config.normalize_obs is on")
    seen = (lambda s, o: o) if stats is None else normalize
    act = jax.jit(jax.vmap(lambda p, s, o: model.greedy(model.policy(p, seen(s, o)))))
    venv = gymnasium.make_vec(config.env, num_envs=n * episodes, vectorization_mode="sync")
    try:
        obs, _ = venv.reset(seed=[int(seed) + e for _ in range(n) for e in range(episodes)])
        totals = np.zeros(n * episodes)
        finished = np.zeros(n * episodes, bool)
        while not finished.all():
            o = jnp.asarray(obs, jnp.float32).reshape(n, episodes, -1)
            action = np.asarray(act(policy, stats, o))
            action = action.reshape((n * episodes,) + action.shape[2:])
            obs, reward, term, trunc, _ = venv.step(action)
            totals += np.where(finished, 0.0, reward)
            finished |= term | trunc
    finally:
        venv.close()
    return totals.reshape(n, episodes).mean(axis=1)


def synthetic_batch(model: ActorCritic, key: jax.Array, size: int) -> Batch:
    """A :class:`course_lib.rl.rollout.Batch` of ``size`` made-up transitions, for timing.

    Observations and advantages are standard normal, actions are drawn from a freshly
    initialised policy (so ``logp_old`` and ``dist_old`` are consistent), returns are
    ``V(s) + Â``. The cost of an update does not depend on these values.
    """
    if not isinstance(model, ActorCritic):
        raise TypeError(f"model must be an ActorCritic, got {type(model).__name__}")
    check_int_at_least(size, 1, "size")
    return _synthetic(model, key, size)[2]


@partial(jax.jit, static_argnums=(0, 2))
def _synthetic(model: ActorCritic, key: jax.Array, size: int):
    k_init, k_obs, k_act, k_adv = jax.random.split(key, 4)
    pi, v = model.init(k_init)
    obs = jax.random.normal(k_obs, (size, model.obs_dim))
    dist = model.policy(pi, obs)
    actions = model.sample(dist, k_act)
    values = model.value(v, obs)
    adv = jax.random.normal(k_adv, (size,))
    batch = Batch(obs, actions, model.log_prob(dist, actions), dist, values, adv, values + adv)
    return pi, v, batch


def _update_program(config: TrainConfig, model: ActorCritic) -> Callable:
    """``update(policy, value, batch, key) -> (policy, value)``: the update ``train`` runs for
    ``config`` (policy and critic, :func:`course_lib.rl.algos.get_algo`), compiled, with a fresh
    Adam state and the hyper-parameters of ``config``."""
    algo = get_algo(config.algo)

    def update(pi, v, batch, key):
        params = Params(pi, v)
        opt_state = init_opt_state(config.algo, params, config.max_grad_norm)
        new, _, _ = algo.update(config, config, params, opt_state, batch, key, model,
                                config.lr, config.beta)
        return new.policy, new.value

    return jax.jit(update)


def time_per_update(config: TrainConfig, repeats: int = 10, seed: int = 0) -> float:
    """Wall-clock seconds of one warm update (policy and critic) on one batch, best of ``repeats``.

    The update is the one :func:`course_lib.rl.train` runs for ``config`` (PPO: ``epochs ×
    minibatches`` Adam steps of :func:`course_lib.rl.ppo.ppo_update`; TRPO/NPG:
    :func:`course_lib.rl.trpo.trpo_policy_step` then ``epochs × minibatches`` Adam steps of
    :func:`course_lib.rl.trpo.fit_value`), compiled, on a :func:`synthetic_batch` of
    ``config.batch_size`` transitions. One call compiles; ``repeats`` more are timed and the
    fastest is kept (as ``timeit`` does: other programs on the machine can only slow a run
    down). The rollout, the same for both algorithms, is not included. A measurement, not a
    constant: it varies with the machine and its load.
    """
    config.validate()
    check_int_at_least(repeats, 1, "repeats")
    enable_compilation_cache()
    model = model_from_config(config)
    pi, v, batch = _synthetic(model, jax.random.key(seed), config.batch_size)
    update = _update_program(config, model)
    key = jax.random.key(seed + 2)
    jax.block_until_ready(update(pi, v, batch, key))
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(update(pi, v, batch, key))
        times.append(time.perf_counter() - start)
    return float(np.min(times))


# ------------------------------------------------------------------------------------------
# Summary of one (algo, env) sweep
# ------------------------------------------------------------------------------------------


class AlgoSummary(NamedTuple):
    """What the lesson compares of one ``train_many(config, seeds)`` result.

    Attributes:
      algo, env: from the config.
      env_steps: ``[I]`` steps taken after each iteration.
      returns: :class:`SeedBand` of the mean episode return per iteration.
      kl: :class:`SeedBand` of the exact mean KL(π_old‖π_new) per update.
      max_kl: the largest KL of any update of any seed.
      scores: ``[S]`` greedy evaluation of each seed's final policy.
      threshold: the return counted as solved.
      solved: how many seeds' scores reach ``threshold``.
      steps: ``[S]`` steps to the first iteration with mean return ≥ threshold (NaN: never).
      kl_seed: ``[S]`` each seed's median KL per update (:func:`seed_medians`).
    """

    algo: str
    env: str
    env_steps: np.ndarray
    returns: SeedBand
    kl: SeedBand
    max_kl: float
    scores: np.ndarray
    threshold: float
    solved: int
    steps: np.ndarray
    kl_seed: np.ndarray

    @property
    def seeds(self) -> int:
        return len(self.scores)

    @property
    def steps_capped(self) -> np.ndarray:
        """``[S]`` :attr:`steps`, a seed that never reached the threshold counted as the run's
        length (:func:`reached_or_cap`)."""
        return reached_or_cap(self.steps, float(self.env_steps[-1]))

    @property
    def median_steps(self) -> float:
        return median_steps(self.steps)


def summarize(result: TrainResult, config: TrainConfig, scores,
              threshold: float | None = None) -> AlgoSummary:
    """An :class:`AlgoSummary` of ``result = train_many(config, seeds)`` and its ``scores [S]``
    (:func:`evaluate_seeds`); ``threshold`` defaults to :data:`SOLVE_THRESHOLD` of the env."""
    if threshold is None:
        if config.env not in SOLVE_THRESHOLD:
            raise ValueError(f"threshold must be given for env {config.env!r}")
        threshold = SOLVE_THRESHOLD[config.env]
    ret = _seeds_by_iterations(result.mean_return, "result.mean_return")
    kl = _seeds_by_iterations(result.diagnostics["kl"], "result.diagnostics['kl']")
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if scores.shape[0] != ret.shape[0]:
        raise ValueError(f"scores must hold one value per seed ({ret.shape[0]}), got {scores.shape}")
    env_steps = np.asarray(result.env_steps).reshape(-1, ret.shape[1])[0]
    return AlgoSummary(
        algo=config.algo, env=config.env, env_steps=env_steps, returns=seed_band(ret),
        kl=seed_band(kl), max_kl=float(kl.max()), scores=scores, threshold=float(threshold),
        solved=int(np.sum(scores >= threshold)),
        steps=steps_to_threshold(ret, env_steps, threshold), kl_seed=seed_medians(kl),
    )


# ------------------------------------------------------------------------------------------
# Lines of code
# ------------------------------------------------------------------------------------------


def _docstring_lines(tree: ast.AST) -> set[int]:
    """Line numbers (1-based) of every bare string statement: docstrings of the module, of
    classes and functions, and attribute docstrings."""
    lines: set[int] = set()
    for node in ast.walk(tree):
        if (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
                and isinstance(node.value.value, str)):
            lines.update(range(node.lineno, node.end_lineno + 1))
    return lines


def count_code_lines(obj) -> int:
    """Non-blank lines of ``obj``'s source that are neither comments nor docstrings.

    ``obj`` is a function, class or module (a ``jax.jit``/``functools.wraps`` wrapper is
    unwrapped). A line that holds code and a trailing comment counts; a line of a string
    statement (a docstring) does not, nor does a line holding only ``#`` comment text.
    """
    if not isinstance(obj, (types.FunctionType, types.ModuleType, type)):
        obj = inspect.unwrap(obj)
    if not isinstance(obj, (types.FunctionType, types.ModuleType, type)):
        raise TypeError(f"obj must be a function, class or module, got {type(obj).__name__}")
    source = textwrap.dedent(inspect.getsource(obj))
    skip = _docstring_lines(ast.parse(source))
    return sum(
        1 for number, line in enumerate(source.splitlines(), start=1)
        if number not in skip and line.strip() and not line.strip().startswith("#")
    )


def update_functions(root: Callable, modules: Sequence[str]) -> list[Callable]:
    """``root`` and every function it reaches, transitively, that is defined in ``modules``.

    "Reaches" means a global name in the function's source that resolves (in the function's
    module) to a plain Python function: a call ``f(x)`` or a reference such as
    ``jax.grad(f)``. Functions of other modules (JAX, the distributions, ...) are not
    followed. Returns them in the order found, ``root`` first.
    """
    root = inspect.unwrap(root)
    if not isinstance(root, types.FunctionType):
        raise TypeError(f"root must be a Python function, got {type(root).__name__}")
    allowed = set(modules)
    found: list[Callable] = []
    todo = [root]
    while todo:
        fn = todo.pop(0)
        if fn in found:
            continue
        found.append(fn)
        tree = ast.parse(textwrap.dedent(inspect.getsource(fn)))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
                target = fn.__globals__.get(node.id)
                if target is not None and not isinstance(target, types.FunctionType):
                    target = inspect.unwrap(target) if callable(target) else None
                if (isinstance(target, types.FunctionType) and target.__module__ in allowed
                        and target not in found and target not in todo):
                    todo.append(target)
    return found


def update_code_lines(algo: str) -> dict[str, int]:
    """Lines of code (:func:`count_code_lines`) of one policy update, function by function.

    * ``"trpo"``: :func:`course_lib.rl.trpo.trpo_policy_step` and what it calls in
      ``course_lib.rl.trpo``, ``course_lib.core.solvers`` and ``course_lib.core.curvature`` (conjugate
      gradient, step scaling, line search, Fisher-vector product and their helpers);
    * ``"ppo"``: :func:`course_lib.rl.ppo.ppo_update` and what it calls in ``course_lib.rl.ppo``
      (``ppo_loss``, the optimiser).

    The surrogate objectives themselves (``course_lib.core.surrogate``) are shared and not counted.
    Returns ``{function name: lines}`` in call order.
    """

    if algo == "trpo":
        fns = update_functions(trpo_policy_step, ("course_lib.rl.trpo", "course_lib.core.solvers",
                                                  "course_lib.core.curvature"))
    elif algo == "ppo":
        fns = update_functions(ppo_update, ("course_lib.rl.ppo",))
    else:
        raise ValueError(f"algo must be 'trpo' or 'ppo', got {algo!r}")
    return {fn.__name__: count_code_lines(fn) for fn in fns}


# ------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------


def _steps_text(summary: AlgoSummary) -> str:
    est = iqm_interval(summary.steps_capped)
    never = int(np.isnan(summary.steps).sum())
    note = f", {never} never" if never else ""
    return f"{est.value:,.0f} [{est.lo:,.0f}, {est.hi:,.0f}]{note}"


def measured_rows(
    summaries: Mapping[str, Mapping[str, AlgoSummary]] | None = None,
    seconds: Mapping[str, Mapping[str, float]] | None = None,
    lines: Mapping[str, int] | None = None,
    *,
    algos: tuple[str, str] = ("trpo", "ppo"),
    solved: bool = True,
    steps: bool = True,
) -> list[tuple[str, str, str]]:
    """Measured (aspect, TRPO, PPO) rows to append to :data:`SEED_TABLE`.

    Args:
      summaries: ``{env: {algo: AlgoSummary}}``; gives "solved" rows (seeds whose greedy
        return reaches the threshold) when ``solved`` and "steps to solve" rows when ``steps``:
        the IQM over seeds of the steps to the first iteration at the threshold, with its 95 %
        bootstrap interval, a seed that never got there counted as the run's length
        (:attr:`AlgoSummary.steps_capped`) and reported as "k never".
      seconds: ``{env: {algo: seconds per update}}``; gives "time per update" rows in ms.
      lines: ``{algo: lines of update code}``; gives the "lines of update code" row.
      algos: the two columns.
    """
    rows: list[tuple[str, str, str]] = []
    a, b = algos
    for env, by_algo in (summaries or {}).items():
        first = by_algo[a]
        if solved:
            rows.append((
                f"{env}: solved (greedy ≥ {first.threshold:g})",
                *(f"{by_algo[x].solved}/{by_algo[x].seeds} seeds" for x in algos),
            ))
        if steps:
            rows.append((
                f"{env}: steps to mean return ≥ {first.threshold:g} (IQM)",
                *(_steps_text(by_algo[x]) for x in algos),
            ))
    for env, by_algo in (seconds or {}).items():
        rows.append((f"{env}: time per update", *(f"{1000 * by_algo[x]:.0f} ms" for x in algos)))
    if lines is not None:
        rows.append(("Lines of update code", f"{lines[a]}", f"{lines[b]}"))
    return rows


def format_table(rows: Sequence[Sequence[str]],
                 header: Sequence[str] = ("Aspect", "TRPO", "PPO")) -> str:
    """A plain-text table with aligned columns, a rule under the header, one line per row."""
    rows = [tuple(str(c) for c in r) for r in rows]
    header = tuple(header)
    if any(len(r) != len(header) for r in rows):
        raise ValueError(f"rows must each have {len(header)} cells like header")
    widths = [max(len(r[k]) for r in (header, *rows)) for k in range(len(header))]
    fmt = lambda r: " | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    rule = "-+-".join("-" * w for w in widths)
    return "\n".join([fmt(header), rule, *(fmt(r) for r in rows)])


# ------------------------------------------------------------------------------------------
# The panel's view: training up to an iteration
# ------------------------------------------------------------------------------------------


def kl_histogram(kl, upto: int, edges=KL_BINS) -> np.ndarray:
    """Fraction of the updates ``i < upto`` (all seeds) whose KL falls in each bin of ``edges``.

    ``kl [S, I]`` → ``[len(edges) − 1]`` summing to 1; values below the first edge count in
    the first bin, above the last in the last.
    """
    arr = _seeds_by_iterations(kl, "kl")
    check_int_at_least(upto, 1, "upto")
    if upto > arr.shape[1]:
        raise ValueError(f"upto must be <= {arr.shape[1]} iterations, got {upto}")
    edges = np.asarray(edges, dtype=np.float64)
    values = np.clip(arr[:, :upto].ravel(), edges[0], edges[-1])
    counts, _ = np.histogram(values, bins=edges)
    return counts / counts.sum()


class CompareView(NamedTuple):
    """Two algorithms' training up to an iteration (what the panel draws).

    Attributes:
      algos: the two algorithm names.
      iteration: how many iterations are shown (1 … I).
      env_steps: ``[iteration]`` steps after each shown iteration.
      returns: per algo, the :class:`SeedBand` of the smoothed learning curves (each seed
        smoothed with :func:`smooth`, then banded), cut at ``iteration``.
      kl_edges: the bin edges of ``kl_fraction``.
      kl_fraction: per algo, :func:`kl_histogram` of the updates so far.
      kl_median: per algo, the median KL of the updates so far (all seeds).
      return_now: per algo, the smoothed seed-mean return at ``iteration``.
    """

    algos: tuple[str, str]
    iteration: int
    env_steps: np.ndarray
    returns: dict[str, SeedBand]
    kl_edges: np.ndarray
    kl_fraction: dict[str, np.ndarray]
    kl_median: dict[str, float]
    return_now: dict[str, float]


def compare_view(result_by_algo: Mapping[str, TrainResult], algos: tuple[str, str],
                 iteration: int, smoothing: int = 1, edges=KL_BINS) -> CompareView:
    """The :class:`CompareView` of ``result_by_algo[a] = train_many(config_a, seeds)`` for the
    two ``algos`` after ``iteration`` updates, learning curves smoothed over ``smoothing``
    iterations, KLs binned by ``edges``."""
    for algo in algos:
        if algo not in result_by_algo:
            raise ValueError(f"algos: {algo!r} is not a key of result_by_algo "
                             f"({', '.join(result_by_algo)})")
    rets = {a: _seeds_by_iterations(result_by_algo[a].mean_return, f"{a} mean_return")
            for a in algos}
    n_iter = {r.shape[1] for r in rets.values()}
    if len(n_iter) != 1:
        raise ValueError(f"result_by_algo: the algorithms ran different iteration counts {n_iter}")
    total = n_iter.pop()
    check_int_at_least(iteration, 1, "iteration")
    if iteration > total:
        raise ValueError(f"iteration must be <= {total}, got {iteration}")
    env_steps = np.asarray(result_by_algo[algos[0]].env_steps).reshape(-1, total)[0]
    returns, kl_fraction, kl_median, now = {}, {}, {}, {}
    for a in algos:
        band = seed_band(smooth(rets[a], smoothing)[:, :iteration])
        kl = _seeds_by_iterations(result_by_algo[a].diagnostics["kl"], f"{a} kl")
        returns[a] = band
        kl_fraction[a] = kl_histogram(kl, iteration, edges)
        kl_median[a] = float(np.median(kl[:, :iteration]))
        now[a] = float(band.mean[-1])
    return CompareView(tuple(algos), int(iteration), env_steps[:iteration], returns,
                       np.asarray(edges, dtype=np.float64), kl_fraction, kl_median, now)
