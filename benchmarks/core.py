"""Benchmark of the TRPO numerical core: gradient, Fisher-vector products, CG, one TRPO step.

Setting (a CartPole-sized policy update): an MLP policy 4→64→64→2 (tanh), 2048 random
observations, actions sampled from π_old, random advantages; δ = 0.01, damping 0.1,
10 CG iterations, 10 line-search fractions 0.8**k. Every timed function is jitted; the
warm-up call (compilation) is excluded; the figure is the median wall time of many calls,
each ended by ``block_until_ready``.

Run:  .venv/bin/python benchmarks/core.py   (``--rounds``/``--per-round`` set the repeats)
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from course_lib import TrainConfig
from course_lib.core.curvature import fisher_vector_product
from course_lib.core.solvers import backtracking_line_search, conjugate_gradient, trust_region_step
from course_lib.rl.networks import ActorCritic
from course_lib.rl.rollout import Batch
from course_lib.rl.trpo import TRPOHyper, batch_fvp, batch_kl, batch_surrogate, trpo_policy_step

BATCH, OBS, HIDDEN, ACTIONS = 2048, 4, 64, 2
DELTA, DAMPING, CG_ITERS, BACKTRACKS, SHRINK = 0.01, 0.1, 10, 10, 0.8
FISHER_SUBSAMPLE = 10  # the Fisher from every 10th state: 10 % of the batch
MODEL = ActorCritic(OBS, ACTIONS, True, (HIDDEN, HIDDEN))
HYPER = TRPOHyper.from_config(TrainConfig(), delta=DELTA, cg_damping=DAMPING,
                              backtrack_ratio=SHRINK)


# ------------------------------------------------------------------------------ the problem


def make_problem(seed=0):
    """The library's actor-critic (orthogonal init), π_old = θ plus a tiny perturbation (so the
    ratios are not exactly 1), CartPole-scaled observations, actions sampled from π_old,
    standard normal advantages."""
    k_par, k_pert, k_obs, k_act, k_adv = jax.random.split(jax.random.PRNGKey(seed), 5)
    flat, value = MODEL.init(k_par)
    flat_old = flat + 1e-3 * jax.random.normal(k_pert, flat.shape)
    obs = jax.random.normal(k_obs, (BATCH, OBS)) * jnp.array([[2.4, 1.0, 0.21, 1.0]])
    dist_old = MODEL.policy(flat_old, obs)
    actions = MODEL.sample(dist_old, k_act)
    adv = jax.random.normal(k_adv, (BATCH,))
    values = MODEL.value(value, obs)
    batch = Batch(obs, actions, MODEL.log_prob(dist_old, actions), dist_old, values, adv,
                  values + adv)
    return flat, batch


def surrogate_fn(flat, batch):
    return batch_surrogate(flat, batch, MODEL)


def kl_fn(flat, batch):
    return batch_kl(flat, batch, MODEL)


def generic_fvp(flat, batch):
    """Forward-over-reverse: the Hessian-vector product of the mean KL, for comparison."""
    return fisher_vector_product(lambda p: kl_fn(p, batch), flat, DAMPING)


def gn_fvp(flat, batch, fisher_subsample=1):
    """The library's product (Gauss–Newton JᵀHJ), as TRPO uses it."""
    return batch_fvp(flat, batch, MODEL, DAMPING, fisher_subsample)


def make_trpo_step(fisher_subsample=1):
    """The library's own :func:`course_lib.rl.trpo.trpo_policy_step`, jitted."""
    return jax.jit(lambda flat, batch: trpo_policy_step(
        flat, batch, HYPER, MODEL, cg_iters=CG_ITERS, max_backtracks=BACKTRACKS,
        fisher_subsample=fisher_subsample))


# ------------------------------------------------------------------------------ timing


def interleaved_medians(cases, rounds, per_round):
    """(median, min) wall time of each case, from ``rounds`` interleaved rounds of calls.

    ``cases``: name → (jitted function, args). Each function is compiled and warmed up first
    (excluded). Interleaving the cases spreads background load on a shared machine evenly
    over them, so the ratios stay meaningful when the absolute times drift.
    """
    for fn, args in cases.values():
        jax.block_until_ready(fn(*args))  # compile
        jax.block_until_ready(fn(*args))  # warm-up
    samples = {name: [] for name in cases}
    for _ in range(rounds):
        for name, (fn, args) in cases.items():
            for _ in range(per_round):
                t0 = time.perf_counter()
                jax.block_until_ready(fn(*args))
                samples[name].append(time.perf_counter() - t0)
    return {name: (statistics.median(s), min(s)) for name, s in samples.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="interleaved rounds")
    parser.add_argument("--per-round", type=int, default=20, help="calls per case and round")
    args = parser.parse_args(argv)

    flat, batch = make_problem()
    v = jax.random.normal(jax.random.PRNGKey(1), flat.shape)
    g = jax.jit(jax.grad(surrogate_fn))(flat, batch)

    def cg_with(make_fvp, **kw):
        return jax.jit(lambda p, g, b: conjugate_gradient(make_fvp(p, b, **kw), g, iters=CG_ITERS))

    cases = {
        "grad": (jax.jit(jax.grad(surrogate_fn)), (flat, batch)),
        "fvp_generic": (jax.jit(lambda p, v, b: generic_fvp(p, b)(v)), (flat, v, batch)),
        "fvp_gn": (jax.jit(lambda p, v, b: gn_fvp(p, b)(v)), (flat, v, batch)),
        "cg_gn": (cg_with(gn_fvp), (flat, g, batch)),
        "cg_generic": (cg_with(generic_fvp), (flat, g, batch)),
        "cg_gn_sub": (cg_with(gn_fvp, fisher_subsample=FISHER_SUBSAMPLE), (flat, g, batch)),
        "trpo": (make_trpo_step(), (flat, batch)),
        "trpo_sub": (make_trpo_step(FISHER_SUBSAMPLE), (flat, batch)),
    }
    # line search alone, on the step the TRPO update takes (its full step is accepted)
    fvp0 = gn_fvp(flat, batch)
    full_step = trust_region_step(conjugate_gradient(fvp0, g, iters=CG_ITERS)[0], fvp0, DELTA)

    def line_search(evaluate_all):
        return jax.jit(
            lambda p, s, b: backtracking_line_search(
                lambda q: surrogate_fn(q, b),
                lambda q: kl_fn(q, b),
                p,
                s,
                DELTA,
                BACKTRACKS,
                SHRINK,
                evaluate_all=evaluate_all,
            )
        )

    cases["ls"] = (line_search(False), (flat, full_step, batch))
    cases["ls_all"] = (line_search(True), (flat, full_step, batch))
    times = interleaved_medians(cases, args.rounds, args.per_round)
    t_grad, t_grad_min = times["grad"]

    # sanity: both products agree (θ is θ_old up to the tiny perturbation)
    a = cases["fvp_generic"][0](flat, v, batch)
    b = cases["fvp_gn"][0](flat, v, batch)
    agree = float(jnp.linalg.norm(a - b) / jnp.linalg.norm(a))
    _, info = cases["trpo"][0](flat, batch)
    _, info_sub = cases["trpo_sub"][0](flat, batch)
    _, ls_info = cases["ls"][0](flat, full_step, batch)

    rows = [
        ("grad", "gradient of the surrogate", ""),
        (
            "fvp_generic",
            "FVP, forward-over-reverse (build + 1 product)",
            "<= 1.4x; plain JAX 1.38x",
        ),
        ("fvp_gn", "FVP, Gauss-Newton J^T H J (build + 1 product)", "<= 1.2x"),
        ("cg_generic", f"CG {CG_ITERS} iterations, forward-over-reverse FVP", "plain JAX 16 ms"),
        ("cg_gn", f"CG {CG_ITERS} iterations, Gauss-Newton FVP", "<= 8x; sb3 42-71 ms"),
        ("cg_gn_sub", f"CG {CG_ITERS} iterations, Gauss-Newton, {1 / FISHER_SUBSAMPLE:.0%} Fisher", ""),
        ("ls", f"line search, stops at the first acceptable of {BACKTRACKS}", ""),
        ("ls_all", f"line search, evaluate_all=True ({BACKTRACKS} candidates)", ""),
        ("trpo", "course_lib trpo_policy_step (grad+CG+scale+LS)", "<= 6 ms; sb3 65-93 ms"),
        (
            "trpo_sub",
            f"TRPO step, Fisher on {1 / FISHER_SUBSAMPLE:.0%} of the batch",
            "keep <= 2.7 ms; plain JAX 13 ms",
        ),
    ]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores "
        f"({platform.machine()}), load average {load:.1f} at the end"
    )
    print(
        f"course_lib ActorCritic {OBS}->{HIDDEN}->{HIDDEN}->{ACTIONS} tanh, batch {BATCH}, {flat.size} parameters, "
        f"delta={DELTA}, damping={DAMPING}; medians of {args.rounds} interleaved rounds "
        f"x {args.per_round} calls"
    )
    print()
    header = f"{'':52s} {'median':>9s} {'x grad':>7s} {'best':>9s} {'x grad':>7s}   target; peer"
    print(header)
    print("-" * (len(header) + 12))
    for key, name, note in rows:
        t, t_min = times[key]
        print(
            f"{name:52s} {t * 1e3:7.3f}ms {t / t_grad:6.2f}x "
            f"{t_min * 1e3:7.3f}ms {t_min / t_grad_min:6.2f}x   {note}"
        )
    print("(median: the figure; best: the fastest call, a hint of the unloaded machine)")
    print()
    print(
        f"generic vs Gauss-Newton FVP, relative difference: {agree:.1e} "
        "(theta = theta_old + 1e-3 noise, so not exactly 0)"
    )
    print(f"line search on the full step: accepted={bool(ls_info.accepted)} "
          f"k={int(ls_info.n_backtracks)} KL={float(ls_info.kl):.4f} "
          f"improvement={float(ls_info.improvement):.4f}")
    for label, d in (("full batch", info), ("10% Fisher", info_sub)):
        print(f"trpo_policy_step, {label}: accepted={bool(d['accepted'])} "
              f"backtracks={int(d['backtracks'])} step norm {float(d['step_norm']):.3f}, "
              f"last CG residual {float(d['cg_residual']):.1e}")


if __name__ == "__main__":
    main()
