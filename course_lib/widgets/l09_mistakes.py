"""Lesson 09's panel: many PPO epochs on one batch, with and without the clip.

:func:`epochs_panel` reads an :class:`course_lib.lessons.l09_mistakes.EpochStudy` computed once (one
compiled program runs every epoch count up to its maximum, clip on and off, on the same
minibatches); the slider ``"epochs"`` and the checkbox ``"clip"`` only choose what to show
(:func:`course_lib.lessons.l09_mistakes.epoch_view`), so a move redraws without computing.
"""

from __future__ import annotations

import ipywidgets as W
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FixedFormatter, FixedLocator, NullLocator

from course_lib.lessons.l09_mistakes import EpochStudy, EpochView, default_epoch_study, epoch_view
from course_lib.widgets.panel import Panel, animate
from course_lib.widgets.plots import BLACK, BLUE, VERMILLION, label

__all__ = ["draw_epochs", "epochs_panel", "epochs_readout", "plot_epoch_view", "set_epoch_view"]

TRPO_DELTA = 0.01
"""The KL of one TRPO update (δ), drawn for scale."""

COLLAPSE_KL = 0.1
"""The syllabus's "> 0.1: often performance collapse risk" level, drawn for scale."""

KL_TICKS = (1e-4, 1e-3, 1e-2, 1e-1, 1.0, 10.0)
RATIO_TICKS = (1, 2, 5, 10, 20)

ROW_NAMES = ("clip on (L^CLIP)", "clip off (E[r·A])")
ROW_COLOURS = (BLUE, VERMILLION)


def plot_epoch_view(ax_kl: Axes, ax_ratio: Axes, view: EpochView, max_epochs: int,
                    eps: float) -> tuple[Axes, Axes]:
    """KL (log scale) and largest ratio against epochs, both rows; the selected one bold.

    Line order on each axis: row 0 (clip on), row 1 (clip off), then the reference lines.
    """
    for row in (0, 1):
        selected = row == view.selected
        style = {"color": ROW_COLOURS[row], "label": ROW_NAMES[row],
                 "linewidth": 3.0 if selected else 1.5, "alpha": 1.0 if selected else 0.55,
                 "linestyle": "-" if selected else "--",
                 "marker": "o" if selected else None, "markersize": 4}
        ax_kl.plot(view.x, np.maximum(view.kl[row], 1e-6), **style)
        ax_ratio.plot(view.x, view.max_ratio[row], **style)
    ax_kl.axhline(TRPO_DELTA, color=BLACK, linestyle=":", linewidth=1.5,
                  label=f"TRPO's δ = {TRPO_DELTA}")
    ax_kl.axhline(COLLAPSE_KL, color=BLACK, linestyle="-.", linewidth=1.2,
                  label=f"collapse risk, {COLLAPSE_KL}")
    ax_ratio.axhline(1.0 + eps, color=BLACK, linestyle=":", linewidth=1.5,
                     label=f"1 + ε = {1.0 + eps:.2g}")
    for ax in (ax_kl, ax_ratio):
        ax.set_xlim(0, max_epochs)
        ax.set_yscale("log")
        ax.yaxis.set_minor_locator(NullLocator())  # minor log ticks cost most of a redraw
    ax_kl.set_ylim(1e-4, 10.0)
    ax_kl.yaxis.set_major_locator(FixedLocator(KL_TICKS))  # plain labels: no mathtext
    ax_kl.yaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in KL_TICKS]))
    ax_ratio.set_ylim(1.0, 30.0)
    ax_ratio.yaxis.set_major_locator(FixedLocator(RATIO_TICKS))
    ax_ratio.yaxis.set_major_formatter(FixedFormatter([f"{t:g}" for t in RATIO_TICKS]))
    label(ax_kl, _kl_title(view.epochs), "epochs on the same batch", "mean KL (nats)")
    label(ax_ratio, "largest ratio r = π/π_old", "epochs on the same batch", "max ratio")
    ax_kl.legend(loc="upper left", fontsize=10)
    ax_ratio.legend(loc="upper left", fontsize=10)
    return ax_kl, ax_ratio


def epochs_readout(view: EpochView) -> str:
    """The numbers after ``view.epochs`` epochs, clip on and off; the selected row in bold."""
    parts = []
    for row, name in enumerate(("clip on", "clip off")):
        text = (f"{name}: KL = {view.kl_at[row]:.3g} nats, "
                f"max ratio = {view.max_ratio_at[row]:.3g}")
        parts.append(f"<b>{text}</b>" if row == view.selected else text)
    return f"after {view.epochs} epochs &nbsp;|&nbsp; " + " &nbsp;|&nbsp; ".join(parts)


def _kl_title(epochs: int) -> str:
    return f"KL(π_old‖π) after {epochs} epochs"


def set_epoch_view(ax_kl: Axes, ax_ratio: Axes, view: EpochView) -> None:
    """Move the rows of axes :func:`plot_epoch_view` drew for a view with the same selected
    row to ``view``'s epochs (the limits, reference lines and legends stay)."""
    for row in (0, 1):
        ax_kl.lines[row].set_data(view.x, np.maximum(view.kl[row], 1e-6))
        ax_ratio.lines[row].set_data(view.x, view.max_ratio[row])
    ax_kl.title.set_text(_kl_title(view.epochs))


def draw_epochs(figure: Figure, study: EpochStudy, epochs: int, clip: bool) -> str:
    """Draw :func:`course_lib.lessons.l09_mistakes.epoch_view` of ``study`` into ``figure``; the readout.

    On a figure it drew before with the same row selected, only the rows and the KL title
    move (:func:`set_epoch_view`); the moving layer of a panel (see
    :func:`course_lib.widgets.panel.animate`) is both axes' rows, reference lines, legends and
    frames, and the KL title. Another row selected restyles every line and legend: the figure
    is drawn anew.
    """
    view = epoch_view(study, epochs, clip)
    if figure.axes and figure.axes[0].lines[view.selected].get_linestyle() != "-":
        figure.clear()
    if figure.axes:
        set_epoch_view(*figure.axes[:2], view)
        return epochs_readout(view)
    figure.set_layout_engine("none")
    ax_kl, ax_ratio = figure.subplots(1, 2, gridspec_kw={
        "left": 0.085, "right": 0.99, "bottom": 0.13, "top": 0.92, "wspace": 0.24})
    plot_epoch_view(ax_kl, ax_ratio, view, int(study.epochs[-1]), study.eps)
    for ax in (ax_kl, ax_ratio):
        animate(*ax.lines, ax.get_legend(), *ax.spines.values())
    animate(ax_kl.title)
    return epochs_readout(view)


def epochs_panel(epochs: int = 10, clip: bool = True, study: EpochStudy | None = None) -> Panel:
    """Slider ``"epochs"`` (1 … the study's max) and checkbox ``"clip"`` over an epoch study.

    Args:
      epochs: the initial number of epochs on the batch.
      clip: whether the clip-on row starts selected.
      study: from :func:`course_lib.lessons.l09_mistakes.epoch_study`; default
        :func:`course_lib.lessons.l09_mistakes.default_epoch_study` (an untrained CartPole policy).
    """
    study = default_epoch_study() if study is None else study
    if not isinstance(study, EpochStudy):
        raise TypeError(f"study must be an EpochStudy, got {type(study).__name__}")
    max_epochs = int(study.epochs[-1])
    if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)):
        raise TypeError(f"epochs must be an int, got {type(epochs).__name__}")
    if not 1 <= int(epochs) <= max_epochs:
        raise ValueError(f"epochs must lie in [1, {max_epochs}], got {epochs}")
    sliders = {
        "epochs": W.IntSlider(value=int(epochs), min=1, max=max_epochs, step=1,
                              description="epochs on the batch", continuous_update=False,
                              style={"description_width": "initial"},
                              layout=W.Layout(width="460px")),
        "clip": W.Checkbox(value=bool(clip), description="clip r to [1−ε, 1+ε]",
                           style={"description_width": "initial"}),
    }

    def draw(figure: Figure, epochs: int, clip: bool) -> str:
        return draw_epochs(figure, study, epochs, clip)

    return Panel(sliders, draw, figsize=(11.0, 4.6), layout=None, live=True, keep_figure=True)
