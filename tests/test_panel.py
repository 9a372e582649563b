"""The Panel every slider figure is built on: what it shows does not depend on the kernel's
matplotlib settings or on how slider messages arrive."""

from __future__ import annotations

import io
import threading

import matplotlib as mpl
import matplotlib.image as mpimg
import numpy as np

from course_lib.widgets.ratio import ratio_panel


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
