"""Lesson 01's figures and its step-size panel.

:func:`step_size_panel` applies one plain policy-gradient step θ_old + α·g of the chosen size α
to the trained CartPole policy and shows what it did: the action probabilities on batch states
before and after, and where α sits on the cliff (return and KL against step size). The
computation is :func:`course_lib.lessons.l01_cliff.step_view`; the trained parameters, the batch, the
gradient and the sweep are computed once, when the panel is built.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
from matplotlib.axes import Axes

from course_lib.lessons.l01_cliff import (
    CliffSetup,
    StepOutcome,
    StepView,
    make_cliff_setup,
    step_view,
)
from course_lib.widgets.panel import Panel, animate
from course_lib.widgets.plots import BLACK, BLUE, GREEN, ORANGE, VERMILLION, label

__all__ = ["plot_cliff", "plot_probabilities", "set_step", "step_size_panel", "step_size_readout"]

KL_DANGER = 0.1
"""The syllabus's rule of thumb: a mean KL(π_old‖π_new) above 0.1 risks a collapse."""

KL_LIMITS = (1e-5, 30.0)
"""The KL axis of :func:`plot_cliff`, in nats."""

WEIGHT_LIMITS = (1e-6, 3.0)
"""The relative weight-change axis of :func:`plot_cliff`: as many decades as :data:`KL_LIMITS`."""


def plot_probabilities(ax: Axes, p_old: np.ndarray, p_new: np.ndarray) -> Axes:
    """π(push right | s) before (line) and after (dots) the step, states ordered by π_old.

    Args:
      ax: the axes to draw into.
      p_old, p_new: ``[n]`` probabilities of action 1 under π_old and π_new, in the order
        of increasing ``p_old`` (:class:`course_lib.lessons.l01_cliff.StepView`).
    """
    x = np.arange(len(p_old))
    ax.plot(x, p_old, color=BLUE, label="π_old (trained)")
    ax.plot(x, p_new, "o", color=VERMILLION, markersize=4, label="π_new (after the step)")
    ax.set_ylim(-0.03, 1.03)
    return label(
        ax,
        "Action probabilities on batch states",
        "batch state (sorted by π_old)",
        "π(push right | s)",
        legend=True,
    )


def plot_cliff(
    ax_return: Axes,
    ax_distance: Axes,
    sweep: StepOutcome,
    return_before: float,
    marker: StepOutcome | None = None,
) -> tuple[Axes, Axes, Axes]:
    """The cliff: return after the step, and the step's two distances, against the step size α.

    ``ax_return``: mean return of π_new (log α axis) with π_old's return dashed.
    ``ax_distance``: the policy distance, mean KL(π_old‖π_new) in nats (log-log, left axis), with
    KL = 0.1 dotted; a twin axis on its right (returned third) carries the weight distance
    ‖Δθ‖/‖θ_old‖, a ratio without unit. Both log axes span the same number of decades, so the
    slopes of the two curves compare directly.
    ``marker``: a :class:`StepOutcome` (scalars) to mark on all three.
    """
    a = np.asarray(sweep.step_size)
    ax_return.semilogx(a, np.asarray(sweep.mean_return), color=BLUE, label="after one step")
    ax_return.axhline(
        return_before, color=BLACK, linestyle="--", linewidth=1.2, label="before the step"
    )
    ax_return.set_ylim(0, 520)
    ax_weight = ax_distance.twinx()
    ax_distance.loglog(
        a, np.asarray(sweep.change.kl), color=VERMILLION, label="KL(π_old‖π_new), nats (left)"
    )
    ax_weight.loglog(
        a, np.asarray(sweep.change.rel_l2), color=GREEN, label="‖Δθ‖ / ‖θ_old‖ (right)"
    )
    ax_distance.axhline(
        KL_DANGER, color=BLACK, linestyle=":", linewidth=1.2, label=f"KL = {KL_DANGER} nats"
    )
    ax_distance.set_ylim(*KL_LIMITS)
    ax_weight.set_ylim(*WEIGHT_LIMITS)
    for ax in (ax_return, ax_distance, ax_weight):
        ax.set_xlim(a[0], a[-1])
        ax.minorticks_off()
    if marker is not None:
        alpha = float(marker.step_size)
        style = dict(color=ORANGE, markeredgecolor=BLACK, label=f"α = {alpha:.3g}")
        ax_return.plot([alpha], [float(marker.mean_return)], "o", markersize=10, **style)
        ax_weight.plot([alpha], [float(marker.change.rel_l2)], "o", markersize=9, **style)
        ax_distance.plot([alpha], [float(marker.change.kl)], "o", markersize=9, **style)
    label(
        ax_return,
        "Return after one step",
        "step size α (log scale)",
        "mean episode return",
        legend=True,
    )
    label(
        ax_distance,
        "Policy distance vs weight distance",
        "step size α (log scale)",
        "KL(π_old‖π_new) (nats)",
    )
    ax_distance.yaxis.label.set_color(VERMILLION)
    ax_weight.set_ylabel("‖Δθ‖ / ‖θ_old‖ (relative, no unit)", color=GREEN)
    ax_weight.grid(False)
    handles, names = ax_distance.get_legend_handles_labels()
    weight_handles, weight_names = ax_weight.get_legend_handles_labels()
    keep = [i for i, n in enumerate(weight_names) if not n.startswith("α =")]
    ax_distance.legend(handles + [weight_handles[i] for i in keep],
                       names + [weight_names[i] for i in keep], loc="upper left")
    return ax_return, ax_distance, ax_weight


def step_size_readout(view: StepView, return_before: float) -> str:
    """The panel's numbers for one step, as an HTML table: one quantity a row, never broken
    inside a phrase (``white-space: nowrap``)."""
    o = view.outcome
    c = o.change
    rows = (
        ("step size α", f"<b>{float(o.step_size):.3g}</b>"),
        ("return", f"{return_before:.0f} → <b>{float(o.mean_return):.0f}</b>"),
        ("weights: ‖Δθ‖/‖θ_old‖", f"{float(c.rel_l2):.3f}"),
        ("policy: KL(π_old‖π_new)", f"{float(c.kl):.3g} nats"),
        ("policy: mean |Δπ|", f"{float(c.tv):.2f}"),
        ("greedy action flipped", f"on {100 * float(c.flipped):.0f}% of states"),
    )
    cell = "style='white-space:nowrap; padding:1px 12px 1px 0'"
    body = "".join(f"<tr><td {cell}>{name}</td><td {cell}>{value}</td></tr>"
                   for name, value in rows)
    return f"<table style='font-size:14px'>{body}</table>"


def step_size_panel(step_size: float = 20.0, setup: CliffSetup | None = None) -> Panel:
    """A panel with one log-scaled slider, ``"step_size"`` (α from 10⁻² to 10²).

    Each move applies θ_old + α·g from the stored trained parameters and gradient
    (:func:`course_lib.lessons.l01_cliff.step_view`), plays the fixed evaluation episodes with the new
    policy, and redraws: action probabilities before/after, and the marker on the cliff.

    Args:
      step_size: the initial α, in [0.01, 100].
      setup: a :class:`course_lib.lessons.l01_cliff.CliffSetup`; by default
        :func:`course_lib.lessons.l01_cliff.make_cliff_setup` (the lesson's stored policy).
    """
    if not 0.01 <= float(step_size) <= 100.0:
        raise ValueError(f"step_size must lie in [0.01, 100], got {step_size}")
    if setup is None:
        setup = make_cliff_setup()
    if not isinstance(setup, CliffSetup):
        raise TypeError(f"setup must be a CliffSetup, got {type(setup).__name__}")
    slider = W.FloatLogSlider(
        value=float(step_size),
        base=10.0,
        min=-2.0,
        max=2.0,
        step=0.05,
        description="step size α",
        readout_format=".3g",
        continuous_update=False,
        style={"description_width": "initial"},
        layout=W.Layout(width="420px"),
    )

    def draw(figure, step_size: float) -> str:
        view = step_view(setup, step_size)
        if figure.axes:
            set_step(figure, view)
            return step_size_readout(view, setup.return_before)
        # Two rows fit the notebook's width (880 px) at full size: the probabilities on the
        # left, the cliff's two plots stacked on the right over the same α axis.
        axes = figure.subplot_mosaic([["p", "r"], ["p", "d"]])
        plot_probabilities(axes["p"], view.p_old, view.p_new)
        ax_r, ax_d, ax_w = plot_cliff(axes["r"], axes["d"], setup.sweep, setup.return_before,
                                      marker=view.outcome)
        # The moving layer: π_new's dots and the three markers, and what a full draw draws
        # over them: the legends (two placed 'best' around the data, one naming α), the
        # frames (a marker sits on one at either end of the α range) and the weight curve,
        # drawn over the KL marker.
        animate(axes["p"].lines[1], axes["p"].get_legend(), ax_r.lines[-1], ax_r.get_legend(),
                ax_d.lines[-1], ax_d.get_legend(), ax_w.lines[0], ax_w.lines[-1],
                *(spine for ax in (ax_r, ax_d, ax_w) for spine in ax.spines.values()))
        return step_size_readout(view, setup.return_before)

    # The constrained layout is solved only where the static layer is rendered, on the first
    # redraw: nothing a move changes enters it.
    return Panel({"step_size": slider}, draw, figsize=(11.0, 7.0), live=True, keep_figure=True)


def set_step(figure, view: StepView) -> None:
    """Move a step-size panel's figure (axes: probabilities, return, KL, weight change) to
    ``view``: π_new's dots, the α marker on the three cliff axes and its legend entries."""
    ax_p, ax_r, ax_d, ax_w = figure.axes
    ax_p.lines[1].set_ydata(view.p_new)
    o = view.outcome
    alpha = float(o.step_size)
    name = f"α = {alpha:.3g}"
    for ax, value in ((ax_r, o.mean_return), (ax_w, o.change.rel_l2), (ax_d, o.change.kl)):
        ax.lines[-1].set_data([alpha], [float(value)])
        ax.lines[-1].set_label(name)
    for ax in (ax_r, ax_d):
        for text in ax.get_legend().get_texts():
            if text.get_text().startswith("α ="):
                text.set_text(name)
