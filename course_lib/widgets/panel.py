"""Slider panels: ipywidgets sliders driving a course_lib computation and a matplotlib figure.

Every panel is built by a ``*_panel(**initial_values)`` function and is a :class:`Panel`:

* ``panel.widget``: the ipywidgets container (displaying the panel displays it);
* ``panel.sliders``: ``{name: slider}`` (the trust region's is ``"delta"``, the clip's ``"eps"``);
* ``panel.figure``: the matplotlib ``Figure`` it draws into;
* ``panel.readout``: an ``ipywidgets.HTML`` holding the numbers it states.

Setting ``panel.sliders[name].value`` recomputes and redraws before the setter returns, so a
test or a lecturer's script can drive a panel without a browser. The figure is shown as a PNG
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
    about a third faster than ``"constrained"``.
    """

    def __init__(
        self,
        sliders: Mapping[str, W.ValueWidget],
        draw: DrawFn,
        figsize: tuple[float, float] = (9.0, 4.0),
        dpi: int = 80,
        layout: str | None = "constrained",
    ) -> None:
        self.sliders = dict(sliders)
        # An opaque white background: Jupyter's inline backend makes new figures transparent,
        # and the panel must look the same in a kernel, in Voilà and headless.
        self.figure = Figure(figsize=figsize, dpi=dpi, layout=layout, facecolor="white")
        self.readout = W.HTML()
        # Shown at its own pixel size (no blurry upscaling), narrower when the page is.
        width = f"{round(figsize[0] * dpi)}px"
        self.image = W.Image(format="png", layout=W.Layout(width=width, max_width="100%"))
        self._draw = draw
        self._lock = threading.RLock()
        self._dpi = dpi
        for slider in self.sliders.values():
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
            self.figure.clear()
            with mpl.rc_context(COURSE_STYLE):
                readout = self._draw(self.figure, **self.values)
            buf = io.BytesIO()
            # zlib level 1: encoding takes ~40 % less time for a slightly larger image
            self.figure.savefig(buf, format="png", dpi=self._dpi,
                                pil_kwargs={"compress_level": 1})
            self.image.value = buf.getvalue()
            self.readout.value = readout

    def _on_change(self, _change) -> None:
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
    """A float slider wide enough for a projector, ``continuous_update`` off (one redraw per move).

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
