"""Lesson 08's figures and its panel: TRPO and PPO trained side by side.

* :func:`plot_side_by_side` draws one environment's learning curves (seed mean and range)
  and exact KL per update for two algorithms; the lesson's static figures use it.
* :func:`compare_panel` reads two precomputed ``train_many`` results and scrubs through
  training: the slider ``"iteration"`` shows the learning curves up to that update and the
  distribution of the KLs of every update so far, ``"smoothing"`` averages the curves over
  a trailing window. The numbers come from :func:`course_lib.lessons.l08_trpo_vs_ppo.compare_view`;
  nothing is trained on a slider move.
"""

from __future__ import annotations

from collections.abc import Mapping

import ipywidgets as W
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from course_lib.lessons.l08_trpo_vs_ppo import (
    AlgoSummary,
    CompareView,
    compare_view,
    kl_bins,
)
from course_lib.rl.train import TrainResult
from course_lib.widgets.panel import Panel
from course_lib.widgets.plots import BLACK, BLUE, VERMILLION, label, plot_band

__all__ = [
    "ALGO_COLOURS",
    "compare_panel",
    "compare_readout",
    "plot_compare_view",
    "plot_side_by_side",
]

ALGO_COLOURS = {"trpo": BLUE, "ppo": VERMILLION}
"""One colour per algorithm in every figure of the lesson (others get black)."""

NAMES = {"trpo": "TRPO", "ppo": "PPO", "npg": "NPG", "ppo_penalty": "PPO-penalty"}


def _colour(algo: str) -> str:
    return ALGO_COLOURS.get(algo, BLACK)


def _name(algo: str) -> str:
    return NAMES.get(algo, algo)


def _log_kl(ax: Axes, axis: str = "y") -> None:
    """Log scale, decades only, labelled in plain text (mathtext labels cost redraw time)."""
    scale = ax.set_yscale if axis == "y" else ax.set_xscale
    scale("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10.0, numticks=7))
    target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def plot_side_by_side(ax_ret: Axes, ax_kl: Axes, summaries: Mapping[str, AlgoSummary],
                      delta: float | None = None) -> tuple[Axes, Axes]:
    """One environment: learning curves (left) and exact KL per update (right), each the seed
    mean with the seed range as a band; ``ax_ret.lines[k]`` / ``ax_kl.lines[k]`` is the mean of
    the k-th algorithm of ``summaries``. ``delta`` (TRPO's trust region) is drawn as a dashed
    line on the KL axes, the solve threshold as a dotted line on the return axes."""
    env = next(iter(summaries.values())).env
    for algo, s in summaries.items():
        plot_band(ax_ret, s.env_steps, s.returns, _colour(algo),
                  f"{_name(algo)} ({s.seeds} seeds)")
        plot_band(ax_kl, s.env_steps, s.kl, _colour(algo), _name(algo))
    threshold = next(iter(summaries.values())).threshold
    ax_ret.axhline(threshold, color=BLACK, linestyle=":", linewidth=1.2,
                   label=f"solved: {threshold:g}")
    label(ax_ret, f"{env}: learning curves (band: seed range)", "environment steps",
          "mean episode return")
    ax_ret.legend(loc="lower right")
    if delta is not None:
        ax_kl.axhline(delta, color=BLACK, linestyle="--", linewidth=1.2, label=f"TRPO's δ = {delta:g}")
    _log_kl(ax_kl)
    label(ax_kl, f"{env}: KL(π_old‖π_new) of each update", "environment steps",
          "mean KL (nats, log scale)")
    ax_kl.legend(loc="lower right")
    return ax_ret, ax_kl


def plot_compare_view(ax_ret: Axes, ax_kl: Axes, view: CompareView, env_steps_max: float,
                      return_range: tuple[float, float], title: str,
                      delta: float | None = None) -> tuple[Axes, Axes]:
    """The panel's figure. Left: each algorithm's smoothed learning curve up to the view's
    iteration (``ax_ret.lines[k]``, k-th algorithm). Right: the fraction of the updates so far
    in each KL bin, as steps (``ax_kl.patches[k]`` a ``StepPatch``), and ``delta`` dashed."""
    for algo in view.algos:
        plot_band(ax_ret, view.env_steps, view.returns[algo], _colour(algo), _name(algo))
    ax_ret.set_xlim(0, env_steps_max)
    ax_ret.set_ylim(*return_range)
    label(ax_ret, f"{title}: after {view.iteration} updates", "environment steps",
          "mean episode return (smoothed)")
    ax_ret.legend(loc="lower right")
    for algo in view.algos:
        ax_kl.stairs(view.kl_fraction[algo], view.kl_edges, color=_colour(algo), linewidth=2.0,
                     label=f"{_name(algo)}: median {view.kl_median[algo]:.1g}")
    if delta is not None:
        ax_kl.axvline(delta, color=BLACK, linestyle="--", linewidth=1.2, label=f"TRPO's δ = {delta:g}")
    _log_kl(ax_kl, "x")
    ax_kl.set_xlim(view.kl_edges[0], view.kl_edges[-1])
    ax_kl.set_ylim(0.0, 1.0)
    label(ax_kl, f"KL of the updates 1…{view.iteration} (all seeds)",
          "KL(π_old‖π_new) (nats, log scale)", "fraction of updates")
    ax_kl.legend(loc="upper left")
    return ax_ret, ax_kl


def compare_readout(view: CompareView) -> str:
    """The panel's numbers as HTML."""
    parts = [
        f"<b>{_name(a)}</b>: return {view.return_now[a]:.0f}, median KL {view.kl_median[a]:.2g}"
        for a in view.algos
    ]
    return f"after update {view.iteration}: &nbsp; " + " &nbsp;·&nbsp; ".join(parts)


def compare_panel(result_by_algo: Mapping[str, TrainResult], *, algo_a: str = "trpo",
                  algo_b: str = "ppo", title: str = "CartPole-v1",
                  delta: float | None = None, iteration: int | None = None,
                  smoothing: int = 1) -> Panel:
    """Scrub through two algorithms' precomputed training on one environment.

    Sliders: ``"iteration"`` (1 … I, the number of updates shown; default all) and
    ``"smoothing"`` (1 … 10, the trailing window of :func:`course_lib.lessons.l08_trpo_vs_ppo.smooth`).
    The KL histogram's bins are :func:`course_lib.lessons.l08_trpo_vs_ppo.kl_bins` anchored at ``delta``
    (at 0.01 when no ``delta`` is given).

    Args:
      result_by_algo: ``{algo: train_many(config_algo, seeds)}`` with the same iteration count.
      algo_a, algo_b: the two keys to compare.
      title: the environment's name for the figure.
      delta: TRPO's δ, drawn on the KL axis when given.
      iteration, smoothing: initial slider values.
    """
    algos = (algo_a, algo_b)
    edges = kl_bins(0.01 if delta is None else float(delta))
    compare_view(result_by_algo, algos, 1, 1, edges)  # raises ValueError on bad keys or runs
    total = int(np.asarray(result_by_algo[algo_a].mean_return).shape[-1])
    iteration = total if iteration is None else iteration
    if isinstance(iteration, bool) or not isinstance(iteration, int) or not 1 <= iteration <= total:
        raise ValueError(f"iteration must be an int in [1, {total}], got {iteration!r}")
    if isinstance(smoothing, bool) or not isinstance(smoothing, int) or not 1 <= smoothing <= 10:
        raise ValueError(f"smoothing must be an int in [1, 10], got {smoothing!r}")
    env_steps_max = float(np.asarray(result_by_algo[algo_a].env_steps).reshape(-1, total)[0, -1])
    lows = [np.min(result_by_algo[a].mean_return) for a in algos]
    highs = [np.max(result_by_algo[a].mean_return) for a in algos]
    pad = 0.05 * (max(highs) - min(lows) + 1e-9)
    return_range = (float(min(lows) - pad), float(max(highs) + pad))
    style = {"continuous_update": False, "style": {"description_width": "initial"}}
    sliders = {
        "iteration": W.IntSlider(value=iteration, min=1, max=total, step=1,
                                 description="updates shown", layout=W.Layout(width="440px"), **style),
        "smoothing": W.IntSlider(value=smoothing, min=1, max=10, step=1,
                                 description="smoothing (updates)", layout=W.Layout(width="380px"), **style),
    }

    def draw(figure, iteration: int, smoothing: int) -> str:
        view = compare_view(result_by_algo, algos, iteration, smoothing, edges)
        figure.set_layout_engine("none")
        ax_ret, ax_kl = figure.subplots(1, 2, gridspec_kw={
            "left": 0.075, "right": 0.99, "bottom": 0.12, "top": 0.92, "wspace": 0.24})
        plot_compare_view(ax_ret, ax_kl, view, env_steps_max, return_range, title, delta)
        return compare_readout(view)

    return Panel(sliders, draw, figsize=(11.0, 4.6))
