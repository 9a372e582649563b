"""Lesson 06's figures and its two δ panels.

* :func:`trpo_delta_panel` reads a precomputed ``train_many(..., delta=deltas)`` grid: the
  slider ``"delta"`` picks one of the swept values and the panel redraws that δ's learning
  curves (mean and seed range) and its exact KL per update against δ. The numbers come from
  :func:`course_lib.lessons.l06_trpo.delta_view`; nothing is trained on a slider move.
* :func:`trpo_live_panel` retrains: every move of ``"delta"`` runs
  :func:`course_lib.lessons.l06_trpo.live_run` (one ``course_lib.rl.train`` call that reuses the
  compiled program) and draws the fresh learning curve and KL per update.

The plot functions draw into given axes and are used by the lesson's static figures too.
"""

from __future__ import annotations

import time

import ipywidgets as W
import numpy as np
from matplotlib.axes import Axes
from matplotlib.ticker import LogLocator, NullLocator

from course_lib.core.solvers import LineSearchInfo
from course_lib.lessons.l06_trpo import (
    DeltaView,
    LiveRun,
    SeedBand,
    UpdateAnatomy,
    delta_view,
    final_return,
    live_run,
)
from course_lib.rl.config import TrainConfig
from course_lib.rl.train import TrainResult
from course_lib.widgets.panel import Panel
from course_lib.widgets.plots import BLACK, BLUE, GREEN, ORANGE, VERMILLION, label, plot_band

__all__ = [
    "KL_AXIS",
    "LIVE_DELTA_RANGE",
    "RETURN_AXIS",
    "delta_readout",
    "live_readout",
    "plot_cg_residuals",
    "plot_delta_view",
    "plot_line_search",
    "plot_live_run",
    "trpo_delta_panel",
    "trpo_live_panel",
]

RETURN_AXIS = (0.0, 520.0)
"""The return axis of every learning-curve plot (CartPole-v1 caps the return at 500)."""

KL_AXIS = (1e-4, 1.0)
"""The KL axis (log scale) of every KL-per-update plot, fixed so that δ's move is visible."""

LIVE_DELTA_RANGE = (1e-3, 0.3)
"""The live panel's δ range (a log slider)."""


# ------------------------------------------------------------------------------------------
# Plot functions
# ------------------------------------------------------------------------------------------


def _log_kl_axis(ax: Axes) -> None:
    """Log scale on the fixed :data:`KL_AXIS`, decades only (minor ticks cost redraw time)."""
    ax.set_yscale("log")
    ax.set_ylim(*KL_AXIS)
    ax.yaxis.set_major_locator(LogLocator(base=10.0, numticks=6))
    ax.yaxis.set_minor_locator(NullLocator())


def plot_cg_residuals(ax: Axes, anatomy: UpdateAnatomy) -> Axes:
    """Conjugate gradient's residual norm ‖g − (F + μI)x_k‖ against k, log scale.

    Zeros (an exactly converged residual) are not drawn on the log axis.
    """
    r = np.asarray(anatomy.cg_residuals, dtype=np.float64)
    k = np.arange(len(r))
    shown = r > 0
    ax.semilogy(k[shown], r[shown], "o-", color=BLUE, label="CG residual ‖g − (F+μI)x_k‖")
    ax.set_xticks(k)
    return label(ax, "Conjugate gradient on Fisher-vector products",
                 "CG iteration k (one Fisher-vector product each)",
                 "residual norm (log scale)", legend=True)


def plot_line_search(ax_kl: Axes, ax_gain: Axes, info: LineSearchInfo, delta: float) -> tuple:
    """The line search's trace: exact KL and surrogate improvement of each tried fraction.

    ``info`` from ``backtracking_line_search(..., evaluate_all=True)``. Filled markers are
    the fractions TRPO evaluates (k ≤ accepted k), hollow ones the rest; the accepted
    fraction gets a large orange ring; the dashed line is δ.
    """
    t = info.trace
    frac = np.asarray(t.fractions)
    kl = np.asarray(t.kl)
    gain = np.asarray(t.improvement)
    k_acc = int(info.n_backtracks)
    tried = np.arange(len(frac)) <= k_acc
    for ax, y, colour, name in ((ax_kl, kl, VERMILLION, "exact KL(π_old‖π_new)"),
                                (ax_gain, gain, GREEN, "surrogate improvement")):
        ax.plot(frac, y, "-", color=colour, linewidth=1.2, label=name)
        ax.plot(frac[tried], y[tried], "o", color=colour, markersize=8, label="evaluated by TRPO")
        ax.plot(frac[~tried], y[~tried], "o", color=colour, markersize=8, fillstyle="none",
                label="not needed")
        if bool(info.accepted):
            ax.plot([frac[k_acc]], [y[k_acc]], "o", markersize=17, fillstyle="none",
                    markeredgewidth=2.5, color=ORANGE, label=f"accepted: k = {k_acc}")
    ax_kl.axhline(float(delta), color=BLACK, linestyle="--", linewidth=1.2, label=f"δ = {delta:g}")
    top = 1.3 * max(float(delta), float(np.nanmax(kl)))
    ax_kl.axhspan(float(delta), top, color=VERMILLION, alpha=0.07, linewidth=0,
                  label="rejected region KL > δ")
    ax_kl.set_ylim(0.0, top)
    ax_gain.axhline(0.0, color=BLACK, linestyle=":", linewidth=1.0)
    label(ax_kl, f"δ = {delta:g}: exact KL of θ_old + 0.8ᵏ·s", "step fraction 0.8ᵏ",
          "mean KL (nats)")
    ax_kl.legend(loc="upper left")
    label(ax_gain, f"δ = {delta:g}: surrogate improvement", "step fraction 0.8ᵏ",
          "L(θ) − L(θ_old)")
    ax_gain.legend(loc="upper left")
    return ax_kl, ax_gain


def plot_delta_view(ax_ret: Axes, ax_kl: Axes, view: DeltaView,
                    context: list[SeedBand] | None = None) -> tuple[Axes, Axes]:
    """One δ of a sweep: learning-curve band (left) and exact KL per update vs δ (right).

    ``ax_ret.lines[0]`` is the mean return of ``view``; ``context`` (the other δs' return
    bands) are drawn after it as thin grey lines. ``ax_kl.lines[0]`` is the mean KL,
    ``ax_kl.lines[1]`` the line KL = δ.
    """
    x = view.env_steps
    plot_band(ax_ret, x, view.returns, BLUE, f"δ = {view.delta:g}: mean of seeds (band: range)")
    for i, band in enumerate(context or []):
        ax_ret.plot(x, band.mean, color="0.6", linewidth=1.0, zorder=1,
                    label="other δ (means)" if i == 0 else None)
    ax_ret.set_ylim(*RETURN_AXIS)
    label(ax_ret, f"TRPO on CartPole-v1, δ = {view.delta:g}", "environment steps",
          "mean episode return")
    ax_ret.legend(loc="lower right")
    plot_band(ax_kl, x, view.kl, VERMILLION, "exact KL per update (mean, band: range)")
    ax_kl.axhline(view.delta, color=BLACK, linestyle="--", linewidth=1.5, label=f"δ = {view.delta:g}")
    _log_kl_axis(ax_kl)
    label(ax_kl, "KL(π_old‖π_new) of each update", "environment steps",
          "mean KL (nats, log scale)")
    ax_kl.legend(loc="upper right")
    return ax_ret, ax_kl


def plot_live_run(ax_ret: Axes, ax_kl: Axes, run: LiveRun) -> tuple[Axes, Axes]:
    """One fresh run: return curve (``ax_ret.lines[0]``), KL per update (``ax_kl.lines[0]``),
    δ (``ax_kl.lines[1]``) and the updates whose line search shrank the step (orange)."""
    x = run.env_steps
    ax_ret.plot(x, run.mean_return, "o-", color=BLUE, markersize=4, label=f"seed {run.seed}")
    ax_ret.set_ylim(*RETURN_AXIS)
    label(ax_ret, f"A fresh TRPO run, δ = {run.delta:.3g}", "environment steps",
          "mean episode return")
    ax_ret.legend(loc="lower right")
    ax_kl.plot(x, run.kl, "o-", color=VERMILLION, markersize=4, label="exact KL of the update")
    ax_kl.axhline(run.delta, color=BLACK, linestyle="--", linewidth=1.5, label=f"δ = {run.delta:.3g}")
    shrunk = (run.backtracks >= 1) & (run.accepted > 0.5)
    ax_kl.plot(x[shrunk], run.kl[shrunk], "s", color=ORANGE, markersize=8,
               label="line search shrank the step")
    _log_kl_axis(ax_kl)
    label(ax_kl, "KL(π_old‖π_new) of each update", "environment steps",
          "mean KL (nats, log scale)")
    ax_kl.legend(loc="upper right")
    return ax_ret, ax_kl


# ------------------------------------------------------------------------------------------
# Readouts
# ------------------------------------------------------------------------------------------


def delta_readout(view: DeltaView) -> str:
    """The sweep panel's numbers as HTML."""
    return (
        f"<b>δ = {view.delta:g}</b> &nbsp; final return (last 5 iterations, "
        f"{len(view.final)} seeds): <b>{view.final.mean():.0f}</b> "
        f"(range {view.final.min():.0f}–{view.final.max():.0f}) &nbsp;·&nbsp; "
        f"line search accepted a step on {100 * view.accepted:.0f}% of updates, "
        f"shrank it on {100 * view.backtracked:.0f}% &nbsp;·&nbsp; "
        f"updates with KL &gt; δ: {100 * view.overshoot:.0f}%"
    )


def live_readout(run: LiveRun, seconds: float | None = None) -> str:
    """The live panel's numbers as HTML (``seconds``: how long the training call took)."""
    shrunk = float(np.mean((run.backtracks >= 1) & (run.accepted > 0.5)))
    last = min(5, len(run.mean_return))
    took = "" if seconds is None else f" &nbsp;·&nbsp; trained in {seconds:.1f} s"
    return (
        f"<b>δ = {run.delta:.3g}</b>, seed {run.seed} &nbsp; final return (last {last} "
        f"iterations): <b>{float(final_return(run.mean_return, last)):.0f}</b> &nbsp;·&nbsp; "
        f"line search accepted {100 * float(np.mean(run.accepted > 0.5)):.0f}% of updates, "
        f"shrank {100 * shrunk:.0f}% &nbsp;·&nbsp; largest KL / δ = "
        f"{float(np.max(run.kl)) / run.delta:.2f}{took}"
    )


# ------------------------------------------------------------------------------------------
# Panels
# ------------------------------------------------------------------------------------------


def _two_axes(figure) -> tuple[Axes, Axes]:
    """Two side-by-side axes with fixed margins: a constrained layout would double the
    time of every redraw (it lays the figure out again on each save)."""
    figure.set_layout_engine("none")
    ax_ret, ax_kl = figure.subplots(1, 2, gridspec_kw={
        "left": 0.075, "right": 0.99, "bottom": 0.12, "top": 0.93, "wspace": 0.24})
    return ax_ret, ax_kl


def trpo_delta_panel(result: TrainResult, deltas, *, delta: float = 0.01) -> Panel:
    """A panel over a precomputed δ × seeds grid; slider ``"delta"`` over the swept values.

    Args:
      result: ``course_lib.train_many(TrainConfig(algo="trpo"), seeds, delta=deltas)``.
      deltas: the swept δ values, in the order of the sweep.
      delta: the initial δ; snapped to the nearest swept value (log scale).
    """
    grid = [float(d) for d in np.asarray(deltas, dtype=np.float64).ravel()]
    first = delta_view(result, grid, delta)
    context = [delta_view(result, grid, d).returns for d in grid]
    slider = W.SelectionSlider(
        options=[(f"{d:g}", d) for d in grid], value=first.delta, description="δ (nats)",
        continuous_update=False, style={"description_width": "initial"},
        layout=W.Layout(width="420px"),
    )

    def draw(figure, delta: float) -> str:
        view = delta_view(result, grid, delta)
        others = [band for i, band in enumerate(context) if i != view.index]
        ax_ret, ax_kl = _two_axes(figure)
        plot_delta_view(ax_ret, ax_kl, view, others)
        return delta_readout(view)

    return Panel({"delta": slider}, draw, figsize=(11.0, 4.6))


def trpo_live_panel(*, delta: float = 0.01, seed: int = 0,
                    config: TrainConfig | None = None) -> Panel:
    """A panel that retrains TRPO from scratch for every value of its slider ``"delta"``.

    Each move calls :func:`course_lib.lessons.l06_trpo.live_run` (``course_lib.rl.train`` with
    the new δ; the compiled program is reused, so a CartPole run takes about a second).

    Args:
      delta: the initial δ, in :data:`LIVE_DELTA_RANGE`.
      seed: the training seed (fixed while δ moves).
      config: the run's settings (default ``TrainConfig(algo="trpo")``); its ``delta``
        is replaced by the slider's.
    """
    lo, hi = LIVE_DELTA_RANGE
    if not lo <= float(delta) <= hi:
        raise ValueError(f"delta must lie in [{lo}, {hi}], got {delta}")
    config = TrainConfig(algo="trpo") if config is None else config
    if not isinstance(config, TrainConfig):
        raise TypeError(f"config must be a TrainConfig, got {type(config).__name__}")
    if config.algo not in ("trpo", "npg"):
        raise ValueError(f"config.algo must be 'trpo' or 'npg', got {config.algo!r}")
    slider = W.FloatLogSlider(
        value=float(delta), base=10.0, min=float(np.log10(lo)), max=float(np.log10(hi)),
        step=0.05, description="δ (nats)", readout_format=".3g", continuous_update=False,
        style={"description_width": "initial"}, layout=W.Layout(width="420px"),
    )

    def draw(figure, delta: float) -> str:
        start = time.perf_counter()
        run = live_run(config, delta, seed)
        seconds = time.perf_counter() - start
        ax_ret, ax_kl = _two_axes(figure)
        plot_live_run(ax_ret, ax_kl, run)
        return live_readout(run, seconds)

    return Panel({"delta": slider}, draw, figsize=(11.0, 4.6))
