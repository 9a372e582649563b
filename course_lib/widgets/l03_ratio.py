"""Lesson 03 panel: one sample's ratio r, its surrogate term r·A and PPO's clipped term.

``ratio_panel`` draws, against π_new(a|s), the sample's surrogate contribution r·A and its
clipped contribution min(r·A, clip(r, 1−ε, 1+ε)·A), with the current point marked and the clip
range shaded; the readout states r, both contributions and the gradient of each with respect
to log π_new(a|s). Every number comes from :func:`course_lib.lessons.l03_ratio.worked_example` and
:func:`course_lib.lessons.l03_ratio.contribution_curves`.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
from matplotlib.figure import Figure
from matplotlib.legend import Legend

from course_lib.lessons.l03_ratio import WorkedExample, contribution_curves, worked_example
from course_lib.widgets.panel import Panel, animate, slider
from course_lib.widgets.plots import BLACK, BLUE, GREEN, VERMILLION, label

__all__ = ["P_NEW_GRID", "draw_ratio", "ratio_panel", "ratio_readout"]

P_NEW_GRID = jnp.linspace(0.01, 0.99, 197)
"""The π_new(a|s) values the panel's curves are drawn at."""

_X_TICKS = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
_AXES_RECT = (0.11, 0.13, 0.87, 0.79)  # left, bottom, width, height in figure fractions


def ratio_readout(example: WorkedExample) -> str:
    """HTML table of a :class:`course_lib.lessons.l03_ratio.WorkedExample`'s five numbers."""
    clipped = float(example.grad_clipped) == 0.0 and float(example.grad_contribution) != 0.0
    state = "clipped: no gradient" if clipped else "not clipped"
    rows = (
        ("r = π_new / π_old", f"{float(example.ratio):.3f}"),
        ("r·A (surrogate term)", f"{float(example.contribution):.3f}"),
        ("min(r·A, clip(r, 1−ε, 1+ε)·A)", f"{float(example.clipped_contribution):.3f} ({state})"),
        ("∂(r·A) / ∂log π_new", f"{float(example.grad_contribution):.3f}"),
        ("∂(clipped term) / ∂log π_new", f"{float(example.grad_clipped):.3f}"),
    )
    body = "".join(f"<tr><td>{name}</td><td><b>{value}</b></td></tr>" for name, value in rows)
    return f"<table style='font-size:14px'>{body}</table>"


def _title(p_old: float, advantage: float, eps: float, here: WorkedExample) -> str:
    return f"π_old = {p_old:.2f}, A = {advantage:+.1f}, ε = {eps:.2f}: r = {float(here.ratio):.2f}"


def _clip_range(p_old: float, eps: float) -> tuple[float, float]:
    return max((1.0 - eps) * p_old, 0.0), min((1.0 + eps) * p_old, 1.0)


def draw_ratio(fig: Figure, p_old: float, p_new: float, advantage: float, eps: float) -> str:
    """Draw r·A and the clipped term against π_new into ``fig``; return the readout HTML.

    On a figure it drew before (the panel keeps its figure) it only sets the new values on its
    artists: the current point and the title follow π_new; the curves, the clip range, the
    r = 1 line, the y-range and the legend's corner follow π_old, A and ε.
    ``fig.axes[0].lines``: the r = 1 line, r·A, the clipped term, the r·A point, the clipped
    point.
    """
    curves = contribution_curves(p_old, advantage, eps, P_NEW_GRID)
    here = worked_example(p_old, p_new, advantage, eps)
    if not fig.axes:
        _build_ratio(fig, p_old, advantage, eps, curves)
    ax = fig.axes[0]
    ax.lines[3].set_data([p_new], [float(here.contribution)])
    ax.lines[4].set_data([p_new], [float(here.clipped_contribution)])
    _set_curves(ax, p_old, advantage, eps, curves)
    ax.title.set_text(_title(p_old, advantage, eps, here))
    return ratio_readout(here)


def _build_ratio(fig: Figure, p_old: float, advantage: float, eps: float, curves) -> None:
    # Fixed margins instead of the figure's constrained layout: it would cost about a third of
    # the redraw time, and this single axes needs no layout solver.
    fig.set_layout_engine("none")
    ax = fig.add_axes(_AXES_RECT)
    ax.axvspan(*_clip_range(p_old, eps), color=GREEN, alpha=0.15,
               label="clip range 1−ε ≤ r ≤ 1+ε")
    ax.axvline(p_old, color=BLACK, lw=1, ls=":", label="π_new = π_old (r = 1)")
    grid = np.asarray(P_NEW_GRID)
    ax.plot(grid, np.asarray(curves.contribution), color=BLUE, label="r·A (surrogate)")
    ax.plot(grid, np.asarray(curves.clipped_contribution), color=VERMILLION, ls="--",
            label="min(r·A, clip(r)·A) (PPO)")
    ax.plot([], [], "o", color=BLUE, ms=9)
    ax.plot([], [], "s", color=VERMILLION, ms=8)
    ax.set_xlim(0.0, 1.0)
    ax.set_xticks(_X_TICKS)
    label(ax, "", "π_new(a|s)", "contribution (advantage units)")
    ax.legend(loc=_legend_corner(advantage), fontsize=10)


def _legend_corner(advantage: float) -> str:
    return "upper left" if advantage >= 0 else "lower left"


def _set_curves(ax, p_old: float, advantage: float, eps: float, curves) -> None:
    """What π_old, A and ε move: set only where it changed, since a changed static artist has
    the panel render its static layer again."""
    if ax.lines[0].get_xdata()[0] != p_old:
        ax.lines[0].set_xdata([p_old, p_old])
    lo, hi = _clip_range(p_old, eps)
    span = ax.patches[0]
    if (span.get_x(), span.get_width()) != (lo, hi - lo):
        span.set_x(lo)
        span.set_width(hi - lo)
    changed = False
    for line, values in zip(ax.lines[1:3], (curves.contribution, curves.clipped_contribution)):
        values = np.asarray(values)
        if not np.array_equal(line.get_ydata(), values):
            line.set_ydata(values)
            changed = True
    if changed:
        # The y-range follows the curves, as a new axes' autoscaling would; the points lie on
        # the curves, inside their range.
        ax.relim()
        ax.autoscale_view(scalex=False)
    legend = ax.get_legend()
    corner = _legend_corner(advantage)
    if legend._loc != Legend.codes[corner]:
        legend.set_loc(corner)


def ratio_panel(
    p_old: float = 0.2, p_new: float = 0.8, advantage: float = 5.0, eps: float = 0.2
) -> Panel:
    """Sliders "p_old", "p_new", "advantage" and "eps" over one sample's r, r·A and clipped term.

    The readout states r, r·A, the clipped contribution and the gradient of each with respect
    to log π_new(a|s) (:func:`course_lib.lessons.l03_ratio.worked_example`); the figure shows both
    contributions against π_new (:func:`course_lib.lessons.l03_ratio.contribution_curves`), with the
    current point marked and the clip range shaded.
    """
    ranges = {"p_old": (p_old, 0.05, 0.95), "p_new": (p_new, 0.01, 0.99),
              "advantage": (advantage, -10.0, 10.0), "eps": (eps, 0.0, 0.5)}
    for name, (value, lo, hi) in ranges.items():
        if not lo <= value <= hi:
            raise ValueError(f"{name} must lie in [{lo}, {hi}], got {value}")
    sliders = {
        "p_old": slider(p_old, 0.05, 0.95, 0.01, "π_old(a|s)", ".2f"),
        "p_new": slider(p_new, 0.01, 0.99, 0.01, "π_new(a|s)", ".2f"),
        "advantage": slider(advantage, -10.0, 10.0, 0.5, "advantage A", ".1f"),
        "eps": slider(eps, 0.0, 0.5, 0.01, "ε", ".2f"),
    }

    def draw(figure: Figure, p_old: float, p_new: float, advantage: float, eps: float) -> str:
        first = not figure.axes
        readout = draw_ratio(figure, p_old, p_new, advantage, eps)
        if first:  # the moving layer: what π_new moves, and the frame drawn over the points
            ax = figure.axes[0]
            animate(ax.lines[3], ax.lines[4], ax.title, *ax.spines.values())
        return readout

    return Panel(sliders, draw, figsize=(8.0, 4.0), layout=None, live=True, keep_figure=True)
