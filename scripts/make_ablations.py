"""Train lesson 10's ablation grids and store them: :func:`ablation_grid` for CartPole-v1 and
Pendulum-v1 over ten seeds to ``course_lib/data/ablations.npz`` (several minutes on 2 cores).
Run after changing ``TrainConfig``'s defaults or lesson 10's details, then re-execute lesson 10.

    python scripts/make_ablations.py
"""

from course_lib.lessons.l10_rest_of_ppo import (
    ABLATIONS_FILE,
    ENVS,
    MAX_GRID,
    SEEDS,
    ablation_grid,
    save_grids,
)
from course_lib.rl.train import enable_compilation_cache

if __name__ == "__main__":
    enable_compilation_cache()
    grids = {env: ablation_grid(env, SEEDS, max_grid=MAX_GRID[env]) for env in ENVS}
    save_grids(grids)
    for env, g in grids.items():
        print(f"{env}: {len(g.runs)} settings x {len(g.seeds)} seeds in {sum(g.seconds):.0f} s")
    print(f"stored {ABLATIONS_FILE}")
