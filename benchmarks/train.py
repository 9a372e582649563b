"""Benchmark of training: wall time of ``train`` (cold and warm), how many seeds solve CartPole-v1,
NPG's trust-region overshoots, Pendulum-v1, and one vmapped ``train_many`` grid.

What is measured (every figure beside the peer figures of DESIGN.md §7 and the targets):

* **cold**: from the ``train()`` call to its return in a fresh Python process whose persistent
  compilation cache is an empty temporary directory (so the compile is included); 3 processes
  per algorithm, median. The import of jax/course_lib is not included.
* **warm**: in the same process, ``train()`` again with a new seed, and with a new ε (PPO) or δ
  (TRPO): numeric fields are traced, so no compile; median of 5 each.
* **solved**: ``train_many(config, seeds=range(10))`` then the greedy policy of each seed in the
  real gymnasium env, ``evaluate(..., episodes=10, seed=1000) >= 475``.
* **NPG**: the default config with ``algo="npg"`` over 5 seeds: greedy returns, and the fraction
  of updates whose exact KL exceeded δ (NPG has no line search).
* **Pendulum-v1**: ``TrainConfig.for_env("Pendulum-v1", algo)`` over 5 seeds: how many
  reach a greedy return >= -250 (10 episodes), environment steps, time (compile included).
* **grid**: ``train_many`` of TRPO on CartPole over 8 seeds × 4 δ, in a fresh process with an
  empty cache, against one cold ``train`` run (the ratio; target <= 10×).

Every process (this one included) uses an empty temporary compilation cache, so the figures
do not depend on what an earlier run left in ``.cache/jax``.

Run:  .venv/bin/python benchmarks/train.py        (about 3–4 minutes on a 2-core CPU)
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import importlib
import io
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PENDULUM_SOLVED = -250.0

CARTPOLE_SOLVED = 475.0
COLD_REPEATS = 3
WARM_REPEATS = 5
NEW_NUMERIC = {  # per algorithm: the traced field a warm rerun changes, and its values
    "ppo": ("eps", [0.1, 0.15, 0.25, 0.3, 0.35]),
    "trpo": ("delta", [0.005, 0.015, 0.02, 0.03, 0.04]),
}
GRID_SEEDS = 8
GRID_DELTAS = [0.005, 0.01, 0.02, 0.04]

PEERS = {
    "ppo_time": "CleanRL ppo.py 65–127 s to mean-10 return 475; SB3 PPO rl-zoo 11–14 s; "
                "PureJaxRL PPO 9.7 s / 500k steps incl ≈4.6 s compile",
    "trpo_time": "sb3-contrib TRPO rl-zoo ~70 s to mean-10 return 475",
    "ppo_steps": "CleanRL ~180k steps to 475; SB3 PPO rl-zoo 21k–29k",
    "trpo_steps": "sb3-contrib TRPO ~47k steps to 475",
}
TARGETS = {
    ("ppo", "cold"): 2.0, ("ppo", "warm"): 0.3,
    ("trpo", "cold"): 2.5, ("trpo", "warm"): 0.3,
    "grid_ratio": 10.0,
}


def use_empty_cache() -> str:
    """Point course_lib's persistent compilation cache at a new empty directory.

    ``train`` calls ``enable_compilation_cache()`` on every run with the project's default
    directory, so the directory is replaced where ``train`` looks it up.
    """
    path = tempfile.mkdtemp(prefix="course_lib_bench_cache_")
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    train_module = importlib.import_module("course_lib.rl.train")
    train_module._cache_dir = lambda: Path(path)
    train_module.enable_compilation_cache(path)
    return path


CPU_SECONDS = []
"""Process CPU time of every :func:`timed` call, in order (all threads: on an idle machine it
is about the wall time × the cores XLA keeps busy; on a shared one it is the less inflated
figure)."""


def timed(fn, *args, **kwargs):
    """``(fn(*args, **kwargs), wall seconds)``; the progress bar of long runs is swallowed."""
    with contextlib.redirect_stderr(io.StringIO()):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn(*args, **kwargs)
        seconds = time.perf_counter() - t0
        CPU_SECONDS.append(time.process_time() - c0)
    return out, seconds


# ------------------------------------------------------------------------------------------
# Workers: each runs in a fresh process and prints one JSON line
# ------------------------------------------------------------------------------------------


def worker_cold(algo: str, warm: bool) -> dict:
    use_empty_cache()
    from course_lib import TrainConfig, train

    config = TrainConfig(algo=algo)
    _, cold = timed(train, config, 0)
    out = {"cold": cold, "cold_cpu": CPU_SECONDS[-1]}
    if warm:
        out["warm_seed"] = [timed(train, config, s)[1] for s in range(1, WARM_REPEATS + 1)]
        field, values = NEW_NUMERIC[algo]
        out["warm_numeric"] = [timed(train, config.replace(**{field: v}), 0)[1] for v in values]
    return out


def worker_grid() -> dict:
    use_empty_cache()
    from course_lib import TrainConfig, train_many

    config = TrainConfig(algo="trpo")
    result, seconds = timed(train_many, config, seeds=range(GRID_SEEDS), delta=GRID_DELTAS)
    late = result.mean_return[..., -5:].mean(-1)  # [4, 8]
    return {"time": seconds, "cpu": CPU_SECONDS[-1], "late_mean_return": late.mean(-1).tolist()}


def run_worker(*args: str) -> dict:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", *args], capture_output=True, text=True,
        env=env, check=False, cwd=ROOT,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ------------------------------------------------------------------------------------------
# In-process measurements (empty cache too)
# ------------------------------------------------------------------------------------------


def greedy_returns(result, config, seeds: int) -> list[float]:
    import jax

    from course_lib import evaluate

    return [
        evaluate(jax.tree.map(lambda x, i=i: x[i], result.params), config, episodes=10, seed=1000)
        for i in range(seeds)
    ]


def solved_cartpole(algo: str) -> dict:
    from course_lib import TrainConfig, train_many

    config = TrainConfig(algo=algo)
    result, seconds = timed(train_many, config, seeds=range(10))
    returns = greedy_returns(result, config, 10)
    return {"solved": sum(r >= CARTPOLE_SOLVED for r in returns), "returns": returns,
            "time": seconds, "steps": config.total_steps}


def npg_cartpole() -> dict:
    import numpy as np

    from course_lib import TrainConfig, train_many

    config = TrainConfig(algo="npg")
    result, seconds = timed(train_many, config, seeds=range(5))
    kl = result.diagnostics["kl"]
    return {"returns": greedy_returns(result, config, 5), "time": seconds,
            "kl_over_delta": float(np.mean(kl > config.delta)),
            "max_kl_ratio": float(kl.max() / config.delta)}


def pendulum(algo: str) -> dict:
    from course_lib import TrainConfig, train_many

    config = TrainConfig.for_env("Pendulum-v1", algo)
    result, seconds = timed(train_many, config, seeds=range(5))
    returns = greedy_returns(result, config, 5)
    return {"returns": returns, "reached": sum(r >= PENDULUM_SOLVED for r in returns),
            "time": seconds, "steps": config.total_steps}


# ------------------------------------------------------------------------------------------
# Report
# ------------------------------------------------------------------------------------------


def row(name: str, ours: str, target: str = "", peers: str = "") -> str:
    return f"| {name:<44} | {ours:<30} | {target:<10} | {peers} |"


def verdict(value: float, target: float) -> str:
    return f"≤ {target:g} s " + ("✓" if value <= target else "✗")


def main() -> None:
    import jax

    t_start = time.perf_counter()
    use_empty_cache()
    print(f"# benchmarks/train.py — {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, jax {jax.__version__}, {jax.devices()[0].platform}, "
          f"load average {os.getloadavg()[0]:.1f} (>{os.cpu_count()}: shared, figures inflated)")
    print("# cold = empty compilation cache in a fresh process (compile included); "
          "warm = same process, new seed or new ε/δ")
    print()

    lines = [row("measurement", "ours", "target", "peers (DESIGN.md §7)"),
             row("-" * 44, "-" * 30, "-" * 10, "-" * 20)]
    cold_median = {}
    for algo in ("ppo", "trpo"):
        runs = [run_worker("cold", algo, str(int(rep == 0))) for rep in range(COLD_REPEATS)]
        cold = statistics.median(r["cold"] for r in runs)
        cold_median[algo] = cold
        warm_seed = statistics.median(runs[0]["warm_seed"])
        warm_num = statistics.median(runs[0]["warm_numeric"])
        field = NEW_NUMERIC[algo][0]
        colds = ", ".join(f"{r['cold']:.1f}" for r in runs)
        cpu = statistics.median(r["cold_cpu"] for r in runs)
        lines.append(row(f"{algo.upper()} CartPole train() cold (median of 3)",
                         f"{cold:.2f} s ({colds})", verdict(cold, TARGETS[(algo, 'cold')]),
                         PEERS[f"{algo}_time"]))
        lines.append(row("  its process CPU time (all threads)", f"{cpu:.2f} s"))
        lines.append(row(f"{algo.upper()} train() warm, new seed (median of 5)",
                         f"{warm_seed:.3f} s", verdict(warm_seed, TARGETS[(algo, 'warm')])))
        lines.append(row(f"{algo.upper()} train() warm, new {field} (median of 5)",
                         f"{warm_num:.3f} s", verdict(warm_num, TARGETS[(algo, 'warm')])))

    for algo in ("ppo", "trpo"):
        s = solved_cartpole(algo)
        lines.append(row(f"{algo.upper()} CartPole seeds solved (greedy ≥ 475)",
                         f"{s['solved']}/10 in {s['steps']:,} steps", "10/10",
                         PEERS[f"{algo}_steps"]))
        lines.append(row(f"{algo.upper()} train_many 10 seeds (cold)", f"{s['time']:.1f} s",
                         "", f"min greedy return {min(s['returns']):.0f}"))

    n = npg_cartpole()
    lines.append(row("NPG CartPole greedy returns (5 seeds)",
                     " ".join(f"{r:.0f}" for r in n["returns"]), "",
                     f"train_many 5 seeds {n['time']:.1f} s (cold)"))
    lines.append(row("NPG updates with exact KL > δ",
                     f"{100 * n['kl_over_delta']:.1f} % (max {n['max_kl_ratio']:.2f}·δ)", "",
                     "TRPO's line search keeps this at 0 %"))

    for name in ("PPO", "TRPO"):
        p = pendulum(name.lower())
        lines.append(row(f"{name} Pendulum-v1 seeds ≥ {PENDULUM_SOLVED:g} (5 seeds)",
                         f"{p['reached']}/5 in {p['steps']:,} steps", "",
                         "greedy: " + " ".join(f"{r:.0f}" for r in p["returns"])))
        lines.append(row(f"{name} Pendulum-v1 train_many 5 seeds (cold)", f"{p['time']:.1f} s"))

    g = run_worker("grid")
    ratio = g["time"] / cold_median["trpo"]
    lines.append(row(f"TRPO train_many {GRID_SEEDS} seeds × {len(GRID_DELTAS)} δ (cold)",
                     f"{g['time']:.1f} s", "",
                     "late mean return per δ " + " ".join(f"{v:.0f}" for v in g["late_mean_return"])))
    lines.append(row("  its process CPU time (all threads)", f"{g['cpu']:.1f} s"))
    lines.append(row("  ÷ one cold TRPO train()", f"{ratio:.1f}×",
                     f"≤ {TARGETS['grid_ratio']:g}× " + ("✓" if ratio <= TARGETS["grid_ratio"] else "✗"),
                     f"{GRID_SEEDS * len(GRID_DELTAS)} runs"))

    print("\n".join(lines))
    print(f"\n# total benchmark wall time {time.perf_counter() - t_start:.0f} s, "
          f"load average now {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worker", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        kind, *rest = args.worker
        if kind == "cold":
            result = worker_cold(rest[0], rest[1] == "1")
        elif kind == "grid":
            result = worker_grid()
        else:
            raise SystemExit(f"unknown worker {kind}")
        print(json.dumps(result))
    else:
        main()
