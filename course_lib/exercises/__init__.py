"""The learner's exercises: the builder that writes them from the lessons, and the checkers.

``python -m course_lib.exercises build|check|progress`` runs :func:`course_lib.exercises.builder.main`;
``-p course_lib.exercises`` loads the pytest hook that names a failing cell by its exercise.
The checkers a lesson's exercise cells call are in :mod:`course_lib.exercises.checks`.
Layer: imports core, rl and lessons, never the widgets; nothing in course_lib imports it.
"""

from course_lib.exercises.builder import build, check, main, pytest_collection_modifyitems

__all__ = ["build", "check", "main", "pytest_collection_modifyitems"]
