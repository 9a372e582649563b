"""Slider panels of the lessons (see :mod:`course_lib.widgets.panel` for the ``Panel`` contract).

Each lesson's panels live in their own module; every ``*_panel`` function is importable from
here.
"""

from course_lib.widgets.l01_cliff import step_size_panel
from course_lib.widgets.l02_policy_distance import distance_panel
from course_lib.widgets.l03_ratio import ratio_panel
from course_lib.widgets.l04_trust_region import trust_region_panel
from course_lib.widgets.l05_natural_gradient import natural_gradient_panel
from course_lib.widgets.l06_trpo import trpo_delta_panel, trpo_live_panel
from course_lib.widgets.l07_ppo_clip import clip_panel, ppo_eps_panel
from course_lib.widgets.l08_trpo_vs_ppo import compare_panel
from course_lib.widgets.l09_mistakes import epochs_panel
from course_lib.widgets.l10_rest_of_ppo import ablation_panel
from course_lib.widgets.panel import Panel, slider

__all__ = [
    "Panel",
    "ablation_panel",
    "clip_panel",
    "compare_panel",
    "distance_panel",
    "epochs_panel",
    "natural_gradient_panel",
    "ppo_eps_panel",
    "ratio_panel",
    "slider",
    "step_size_panel",
    "trpo_delta_panel",
    "trpo_live_panel",
    "trust_region_panel",
]
