"""Checkers for the course's exercises: one per exercise, each prints ONE stable verdict line.

A lesson's exercise cell (between ``# BEGIN SOLUTION`` and ``# END SOLUTION``) defines a
function; the cell after it calls its checker::

    from course_lib.exercises.checks import check_ratio

    _ = check_ratio(my_ratio)

The checker runs the function on cases the learner does not see (random cases and corner
cases: zero probabilities, ``-inf`` logits, negative advantages, ratios beyond 1 ± ε, episode
ends, ...), compares it with the ``course_lib`` reference and prints exactly one line:

* ``✓ ratio: passed on 7 hidden cases`` — the same text on every machine, so nbval can compare
  it, and never the answer (no value, no option letter): the exercise notebooks store it;
* ``✗ ratio: your ratio is inverted: ...`` — what is wrong, in words a learner can act on.
  Common mistakes are recognised and named (KL reversed, ratio inverted, clip on the wrong
  side, no stop-gradient, CG without the residual update, GAE without the done mask, β
  updated the wrong way, ...). An exception raised by the learner's code is reported in the
  same line (``your function raised NotImplementedError: ...``), never as a traceback.

Every checker also returns ``True``/``False`` (assign it, ``_ = check_...``, so the notebook
does not display it). The exercise notebooks (``python -m course_lib.exercises build``) keep
the solution's stored output, the pass line, so ``pytest --nbval`` passes exactly when the
learner's answers are right.

Capstones (hidden cases, then training with the learner's code): :func:`check_trpo_step`
(lesson 06), :func:`check_ppo_update` (lesson 07), :func:`check_gaussian_policy` (lesson 08).
Predict, then measure: :func:`check_prediction` (:mod:`.predict`, lessons 01, 03 and 06).
:data:`CHECKERS` names every checker; each one is called by a lesson.
"""

from __future__ import annotations

from collections.abc import Callable

from course_lib.exercises.checks.l01_cliff import check_gae, check_predict_alpha
from course_lib.exercises.checks.l02_policy_distance import (
    check_categorical_kl,
    check_radius_for_kl,
    check_sampled_kl,
)
from course_lib.exercises.checks.l03_ratio import check_ratio, check_surrogate
from course_lib.exercises.checks.l04_trust_region import check_in_trust_region
from course_lib.exercises.checks.l05_natural_gradient import (
    check_cg_two_steps,
    check_fvp,
    check_step_scale,
)
from course_lib.exercises.checks.l06_trpo import check_line_search_accept
from course_lib.exercises.checks.l06_trpo_step import check_trpo_step
from course_lib.exercises.checks.l07_ppo_clip import (
    check_adapt_beta,
    check_clipped_surrogate,
    check_k3,
)
from course_lib.exercises.checks.l07_ppo_update import check_ppo_update
from course_lib.exercises.checks.l08_gaussian import check_gaussian_policy
from course_lib.exercises.checks.l09_mistakes import DIAGNOSES, Diagnosis, check_diagnosis
from course_lib.exercises.checks.l11_lm_fine_tuning import (
    check_group_advantages,
    check_kl_penalised_rewards,
)
from course_lib.exercises.checks.predict import check_prediction
from course_lib.exercises.checks.verdict import FAIL, PASS

__all__ = [
    "CHECKERS",
    "DIAGNOSES",
    "FAIL",
    "PASS",
    "Diagnosis",
    "check_adapt_beta",
    "check_categorical_kl",
    "check_cg_two_steps",
    "check_clipped_surrogate",
    "check_diagnosis",
    "check_fvp",
    "check_gae",
    "check_gaussian_policy",
    "check_group_advantages",
    "check_in_trust_region",
    "check_k3",
    "check_kl_penalised_rewards",
    "check_line_search_accept",
    "check_ppo_update",
    "check_predict_alpha",
    "check_prediction",
    "check_radius_for_kl",
    "check_ratio",
    "check_sampled_kl",
    "check_step_scale",
    "check_surrogate",
    "check_trpo_step",
]

CHECKERS: dict[str, Callable[..., bool]] = {
    name: globals()[name] for name in __all__ if name.startswith("check_")
}
"""Every checker by name (the exercise builder checks that a lesson calls one of these)."""
