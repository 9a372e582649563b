"""Lesson 04's panel: the δ slider over the softmax toy's trust region.

``trust_region_panel(delta=0.01)`` draws, in the two-parameter plane of
:class:`course_lib.lessons.l04_trust_region.SoftmaxToy`, the surrogate gain L(θ) − L(θ_old) (filled
contours), the feasible region KL(π_old‖π_θ) ≤ δ (its true boundary and TRPO's quadratic
ellipse ½ΔθᵀFΔθ = δ), the exact constrained optimum, TRPO's step and a plain gradient step.
Every number comes from :func:`course_lib.lessons.l04_trust_region.toy_trust_region`.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from course_lib.lessons.l04_trust_region import (
    DEFAULT_TOY,
    SoftmaxToy,
    ToyTrustRegion,
    toy_trust_region,
)
from course_lib.widgets.panel import Panel, animate
from course_lib.widgets.plots import BLACK, BLUE, GREEN, ORANGE, VERMILLION, label

__all__ = ["DELTA_RANGE", "WINDOW_DELTA", "draw_toy_trust_region", "set_toy_trust_region",
           "toy_readout", "trust_region_panel"]

DELTA_RANGE = (1e-3, 1.0)
"""The δ slider's range in nats (a log slider)."""

WINDOW_DELTA = 0.3
"""The panel's axes, the same at every δ, are the window that holds the region at this δ: at
δ = 0.001 the region is still visible, at δ = 1 it reaches past the window's edges."""


def draw_toy_trust_region(ax: Axes, tr: ToyTrustRegion) -> Axes:
    """Draw one :class:`ToyTrustRegion` into ``ax`` (the panel and the lesson's static figure).

    Grey filled contours: the surrogate gain L(θ) − L(θ_old) (darker is higher; dotted: gain
    0); solid black: the true boundary KL = δ; dashed green: TRPO's quadratic model of it; a
    blue star at the constrained optimum, an orange diamond at TRPO's step, a vermillion
    arrow for the plain gradient step θ_old + α g. Every artist has a generic label, so one
    legend serves several axes; the numbers belong in the caller's title or readout.
    """
    xs, ys = np.asarray(tr.xs), np.asarray(tr.ys)
    gain = np.asarray(tr.gain_grid)
    theta_old = np.asarray(tr.theta_old)
    ax.contourf(xs, ys, gain, levels=12, cmap="Greys", vmin=gain.min(), vmax=2.2 * gain.max())
    ax.contour(xs, ys, gain, levels=[0.0], colors=BLACK, linewidths=1.0, linestyles=":")
    ax.plot(*_closed(tr.boundary).T, color=BLACK, lw=2.5, label="true boundary KL = δ")
    ax.plot(*_closed(tr.quadratic_boundary).T, color=GREEN, lw=2.0, ls="--",
            label="TRPO's quadratic model ½ΔθᵀFΔθ = δ")
    grad = np.asarray(tr.gradient)
    ax.annotate("", xy=grad, xytext=theta_old,
                arrowprops={"arrowstyle": "-|>", "color": VERMILLION, "lw": 2.5,
                            "mutation_scale": 18})
    ax.plot(*grad, "o", color=VERMILLION, ms=7,
            label=f"plain gradient step θ_old + {float(tr.lr):.2g}·g")
    ax.plot(*theta_old, "o", color=BLACK, ms=8, mec="white", label="θ_old")
    ax.plot(*np.asarray(tr.natural), "D", color=ORANGE, ms=9, mec=BLACK, label="TRPO step")
    ax.plot(*np.asarray(tr.optimum), "*", color=BLUE, ms=20, mec="white",
            label="constrained optimum")
    ax.plot([], [], ls=":", color=BLACK, lw=1.0, label="surrogate gain = 0 (darker: higher)")
    ax.set_xlim(xs[0], xs[-1])
    ax.set_ylim(ys[0], ys[-1])
    ax.set_aspect("equal", adjustable="box")
    ax.xaxis.set_major_locator(MaxNLocator(5))
    ax.yaxis.set_major_locator(MaxNLocator(5))
    label(ax, _title(tr), "θ₁ (logit 1 = w₁·θ₁)", "θ₂ (logit 2 = w₂·θ₂)")
    return ax


def _title(tr: ToyTrustRegion) -> str:
    return f"Feasible region KL(π_old‖π_θ) ≤ {float(tr.delta):.3g}"


def _closed(points) -> np.ndarray:
    p = np.asarray(points)
    return np.vstack([p, p[:1]])


def set_toy_trust_region(ax: Axes, tr: ToyTrustRegion) -> None:
    """Move what δ changes in an axes :func:`draw_toy_trust_region` drew (on the same window):
    both boundaries, the gradient arrow and the three steps, and the title. ``ax.lines``: the
    true boundary, the quadratic one, the gradient step, θ_old, TRPO's step, the optimum."""
    ax.lines[0].set_data(*_closed(tr.boundary).T)
    ax.lines[1].set_data(*_closed(tr.quadratic_boundary).T)
    grad = np.asarray(tr.gradient)
    arrow = ax.texts[0]
    arrow.xy = grad
    arrow.set_position(np.asarray(tr.theta_old))
    ax.lines[2].set_data(*grad[:, None])
    ax.lines[2].set_label(f"plain gradient step θ_old + {float(tr.lr):.2g}·g")
    ax.lines[3].set_data(*np.asarray(tr.theta_old)[:, None])
    ax.lines[4].set_data(*np.asarray(tr.natural)[:, None])
    ax.lines[5].set_data(*np.asarray(tr.optimum)[:, None])
    ax.title.set_text(_title(tr))


def _key(colour: str, symbol: str, text: str) -> str:
    return f'<span style="color:{colour}; font-size:1.2em">{symbol}</span> {text}'


def toy_readout(tr: ToyTrustRegion) -> str:
    """The panel's HTML readout: δ, then the key of each marker with its KL and surrogate gain."""
    rows = [
        (
            f"<b>δ = {float(tr.delta):.4f} nats</b>"
            f" {_key(BLACK, '━', 'true boundary KL = δ')}"
            f" {_key(GREEN, '╌', 'quadratic model ½ΔθᵀFΔθ = δ')}"
        ),
        _key(BLUE, "★", f"constrained optimum: KL = {float(tr.optimum_kl):.4f},"
             f" surrogate gain = {float(tr.optimum_gain):.4f}"),
        _key(ORANGE, "◆", f"TRPO step (quadratic model): KL = {float(tr.natural_kl):.4f},"
             f" gain = {float(tr.natural_gain):.4f}"),
        _key(VERMILLION, "➜", f"plain gradient step, α = {float(tr.lr):.2g}:"
             f" KL = {float(tr.gradient_kl):.4f}, gain = {float(tr.gradient_gain):.4f}"
             f" (along g but cut at KL = δ: gain = {float(tr.gradient_cut_gain):.4f})"),
    ]
    return "<br>".join(rows)


def trust_region_panel(delta: float = 0.01, toy: SoftmaxToy = DEFAULT_TOY) -> Panel:
    """A panel with one log slider ``"delta"`` (1e-3 … 1 nats) over the toy's trust region.

    The axes are the same at every δ (the window that holds the region at
    :data:`WINDOW_DELTA`), so the region's size is what changes on the screen. Each move
    recomputes :func:`course_lib.lessons.l04_trust_region.toy_trust_region` (jitted, a few ms) and
    redraws the figure and the readout.

    Raises:
      ValueError: ``delta`` outside :data:`DELTA_RANGE`.
    """
    lo, hi = DELTA_RANGE
    if not lo <= delta <= hi:
        raise ValueError(f"delta must lie in [{lo}, {hi}], got {delta}")
    slider = W.FloatLogSlider(
        value=delta, base=10, min=np.log10(lo), max=np.log10(hi), step=0.05,
        description="δ (nats)", readout_format=".3f", continuous_update=False,
        style={"description_width": "initial"}, layout=W.Layout(width="420px"),
    )

    # One window for every δ (:data:`WINDOW_DELTA`'s region with a margin), so the axes stay
    # put and the feasible region visibly grows and shrinks as δ moves. The surrogate gain
    # does not depend on δ, so its grid is computed once, on that window.
    frame = toy_trust_region(WINDOW_DELTA, toy)
    fixed = {"xs": frame.xs, "ys": frame.ys, "gain_grid": frame.gain_grid,
             "kl_grid": frame.kl_grid}

    def draw(figure: Figure, delta: float) -> str:
        tr = toy_trust_region(float(delta), toy)._replace(**fixed)
        if not figure.axes:
            # A hand-set layout and no legend (the readout holds the key): text and layout
            # engines are the slowest part of a redraw.
            figure.set_layout_engine("none")
            ax = draw_toy_trust_region(figure.add_axes((0.14, 0.10, 0.84, 0.82)), tr)
            # The moving layer: everything but the gain's contours and the axes' ticks and
            # labels (the frame as well: at a large δ the boundary crosses it).
            animate(*ax.lines, *ax.texts, ax.title, *ax.spines.values())
        else:
            set_toy_trust_region(figure.axes[0], tr)
        return toy_readout(tr)

    return Panel({"delta": slider}, draw, figsize=(6.4, 5.8), layout=None, live=True,
                 keep_figure=True)
