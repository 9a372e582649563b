"""The Panel every slider figure is built on: what it shows does not depend on the kernel's
matplotlib settings or on how slider messages arrive."""

from __future__ import annotations

import functools
import io
import threading

import matplotlib as mpl
import matplotlib.image as mpimg
import numpy as np
import pytest

from course_lib.widgets.l03_ratio import ratio_panel


def pixels(png: bytes) -> np.ndarray:
    return mpimg.imread(io.BytesIO(png), format="png")


def test_figure_is_opaque_and_the_same_under_jupyters_transparent_defaults():
    reference = pixels(ratio_panel().png())
    # What Jupyter's inline backend sets for every new figure.
    with mpl.rc_context({"figure.facecolor": (1, 1, 1, 0), "figure.edgecolor": (1, 1, 1, 0)}):
        under_inline = pixels(ratio_panel().png())
    assert np.all(under_inline[..., 3] == 1.0)
    assert np.array_equal(under_inline, reference)


def test_image_is_shown_at_its_own_pixel_size():
    panel = ratio_panel()
    width, height = pixels(panel.png()).shape[1], pixels(panel.png()).shape[0]
    assert panel.image.layout.width == f"{width}px"
    assert (width, height) == (640, 320)


def test_slider_moves_from_two_threads_never_publish_a_half_drawn_figure():
    panel = ratio_panel()
    published = []
    panel.image.observe(lambda change: published.append(change["new"]), names="value")
    grid = [round(v, 2) for v in np.linspace(0.1, 0.9, 12)]

    def drag(values):
        for value in values:
            panel.sliders["p_new"].value = value

    threads = [threading.Thread(target=drag, args=(grid,)),
               threading.Thread(target=drag, args=(grid[::-1],))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    expected = {round(v, 2): pixels(ratio_panel(p_new=v).png()) for v in grid}
    assert len(published) >= len(grid)
    for png in published:
        shown = pixels(png)
        assert any(np.array_equal(shown, e) for e in expected.values()), "a half-drawn figure"
    assert np.array_equal(pixels(panel.png()), expected[panel.sliders["p_new"].value])


# ------------------------------------------------------------------------------------------
# Live panels: a drag from the browser is drawn by a worker that coalesces the values
# ------------------------------------------------------------------------------------------


def _slow_panel(delay: float):
    """A live one-slider panel whose draw takes ``delay`` seconds and records what it drew."""
    import time

    import ipywidgets as W

    from course_lib.widgets.panel import Panel

    drawn = []

    def draw(figure, x):
        time.sleep(delay)
        drawn.append(x)
        figure.add_subplot().plot([0, 1], [0, x])
        return f"x = {x:.2f}"

    slider = W.FloatSlider(value=0.0, min=0.0, max=1.0, step=0.01)
    return Panel({"x": slider}, draw, figsize=(2.0, 2.0), live=True), drawn


def test_a_drag_from_the_browser_is_coalesced_and_ends_on_the_last_value():
    """Values arrive (as the browser sends them, ``set_state``) every 5 ms while one redraw
    takes 40 ms: the handler only marks the panel stale, the worker draws the latest value
    each time, and the last figure and readout are those of the last value."""
    import time

    panel, drawn = _slow_panel(0.04)
    drawn.clear()
    values = [round(0.02 * k, 2) for k in range(1, 41)]
    for v in values:
        panel.sliders["x"].set_state({"value": v})
        time.sleep(0.005)
    assert panel.wait(timeout=30)
    assert drawn[-1] == values[-1] and panel.readout.value == f"x = {values[-1]:.2f}"
    assert 2 <= len(drawn) < len(values) / 2, f"{len(drawn)} redraws for {len(values)} values"
    assert drawn == sorted(drawn), "never an older value after a newer one"


def test_the_clip_panel_updated_in_place_draws_what_a_fresh_one_draws():
    """The clip panel keeps its figure and only moves its curves, spans and label: after any
    sequence of moves it shows, pixel for pixel, what a panel built at the last value shows."""
    from course_lib.widgets.l07_ppo_clip import clip_panel

    panel = clip_panel(eps=0.2)
    for eps in (0.35, 0.0, 0.9, 0.05, 0.5):
        panel.sliders["eps"].value = eps
        assert np.array_equal(pixels(panel.png()), pixels(clip_panel(eps=eps).png())), eps
        assert panel.readout.value == clip_panel(eps=eps).readout.value


def test_a_move_of_the_moving_layer_only_renders_that_layer():
    """π_new moves only the ratio panel's points and title (its moving layer): the static
    picture is reused, not rendered again; π_old moves the curves: it is."""
    panel = ratio_panel()
    full = []
    draw = panel.figure.canvas.draw
    panel.figure.canvas.draw = lambda: (full.append(1), draw())
    panel.sliders["p_new"].value = 0.4
    assert full == []
    panel.sliders["p_old"].value = 0.5
    assert full == [1]
    assert np.array_equal(pixels(panel.png()), pixels(ratio_panel(p_old=0.5, p_new=0.4).png()))


def test_png_encoding_round_trips_the_pixels():
    from course_lib.widgets.panel import encode_png

    rgba = np.random.default_rng(0).integers(0, 256, size=(7, 5, 4), dtype=np.uint8)
    png = encode_png(rgba, 80)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert np.array_equal(np.round(pixels(png) * 255).astype(np.uint8), rgba)


def test_a_grid_layer_draws_the_axis_grid_pixel_for_pixel():
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from course_lib.widgets.panel import GridLayer
    from course_lib.widgets.plots import COURSE_STYLE

    def render(own_grid: bool) -> np.ndarray:
        with mpl.rc_context(COURSE_STYLE):
            figure = Figure(figsize=(4.0, 3.0), dpi=80, facecolor="white")
            canvas = FigureCanvasAgg(figure)
            ax = figure.add_axes((0.15, 0.15, 0.8, 0.8))
            ax.bar(np.arange(4), [0.3, 0.9, 0.5, 0.7], color="C0")
            ax.set_ylim(0.0, 1.0)
            if own_grid:
                grid = GridLayer(ax)
                assert not any(line.get_visible() for line in ax.yaxis.get_gridlines())
                assert grid not in ax.lines
            canvas.draw()
            return np.asarray(canvas.buffer_rgba()).copy()

    assert np.array_equal(render(True), render(False))


def test_a_value_set_in_python_redraws_before_the_setter_returns():
    panel, drawn = _slow_panel(0.0)
    panel.sliders["x"].value = 0.5
    assert drawn[-1] == 0.5 and panel.readout.value == "x = 0.50"


def test_analytic_panels_are_live_and_training_panels_update_on_release(built):
    name, panel = built
    live = name in {"step_size", "distance", "ratio", "trust_region", "natural_gradient", "clip",
                    "epochs"}
    assert panel.live == live
    for key, s in panel.sliders.items():
        if hasattr(s, "continuous_update"):
            assert s.continuous_update == live, (name, key)


def test_a_failing_redraw_in_the_worker_says_so_in_the_readout():
    import ipywidgets as W

    from course_lib.widgets.panel import Panel

    def draw(figure, x):
        if x > 0.5:
            raise ValueError("x too large")
        return "ok"

    panel = Panel({"x": W.FloatSlider(value=0.0)}, draw, figsize=(2.0, 2.0), live=True)
    panel.sliders["x"].set_state({"value": 0.9})
    assert panel.wait(timeout=10)
    assert "redraw failed" in panel.readout.value and "x too large" in panel.readout.value


# ------------------------------------------------------------------------------------------
# Every panel: readable at its own size, sliders named with the course's symbols
# ------------------------------------------------------------------------------------------

MAX_WIDTH_PX = 880
"""JupyterLab's notebook column is about 900 px wide: a wider figure is shown scaled down."""

MIN_TEXT_PX = 10.0
"""Smallest text on a figure, in pixels (points × dpi / 72)."""


def _tiny_policy(model):
    import jax

    from course_lib.rl.train import Params

    pi, v = model.init(jax.random.key(0))
    return Params(pi + 0.3 * jax.random.normal(jax.random.key(1), pi.shape), v)


@functools.cache
def _cliff_setup():
    import jax
    from test_cliff import ENV, MODEL

    import course_lib.lessons.l01_cliff as C

    return C.setup_from_params(_tiny_policy(MODEL), MODEL, ENV, jax.random.key(3),
                               jax.random.key(4), n_episodes=8, num_envs=4, num_steps=32,
                               step_sizes=np.logspace(-1, 2, 7))


@functools.cache
def _epoch_study():
    import jax
    from test_mistakes import ENV, MODEL

    import course_lib.lessons.l09_mistakes as M
    from course_lib.rl.rollout import collect_batch

    params = _tiny_policy(MODEL)
    batch = collect_batch(params, MODEL, ENV, jax.random.key(2), num_envs=4, num_steps=32)
    return M.epoch_study(MODEL, params, batch, jax.random.key(3), max_epochs=4, lr=1e-2,
                         minibatches=4)


def _build(name, **values):
    """Each panel through its ``*_panel`` function, on small or fake data; ``values``: slider
    values other than the default ones (for the live panels)."""
    import course_lib.widgets as w

    if name == "step_size":
        return w.step_size_panel(**{"step_size": 0.5, **values}, setup=_cliff_setup())
    if name == "distance":
        return w.distance_panel(**values)
    if name == "ratio":
        return w.ratio_panel(**values)
    if name == "trust_region":
        return w.trust_region_panel(**values)
    if name == "natural_gradient":
        return w.natural_gradient_panel(**values)
    if name == "clip":
        return w.clip_panel(**values)
    if name == "epochs":
        return w.epochs_panel(**{"epochs": 3, **values}, study=_epoch_study())
    assert not values, name
    if name == "trpo_delta":
        from test_trpo_anatomy import DELTAS, fake_sweep

        return w.trpo_delta_panel(fake_sweep(), DELTAS, delta=0.01)
    if name == "trpo_live":
        from test_trpo_anatomy import TINY

        return w.trpo_live_panel(delta=0.01, config=TINY)
    if name == "ppo_eps":
        from test_clip_study import EPS_GRID, fake_sweep

        return w.ppo_eps_panel(fake_sweep(), EPS_GRID)
    if name == "compare":
        from test_compare import RESULTS

        return w.compare_panel(RESULTS, delta=0.01)
    if name in ("lm_beta", "lm_eps"):
        from test_lm_fine_tuning import TOY, fake_studies

        from course_lib.widgets.l11_lm_fine_tuning import beta_panel, eps_panel

        if name == "lm_beta":
            return beta_panel(TOY, fake_studies(), beta=0.1)
        return eps_panel(fake_studies(), eps=0.2, optimum_kl=3.8)
    raise KeyError(name)


SLOW = pytest.mark.slow
PANELS = ["ratio", "trust_region", "natural_gradient", "trpo_delta", "clip", "ppo_eps",
          "compare", "lm_beta", "lm_eps", pytest.param("step_size", marks=SLOW), pytest.param("distance", marks=SLOW),
          pytest.param("trpo_live", marks=SLOW), pytest.param("epochs", marks=SLOW)]

SYMBOLS = {
    # panel: {slider key: what its description must contain}
    "step_size": {"step_size": "step size α"},
    "distance": {"radius": "‖Δθ‖₂", "mix": "random → sensitive"},
    "ratio": {"p_old": "π_old(a", "p_new": "π_new(a", "advantage": "A", "eps": "ε"},
    "trust_region": {"delta": "δ (nats)"},
    "natural_gradient": {"delta": "δ (nats"},
    "trpo_delta": {"delta": "δ (nats)"},
    "trpo_live": {"delta": "δ (nats)"},
    "clip": {"eps": "ε"},
    "ppo_eps": {"eps": "ε"},
    "compare": {"iteration": "updates", "smoothing": "smoothing"},
    "lm_beta": {"beta": "β"},
    "lm_eps": {"eps": "ε"},
    "epochs": {"epochs": "epochs", "clip": "clip"},
}
"""Each slider's description uses the course's symbol (δ, ε, α, A, π_old, ‖Δθ‖₂) and its unit."""

RAW_NAMES = ("delta", "eps", "step_size", "p_old", "p_new", "advantage", "iteration")


@pytest.fixture(scope="module", params=PANELS)
def built(request):
    return request.param, _build(request.param)


def test_every_panel_fits_the_notebook_at_its_own_size_with_readable_text(built):
    name, panel = built
    width = pixels(panel.png()).shape[1]
    assert width <= MAX_WIDTH_PX, f"{name}: {width} px wide, shown scaled down in JupyterLab"
    assert panel.image.layout.width == f"{width}px"
    dpi = panel.figure.dpi
    texts = [t for t in panel.figure.findobj(mpl.text.Text)
             if t.get_visible() and t.get_text().strip()]
    assert texts
    smallest = min(t.get_fontsize() for t in texts) * dpi / 72
    assert smallest >= MIN_TEXT_PX, f"{name}: text of {smallest:.1f} px"


MOVES = {
    # panel: the slider values _build starts at (A), then values that move every slider (B)
    "step_size": ({"step_size": 0.5}, {"step_size": 30.0}),
    "distance": ({"radius": 0.3, "mix": 1.0}, {"radius": 1.5, "mix": 0.25}),
    "ratio": ({"p_old": 0.2, "p_new": 0.8, "advantage": 5.0, "eps": 0.2},
              {"p_old": 0.5, "p_new": 0.1, "advantage": -3.0, "eps": 0.35}),
    "trust_region": ({"delta": 0.01}, {"delta": 0.5}),
    "natural_gradient": ({"delta": 0.01}, {"delta": 0.002}),
    "clip": ({"eps": 0.2}, {"eps": 0.6}),
    "epochs": ({"epochs": 3, "clip": True}, {"epochs": 1, "clip": False}),
}
"""The live panels, which keep their figure and only move its artists between redraws."""


def test_a_panel_moved_away_and_back_draws_what_a_fresh_one_draws(built):
    """A panel that keeps its figure, moved from A to B and back to A, shows at B and at A the
    very PNG (and readout) of a panel built there: no artist, label, limit or cached picture
    is left over from an earlier value."""
    name, panel = built
    if name not in MOVES:
        pytest.skip("a panel that draws its figure anew on every move")
    assert panel.keep_figure
    for values in MOVES[name][::-1]:  # B, then back to A
        for key, value in values.items():
            panel.sliders[key].value = value
        fresh = _build(name, **values)
        assert panel.values == fresh.values == values
        assert panel.png() == fresh.png(), values
        assert panel.readout.value == fresh.readout.value


def test_every_slider_is_described_with_the_course_symbols(built):
    name, panel = built
    assert set(panel.sliders) == set(SYMBOLS[name]), "the slider keys are a contract"
    for key, symbol in SYMBOLS[name].items():
        description = panel.sliders[key].description
        assert symbol in description, f"{name}.{key}: {description!r}"
        assert description not in RAW_NAMES, f"{name}.{key}: a code name, {description!r}"
        assert panel.sliders[key].style.description_width == "initial", "never cut off"
        width = panel.sliders[key].layout.width
        if width is not None:    # the track keeps at least ~200 px beside the description
            assert int(width.removesuffix("px")) >= 200 + 9 * len(description), (name, key)
