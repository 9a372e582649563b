"""Figure conventions shared by every lesson: a colour-blind-safe palette, projector-sized text.

Plot functions in the lessons' modules take data and return (or draw into) a matplotlib
``Figure``; they never call ``plt.show`` themselves.
"""

from __future__ import annotations

import matplotlib as mpl
import numpy as np
from matplotlib.axes import Axes

OKABE_ITO = (
    "#0072B2",  # blue
    "#D55E00",  # vermillion
    "#009E73",  # bluish green
    "#E69F00",  # orange
    "#CC79A7",  # reddish purple
    "#56B4E9",  # sky blue
    "#F0E442",  # yellow
    "#000000",  # black
)
"""Okabe & Ito (2008) palette: distinguishable with every common colour-vision deficiency."""

BLUE, VERMILLION, GREEN, ORANGE, PURPLE, SKY, YELLOW, BLACK = OKABE_ITO

COURSE_STYLE = {
    "axes.prop_cycle": mpl.cycler(color=OKABE_ITO),
    "font.size": 12,
    "axes.titlesize": 13,
    "axes.labelsize": 12,
    "legend.fontsize": 11,
    "xtick.labelsize": 11,
    "ytick.labelsize": 11,
    "lines.linewidth": 2.0,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "figure.dpi": 90,
}


def use_course_style() -> None:
    """Apply :data:`COURSE_STYLE` to matplotlib's global settings (notebooks call this once)."""
    mpl.rcParams.update(COURSE_STYLE)


def label(ax: Axes, title: str, xlabel: str, ylabel: str, legend: bool = False) -> Axes:
    """Title and axis labels (with units) in one call; a legend when asked."""
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend:
        ax.legend()
    return ax


def plot_band(ax: Axes, x, band, color: str, name: str, alpha: float = 0.2) -> Axes:
    """The seed mean as a line (``ax.lines`` gets it) and the seed range as a shaded band.

    ``band``: a :class:`course_lib.lessons.common.SeedBand` (``mean``, ``lo``, ``hi``, each ``[I]``).
    """
    x = np.asarray(x)
    ax.plot(x, band.mean, color=color, label=name)
    ax.fill_between(x, band.lo, band.hi, color=color, alpha=alpha, linewidth=0)
    return ax
