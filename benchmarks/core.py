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
import itertools
import os
import platform
import statistics
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from course_lib.core.curvature import fisher_vector_product, gauss_newton_fvp, subsample
from course_lib.core.distributions import categorical_kl, categorical_log_prob
from course_lib.core.solvers import (
    backtracking_line_search,
    conjugate_gradient,
    trust_region_step,
)
from course_lib.core.surrogate import surrogate

BATCH, OBS, HIDDEN, ACTIONS = 2048, 4, 64, 2
DELTA, DAMPING, CG_ITERS, BACKTRACKS, SHRINK = 0.01, 0.1, 10, 10, 0.8
FISHER_FRACTION = 0.1


# ------------------------------------------------------------------------------ the problem


def init_params(key):
    sizes = (OBS, HIDDEN, HIDDEN, ACTIONS)
    params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        key, k = jax.random.split(key)
        gain = 0.01 if i == len(sizes) - 2 else np.sqrt(2.0)
        params[f"dense{i}"] = {
            "kernel": jax.nn.initializers.orthogonal(gain)(k, (n_in, n_out)),
            "bias": jnp.zeros((n_out,)),
        }
    return params


def mlp(params, obs):
    x = jnp.tanh(obs @ params["dense0"]["kernel"] + params["dense0"]["bias"][None, :])
    x = jnp.tanh(x @ params["dense1"]["kernel"] + params["dense1"]["bias"][None, :])
    return x @ params["dense2"]["kernel"] + params["dense2"]["bias"][None, :]


def make_problem(seed=0):
    k_par, k_pert, k_obs, k_act, k_adv = jax.random.split(jax.random.PRNGKey(seed), 5)
    params = init_params(k_par)
    flat, unravel = ravel_pytree(params)
    # π_old: the current parameters with a tiny perturbation, so ratios are not exactly 1
    flat_old = flat + 1e-3 * jax.random.normal(k_pert, flat.shape)
    obs = jax.random.normal(k_obs, (BATCH, OBS)) * jnp.array([[2.4, 1.0, 0.21, 1.0]])
    old_logits = mlp(unravel(flat_old), obs)
    actions = jax.random.categorical(k_act, old_logits)
    batch = {
        "obs": obs,
        "actions": actions,
        "advantages": jax.random.normal(k_adv, (BATCH,)),
        "old_logits": old_logits,  # stored with the rollout: never recomputed
        "logp_old": categorical_log_prob(old_logits, actions),
    }
    return flat, unravel, batch


# ------------------------------------------------------------------------------ functions


def build(unravel):
    def logits_fn(flat, obs):
        return mlp(unravel(flat), obs)

    def surrogate_fn(flat, batch):
        logp = categorical_log_prob(logits_fn(flat, batch["obs"]), batch["actions"])
        return surrogate(logp, batch["logp_old"], batch["advantages"])

    def kl_fn(flat, batch):
        return jnp.mean(categorical_kl(batch["old_logits"], logits_fn(flat, batch["obs"])))

    def generic_fvp(flat, batch):
        return fisher_vector_product(lambda p: kl_fn(p, batch), flat, DAMPING)

    def gn_fvp(flat, batch):
        return gauss_newton_fvp(
            lambda p: logits_fn(p, batch["obs"]),
            lambda z: jnp.mean(categorical_kl(batch["old_logits"], z)),
            flat,
            DAMPING,
        )

    return logits_fn, surrogate_fn, kl_fn, generic_fvp, gn_fvp


def make_trpo_step(surrogate_fn, kl_fn, make_fvp, fisher_fraction=None):
    """grad → CG(10) → √(2δ/sᵀFs) scaling → line search(10), as ONE jitted function."""

    def step(flat, batch):
        g = jax.grad(surrogate_fn)(flat, batch)
        fisher_batch = batch
        if fisher_fraction is not None:
            fisher_batch = subsample(batch, fisher_fraction)
        fvp = make_fvp(flat, fisher_batch)
        direction, cg_info = conjugate_gradient(fvp, g, iters=CG_ITERS)
        full_step = trust_region_step(direction, fvp, DELTA)
        new_flat, ls_info = backtracking_line_search(
            lambda p: surrogate_fn(p, batch),
            lambda p: kl_fn(p, batch),
            flat,
            full_step,
            DELTA,
            BACKTRACKS,
            SHRINK,
        )
        return new_flat, ls_info, cg_info

    return jax.jit(step)


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

    flat, unravel, batch = make_problem()
    _, surrogate_fn, kl_fn, generic_fvp, gn_fvp = build(unravel)
    v = jax.random.normal(jax.random.PRNGKey(1), flat.shape)
    g = jax.jit(jax.grad(surrogate_fn))(flat, batch)
    fisher_batch = subsample(batch, FISHER_FRACTION)

    def cg_with(make_fvp):
        return jax.jit(lambda p, g, b: conjugate_gradient(make_fvp(p, b), g, iters=CG_ITERS))

    cases = {
        "grad": (jax.jit(jax.grad(surrogate_fn)), (flat, batch)),
        "fvp_generic": (jax.jit(lambda p, v, b: generic_fvp(p, b)(v)), (flat, v, batch)),
        "fvp_gn": (jax.jit(lambda p, v, b: gn_fvp(p, b)(v)), (flat, v, batch)),
        "cg_gn": (cg_with(gn_fvp), (flat, g, batch)),
        "cg_generic": (cg_with(generic_fvp), (flat, g, batch)),
        "cg_gn_sub": (cg_with(gn_fvp), (flat, g, fisher_batch)),
        "trpo": (make_trpo_step(surrogate_fn, kl_fn, gn_fvp), (flat, batch)),
        "trpo_sub": (make_trpo_step(surrogate_fn, kl_fn, gn_fvp, FISHER_FRACTION), (flat, batch)),
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
    _, ls_info, cg_info = cases["trpo"][0](flat, batch)
    _, ls_sub, cg_sub = cases["trpo_sub"][0](flat, batch)

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
        ("cg_gn_sub", f"CG {CG_ITERS} iterations, Gauss-Newton, {FISHER_FRACTION:.0%} Fisher", ""),
        ("ls", f"line search, stops at the first acceptable of {BACKTRACKS}", ""),
        ("ls_all", f"line search, evaluate_all=True ({BACKTRACKS} candidates)", ""),
        ("trpo", "TRPO step (grad+CG+scale+LS), one jit", "<= 5 ms; sb3 65-93 ms"),
        (
            "trpo_sub",
            f"TRPO step, Fisher on {FISHER_FRACTION:.0%} of the batch",
            "<= 5 ms; plain JAX 13 ms",
        ),
    ]

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(
        f"jax {jax.__version__} on {jax.devices()[0].platform}, {os.cpu_count()} cores "
        f"({platform.machine()}), load average {load:.1f} at the end"
    )
    print(
        f"MLP {OBS}->{HIDDEN}->{HIDDEN}->{ACTIONS} tanh, batch {BATCH}, {flat.size} parameters, "
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
    for label, ls, cgi in (("full batch", ls_info, cg_info), ("10% Fisher", ls_sub, cg_sub)):
        print(
            f"{label}: line search accepted={bool(ls.accepted)} k={int(ls.n_backtracks)} "
            f"KL={float(ls.kl):.4f} improvement={float(ls.improvement):.4f}; CG residual "
            f"{float(cgi.residual_norms[0]):.1e} -> {float(cgi.residual_norms[-1]):.1e}"
        )


if __name__ == "__main__":
    main()
