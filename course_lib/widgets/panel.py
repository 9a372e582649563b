"""Slider panels: ipywidgets sliders driving a course_lib computation and a matplotlib figure.

Every panel is built by a ``*_panel(**initial_values)`` function and is a :class:`Panel`:

* ``panel.widget``: the ipywidgets container (displaying the panel displays it);
* ``panel.sliders``: ``{name: slider}`` (the trust region's is ``"delta"``, the clip's ``"eps"``);
* ``panel.figure``: the matplotlib ``Figure`` it draws into;
* ``panel.readout``: an ``ipywidgets.HTML`` holding the numbers it states.

Setting ``panel.sliders[name].value`` recomputes and redraws before the setter returns, so a
test or a lecturer's script can drive a panel without a browser. A *live* panel (analytic,
no training inside) also redraws while a slider is dragged: values from the browser arrive
faster than any redraw, so they are drawn by a worker thread that always draws the latest
value and drops the ones that arrived while it was busy (:meth:`Panel.request`). The figure is shown as a PNG
image widget, which works the same in JupyterLab, Voilà and a headless kernel; the panel's
rich display also carries that PNG, so a notebook read without a kernel shows the figure.

A redraw renders the figure with matplotlib's Agg canvas and encodes the pixels once
(:func:`encode_png`; no ``savefig``, whose canvas switch and second layout pass cost tens of
ms). A panel built with ``keep_figure=True`` draws in two layers: what does not move is
rendered once and kept as pixels, and only the artists its ``draw`` marked with
:func:`animate` (the moving curves and markers, a title or legend whose text changes, and
whatever a full draw would draw over them) are drawn over that picture on each redraw.
Whenever ``draw`` changes anything else (an axis limit, a static curve, a label), the figure
is *stale* (matplotlib's own flag) and the static layer is rendered again, so the picture is
always, byte for byte, the one a panel built at the same values shows. Text is most of what
is left to draw (matplotlib lays out and renders every glyph on every draw): a static title
or tick label costs nothing, a moving legend a few ms.
"""

from __future__ import annotations

import base64
import html
import struct
import threading
import zlib
from collections.abc import Callable, Mapping

import ipywidgets as W
import matplotlib as mpl
import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.axis import GRIDLINE_INTERPOLATION_STEPS
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.transforms import Bbox

from course_lib.widgets.plots import COURSE_STYLE

STATIC_NOTE = "Static picture: run this cell again (Shift+Enter) to move the sliders."
"""The line under a panel's picture wherever the live panel cannot be shown."""

DrawFn = Callable[..., str]
"""``draw(figure, **slider_values) -> readout HTML``: clears nothing, draws into ``figure``."""


def animate(*artists: Artist) -> None:
    """Mark ``artists`` (and everything they contain: a legend's texts and handles, an axis'
    ticks) as the moving layer of a ``keep_figure`` panel: they are drawn over the cached
    static picture on every redraw, in the order a full draw draws them, and changing them
    does not make the figure stale. Mark as well every artist that a full draw draws over a
    moving one where they may overlap (a reference line, the frame, a legend, the grid over
    moving bars: :class:`GridLayer`), or the moving one would cover it. Outside a panel
    (``savefig``, a notebook figure) animated artists are drawn as usual."""
    for artist in artists:
        if isinstance(artist, Axes):
            raise TypeError("animate an axes' artists (its lines, legend, xaxis …), not the axes")
        for part in artist.findobj():
            part.set_animated(True)


class GridLayer(Artist):
    """An axes' grid as an artist of its own, for :func:`animate`: the same lines, pixel for
    pixel, as the grid its ticks draw (that grid is turned off), at the tick locations the
    axes has when this is made (for an axes whose limits stay). In the moving layer it is
    drawn over moving bars or spans, as the axis grid is, while the costly tick labels stay in
    the static layer. Not a ``Line2D`` of the axes: a legend placed 'best' ignores it, as it
    ignores the axis grid."""

    def __init__(self, ax: Axes) -> None:
        super().__init__()
        self._lines = []
        for axis, data, transform in (
            (ax.xaxis, lambda v: ([v, v], [0, 1]), ax.get_xaxis_transform(which="grid")),
            (ax.yaxis, lambda v: ([0, 1], [v, v]), ax.get_yaxis_transform(which="grid")),
        ):
            style = axis.get_major_ticks()[0].gridline
            if not style.get_visible():
                continue
            lo, hi = sorted(axis.get_view_interval())
            tol = 1e-10 * (hi - lo)
            for v in axis.get_majorticklocs():
                if not lo - tol <= v <= hi + tol:
                    continue
                line = Line2D(*data(v), color=style.get_color(), alpha=style.get_alpha(),
                              linestyle=style.get_linestyle(),
                              linewidth=style.get_linewidth(), transform=transform)
                line.get_path()._interpolation_steps = GRIDLINE_INTERPOLATION_STEPS
                line.set_figure(ax.figure)
                line.set_clip_path(ax.patch)
                self._lines.append(line)
        ax.grid(False)
        self.set_zorder(ax.xaxis.get_zorder())
        self.set_in_layout(False)
        ax.add_artist(self)

    def get_window_extent(self, renderer=None):
        return Bbox.null()

    def draw(self, renderer) -> None:
        if self.get_visible():
            for line in self._lines:
                line.draw(renderer)
        self.stale = False


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(rgba: np.ndarray, dpi: float) -> bytes:
    """``[H, W, 4]`` uint8 pixels as a PNG: no row filter, zlib level 1. A figure is mostly
    flat colour, so this is about as small as Pillow's adaptive filtering (~100 KiB for
    880 × 560 px) and three to four times faster to encode (~6 ms)."""
    height, width, _ = rgba.shape
    rows = np.zeros((height, 1 + 4 * width), np.uint8)  # each row: filter type 0, then pixels
    rows[:, 1:] = rgba.reshape(height, -1)
    per_metre = round(dpi / 0.0254)
    return b"".join((
        b"\x89PNG\r\n\x1a\n",
        _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)),
        _png_chunk(b"pHYs", struct.pack(">IIB", per_metre, per_metre, 1)),
        _png_chunk(b"IDAT", zlib.compress(rows, 1)),
        _png_chunk(b"IEND", b""),
    ))


def _moving_layer(figure: Figure) -> list[Artist]:
    """The animated artists of ``figure``, in the order a full draw would draw them."""
    layer = []
    for ax in sorted(figure.axes, key=lambda a: a.zorder):
        layer.extend(sorted((a for a in ax.get_children() if a.get_animated()),
                            key=lambda a: a.zorder))
    return layer


class Panel:
    """Sliders, a figure and a readout, kept in sync by ``draw``.

    ``layout`` is the figure's layout engine; ``None`` (fixed margins set by ``draw``) redraws
    about a third faster than ``"constrained"``, which for a ``keep_figure`` panel costs only
    where its static layer is rendered again. ``live=True`` turns on ``continuous_update``
    for every slider: the figure follows the hand while a slider is dragged. With
    ``keep_figure=True`` the figure is not cleared between redraws: ``draw`` builds its artists
    on the first call (an empty figure), marks the moving ones (:func:`animate`), and only sets
    new data on them afterwards, which skips re-creating axes and ticks and re-rendering what
    did not move (see the module's docstring). ``draw`` must then change a static artist only
    where its value changed (matplotlib marks the figure stale even for the same limits).
    """

    def __init__(
        self,
        sliders: Mapping[str, W.ValueWidget],
        draw: DrawFn,
        figsize: tuple[float, float] = (9.0, 4.0),
        dpi: int = 80,
        layout: str | None = "constrained",
        live: bool = False,
        keep_figure: bool = False,
    ) -> None:
        self.sliders = dict(sliders)
        self.live = live
        self.keep_figure = keep_figure
        # An opaque white background: Jupyter's inline backend makes new figures transparent,
        # and the panel must look the same in a kernel, in Voilà and headless.
        self.figure = Figure(figsize=figsize, dpi=dpi, layout=layout, facecolor="white")
        FigureCanvasAgg(self.figure)  # renders into memory: no pyplot, no GUI, no canvas switch
        self._static = None  # (renderer, pixels) of the static layer, see _render
        self.readout = W.HTML()
        # Shown at its own pixel size (no blurry upscaling), narrower when the page is.
        width = f"{round(figsize[0] * dpi)}px"
        self.image = W.Image(format="png", layout=W.Layout(width=width, max_width="100%"))
        self._draw = draw
        self._lock = threading.RLock()
        self._pending = threading.Event()
        self._worker: threading.Thread | None = None
        self._worker_lock = threading.Lock()  # never held during a redraw
        self._dpi = dpi
        self.redraws = 0
        for slider in self.sliders.values():
            slider.continuous_update = live
            slider.observe(self._on_change, names="value")
        controls = W.HBox(list(self.sliders.values()), layout=W.Layout(flex_flow="row wrap"))
        self.widget = W.VBox([controls, self.image, self.readout])
        self.update()

    @property
    def values(self) -> dict:
        """Current slider values by name."""
        return {name: s.value for name, s in self.sliders.items()}

    def update(self) -> None:
        """Recompute and redraw from the current slider values.

        One redraw at a time (a lock): two interleaved redraws save a half-drawn, even blank,
        figure, as fast keyboard moves once showed in the browser. The image is sent before the
        readout, so a readout that shows the new values means the new figure has gone out.
        """
        with self._lock:
            if not self.keep_figure:
                self.figure.clear()
            # Rendered under the course style as well: ticks created while rendering read it.
            with mpl.rc_context(COURSE_STYLE):
                readout = self._draw(self.figure, **self.values)
                png = self._render()
            self.image.value = png
            self.readout.value = readout
            self.redraws += 1

    def _render(self) -> bytes:
        """The figure as PNG bytes: the static layer (rendered again only when the figure is
        stale), then the moving one (:func:`animate`) drawn over it, then one PNG encoding."""
        canvas = self.figure.canvas
        renderer = canvas.get_renderer()
        if self.figure.stale or self._static is None or self._static[0] is not renderer:
            canvas.draw()  # every artist but the animated ones
            renderer = canvas.get_renderer()
            layer = _moving_layer(self.figure)
            self._static = (renderer, canvas.copy_from_bbox(self.figure.bbox)) if layer else None
        else:
            canvas.restore_region(self._static[1])
            layer = _moving_layer(self.figure)
        for artist in layer:
            artist.draw(renderer)
        # Drawing the moving layer touches nothing static (a legend placed 'best' moves its own
        # box): the static pixels stay valid until ``draw`` changes something static.
        self.figure.stale = False
        return encode_png(np.asarray(renderer.buffer_rgba()), self._dpi)

    def request(self) -> None:
        """Redraw soon, from a worker thread, coalescing requests that arrive meanwhile.

        The kernel handles the browser's messages one at a time; a redraw done in that handler
        would make every value of a drag wait for the redraws of all the values before it. Here
        the handler only marks the panel stale and returns; the worker redraws from the
        current slider values until no new value arrived during its last redraw, so the panel
        never falls behind and always ends on the last value.
        """
        self._pending.set()
        with self._worker_lock:
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._drain, daemon=True,
                                                name=f"{self!r} redraw")
                self._worker.start()

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the worker has drawn the latest requested value; False on timeout."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def _drain(self) -> None:
        while self._pending.is_set():
            self._pending.clear()
            try:
                self.update()
            except Exception as err:  # noqa: BLE001 (shown where the learner looks, not lost in a thread)
                self.readout.value = f"<b>redraw failed:</b> {html.escape(repr(err))}"

    def _on_change(self, change) -> None:
        owner = change["owner"] if isinstance(change, dict) else getattr(change, "owner", None)
        # ipywidgets holds ``_property_lock`` while it applies a value sent by the browser
        if self.live and getattr(owner, "_property_lock", None):
            self.request()
        else:
            self.update()

    def png(self) -> bytes:
        """The current figure as PNG bytes."""
        return bytes(self.image.value)

    def static_html(self) -> str:
        """The panel as a picture: the figure, the readout and one line that says how to get the
        sliders back. A page that cannot show the live widget (a reloaded or reopened lesson,
        whose widget views ``course_lib.widgets.lab.drop_widget_views`` removed when it was
        saved; an untrusted notebook; GitHub) shows this instead of an error."""
        png = base64.b64encode(self.png()).decode("ascii")
        width = round(self.figure.get_figwidth() * self._dpi)
        return (
            f'<div class="course-panel-static">'
            f'<img src="data:image/png;base64,{png}" style="width:{width}px;max-width:100%" '
            f'alt="{html.escape(repr(self))}"/>'
            f"<div>{self.readout.value}</div>"
            f"<p><b>{STATIC_NOTE}</b></p></div>"
        )

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self.sliders)})"

    def _repr_mimebundle_(self, **kwargs):
        bundle = self.widget._repr_mimebundle_(**kwargs)
        data = bundle[0] if isinstance(bundle, tuple) else bundle
        data = dict(data)
        data["text/html"] = self.static_html()
        data["image/png"] = self.png()
        data["text/plain"] = repr(self)
        return data


def slider(
    value: float, lo: float, hi: float, step: float, description: str, readout_format: str = ".3f"
) -> W.FloatSlider:
    """A float slider wide enough for a projector; :class:`Panel` sets ``continuous_update``
    (on for a live panel, off, one redraw per release, otherwise).

    ``description`` is what the learner reads: the course's symbol, with its unit where it has
    one ("δ (nats)", "ε", "π_old(a|s)", "step size α"). The slider grows with it, so a long
    description never squeezes the track.
    """
    if not lo <= value <= hi:
        raise ValueError(f"{description} must lie in [{lo}, {hi}], got {value}")
    return W.FloatSlider(
        value=value, min=lo, max=hi, step=step, description=description,
        readout_format=readout_format, continuous_update=False,
        style={"description_width": "initial"},
        # about 9 px a description character and 50 px of readout beside a 260 px track
        layout=W.Layout(width=f"{310 + 9 * len(description)}px"),
    )
