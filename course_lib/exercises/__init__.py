"""The learner's exercises: the builder that writes them from the lessons, and the checkers.

``python -m course_lib.exercises build|check`` runs :func:`course_lib.exercises.builder.main`;
``-p course_lib.exercises`` loads the pytest hook that names a failing cell by its exercise.
Layer: imports core, rl and lessons, never the widgets; nothing in course_lib imports it.
"""

from course_lib.exercises.builder import (
    Exercise,
    ExerciseError,
    build,
    build_notebook,
    check,
    check_notebook,
    exercise_lessons,
    find_exercises,
    main,
    pytest_collection_modifyitems,
    reference_notebook,
    render,
    restore_solutions,
    stub_block,
)

__all__ = [
    "Exercise",
    "ExerciseError",
    "build",
    "build_notebook",
    "check",
    "check_notebook",
    "exercise_lessons",
    "find_exercises",
    "main",
    "pytest_collection_modifyitems",
    "reference_notebook",
    "render",
    "restore_solutions",
    "stub_block",
]
