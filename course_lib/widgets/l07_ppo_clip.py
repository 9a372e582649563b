"""Lesson 07's figures and its two ε panels.

* :func:`clip_panel` (slider ``"eps"``) draws one sample's clipped objective
  min(r·A, clip(r, 1−ε, 1+ε)·A) and its gradient ∂/∂r against the ratio r, for A = +1 (left)
  and A = −1 (right) (:func:`course_lib.lessons.l07_ppo_clip.clip_objective`); analytic, it redraws in tens of ms.
* :func:`ppo_eps_panel` (slider ``"eps"`` over the swept values) reads a precomputed
  ``train_many(TrainConfig(), seeds, eps=eps_values)`` grid and redraws that ε's learning
  curves and KL per update (:func:`course_lib.lessons.l07_ppo_clip.eps_view`); nothing is trained.

The plot functions draw into given axes and serve the lesson's static figures as well.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import LogLocator, NullLocator

from course_lib.lessons.l06_trpo import seed_band
from course_lib.lessons.l07_ppo_clip import (
    VARIANTS,
    ClipCurve,
    EpochStudy,
    EpsView,
    clip_objective,
    eps_view,
    flat_region,
)
from course_lib.rl.train import TrainResult
from course_lib.widgets.panel import GridLayer, Panel, animate, slider
from course_lib.widgets.plots import (
    BLACK,
    BLUE,
    GREEN,
    ORANGE,
    PURPLE,
    VERMILLION,
    label,
    plot_band,
)

__all__ = [
    "EPS_RANGE",
    "KL_AXIS",
    "RATIO_GRID",
    "RETURN_AXIS",
    "VARIANT_COLOURS",
    "clip_panel",
    "clip_readout",
    "draw_clip",
    "eps_readout",
    "plot_clip_curve",
    "plot_epoch_study",
    "plot_eps_view",
    "plot_penalty_run",
    "plot_training_run",
    "ppo_eps_panel",
]

RATIO_GRID = np.linspace(0.005, 2.495, 250)
"""The ratios the clip panel is drawn at: a 0.01 grid offset by half a step, so it never
lands exactly on 1 ± ε for a slider value on the 0.01 grid (the gradient is one-sided there)."""

EPS_RANGE = (0.0, 0.9)
"""The clip panel's ε range."""

RETURN_AXIS = (0.0, 520.0)
"""The return axis of every learning curve (CartPole-v1 caps the return at 500)."""

KL_AXIS = (1e-4, 10.0)
"""The KL axis (log scale) of the lesson's KL plots."""

VARIANT_COLOURS = dict(zip(VARIANTS, (BLUE, VERMILLION, GREEN)))
"""Colour of each variant of :func:`course_lib.lessons.l07_ppo_clip.epoch_study`."""

_OBJ_AXIS = (-2.7, 2.7)


# ------------------------------------------------------------------------------------------
# One sample's clipped objective
# ------------------------------------------------------------------------------------------


def plot_clip_curve(ax: Axes, curve: ClipCurve, advantage: float, eps: float,
                    legend: bool = True) -> Axes:
    """One sample's L^CLIP term and its gradient ∂/∂r against r, on one axes.

    ``ax.lines[0]`` is L^CLIP, ``lines[1]`` the unclipped r·A, ``lines[2]`` the gradient
    ∂L^CLIP/∂r (the same scale works for both: |A| = 1 makes the gradient 0 or ±1). The clip
    interval [1−ε, 1+ε] is shaded green, the ratios where the gradient is zero red, and the
    ratios where the minimum keeps the unclipped term because it is the worse one orange.
    """
    r = np.asarray(curve.ratios)
    right = float(r[-1]) + 0.01
    sign = "+" if advantage > 0 else "−"
    ax.plot(r, np.asarray(curve.objective), color=BLUE, label="L^CLIP = min(r·A, clip(r)·A)")
    ax.plot(r, np.asarray(curve.unclipped), color="0.45", linestyle="--", linewidth=1.3,
            label="r·A (no clip)")
    ax.plot(r, np.asarray(curve.grad_ratio), color=VERMILLION, linewidth=2.5,
            label="∂L^CLIP/∂r (gradient)")
    interval, clipped, worse = _clip_spans(advantage, eps, right)
    ax.axvspan(*interval, color=GREEN, alpha=0.15, linewidth=0,
               label=f"clip interval [{1 - eps:.2f}, {1 + eps:.2f}]")
    ax.axvspan(*clipped, color=VERMILLION, alpha=0.12, linewidth=0, label="clipped: gradient 0")
    ax.axvspan(*worse, color=ORANGE, alpha=0.12, linewidth=0,
               label="r·A kept: it is the worse side")
    ax.axvline(1.0, color=BLACK, linestyle=":", linewidth=1.0)
    ax.set_xlim(0.0, right)
    ax.set_ylim(*_OBJ_AXIS)
    label(ax, f"A = {sign}1", "ratio r = π/π_old", "objective and gradient")
    if legend:
        ax.legend(loc="lower right" if advantage > 0 else "upper right", fontsize=10)
    return ax


def clip_readout(eps: float) -> str:
    """The clip panel's numbers as HTML: the interval, where the gradient vanishes, and the
    syllabus' worked example (π_old = 0.2, π = 0.8, A = +5)."""
    lo_pos, _ = flat_region(1.0, eps)
    _, hi_neg = flat_region(-1.0, eps)
    ex = clip_objective(np.array([4.0]), 5.0, eps)
    return (
        f"<b>ε = {eps:.2f}</b> &nbsp; clip interval [1−ε, 1+ε] = "
        f"<b>[{1 - eps:.2f}, {1 + eps:.2f}]</b> &nbsp;·&nbsp; gradient zero for "
        f"<b>r &gt; {lo_pos:.2f}</b> when A &gt; 0 and for <b>r &lt; {hi_neg:.2f}</b> when A &lt; 0"
        f"<br>Worked example r = 0.8/0.2 = 4, A = +5: r·A = 20, "
        f"L^CLIP = {float(ex.objective[0]):.2f}, ∂L^CLIP/∂r = {float(ex.grad_ratio[0]):.2f}"
    )


def _clip_spans(advantage: float, eps: float, right: float) -> list[tuple[float, float]]:
    """The three shaded x-ranges of :func:`plot_clip_curve`: clip interval, zero gradient, and
    where the minimum keeps r·A (each ``(x0, x1)``, clipped to ``[0, right]``)."""
    lo, hi = flat_region(advantage, eps)
    worse = (0.0, 1.0 - eps) if advantage > 0 else (1.0 + eps, right)
    return [(1.0 - eps, 1.0 + eps), (max(lo, 0.0), min(hi, right)),
            (max(worse[0], 0.0), max(worse[1], max(worse[0], 0.0)))]


def _set_clip_curve(ax: Axes, curve: ClipCurve, advantage: float, eps: float) -> None:
    """Move what ε changes in an axes :func:`plot_clip_curve` drew: L^CLIP, its gradient, the
    three shaded ranges and the clip interval's legend label."""
    ax.lines[0].set_ydata(np.asarray(curve.objective))
    ax.lines[2].set_ydata(np.asarray(curve.grad_ratio))
    right = float(np.asarray(curve.ratios)[-1]) + 0.01
    for patch, (x0, x1) in zip(ax.patches, _clip_spans(advantage, eps, right)):
        patch.set_x(x0)
        patch.set_width(x1 - x0)
    legend = ax.get_legend()
    if legend is not None:
        legend.get_texts()[3].set_text(f"clip interval [{1 - eps:.2f}, {1 + eps:.2f}]")


def draw_clip(figure: Figure, eps: float) -> str:
    """Draw the clip figure (left A = +1, right A = −1) into ``figure`` with fixed margins;
    return :func:`clip_readout`. On a figure it drew before, only the curves, the shaded
    ranges and the interval's label move (the panel keeps its figure between redraws).

    The moving layer of the panel (:func:`course_lib.widgets.panel.animate`) is everything
    inside the axes: the shaded ranges, the grid drawn over them (:class:`GridLayer`), the
    curves and lines, the frames and the legend; the static one the ticks, labels and titles.
    """
    if not figure.axes:
        figure.set_layout_engine("none")
        figure.subplots(1, 2, gridspec_kw={
            "left": 0.075, "right": 0.99, "bottom": 0.12, "top": 0.92, "wspace": 0.2})
        for ax, advantage in zip(figure.axes, (1.0, -1.0)):
            plot_clip_curve(ax, clip_objective(RATIO_GRID, advantage, eps), advantage, eps,
                            legend=advantage > 0)
            animate(*ax.patches, GridLayer(ax), *ax.lines, *ax.spines.values(),
                    *([ax.get_legend()] if ax.get_legend() else []))
    else:
        for ax, advantage in zip(figure.axes, (1.0, -1.0)):
            _set_clip_curve(ax, clip_objective(RATIO_GRID, advantage, eps), advantage, eps)
    return clip_readout(eps)


def clip_panel(eps: float = 0.2) -> Panel:
    """L^CLIP and its gradient against r for A = ±1; slider ``"eps"`` in :data:`EPS_RANGE`.

    ``panel.figure.axes[0]`` is A = +1, ``axes[1]`` A = −1; in each, ``lines[0]`` is L^CLIP,
    ``lines[1]`` r·A and ``lines[2]`` ∂L^CLIP/∂r (see :func:`plot_clip_curve`).
    """
    lo, hi = EPS_RANGE
    if not lo <= float(eps) <= hi:
        raise ValueError(f"eps must lie in [{lo}, {hi}], got {eps}")
    s = slider(float(eps), lo, hi, 0.01, "ε", readout_format=".2f")
    return Panel({"eps": s}, draw_clip, figsize=(11.0, 4.6), layout=None, live=True,
                 keep_figure=True)


# ------------------------------------------------------------------------------------------
# Training figures
# ------------------------------------------------------------------------------------------


def _log_axis(ax: Axes, lim=KL_AXIS) -> None:
    """Log scale, decades only (minor ticks cost redraw time)."""
    ax.set_yscale("log")
    ax.set_ylim(*lim)
    ax.yaxis.set_major_locator(LogLocator(base=10.0, numticks=8))
    ax.yaxis.set_minor_locator(NullLocator())


def plot_training_run(axes, result: TrainResult, eps: float, delta: float = 0.01):
    """One PPO run on three axes: return; exact KL and its k3 estimate per update with TRPO's
    δ; the largest ratio per update with 1+ε and the clip fraction (right-hand scale)."""
    ax_ret, ax_kl, ax_r = axes
    x = np.asarray(result.env_steps)
    d = result.diagnostics
    ax_ret.plot(x, np.asarray(result.mean_return), "o-", color=BLUE, markersize=4,
                label="mean return of the iteration")
    ax_ret.set_ylim(*RETURN_AXIS)
    label(ax_ret, "PPO on CartPole-v1", "environment steps", "mean episode return", legend=True)
    ax_kl.plot(x, np.asarray(d["kl"]), "o-", color=VERMILLION, markersize=4, label="exact KL")
    ax_kl.plot(x, np.asarray(d["kl_k3"]), "x", color=PURPLE, markersize=6, label="k3 estimate")
    ax_kl.axhline(delta, color=BLACK, linestyle="--", linewidth=1.2, label=f"TRPO's δ = {delta:g}")
    _log_axis(ax_kl, (1e-4, 1.0))
    label(ax_kl, "KL(π_old‖π_new) of each update", "environment steps",
          "mean KL (nats, log scale)", legend=True)
    ax_r.plot(x, np.asarray(d["max_ratio"]), "o-", color=BLUE, markersize=4, label="largest ratio")
    ax_r.axhline(1.0 + eps, color=BLACK, linestyle="--", linewidth=1.2, label=f"1+ε = {1 + eps:g}")
    ax_c = ax_r.twinx()
    ax_c.plot(x, np.asarray(d["clipfrac"]), "s", color=GREEN, markersize=4, label="clip fraction")
    ax_c.set_ylim(0.0, 1.0)
    ax_c.set_ylabel("fraction of samples with |r−1| > ε")
    ax_c.grid(False)
    label(ax_r, "Ratios after each update", "environment steps", "largest r = π_new/π_old")
    h1, l1 = ax_r.get_legend_handles_labels()
    h2, l2 = ax_c.get_legend_handles_labels()
    ax_r.legend(h1 + h2, l1 + l2, loc="upper right")
    return ax_ret, ax_kl, ax_r


def plot_epoch_study(axes, study: EpochStudy, delta: float = 0.01):
    """``axes [2, W]``: per stage (column), the exact KL after each epoch (top, log scale) and
    the largest ratio (bottom, log scale) for the three variants; line = median over seeds,
    band = range. Dashed: TRPO's δ (top) and 1+ε (bottom); dotted: the epochs training runs."""
    axes = np.asarray(axes).reshape(2, -1)
    e = np.arange(1, study.epochs + 1)
    for w, warm in enumerate(study.warmup_iterations):
        ax_kl, ax_r = axes[0, w], axes[1, w]
        for v, name in enumerate(study.variants):
            colour = VARIANT_COLOURS[name]
            for ax, values in ((ax_kl, study.kl), (ax_r, study.max_ratio)):
                band = seed_band(values[v, w])
                ax.plot(e, np.median(values[v, w], axis=0), color=colour, label=name)
                ax.fill_between(e, band.lo, band.hi, color=colour, alpha=0.15, linewidth=0)
        ax_kl.axhline(delta, color=BLACK, linestyle="--", linewidth=1.3, label=f"TRPO's δ = {delta:g}")
        ax_r.axhline(1 + study.eps, color=BLACK, linestyle="--", linewidth=1.3,
                     label=f"1+ε = {1 + study.eps:g}")
        for ax in (ax_kl, ax_r):
            ax.axvline(study.config_epochs, color="0.4", linestyle=":", linewidth=1.3,
                       label=f"training runs {study.config_epochs} epochs")
        _log_axis(ax_kl, (3e-4, 10.0))
        _log_axis(ax_r, (1.0, 40.0))
        ax_r.set_yticks([1.2, 2, 5, 10, 20], labels=["1.2", "2", "5", "10", "20"])
        ret = float(np.mean(study.return_before[w]))
        label(ax_kl, f"KL per epoch, after {warm} iterations\n(return ≈ {ret:.0f})",
              "epoch of the update", "KL(π_old‖π) (nats, log)", legend=w == 0)
        label(ax_r, f"Largest ratio per epoch, after {warm} iterations", "epoch of the update",
              "max r = π/π_old (log)", legend=w == 0)
    return axes


def plot_penalty_run(ax_kl: Axes, ax_beta: Axes, result: TrainResult, target_kl: float):
    """PPO-penalty: exact KL per update with the band [d_targ/1.5, 1.5·d_targ] in which β is kept
    (``ax_kl``), and β after each update (``ax_beta``, log scale)."""
    x = np.asarray(result.env_steps)
    kl = np.asarray(result.diagnostics["kl"])
    beta = np.asarray(result.diagnostics["beta"])
    ax_kl.plot(x, kl, "o-", color=VERMILLION, markersize=4, label="exact KL of the update")
    ax_kl.axhline(target_kl, color=BLACK, linestyle="--", linewidth=1.2,
                  label=f"target d_targ = {target_kl:g}")
    ax_kl.axhspan(target_kl / 1.5, target_kl * 1.5, color=GREEN, alpha=0.15, linewidth=0,
                  label="β kept: d_targ/1.5 ≤ KL ≤ 1.5·d_targ")
    _log_axis(ax_kl, (1e-4, 1.0))
    label(ax_kl, "PPO-penalty: KL of each update", "environment steps",
          "mean KL (nats, log scale)", legend=True)
    ax_beta.step(x, beta, where="post", color=BLUE, label="β after the update")
    ax_beta.set_yscale("log", base=2)
    label(ax_beta, "Adaptive β: ×2 above 1.5·d_targ, ÷2 below d_targ/1.5", "environment steps",
          "β (log₂ scale)", legend=True)
    return ax_kl, ax_beta


# ------------------------------------------------------------------------------------------
# The ε sweep panel
# ------------------------------------------------------------------------------------------


def plot_eps_view(ax_ret: Axes, ax_kl: Axes, view: EpsView, context=None,
                  delta: float = 0.01) -> tuple[Axes, Axes]:
    """One ε of a sweep: learning-curve band (``ax_ret.lines[0]`` the mean; ``context``, the
    other ε's mean curves, in grey) and exact KL per update (``ax_kl.lines[0]`` the mean,
    ``lines[1]`` TRPO's δ)."""
    x = view.env_steps
    plot_band(ax_ret, x, view.returns, BLUE, f"ε = {view.eps:g}: mean of seeds (band: range)")
    for i, mean in enumerate(context or []):
        ax_ret.plot(x, mean, color="0.6", linewidth=1.0, zorder=1,
                    label="other ε (means)" if i == 0 else None)
    ax_ret.set_ylim(*RETURN_AXIS)
    label(ax_ret, f"PPO on CartPole-v1, ε = {view.eps:g}", "environment steps",
          "mean episode return")
    ax_ret.legend(loc="lower right")
    plot_band(ax_kl, x, view.kl, VERMILLION, "exact KL per update (mean, band: range)")
    ax_kl.axhline(delta, color=BLACK, linestyle="--", linewidth=1.3, label=f"TRPO's δ = {delta:g}")
    _log_axis(ax_kl, (1e-4, 1.0))
    label(ax_kl, "KL(π_old‖π_new) of each update", "environment steps",
          "mean KL (nats, log scale)")
    ax_kl.legend(loc="upper right")
    return ax_ret, ax_kl


def eps_readout(view: EpsView) -> str:
    """The ε panel's numbers as HTML: final return, mean KL, largest ratio, clip fraction."""
    return (
        f"<b>ε = {view.eps:g}</b> &nbsp; final return (last 5 iterations, {len(view.final)} "
        f"seeds): <b>{view.final.mean():.0f}</b> (range {view.final.min():.0f}–"
        f"{view.final.max():.0f}) &nbsp;·&nbsp; mean KL per update: <b>{view.mean_kl:.4f}</b>"
        f" &nbsp;·&nbsp; largest ratio: <b>{view.max_ratio_all:.2f}</b> (1+ε = "
        f"{1 + view.eps:g}) &nbsp;·&nbsp; clip fraction: {100 * view.clipfrac:.0f}%"
    )


def ppo_eps_panel(result: TrainResult, eps_values, eps: float = 0.2) -> Panel:
    """A panel over a precomputed ε × seeds grid; slider ``"eps"`` over the swept values.

    Args:
      result: ``course_lib.train_many(TrainConfig(), seeds, eps=eps_values)``.
      eps_values: the swept ε values, in the order of the sweep.
      eps: the initial ε; snapped to the nearest swept value.
    """
    grid = [float(e) for e in np.asarray(eps_values, dtype=np.float64).ravel()]
    first = eps_view(result, grid, eps)
    means = [eps_view(result, grid, e).returns.mean for e in grid]
    s = W.SelectionSlider(
        options=[(f"{e:g}", e) for e in grid], value=first.eps, description="ε",
        continuous_update=False, style={"description_width": "initial"},
        layout=W.Layout(width="420px"),
    )

    def draw(figure: Figure, eps: float) -> str:
        view = eps_view(result, grid, eps)
        figure.set_layout_engine("none")
        ax_ret, ax_kl = figure.subplots(1, 2, gridspec_kw={
            "left": 0.075, "right": 0.99, "bottom": 0.12, "top": 0.93, "wspace": 0.24})
        others = [m for i, m in enumerate(means) if i != view.index]
        plot_eps_view(ax_ret, ax_kl, view, others)
        return eps_readout(view)

    return Panel({"eps": s}, draw, figsize=(11.0, 4.6), layout=None)
