"""Lesson 10's figures and its panel: PPO's implementation details switched one at a time.

* :func:`plot_ablation_summary` draws, for every variant of an
  :class:`~course_lib.lessons.l10_rest_of_ppo.AblationGrid`, each seed's final return (left)
  and each seed's largest and mean KL(π_old‖π_new) per update (right, log scale, with the trust
  region δ): the static figure of the lesson.
* :func:`ablation_panel` has one checkbox per detail (checked: the detail is on). Each click
  redraws the learning curves (seed mean and range) and the KL per update of the runs that
  :func:`course_lib.lessons.l10_rest_of_ppo.combination_view` picks from the trained grid,
  against the full recipe; nothing is trained on a click. A combination that was not trained
  is said so in the readout, and its details are shown switched one at a time.
"""

from __future__ import annotations

import html

import ipywidgets as W
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

from course_lib.lessons.common import seed_band
from course_lib.lessons.l10_rest_of_ppo import (
    AblationGrid,
    CombinationView,
    RunSummary,
    ablation_rows,
    combination_view,
    run_key,
    switched,
)
from course_lib.widgets.panel import Panel
from course_lib.widgets.plots import BLACK, OKABE_ITO, label, plot_band

__all__ = [
    "ablation_panel",
    "ablation_readout",
    "detail_states",
    "plot_ablation_summary",
    "plot_combination",
]

RECIPE_COLOUR = BLACK
RUN_COLOURS = tuple(c for c in OKABE_ITO if c not in (BLACK, "#F0E442"))  # no yellow: too pale


def _log_axis(ax: Axes, axis: str) -> None:
    (ax.set_yscale if axis == "y" else ax.set_xscale)("log")
    target = ax.yaxis if axis == "y" else ax.xaxis
    target.set_major_locator(LogLocator(base=10.0, numticks=8))
    target.set_minor_locator(NullLocator())
    target.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}"))


def _run_label(grid: AblationGrid, key: frozenset[str]) -> str:
    if not key:
        return "full recipe"
    parts = []
    for d in grid.details:
        if d.key in key:
            parts.append(f"{d.name} {switched(d, grid.base)}")
    return " + ".join(parts)


def plot_ablation_summary(ax_ret: Axes, ax_kl: Axes, grid: AblationGrid, last: int = 5) -> None:
    """Every variant of ``grid`` on one row: each seed's final return (``ax_ret``, dots) and each
    seed's largest KL per update (``ax_kl``, dots) with its mean KL per update (ticks), δ dashed.

    Row 0 (top) is the full recipe, then the details in the grid's order.
    ``ax_ret.collections[k]`` holds the k-th row's dots.
    """
    rows = ablation_rows(grid, last)
    names = ["full recipe"] + [f"{r.detail.name} ({r.direction})" for r in rows[1:]]
    keys = [run_key()] + [run_key([r.detail.key]) for r in rows[1:]]
    n = len(rows)
    seeds = len(grid.seeds)
    jitter = np.linspace(-0.18, 0.18, seeds)
    for i, key in enumerate(keys):
        curves = grid.runs[key]
        y = n - 1 - i
        colour = RECIPE_COLOUR if i == 0 else RUN_COLOURS[(i - 1) % len(RUN_COLOURS)]
        final = np.asarray(curves.mean_return)[:, -last:].mean(axis=-1)
        ax_ret.scatter(final, y + jitter, s=18, color=colour, alpha=0.8, linewidths=0)
        est = rows[i].summary.final
        ax_ret.plot([est.lo, est.hi], [y, y], color=colour, linewidth=3.0, alpha=0.5)
        ax_ret.plot([est.value], [y], marker="|", markersize=14, color=colour)
        kl = np.asarray(curves.kl)
        ax_kl.scatter(kl.max(axis=-1), y + jitter, s=18, color=colour, alpha=0.8, linewidths=0,
                      label="largest KL of a seed" if i == 0 else None)
        ax_kl.scatter(kl.mean(axis=-1), y + jitter, s=22, marker="|", color=colour,
                      label="mean KL of a seed" if i == 0 else None)
    for ax in (ax_ret, ax_kl):
        ax.set_yticks(range(n))
        ax.set_ylim(-0.6, n - 0.4)
        ax.grid(axis="y", visible=False)
    ax_ret.set_yticklabels(list(reversed(names)))
    ax_kl.set_yticklabels([])
    ax_kl.axvline(grid.delta, color=BLACK, linestyle="--", linewidth=1.2,
                  label=f"δ = {grid.delta:g}")
    _log_axis(ax_kl, "x")
    label(ax_ret, f"{grid.env}: final return ({seeds} seeds; bar: IQM and 95% CI)",
          "mean return, last iterations", "")
    label(ax_kl, "KL(π_old‖π_new) per update, per seed", "nats (log scale)", "")
    ax_kl.legend(loc="lower right", fontsize=9)


def plot_combination(ax_ret: Axes, ax_kl: Axes, grid: AblationGrid, view: CombinationView) -> None:
    """The panel's figure: the full recipe (black) and each run of ``view.shown`` (colours),
    learning curves with seed bands (``ax_ret``) and KL per update with seed bands (``ax_kl``,
    log scale, δ dashed). ``ax_ret.lines[k]`` is the k-th run's seed mean, the recipe first."""
    for k, key in enumerate((run_key(), *view.shown)):
        curves = grid.runs[key]
        colour = RECIPE_COLOUR if k == 0 else RUN_COLOURS[(k - 1) % len(RUN_COLOURS)]
        name = _run_label(grid, key)
        plot_band(ax_ret, curves.env_steps, seed_band(curves.mean_return), colour, name)
        plot_band(ax_kl, curves.env_steps, seed_band(np.maximum(curves.kl, 1e-6)), colour, name)
    ax_kl.axhline(grid.delta, color=BLACK, linestyle="--", linewidth=1.2, label=f"δ = {grid.delta:g}")
    _log_axis(ax_kl, "y")
    label(ax_ret, f"{grid.env}: learning curves (band: seed range)", "environment steps",
          "mean episode return")
    label(ax_kl, "KL(π_old‖π_new) of each update", "environment steps", "nats (log scale)")
    ax_ret.legend(loc="lower right", fontsize=9)
    ax_kl.legend(loc="upper right", fontsize=9)


def _summary_html(name: str, s: RunSummary, seeds: int) -> str:
    text = (f"<b>{html.escape(name)}</b>: final return {s.final.value:.0f} "
            f"[{s.final.lo:.0f}, {s.final.hi:.0f}]")
    if s.diff is not None:
        for what, d in (("vs recipe", s.diff), ("mean over training vs recipe", s.training_diff)):
            verdict = "within" if d.within_noise else "beyond"
            text += (f", {what} {d.value:+.0f} [{d.lo:+.0f}, {d.hi:+.0f}] "
                     f"({verdict} the noise of {seeds} seeds)")
    text += (f"; KL per update mean {s.mean_kl:.4f}, max {s.max_kl:.3f}; "
             f"clip fraction {s.clipfrac:.3f}")
    return text


def ablation_readout(grid: AblationGrid, view: CombinationView) -> str:
    """The panel's numbers as HTML: the sentence of ``view``, then per run its final return
    IQM [95 % interval], difference to the recipe, KL per update and clip fraction."""
    lines = [f"<i>{html.escape(view.message)}</i>"]
    for key in (run_key(), *view.shown):
        lines.append(_summary_html(_run_label(grid, key), view.summaries[key], len(grid.seeds)))
    return "<br>".join(lines)


def detail_states(grid: AblationGrid) -> dict[str, bool]:
    """``{detail key: True when the full recipe has the detail on}``: the checkboxes'
    starting values."""
    return {d.key: switched(d, grid.base) == "off" for d in grid.details}


def ablation_panel(grid: AblationGrid, **checked: bool) -> Panel:
    """One checkbox per detail of ``grid`` (checked: on); the figure and readout show the
    trained runs of the combination set (:func:`course_lib.lessons.l10_rest_of_ppo.combination_view`).

    Args:
      grid: :func:`course_lib.lessons.l10_rest_of_ppo.ablation_grid` of one environment.
      checked: starting values by detail key (default: the full recipe's states).
    """
    recipe = detail_states(grid)
    unknown = set(checked) - set(recipe)
    if unknown:
        raise ValueError(f"checked: no detail {sorted(unknown)} in this grid; "
                         f"known: {sorted(recipe)}")
    for key, value in checked.items():
        if not isinstance(value, bool):
            raise TypeError(f"checked: {key} must be True or False, got {value!r}")
    boxes = {
        d.key: W.Checkbox(value=checked.get(d.key, recipe[d.key]), description=d.name,
                          indent=False, layout=W.Layout(width="250px"))
        for d in grid.details
    }

    def draw(figure: Figure, **values: bool) -> str:
        ablated = [k for k, v in values.items() if v != recipe[k]]
        view = combination_view(grid, ablated)
        figure.set_layout_engine("none")
        ax_ret, ax_kl = figure.subplots(1, 2, gridspec_kw={
            "left": 0.07, "right": 0.99, "bottom": 0.12, "top": 0.92, "wspace": 0.22})
        plot_combination(ax_ret, ax_kl, grid, view)
        return ablation_readout(grid, view)

    return Panel(boxes, draw, figsize=(11.0, 4.6), layout=None)
