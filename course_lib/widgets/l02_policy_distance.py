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
from course_lib.widgets.panel import Panel, slider
from course_lib.widgets.plots import BLACK, BLUE, SKY, VERMILLION, label

__all__ = ["RADIUS_MAX", "distance_panel", "draw_distance"]

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
    """
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
    floor = 1e-9
    ax_kl.plot(radii, np.maximum(random_curve, floor), color=SKY, label="random direction")
    ax_kl.plot(
        radii,
        np.maximum(sensitive_curve, floor),
        color=VERMILLION,
        label="most sensitive (Fisher top)",
    )
    ax_kl.plot(
        radii,
        np.maximum(np.asarray(view.kl_curve), floor),
        color=BLACK,
        lw=1.0,
        ls="--",
        label=f"current direction (mix {mix:.2f})",
    )
    ax_kl.plot(
        [float(view.l2)],
        [max(float(view.kl_old_new), floor)],
        "o",
        color=BLACK,
        ms=9,
        label="current step",
    )
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
        draw_distance(figure, view, random_curve, sensitive_curve, mix)
        return _readout(view, mix)

    sliders = {
        "radius": slider(radius, 0.0, RADIUS_MAX, 0.01, "radius ‖Δθ‖₂"),
        "mix": slider(mix, 0.0, 1.0, 0.05, "direction: random → sensitive", readout_format=".2f"),
    }
    return Panel(sliders, draw, figsize=(11.0, 4.4), live=True)
