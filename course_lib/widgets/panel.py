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
"""

from __future__ import annotations

import base64
import html
import io
import threading
from collections.abc import Callable, Mapping

import ipywidgets as W
import matplotlib as mpl
from matplotlib.figure import Figure

from course_lib.widgets.plots import COURSE_STYLE

STATIC_NOTE = "Static picture: run this cell again (Shift+Enter) to move the sliders."
"""The line under a panel's picture wherever the live panel cannot be shown."""

DrawFn = Callable[..., str]
"""``draw(figure, **slider_values) -> readout HTML``: clears nothing, draws into ``figure``."""


class Panel:
    """Sliders, a figure and a readout, kept in sync by ``draw``.

    ``layout`` is the figure's layout engine; ``None`` (fixed margins set by ``draw``) redraws
    about a third faster than ``"constrained"``. ``live=True`` turns on ``continuous_update``
    for every slider: the figure follows the hand while a slider is dragged. With
    ``keep_figure=True`` the figure is not cleared between redraws: ``draw`` builds its artists
    on the first call (an empty figure) and only sets new data on them afterwards, which skips
    re-creating axes and ticks, most of a redraw's time.
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
            with mpl.rc_context(COURSE_STYLE):
                readout = self._draw(self.figure, **self.values)
            buf = io.BytesIO()
            # zlib level 1: encoding takes ~40 % less time for a slightly larger image
            self.figure.savefig(buf, format="png", dpi=self._dpi,
                                pil_kwargs={"compress_level": 1})
            self.image.value = buf.getvalue()
            self.readout.value = readout
            self.redraws += 1

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
