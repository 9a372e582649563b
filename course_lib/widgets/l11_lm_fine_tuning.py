"""Lesson 11 panels: the β of the KL to the reference and the ε of the clip, over trained sweeps.

* :func:`beta_panel` (slider ``"beta"`` over the swept β) draws the exact reward–KL frontier of
  the optimum π*_β ∝ π_ref·exp(r/β) with the true score on the same axes, the PPO runs' end
  points on it, and the chosen β's learning curves.
* :func:`eps_panel` (slider ``"eps"`` over the swept ε) draws the exact KL of every update and
  the KL to π_ref over training for the chosen ε, the other ε in grey.

The numbers come from :func:`course_lib.lessons.l11_lm_fine_tuning.beta_view` and
:func:`course_lib.lessons.l11_lm_fine_tuning.eps_view`, over
:func:`course_lib.lessons.l11_lm_fine_tuning.run_studies`; a redraw trains nothing.
"""

from __future__ import annotations

import ipywidgets as W
import jax.numpy as jnp
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_lib.lessons.l11_lm_fine_tuning import (
    NO_CLIP,
    BetaView,
    EpsView,
    Studies,
    Toy,
    beta_view,
    eps_view,
    frontier,
)
from course_lib.widgets.panel import Panel
from course_lib.widgets.plots import BLACK, BLUE, GREEN, ORANGE, VERMILLION, label

__all__ = ["FRONTIER_BETAS", "beta_panel", "beta_readout", "draw_beta", "draw_eps",
           "eps_panel", "eps_readout"]

FRONTIER_BETAS = np.geomspace(0.01, 3.0, 60)
"""The β the exact frontier curve is drawn at."""


def _two_axes(figure: Figure) -> tuple[Axes, Axes]:
    figure.set_layout_engine("none")
    return figure.subplots(1, 2, gridspec_kw={
        "left": 0.07, "right": 0.99, "bottom": 0.12, "top": 0.92, "wspace": 0.22})


def beta_readout(view: BetaView) -> str:
    """The β panel's numbers as HTML: π*_β's and the PPO run's reward, true score and KL."""
    ppo = (f"PPO after {len(view.reward_curve)} iterations: reward <b>{view.ppo_reward:.2f}</b>,"
           f" true score <b>{view.ppo_true:.2f}</b>, KL(π‖π_ref) <b>{view.ppo_kl:.2f}</b>")
    if view.optimum is None:
        opt = "π*: none (β = 0: the reward's maximiser, true score 0)"
    else:
        o = view.optimum
        opt = (f"π*_β: reward <b>{o.reward:.2f}</b>, true score <b>{o.true_score:.2f}</b>, "
               f"KL <b>{o.kl:.2f}</b>")
    return f"<b>β = {view.beta:g}</b> &nbsp;·&nbsp; {opt} &nbsp;·&nbsp; {ppo}"


def draw_beta(figure: Figure, toy: Toy, studies: Studies, beta: float,
              curve=None) -> str:
    """Frontier (left) and learning curves (right) for the swept β nearest ``beta``; returns
    the readout HTML. ``curve``: a precomputed ``frontier(toy, FRONTIER_BETAS)``."""
    view = beta_view(toy, studies, beta)
    curve = frontier(toy, jnp.asarray(FRONTIER_BETAS)) if curve is None else curve
    ax, ax_run = _two_axes(figure)
    kl = np.asarray(curve.kl)
    ax.plot(kl, np.asarray(curve.reward), color=BLUE, label="π*_β: learned reward")
    ax.plot(kl, np.asarray(curve.true_score), color=GREEN, label="π*_β: true score")
    runs = studies.beta_runs
    end_kl = np.maximum(np.asarray(runs.kl_ref[:, -1]), 1e-3)
    ax.plot(end_kl, np.asarray(runs.reward[:, -1]), "o", mfc="none", color=BLUE,
            label="PPO runs (one per β): reward")
    ax.plot(end_kl, np.asarray(runs.true_score[:, -1]), "s", mfc="none", color=GREEN,
            label="PPO runs: true score")
    ax.plot([max(view.ppo_kl, 1e-3)], [view.ppo_reward], "o", color=BLUE, ms=9)
    ax.plot([max(view.ppo_kl, 1e-3)], [view.ppo_true], "s", color=GREEN, ms=9)
    if view.optimum is not None:
        ax.axvline(view.optimum.kl, color=BLACK, ls=":", lw=1, label=f"KL of π* at β = {view.beta:g}")
    ax.set_xscale("log")
    ax.set_ylim(0.0, 1.6)
    label(ax, "Reward–KL frontier of π* ∝ π_ref·exp(r/β)", "KL(π‖π_ref) (nats, log scale)",
          "expected score", legend=True)
    ax.legend(loc="upper left", fontsize=9)
    it = np.arange(1, len(view.reward_curve) + 1)
    ax_run.plot(it, view.reward_curve, color=BLUE, label="learned reward")
    ax_run.plot(it, view.true_curve, color=GREEN, label="true score")
    if view.optimum is not None:
        ax_run.axhline(view.optimum.reward, color=BLUE, ls="--", lw=1, label="π*_β's reward")
        ax_run.axhline(view.optimum.true_score, color=GREEN, ls="--", lw=1,
                       label="π*_β's true score")
    ax_run.set_ylim(0.0, 1.6)
    label(ax_run, f"PPO with β = {view.beta:g} (ε = 0.2)", "iteration", "expected score",
          legend=True)
    ax_run.legend(loc="upper left", fontsize=9)
    return beta_readout(view)


def beta_panel(toy: Toy, studies: Studies, beta: float = 0.1) -> Panel:
    """Slider ``"beta"`` over the β of ``studies`` (:func:`run_studies`): the exact frontier,
    where each PPO run ended on it, and the chosen run's learned reward and true score."""
    grid = [float(b) for b in studies.betas]
    first = beta_view(toy, studies, beta)
    curve = frontier(toy, jnp.asarray(FRONTIER_BETAS))
    s = W.SelectionSlider(options=[(f"{b:g}", b) for b in grid], value=first.beta,
                          description="β", continuous_update=False,
                          style={"description_width": "initial"}, layout=W.Layout(width="420px"))

    def draw(figure: Figure, beta: float) -> str:
        return draw_beta(figure, toy, studies, beta, curve)

    return Panel({"beta": s}, draw, figsize=(11.0, 4.6), layout=None)


def eps_readout(view: EpsView) -> str:
    """The ε panel's numbers as HTML."""
    name = "no clip" if view.eps == NO_CLIP else f"ε = {view.eps:g}"
    return (f"<b>{name}</b> &nbsp;·&nbsp; KL(π_old‖π_new) per update: median "
            f"<b>{view.median_update:.4f}</b>, largest <b>{view.max_update:.3f}</b> &nbsp;·&nbsp; "
            f"KL(π‖π_ref) at the end: <b>{view.final_kl_ref:.2f}</b> &nbsp;·&nbsp; "
            f"J_β (last 10 iterations): {view.objective:.3f}")


def draw_eps(figure: Figure, studies: Studies, eps: float, optimum_kl: float | None = None) -> str:
    """KL per update (left, log scale) and KL to π_ref (right) over training for the swept ε
    nearest ``eps``, the other ε in grey; returns the readout HTML."""
    view = eps_view(studies, eps)
    ax, ax_ref = _two_axes(figure)
    n = studies.eps_runs.kl_update.shape[0]
    it = np.arange(1, view.kl_update.shape[0] + 1)
    for i in range(n):
        if i != view.index:
            other = eps_view(studies, float(np.append(studies.eps_values, NO_CLIP)[i]))
            ax.plot(it, other.kl_update, color="0.75", lw=0.8, zorder=1)
            ax_ref.plot(it, other.kl_ref, color="0.75", lw=0.8, zorder=1,
                        label="other ε" if i == 0 or (view.index == 0 and i == 1) else None)
    name = "no clip" if view.eps == NO_CLIP else f"ε = {view.eps:g}"
    ax.plot(it, view.kl_update, color=VERMILLION, label=f"{name}: KL(π_old‖π_new)")
    ax.axhline(view.median_update, color=ORANGE, ls="--", lw=1, label="its median")
    ax.set_yscale("log")
    ax.set_ylim(1e-4, 1.0)
    label(ax, "The clip (ε): the size of each update", "iteration", "exact KL (nats, log scale)",
          legend=True)
    ax.legend(loc="upper right", fontsize=9)
    ax_ref.plot(it, view.kl_ref, color=BLUE, label=f"{name}: KL(π‖π_ref)")
    if optimum_kl is not None:
        ax_ref.axhline(optimum_kl, color=BLACK, ls=":", lw=1.2, label="KL of π*_β (β = 0.1)")
    ax_ref.set_ylim(0.0, 6.0)
    label(ax_ref, "The KL penalty (β = 0.1): the whole run's drift", "iteration",
          "exact KL (nats)", legend=True)
    ax_ref.legend(loc="lower right", fontsize=9)
    return eps_readout(view)


def eps_panel(studies: Studies, eps: float = 0.2, optimum_kl: float | None = None) -> Panel:
    """Slider ``"eps"`` over the ε of ``studies`` (and the run without the clip, "no clip")."""
    grid = [*(float(e) for e in studies.eps_values), NO_CLIP]
    first = eps_view(studies, eps)
    s = W.SelectionSlider(options=[(f"{e:g}" if e != NO_CLIP else "no clip", e) for e in grid],
                          value=first.eps, description="ε", continuous_update=False,
                          style={"description_width": "initial"}, layout=W.Layout(width="420px"))

    def draw(figure: Figure, eps: float) -> str:
        return draw_eps(figure, studies, eps, optimum_kl)

    return Panel({"eps": s}, draw, figsize=(11.0, 4.6), layout=None)
