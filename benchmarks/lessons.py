"""Run time of every lesson notebook and redraw time of every panel (printed, never asserted).

    python benchmarks/lessons.py [--notebooks-only | --panels-only]

Notebooks run top to bottom in a fresh kernel (outputs discarded) with an EMPTY compilation
cache (a new ``JAX_COMPILATION_CACHE_DIR`` each): what a learner's first run of a lesson costs.
The panels are built once and each slider is moved five times; the median of
``slider.value = ...`` (compute + render + PNG encoding) is printed. Targets: each lesson's
first run <= 40 s on a 2-core CPU; analytic panels (those that redraw while a slider is
dragged) <= 50 ms median over all their moves, the slowest <= 80 ms; the live-retraining panel
<= 0.4 s; panels reading a trained grid well under 1 s.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def time_notebooks() -> None:
    import tempfile

    import nbformat
    from nbconvert.preprocessors import ExecutePreprocessor

    print(f"{'lesson, first run (empty compile cache)':40s} {'run time':>9s}  target <= 40 s")
    total = 0.0
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        with tempfile.TemporaryDirectory(prefix="jax-cache-") as cache:
            os.environ["JAX_COMPILATION_CACHE_DIR"] = cache
            start = time.perf_counter()
            ExecutePreprocessor(timeout=600, kernel_name="python3").preprocess(
                nb, {"metadata": {"path": str(path.parent)}}
            )
            seconds = time.perf_counter() - start
        del os.environ["JAX_COMPILATION_CACHE_DIR"]
        total += seconds
        print(f"{path.name:40s} {seconds:8.1f}s  {'ok' if seconds <= 40 else 'OVER'}")
    print(f"{'all lessons':40s} {total:8.1f}s")


def _redraws(panel, name: str, values: list) -> list[float]:
    times = []
    for v in values:
        start = time.perf_counter()
        panel.sliders[name].value = v
        times.append(time.perf_counter() - start)
    return times


def _panels():
    """(label, builder, slider name, values to move through, target seconds)."""
    import numpy as np

    from course_lib import TrainConfig, train_many
    from course_lib import widgets as W

    analytic, trained = 0.05, 1.0
    yield "01 step_size_panel", W.step_size_panel, "step_size", [2.0, 5.0, 10.0, 20.0, 40.0], analytic
    yield "02 distance_panel", W.distance_panel, "radius", [0.05, 0.1, 0.2, 0.4, 0.8], analytic
    yield "03 ratio_panel", W.ratio_panel, "p_new", [0.3, 0.5, 0.7, 0.9, 0.6], analytic
    yield "04 trust_region_panel", W.trust_region_panel, "delta", list(
        np.geomspace(0.002, 0.2, 5)), analytic
    yield "05 natural_gradient_panel", W.natural_gradient_panel, "delta", list(
        np.geomspace(0.002, 0.05, 5)), analytic
    deltas = [0.001, 0.01, 0.1]
    grid = train_many(TrainConfig(algo="trpo"), seeds=range(2), delta=deltas)
    yield "06 trpo_delta_panel (reads a grid)", lambda: W.trpo_delta_panel(grid, deltas), \
        "delta", [0.001, 0.1, 0.01, 0.1, 0.001], trained
    yield "06 trpo_live_panel (retrains)", W.trpo_live_panel, "delta", [
        0.003, 0.03, 0.01, 0.05, 0.002], 0.4
    yield "07 clip_panel", W.clip_panel, "eps", [0.1, 0.3, 0.05, 0.2, 0.4], analytic
    eps_values = [0.1, 0.2, 0.3]
    eps_grid = train_many(TrainConfig(), seeds=range(2), eps=eps_values)
    yield "07 ppo_eps_panel (reads a grid)", lambda: W.ppo_eps_panel(eps_grid, eps_values), \
        "eps", [0.1, 0.3, 0.2, 0.1, 0.3], trained
    by_algo = {"trpo": train_many(TrainConfig(algo="trpo"), seeds=range(2)),
               "ppo": train_many(TrainConfig(), seeds=range(2))}
    yield "08 compare_panel (reads runs)", lambda: W.compare_panel(by_algo), "iteration", [
        5, 10, 20, 29, 15], trained
    yield "09 epochs_panel", W.epochs_panel, "epochs", [2, 5, 8, 3, 6], analytic


def time_panels() -> None:
    import matplotlib

    matplotlib.use("Agg")
    print(f"\n{'panel':44s} {'median redraw':>14s}  target")
    live_moves = []
    for label, build, name, values, target in _panels():
        panel = build()
        panel.sliders[name].value = values[-1]  # warm-up: compile and first render
        moves = _redraws(panel, name, values)
        seconds = statistics.median(moves)
        if panel.live:
            live_moves.append((label, moves))
        verdict = "ok" if seconds <= target else "over"
        kind = " (live)" if panel.live else ""
        print(f"{label + kind:44s} {seconds * 1000:11.0f} ms  <= {target * 1000:.0f} ms {verdict}")
    every = [t for _, moves in live_moves for t in moves]
    slowest_label, slowest = max(((lbl, statistics.median(m)) for lbl, m in live_moves),
                                 key=lambda x: x[1])
    print(f"{'live panels, median over every move':44s} {statistics.median(every) * 1000:11.0f} ms"
          f"  <= 50 ms {'ok' if statistics.median(every) <= 0.05 else 'over'}")
    print(f"{'slowest live panel: ' + slowest_label:44s} {slowest * 1000:11.0f} ms"
          f"  <= 80 ms {'ok' if slowest <= 0.08 else 'over'}")


def main(argv: list[str]) -> int:
    os.environ.setdefault("MPLBACKEND", "Agg")
    print(f"# benchmarks/lessons.py — {os.cpu_count()} CPUs, load average "
          f"{os.getloadavg()[0]:.1f} (figures inflate when the machine is shared)")
    if "--panels-only" not in argv:
        time_notebooks()
    if "--notebooks-only" not in argv:
        time_panels()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
