"""``python -m course_lib.exercises build|check [LESSON ...]``."""

import sys

from course_lib.exercises.builder import main

sys.exit(main())
