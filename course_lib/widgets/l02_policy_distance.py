"""Lesson 02's panel: the same L2 step, along a random or the most sensitive direction.

:func:`distance_panel` has two sliders:

* ``"radius"``: the L2 length r = ‖θ_new − θ_old‖₂ of the perturbation;
* ``"mix"``: the direction, from a random one (0) to the top eigenvector of the Fisher (1),
  see :func:`course_lib.lessons.l02_policy_distance.mix_directions`.

Each move recomputes :func:`course_lib.lessons.l02_policy_distance.distance_view` on the lesson's policy
(:func:`course_lib.lessons.l02_policy_distance.distance_setup`) and redraws two axes: the probability of
pushing right on a few named CartPole states before and after the step, and the mean
KL(π_old‖π_new) against the radius (log-log) for the random, the sensitive and the current
direction, with the current step marked. The readout states L2 and both KL directions.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from course_lib.lessons.l02_policy_distance import (
    DISPLAY_STATES,
    DistanceSetup,
    DistanceView,
    distance_setup,
    distance_view,
    kl_along,
    radius_grid,
)
from course_lib.widgets.panel import GridLayer, Panel, animate, slider
from course_lib.widgets.plots import BLACK, BLUE, SKY, VERMILLION, label

__all__ = ["RADIUS_MAX", "distance_panel", "draw_distance", "set_distance"]

RADIUS_MAX = 3.0
"""Largest radius the panel's slider offers."""

SHORT_NAMES = ("upright", "leans R", "falls R", "falls L", "swings back")
"""Bar labels for :data:`course_lib.lessons.l02_policy_distance.DISPLAY_STATES`."""

TRUST_REGION_KL = 0.01
"""The KL level drawn for reference: a typical TRPO δ."""

GREY = "#808080"
"""Neutral grey for reference lines."""


_GRID = {
    "left": 0.07,
    "right": 0.985,
    "bottom": 0.2,
    "top": 0.9,
    "wspace": 0.25,
    "width_ratios": (1.0, 1.15),
}
"""Fixed margins: a layout engine would lay the figure out twice per redraw."""

_POWER_OF_TEN = FuncFormatter(lambda value, _: f"{value:g}")
"""Plain tick labels (0.01, 1, 10) for the log axes: cheaper to render than mathtext."""


def draw_distance(
    figure: Figure,
    view: DistanceView,
    random_curve: np.ndarray,
    sensitive_curve: np.ndarray,
    mix: float,
) -> None:
    """Draw a :class:`DistanceView` into ``figure`` (two axes, left: bars, right: KL curves).

    Left axis: P(push right) under π_old and π_new on the display states (``patches``: the old
    bars first, then the new ones). Right axis, log-log: ``lines[0]`` the random direction's
    KL curve, ``lines[1]`` the sensitive one's, ``lines[2]`` the current direction's,
    ``lines[3]`` the current (radius, KL) point, ``lines[4]`` the δ = 0.01 reference.

    On a figure it drew before (the panel keeps its figure) only the new bars, the current
    direction's curve and point and the legend's mix move (:func:`set_distance`). The
    panel's moving layer (:func:`course_lib.widgets.panel.animate`) is the new bars with what a
    full draw draws over them (the grid, the 0.5 line, the frame, the legend placed 'best'
    around them) and, on the right, the point with the δ line and the frame.
    """
    if figure.axes:
        set_distance(figure, view, mix)
        return
    figure.set_layout_engine("none")
    ax_p, ax_kl = figure.subplots(1, 2, gridspec_kw=_GRID)
    n = view.probs_old.shape[0]
    x = np.arange(n)
    width = 0.38
    ax_p.bar(x - width / 2, np.asarray(view.probs_old[:, 1]), width, color=BLUE, label="old π")
    ax_p.bar(
        x + width / 2, np.asarray(view.probs_new[:, 1]), width, color=VERMILLION, label="new π"
    )
    ax_p.set_xticks(x, SHORT_NAMES[:n], rotation=20)
    ax_p.set_ylim(0.0, 1.0)
    ax_p.axhline(0.5, color=GREY, lw=1.0, ls=":")
    label(
        ax_p, "Action probabilities on five states", "CartPole state", "P(push right)", legend=True
    )

    radii = np.asarray(view.radii)
    ax_kl.plot(radii, np.maximum(random_curve, _FLOOR), color=SKY, label="random direction")
    ax_kl.plot(
        radii,
        np.maximum(sensitive_curve, _FLOOR),
        color=VERMILLION,
        label="most sensitive (Fisher top)",
    )
    ax_kl.plot(
        radii,
        np.maximum(np.asarray(view.kl_curve), _FLOOR),
        color=BLACK,
        lw=1.0,
        ls="--",
        label=_current_label(mix),
    )
    ax_kl.plot(*_point(view), "o", color=BLACK, ms=9, label="current step")
    ax_kl.axhline(TRUST_REGION_KL, color=GREY, lw=1.2, ls=":", label="KL = 0.01 (typical δ)")
    ax_kl.set_xscale("log")
    ax_kl.set_yscale("log")
    ax_kl.set_xticks([0.01, 0.1, 1.0, 10.0])
    ax_kl.set_yticks([1e-6, 1e-4, 1e-2, 1.0])
    for axis in (ax_kl.xaxis, ax_kl.yaxis):
        axis.set_major_formatter(_POWER_OF_TEN)
    ax_kl.minorticks_off()
    ax_kl.set_xlim(radii[0], radii[-1])
    ax_kl.set_ylim(1e-7, 10.0)
    label(
        ax_kl,
        "KL grows like r², at very different rates",
        "radius r = ‖Δθ‖₂ (L2)",
        "mean KL(π_old‖π_new) (nats)",
    )
    ax_kl.legend(loc="lower right", fontsize=9)


_FLOOR = 1e-9
"""KL values below this are drawn at it (a log axis has no zero)."""


def _current_label(mix: float) -> str:
    return f"current direction (mix {mix:.2f})"


def _point(view: DistanceView) -> tuple[list[float], list[float]]:
    return [float(view.l2)], [max(float(view.kl_old_new), _FLOOR)]


def set_distance(figure: Figure, view: DistanceView, mix: float) -> None:
    """Move a figure :func:`draw_distance` drew to ``view``: the new bars and the current
    point; the current direction's curve and its legend entry only where the mix changed (a
    change there has a panel render its static layer again)."""
    ax_p, ax_kl = figure.axes
    n = view.probs_old.shape[0]
    for bar, height in zip(ax_p.patches[n:], np.asarray(view.probs_new[:, 1])):
        bar.set_height(height)
    ax_kl.lines[3].set_data(*_point(view))
    curve = np.maximum(np.asarray(view.kl_curve), _FLOOR)
    if not np.array_equal(ax_kl.lines[2].get_ydata(), curve):
        ax_kl.lines[2].set_ydata(curve)
    ax_kl.lines[2].set_label(_current_label(mix))
    ax_kl.get_legend().get_texts()[2].set_text(_current_label(mix))  # stale only if it changed


def _readout(view: DistanceView, mix: float) -> str:
    return (
        f"<b>L2 = {float(view.l2):.3f}</b> along mix {mix:.2f} (0 random, 1 most sensitive) "
        f"&nbsp;→&nbsp; <b>KL(old‖new) = {float(view.kl_old_new):.2e}</b> nats, "
        f"KL(new‖old) = {float(view.kl_new_old):.2e} nats"
    )


def distance_panel(
    radius: float = 0.3, mix: float = 1.0, setup: DistanceSetup | None = None
) -> Panel:
    """Sliders ``"radius"`` (L2 length of the step) and ``"mix"`` (random → sensitive).

    Args:
      radius: initial L2 length, in [0, :data:`RADIUS_MAX`].
      mix: initial direction, in [0, 1].
      setup: the policy and directions; default :func:`distance_setup` (cached).

    Returns:
      A :class:`course_lib.widgets.panel.Panel`.
    """
    for name, value, hi in (("radius", radius, RADIUS_MAX), ("mix", mix, 1.0)):
        if not 0.0 <= value <= hi:
            raise ValueError(f"{name} must lie in [0, {hi}], got {value}")
    setup = distance_setup() if setup is None else setup
    grid = radius_grid()
    random_curve = np.asarray(kl_along(setup.logits_fn, setup.params, setup.random_dir, grid))
    sensitive_curve = np.asarray(kl_along(setup.logits_fn, setup.params, setup.sensitive_dir, grid))
    if len(SHORT_NAMES) != len(DISPLAY_STATES):
        raise ValueError("SHORT_NAMES must name every display state")

    def draw(figure: Figure, radius: float, mix: float) -> str:
        view = distance_view(setup, radius, mix)
        first = not figure.axes
        draw_distance(figure, view, random_curve, sensitive_curve, mix)
        if first:
            # The moving layer: the new bars and what a full draw draws over them (the grid,
            # the 0.5 line, the frame, the legend placed 'best' around them), and the point.
            ax_p, ax_kl = figure.axes
            n = len(DISPLAY_STATES)
            animate(*ax_p.patches[n:], GridLayer(ax_p), ax_p.lines[0], *ax_p.spines.values(),
                    ax_p.get_legend(), ax_kl.lines[3], ax_kl.lines[4], *ax_kl.spines.values())
        return _readout(view, mix)

    sliders = {
        "radius": slider(radius, 0.0, RADIUS_MAX, 0.01, "radius ‖Δθ‖₂"),
        "mix": slider(mix, 0.0, 1.0, 0.05, "direction: random → sensitive", readout_format=".2f"),
    }
    return Panel(sliders, draw, figsize=(11.0, 4.4), layout=None, live=True, keep_figure=True)
