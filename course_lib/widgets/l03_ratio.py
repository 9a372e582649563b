"""Lesson 03 panel: one sample's ratio r, its surrogate term r·A and PPO's clipped term.

``ratio_panel`` draws, against π_new(a|s), the sample's surrogate contribution r·A and its
clipped contribution min(r·A, clip(r, 1−ε, 1+ε)·A), with the current point marked and the clip
range shaded; the readout states r, both contributions and the gradient of each with respect
to log π_new(a|s). Every number comes from :func:`course_lib.lessons.l03_ratio.worked_example` and
:func:`course_lib.lessons.l03_ratio.contribution_curves`.
"""

from __future__ import annotations

import jax.numpy as jnp
from matplotlib.figure import Figure

from course_lib.lessons.l03_ratio import WorkedExample, contribution_curves, worked_example
from course_lib.widgets.panel import Panel, slider
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


def draw_ratio(fig: Figure, p_old: float, p_new: float, advantage: float, eps: float) -> str:
    """Draw r·A and the clipped term against π_new into ``fig``; return the readout HTML."""
    curves = contribution_curves(p_old, advantage, eps, P_NEW_GRID)
    here = worked_example(p_old, p_new, advantage, eps)
    # Fixed margins instead of the figure's constrained layout: it would cost about a third of
    # the redraw time, and this single axes needs no layout solver.
    fig.set_layout_engine("none")
    ax = fig.add_axes(_AXES_RECT)
    lo, hi = max((1.0 - eps) * p_old, 0.0), min((1.0 + eps) * p_old, 1.0)
    ax.axvspan(lo, hi, color=GREEN, alpha=0.15, label="clip range 1−ε ≤ r ≤ 1+ε")
    ax.axvline(p_old, color=BLACK, lw=1, ls=":", label="π_new = π_old (r = 1)")
    ax.plot(P_NEW_GRID, curves.contribution, color=BLUE, label="r·A (surrogate)")
    ax.plot(
        P_NEW_GRID,
        curves.clipped_contribution,
        color=VERMILLION,
        ls="--",
        label="min(r·A, clip(r)·A) (PPO)",
    )
    ax.plot([p_new], [float(here.contribution)], "o", color=BLUE, ms=9)
    ax.plot([p_new], [float(here.clipped_contribution)], "s", color=VERMILLION, ms=8)
    ax.set_xlim(0.0, 1.0)
    ax.set_xticks(_X_TICKS)
    label(
        ax,
        f"π_old = {p_old:.2f}, A = {advantage:+.1f}, ε = {eps:.2f}: r = {float(here.ratio):.2f}",
        "π_new(a|s)",
        "contribution (advantage units)",
    )
    ax.legend(loc="upper left" if advantage >= 0 else "lower left", fontsize=10)
    return ratio_readout(here)


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
    return Panel(sliders, draw_ratio, figsize=(8.0, 4.0), live=True)
