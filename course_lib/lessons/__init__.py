"""One module per lesson, named after its notebook (``l01_cliff`` for ``01_the_cliff.ipynb``):
the studies, grids and experiments a lesson runs, as plain functions a headless test reaches.

A lesson module imports core and rl, and :mod:`course_lib.lessons.common` for what several
lessons share; never another lesson module and never the widgets.
"""
