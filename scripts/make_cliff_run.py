"""Train lesson 01's policy and store it: ``train(CLIFF_CONFIG, seed=CLIFF_SEED)`` to
``course_lib/data/cliff_run.npz``. Run after changing the configuration, then re-execute lesson 01.

    python scripts/make_cliff_run.py
"""

from course_lib import train
from course_lib.lessons.l01_cliff import CLIFF_CONFIG, CLIFF_RUN_FILE, CLIFF_SEED, save_cliff_run

if __name__ == "__main__":
    CLIFF_RUN_FILE.parent.mkdir(exist_ok=True)
    save_cliff_run(train(CLIFF_CONFIG, seed=CLIFF_SEED))
    print(f"stored {CLIFF_RUN_FILE}")
