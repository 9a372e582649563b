"""Lesson 05's panel: vanilla vs natural gradient on the simplex of a 3-armed softmax bandit.

:func:`natural_gradient_panel` has one slider, ``delta``: the exact KL between consecutive
policies. Both paths take steps of that KL (the vanilla step is rescaled to it too, so the
comparison is fair); the readout states how many steps each needs to reach 95 % of the
optimal reward. The computation is :func:`course_lib.lessons.l05_natural_gradient.kl_matched_paths`.

:func:`draw_simplex` and :func:`plot_simplex_path` are the figure helpers the lesson's static
figures share with the panel.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from course_lib.lessons.l05_natural_gradient import (
    BANDIT_REWARDS,
    BANDIT_START,
    SIMPLEX_VERTICES,
    BanditPath,
    kl_matched_paths,
    reward_threshold,
    simplex_xy,
    steps_to_reach,
)
from course_lib.widgets.panel import Panel, animate, slider
from course_lib.widgets.plots import BLACK, BLUE, VERMILLION, label

__all__ = ["PANEL_STEPS", "draw_simplex", "natural_gradient_panel", "plot_simplex_path"]

PANEL_STEPS = 200
"""Steps computed per path in the panel (enough for δ ≥ 0.001 on the lesson's bandit)."""

METHOD_COLORS = {"vanilla": VERMILLION, "natural": BLUE}


def draw_simplex(ax: Axes, rewards, title: str = "policy simplex") -> Axes:
    """Draw the probability triangle of a 3-armed bandit, each corner named with its reward.

    Coordinates are those of :func:`course_lib.lessons.l05_natural_gradient.simplex_xy`; the corner of arm ``i`` is
    the deterministic policy that always pulls arm ``i``.
    """
    v = np.asarray(SIMPLEX_VERTICES)
    r = np.asarray(rewards)
    ax.plot(*np.vstack([v, v[:1]]).T, color="0.6", linewidth=1.0, zorder=0)
    offsets = [(-0.02, -0.08, "left"), (0.02, -0.08, "right"), (0.05, 0.0, "left")]
    for i, (dx, dy, ha) in enumerate(offsets):
        ax.text(
            v[i, 0] + dx, v[i, 1] + dy, f"arm {i}\nr = {r[i]:g}", ha=ha, va="center", fontsize=10
        )
    ax.set_xlim(-0.12, 1.12)
    ax.set_ylim(-0.15, 0.95)
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    ax.grid(False)
    for spine in ax.spines.values():
        spine.set_visible(False)
    ax.set_title(title)
    return ax


def plot_simplex_path(
    ax: Axes, path: BanditPath, name: str, color: str, n_points: int | None = None, **kwargs
) -> None:
    """Plot ``path.probs`` (the first ``n_points`` points) on the triangle, dots at each step."""
    xy = np.asarray(simplex_xy(path.probs[:n_points]))
    style = {"marker": "o", "markersize": 3, "linewidth": 1.5, "color": color, "label": name}
    style.update(kwargs)
    ax.plot(xy[:, 0], xy[:, 1], **style)


def _steps_text(n: int, n_steps: int) -> str:
    return f"{n} steps" if n >= 0 else f"more than {n_steps} steps"


def natural_gradient_panel(delta: float = 0.01) -> Panel:
    """Vanilla and natural gradient paths with steps of exact KL ``delta`` on the simplex.

    The bandit is :data:`course_lib.lessons.l05_natural_gradient.BANDIT_REWARDS` from the nearly deterministic start
    :data:`course_lib.lessons.l05_natural_gradient.BANDIT_START`. Left: both paths on the probability triangle. Right:
    the expected reward per step, with the 95 % line. The readout gives each method's number
    of steps to 95 % of the optimal reward.

    Args:
      delta: initial KL per step, in ``[0.001, 0.1]`` nats.

    Returns:
      a :class:`~course_lib.widgets.panel.Panel` with the slider ``"delta"``.
    """
    rewards = jnp.asarray(BANDIT_REWARDS)
    start = jnp.asarray(BANDIT_START)
    threshold = float(reward_threshold(rewards, 0.95))
    if not 0.001 <= delta <= 0.1:
        raise ValueError(f"delta must lie in [0.001, 0.1], got {delta}")
    sliders = {"delta": slider(delta, 0.001, 0.1, 0.001, "δ (nats per step)", ".3f")}

    def draw(figure: Figure, delta: float) -> str:
        vanilla, natural = jax.device_get(kl_matched_paths(start, rewards, delta, PANEL_STEPS))
        paths = {"vanilla": vanilla, "natural": natural}
        steps = {k: int(steps_to_reach(p.expected_reward, rewards)) for k, p in paths.items()}
        reached = [n for n in steps.values() if n >= 0]
        horizon = min(PANEL_STEPS, int(1.3 * max(reached)) + 1) if reached else PANEL_STEPS
        if not figure.axes:
            _build(figure, delta, paths, steps, horizon, threshold, rewards)
        else:
            _update(figure, delta, paths, steps, horizon)

        text = {k: _steps_text(n, PANEL_STEPS) for k, n in steps.items()}
        ratio = ""
        if min(steps.values()) > 0:
            ratio = f" ({steps['vanilla'] / steps['natural']:.1f}× as many for vanilla)"
        return (
            f"<b>δ = {delta:.3f} nats per step.</b> Steps to 95 % of the optimal reward: "
            f"vanilla <b>{text['vanilla']}</b>, natural <b>{text['natural']}</b>{ratio}."
        )

    return Panel(sliders, draw, figsize=(10.0, 4.4), layout=None, live=True, keep_figure=True)


def _simplex_title(delta: float) -> str:
    return f"paths with KL = {delta:.3f} per step"


def _build(figure: Figure, delta: float, paths: dict, steps: dict, horizon: int,
           threshold: float, rewards) -> None:
    """The panel's figure at its first δ. ``figure.axes``: the simplex (``lines``: the triangle,
    the vanilla path, the natural path, the start) and the reward per step (``lines``: vanilla,
    natural, the 95 % line, then each method's step-to-95 % line, hidden where not reached).

    The moving layer (:func:`course_lib.widgets.panel.animate`): both paths, the start star
    drawn over them and the title on the simplex; on the reward axes, whose step axis follows
    the paths' length, everything but the title and the reward axis (ticks, labels, grid)."""
    # Fixed axes rectangles instead of the layout engine: a third of the redraw time.
    figure.set_layout_engine("none")
    ax_s = figure.add_axes((0.0, 0.02, 0.42, 0.9))
    ax_j = figure.add_axes((0.5, 0.14, 0.48, 0.76))
    draw_simplex(ax_s, rewards, _simplex_title(delta))
    for name, path in paths.items():
        plot_simplex_path(ax_s, path, name, METHOD_COLORS[name], horizon + 1)
    start_xy = np.asarray(simplex_xy(paths["vanilla"].probs[0]))
    ax_s.plot(*start_xy, marker="*", markersize=14, color=BLACK, linestyle="none", label="start")
    ax_s.legend(loc="upper left", fontsize=10)

    t = np.arange(horizon + 1)
    for name, path in paths.items():
        ax_j.plot(t, np.asarray(path.expected_reward[: horizon + 1]), color=METHOD_COLORS[name],
                  label=name)
    ax_j.axhline(threshold, color="0.4", linestyle="--", linewidth=1.2, label="95 % of optimal")
    for name, n in steps.items():
        ax_j.axvline(max(n, 0), color=METHOD_COLORS[name], linestyle=":", linewidth=1.2,
                     visible=n >= 0)
    label(ax_j, "expected reward per step", "step", "expected reward J(θ)", legend=True)
    ax_j.set_ylim(0.0, 1.05)
    animate(*ax_s.lines[1:], ax_s.title, *ax_j.lines, ax_j.xaxis, ax_j.get_legend(),
            *ax_j.spines.values())


def _update(figure: Figure, delta: float, paths: dict, steps: dict, horizon: int) -> None:
    """Move the figure :func:`_build` drew to another δ's paths."""
    ax_s, ax_j = figure.axes
    t = np.arange(horizon + 1)
    for i, (name, path) in enumerate(paths.items()):
        xy = np.asarray(simplex_xy(path.probs[: horizon + 1]))
        ax_s.lines[1 + i].set_data(xy[:, 0], xy[:, 1])
        ax_j.lines[i].set_data(t, np.asarray(path.expected_reward[: horizon + 1]))
        ax_j.lines[3 + i].set_xdata([max(steps[name], 0)] * 2)
        ax_j.lines[3 + i].set_visible(steps[name] >= 0)
    ax_s.title.set_text(_simplex_title(delta))
    # The step axis follows the paths, as a new axes' autoscaling would.
    ax_j.relim(visible_only=True)
    ax_j.autoscale_view(scaley=False)
