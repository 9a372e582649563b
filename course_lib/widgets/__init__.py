"""Slider panels of the lessons (see :mod:`course_lib.widgets.panel` for the ``Panel`` contract).

Each lesson's panels live in their own module; every ``*_panel`` function is importable from
here.
"""

from course_lib.widgets.panel import Panel, slider

__all__ = ["Panel", "slider"]
