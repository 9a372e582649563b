"""Tests of course_lib.core.solvers: CG against a dense solve, step scaling, line-search properties.

Each property is checked eagerly and under ``jax.jit``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.flatten_util import ravel_pytree

from course_lib.core.curvature import gauss_newton_fvp
from course_lib.core.distributions import categorical_kl, categorical_log_prob
from course_lib.core.solvers import (
    CGInfo,
    LineSearchInfo,
    backtracking_line_search,
    conjugate_gradient,
    trust_region_step,
)
from course_lib.core.surrogate import surrogate


def random_spd(key, n, cond=10.0, dtype=jnp.float32):
    """Q diag(λ) Qᵀ with eigenvalues log-spaced in [1, cond]."""
    q, _ = jnp.linalg.qr(jax.random.normal(key, (n, n), dtype))
    lam = jnp.logspace(0.0, jnp.log10(cond), n, dtype=dtype)
    a = (q * lam[None, :]) @ q.T
    return 0.5 * (a + a.T)


# ------------------------------------------------------------------------------ CG


@pytest.mark.parametrize("n", [1, 3, 8, 20])
@pytest.mark.parametrize("seed", [0, 1])
def test_cg_matches_dense_solve_float32(run, n, seed):
    ka, kb = jax.random.split(jax.random.PRNGKey(seed))
    A = random_spd(ka, n, cond=10.0)
    b = jax.random.normal(kb, (n,))
    x, info = run(lambda A, b: conjugate_gradient(lambda v: A @ v, b, iters=n + 2), A, b)
    expected = jnp.linalg.solve(A, b)
    np.testing.assert_allclose(
        x, expected, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(expected)))
    )
    assert isinstance(info, CGInfo)
    assert info.residual_norms.shape == (n + 2,)
    assert info.residual_norms.dtype == jnp.float32
    assert not bool(jnp.any(jnp.isnan(info.residual_norms)))


@pytest.mark.parametrize("n", [2, 5, 12])
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_cg_converges_in_at_most_n_iterations_float64(run, n, seed):
    with jax.enable_x64(True):
        ka, kb = jax.random.split(jax.random.PRNGKey(seed))
        # a moderate condition number: with κ = 100 and log-spaced eigenvalues, finite
        # precision delays CG's n-step termination by a few steps (numpy's CG does the same)
        A = random_spd(ka, n, cond=10.0, dtype=jnp.float64)
        b = jax.random.normal(kb, (n,), jnp.float64)
        iters = n + 5
        x, info = run(lambda A, b: conjugate_gradient(lambda v: A @ v, b, iters, 1e-10), A, b)
        expected = np.linalg.solve(np.asarray(A), np.asarray(b))
        np.testing.assert_allclose(x, expected, rtol=1e-8, atol=1e-10)
        norms = np.asarray(info.residual_norms)
        used = int(info.iterations)
        b_norm = float(np.linalg.norm(np.asarray(b)))
        # exact arithmetic: solved after n steps; in float64 the residual is ~0 by then ...
        assert norms[n - 1] <= 1e-8 * b_norm
        # ... and the solver stops (‖r‖ ≤ tol = 1e-10) by then
        assert 1 <= used <= n
        assert norms[used - 1] <= 1e-10  # converged below tol ...
        assert np.all(norms[used - 1 :] == norms[used - 1])  # ... and then repeated
        assert np.all(norms[: used - 1] > 1e-10)  # not earlier


def test_cg_residual_norms_are_the_true_residuals(run):
    """info.residual_norms[k-1] = ‖b − A x_k‖ where x_k is CG stopped after k iterations."""
    with jax.enable_x64(True):
        n = 10
        ka, kb = jax.random.split(jax.random.PRNGKey(4))
        A = random_spd(ka, n, cond=50.0, dtype=jnp.float64)
        b = jax.random.normal(kb, (n,), jnp.float64)
        _, info = run(lambda b: conjugate_gradient(lambda v: A @ v, b, iters=n), b)
        for k in range(1, n + 1):
            x_k, _ = conjugate_gradient(lambda v: A @ v, b, iters=k)
            true = float(jnp.linalg.norm(b - A @ x_k))
            assert float(info.residual_norms[k - 1]) == pytest.approx(true, rel=1e-6, abs=1e-12)
        # the residual fell by orders of magnitude over the run
        assert float(info.residual_norms[-1]) < 1e-8 * float(jnp.linalg.norm(b))


def test_cg_pytree_b(run):
    ka, kb, kc, kd = jax.random.split(jax.random.PRNGKey(5), 4)
    A1 = random_spd(ka, 3)
    A2 = random_spd(kb, 4)
    b = {"a": jax.random.normal(kc, (3,)), "w": jax.random.normal(kd, (2, 2))}

    def matvec(v):
        return {"a": A1 @ v["a"], "w": (A2 @ v["w"].reshape(4)).reshape(2, 2)}

    x, _ = run(lambda b: conjugate_gradient(matvec, b, iters=10), b)
    assert jax.tree_util.tree_structure(x) == jax.tree_util.tree_structure(b)
    assert x["w"].shape == (2, 2)
    np.testing.assert_allclose(x["a"], jnp.linalg.solve(A1, b["a"]), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(
        x["w"].reshape(4), jnp.linalg.solve(A2, b["w"].reshape(4)), rtol=1e-4, atol=1e-5
    )


def test_cg_zero_b_gives_zero_without_nan(run):
    A = random_spd(jax.random.PRNGKey(0), 4)
    x, info = run(lambda b: conjugate_gradient(lambda v: A @ v, b, iters=5), jnp.zeros(4))
    np.testing.assert_array_equal(x, jnp.zeros(4))
    assert int(info.iterations) == 0
    np.testing.assert_array_equal(info.residual_norms, jnp.zeros(5))


@pytest.mark.parametrize(
    "diag, b",
    [
        ([1.0, 0.0], [1.0, 1.0]),  # singular, b has a null-space component: pᵀAp hits 0
        ([1.0, -1.0], [1.0, 1.0]),  # indefinite: pᵀAp = 0 at the first step
        ([1.0, -1.0], [1.0, 0.5]),  # indefinite: curvature becomes negative
        ([0.0, 0.0], [1.0, 2.0]),  # zero matrix
        ([-1.0, -2.0], [1.0, 2.0]),  # negative definite
    ],
)
def test_cg_singular_or_indefinite_gives_no_nan(run, diag, b):
    A = jnp.diag(jnp.array(diag))
    x, info = run(lambda b: conjugate_gradient(lambda v: A @ v, b, iters=6), jnp.array(b))
    assert bool(jnp.all(jnp.isfinite(x)))
    assert bool(jnp.all(jnp.isfinite(info.residual_norms)))
    assert int(info.iterations) <= 2


def test_cg_is_vmappable():
    A = random_spd(jax.random.PRNGKey(1), 5)
    bs = jax.random.normal(jax.random.PRNGKey(2), (7, 5))
    xs, infos = jax.vmap(lambda b: conjugate_gradient(lambda v: A @ v, b, iters=8))(bs)
    assert infos.residual_norms.shape == (7, 8)
    np.testing.assert_allclose(xs, jnp.linalg.solve(A, bs.T).T, rtol=1e-4, atol=1e-4)


def test_cg_bad_iters_and_tol():
    A = jnp.eye(2)
    with pytest.raises(ValueError, match="iters"):
        conjugate_gradient(lambda v: A @ v, jnp.ones(2), iters=0)
    with pytest.raises(TypeError, match="iters"):
        conjugate_gradient(lambda v: A @ v, jnp.ones(2), iters=2.0)
    with pytest.raises(ValueError, match="tol"):
        conjugate_gradient(lambda v: A @ v, jnp.ones(2), iters=2, tol=-1.0)


# ------------------------------------------------------------------------------ step scaling


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("delta", [1e-3, 0.01, 0.5])
def test_trust_region_step_hits_the_quadratic_kl(run, seed, delta):
    ka, kd = jax.random.split(jax.random.PRNGKey(seed))
    F = random_spd(ka, 6, cond=100.0)
    d = jax.random.normal(kd, (6,))
    s = run(lambda d: trust_region_step(d, lambda v: F @ v, delta), d)
    assert float(0.5 * s @ F @ s) == pytest.approx(delta, rel=1e-4)
    # same direction, positive multiple
    assert float(jnp.vdot(s, d)) > 0
    np.testing.assert_allclose(s / jnp.linalg.norm(s), d / jnp.linalg.norm(d), atol=1e-5)


def test_trust_region_step_pytree(run):
    d = {"w": jnp.array([[1.0, 2.0]]), "b": jnp.array([3.0])}

    def fvp(v):
        return jax.tree_util.tree_map(lambda x: 4.0 * x, v)

    s = run(lambda d: trust_region_step(d, fvp, 0.02), d)
    flat_s = ravel_pytree(s)[0]
    assert s["w"].shape == (1, 2)
    assert float(0.5 * 4.0 * flat_s @ flat_s) == pytest.approx(0.02, rel=1e-5)


@pytest.mark.parametrize("scale", [0.0, -1.0])
def test_trust_region_step_degenerate_curvature_gives_zeros(run, scale):
    d = jnp.array([1.0, -2.0])
    s = run(lambda d: trust_region_step(d, lambda v: scale * v, 0.01), d)
    np.testing.assert_array_equal(s, jnp.zeros(2))
    s0 = run(lambda d: trust_region_step(d, lambda v: 3.0 * v, 0.01), jnp.zeros(2))
    np.testing.assert_array_equal(s0, jnp.zeros(2))


@pytest.mark.parametrize("bad", [0.0, -0.01, float("nan")])
def test_trust_region_step_bad_delta(bad):
    with pytest.raises(ValueError, match="delta"):
        trust_region_step(jnp.ones(2), lambda v: v, bad)


# ------------------------------------------------------------------------------ line search


def reference_first_acceptable(surrogate_fn, kl_fn, params, step, delta, max_backtracks, shrink):
    """Plain Python loop over the fractions (the rule as written in the TRPO paper)."""
    base = float(surrogate_fn(params))
    for k in range(max_backtracks):
        frac = shrink**k
        cand = jax.tree_util.tree_map(lambda p, s, f=frac: p + f * s, params, step)
        kl, imp = float(kl_fn(cand)), float(surrogate_fn(cand)) - base
        if np.isfinite(kl) and np.isfinite(imp) and kl <= delta and imp > 0:
            return k
    return max_backtracks


def quadratic_problem(seed, n=5):
    """KL = ½ (θ−θ₀)ᵀ F (θ−θ₀); surrogate = gᵀ(θ−θ₀) − ½ c‖θ−θ₀‖³ (improves, then worsens)."""
    kf, kg, kp = jax.random.split(jax.random.PRNGKey(seed), 3)
    F = random_spd(kf, n, cond=20.0)
    g = jax.random.normal(kg, (n,))
    theta0 = jax.random.normal(kp, (n,))
    c = 5.0

    def kl_fn(theta):
        d = theta - theta0
        return 0.5 * d @ F @ d

    def surrogate_fn(theta):
        d = theta - theta0
        return g @ d - c * jnp.linalg.norm(d) ** 3

    return kl_fn, surrogate_fn, theta0, F, g


def check_line_search_result(
    new, info, params, step, kl_fn, surrogate_fn, delta, m, shrink, evaluate_all=False
):
    assert isinstance(info, LineSearchInfo)
    trace = info.trace
    np.testing.assert_allclose(trace.fractions, shrink ** np.arange(m), rtol=1e-6)
    assert trace.kl.shape == trace.improvement.shape == trace.acceptable.shape == (m,)
    tried = np.asarray(trace.tried)
    n_tried = int(tried.sum())
    assert n_tried >= 1 and tried[:n_tried].all()  # a prefix of the fractions was tried
    assert np.isnan(trace.kl[~tried]).all() and np.isnan(trace.improvement[~tried]).all()
    # each tried entry is the KL / improvement of its candidate
    base = float(surrogate_fn(params))
    for k in np.flatnonzero(tried):
        frac = trace.fractions[k]
        cand = jax.tree_util.tree_map(lambda p, s, f=frac: p + f * s, params, step)
        kl_k, imp_k = float(kl_fn(cand)), float(surrogate_fn(cand)) - base
        if np.isfinite(kl_k):
            assert float(trace.kl[k]) == pytest.approx(kl_k, rel=1e-4, abs=1e-7)
        if np.isfinite(imp_k):
            assert float(trace.improvement[k]) == pytest.approx(imp_k, rel=1e-3, abs=1e-6)
    # the acceptable mask is exactly the rule, on the tried entries
    with np.errstate(invalid="ignore"):
        rule = (
            tried
            & np.isfinite(trace.kl)
            & np.isfinite(trace.improvement)
            & (np.asarray(trace.kl) <= delta)
            & (np.asarray(trace.improvement) > 0)
        )
    np.testing.assert_array_equal(trace.acceptable, rule)
    k = int(info.n_backtracks)
    if evaluate_all:
        assert tried.all()
    if bool(info.accepted):
        assert rule.any() and k == int(np.argmax(rule))  # the FIRST acceptable index
        if not evaluate_all:
            assert n_tried == k + 1  # stopped right there
        assert float(info.kl) <= delta
        assert float(info.improvement) > 0
        assert float(info.fraction) == pytest.approx(shrink**k, rel=1e-6)
        expected = jax.tree_util.tree_map(lambda p, s: p + info.fraction * s, params, step)
        np.testing.assert_allclose(
            ravel_pytree(new)[0], ravel_pytree(expected)[0], rtol=1e-5, atol=1e-7
        )
        # the reported numbers are those of the returned parameters
        assert float(kl_fn(new)) == pytest.approx(float(info.kl), rel=1e-4, abs=1e-7)
        assert float(surrogate_fn(new) - surrogate_fn(params)) == pytest.approx(
            float(info.improvement), rel=1e-3, abs=1e-6
        )
        assert float(kl_fn(new)) <= delta * (1 + 1e-5)
        assert float(surrogate_fn(new)) > float(surrogate_fn(params)) - 1e-6
    else:
        assert not rule.any() and tried.all()
        assert k == m
        assert float(info.improvement) == 0.0 and float(info.fraction) == 0.0
        for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(params)):
            np.testing.assert_array_equal(a, b)  # unchanged, exactly


@pytest.mark.parametrize("evaluate_all", [False, True])
@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("delta", [1e-3, 0.01, 0.1])
def test_line_search_properties_on_quadratic_problems(run, seed, delta, evaluate_all):
    kl_fn, surrogate_fn, theta0, F, g = quadratic_problem(seed)
    # an over-long step (4x the trust region) along the natural gradient, so backtracking is needed
    step = 4.0 * trust_region_step(jnp.linalg.solve(F, g), lambda v: F @ v, delta)

    def ls(params, step):
        return backtracking_line_search(
            surrogate_fn, kl_fn, params, step, delta, evaluate_all=evaluate_all
        )

    new, info = run(ls, theta0, step)
    check_line_search_result(
        new, info, theta0, step, kl_fn, surrogate_fn, delta, 10, 0.8, evaluate_all
    )
    k_ref = reference_first_acceptable(surrogate_fn, kl_fn, theta0, step, delta, 10, 0.8)
    assert int(info.n_backtracks) == k_ref
    if delta <= 0.01:  # small trust region: the surrogate is still improving, a step is found
        assert bool(info.accepted) and int(info.n_backtracks) > 0


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    delta=st.floats(1e-4, 1.0),
    step_scale=st.floats(0.1, 10.0),
    shrink=st.floats(0.1, 0.95),
    m=st.integers(1, 12),
    sign=st.sampled_from([1.0, -1.0]),
    evaluate_all=st.booleans(),
)
def test_line_search_property_random(seed, delta, step_scale, shrink, m, sign, evaluate_all):
    kl_fn, surrogate_fn, theta0, F, g = quadratic_problem(seed)
    step = sign * step_scale * trust_region_step(jnp.linalg.solve(F, g), lambda v: F @ v, delta)
    new, info = backtracking_line_search(
        surrogate_fn, kl_fn, theta0, step, delta, m, shrink, evaluate_all=evaluate_all
    )
    check_line_search_result(
        new, info, theta0, step, kl_fn, surrogate_fn, delta, m, shrink, evaluate_all
    )
    assert int(info.n_backtracks) == reference_first_acceptable(
        surrogate_fn, kl_fn, theta0, step, delta, m, shrink
    )
    if sign < 0 and bool(info.accepted):
        # A step against the gradient of a concave surrogate never improves it: an accepted
        # one is so short (shrink**k of the step) that its float32 "improvement" is rounding.
        gain = float(surrogate_fn(new)) - float(surrogate_fn(theta0))
        scale = max(1.0, abs(float(surrogate_fn(theta0))))
        assert 0.0 < gain <= 4 * float(jnp.finfo(jnp.float32).eps) * scale, (gain, info.fraction)


def test_line_search_nothing_acceptable_returns_params_unchanged(run):
    params = {"w": jnp.array([[0.1, -0.2], [0.3, 0.4]]), "b": jnp.array([1.0, 2.0])}
    step = jax.tree_util.tree_map(jnp.ones_like, params)

    def surrogate_fn(p):  # always decreases along +step
        return -jnp.sum(p["w"]) - jnp.sum(p["b"])

    def kl_fn(p):
        return jnp.zeros(())

    new, info = run(lambda p, s: backtracking_line_search(surrogate_fn, kl_fn, p, s, 0.01), params, step
    )
    assert not bool(info.accepted)
    assert int(info.n_backtracks) == 10
    assert float(info.kl) == 0.0 and float(info.improvement) == 0.0
    assert jax.tree_util.tree_structure(new) == jax.tree_util.tree_structure(params)
    for a, b in zip(jax.tree_util.tree_leaves(new), jax.tree_util.tree_leaves(params)):
        np.testing.assert_array_equal(a, b)
    assert bool(jnp.all(info.trace.improvement < 0))


def test_line_search_non_finite_step_returns_params_unchanged(run):
    """A NaN/inf step (e.g. from a broken CG) is rejected and never leaks into the params."""
    theta0 = jnp.array([0.5, -1.0, 2.0])
    step = jnp.array([jnp.nan, jnp.inf, 1.0])

    def kl_fn(t):
        return 0.5 * jnp.sum((t - theta0) ** 2)

    new, info = run(lambda p, s: backtracking_line_search(jnp.sum, kl_fn, p, s, 0.01), theta0, step
    )
    assert not bool(info.accepted)
    np.testing.assert_array_equal(new, theta0)
    assert bool(jnp.all(jnp.isfinite(new)))


def test_line_search_kl_too_large_everywhere_rejects(run):
    theta0 = jnp.zeros(3)
    step = jnp.ones(3)

    def kl_fn(t):
        return 1.0 + jnp.sum(t**2)  # always above δ

    def surrogate_fn(t):
        return jnp.sum(t)

    new, info = run(lambda p, s: backtracking_line_search(surrogate_fn, kl_fn, p, s, 0.5, 4), theta0, step
    )
    assert not bool(info.accepted) and int(info.n_backtracks) == 4
    np.testing.assert_array_equal(new, theta0)


def test_line_search_rejects_non_finite_candidates(run):
    """Large steps give a NaN KL or an inf surrogate: they are skipped, not accepted."""
    theta0 = jnp.zeros(2)
    step = jnp.array([1.0, 0.0])

    def kl_fn(t):
        return jnp.where(t[0] > 0.7, jnp.nan, 0.01 * t[0] ** 2)

    def surrogate_fn(t):
        return jnp.where(t[0] > 0.55, jnp.inf, t[0])

    new, info = run(lambda p, s: backtracking_line_search(surrogate_fn, kl_fn, p, s, 0.1, 10, 0.8),
        theta0,
        step,
    )
    # fractions 1, .8 (NaN KL), .64 (inf surrogate), .512 first finite & acceptable
    assert bool(info.accepted) and int(info.n_backtracks) == 3
    np.testing.assert_allclose(new, jnp.array([0.512, 0.0]), rtol=1e-6)
    assert not bool(jnp.any(info.trace.acceptable[:3]))
    assert bool(jnp.isnan(info.trace.kl[1])) and bool(jnp.isinf(info.trace.improvement[2]))


def test_line_search_full_step_accepted_first(run):
    theta0 = jnp.zeros(2)

    def kl_fn(t):
        return 0.5 * jnp.sum(t**2)

    def surrogate_fn(t):
        return jnp.sum(t)

    step = jnp.array([0.1, 0.1])  # KL 0.01 ≤ 0.02
    new, info = run(lambda p, s: backtracking_line_search(surrogate_fn, kl_fn, p, s, 0.02), theta0, step
    )
    assert bool(info.accepted) and int(info.n_backtracks) == 0
    np.testing.assert_allclose(new, step)
    assert info.trace.tried.tolist() == [True] + [False] * 9  # one forward pass
    _, full = run(lambda p, s: backtracking_line_search(surrogate_fn, kl_fn, p, s, 0.02, evaluate_all=True),
        theta0,
        step,
    )
    assert int(full.n_backtracks) == 0
    assert bool(jnp.all(full.trace.acceptable))  # every fraction acceptable; the first wins


@pytest.mark.parametrize("seed", range(4))
def test_line_search_evaluate_all_gives_the_same_result_and_the_full_trace(run, seed):
    kl_fn, surrogate_fn, theta0, F, g = quadratic_problem(seed)
    step = 3.0 * trust_region_step(jnp.linalg.solve(F, g), lambda v: F @ v, 0.01)

    def both(p, s):
        return (
            backtracking_line_search(surrogate_fn, kl_fn, p, s, 0.01),
            backtracking_line_search(surrogate_fn, kl_fn, p, s, 0.01, evaluate_all=True),
        )

    (new, info), (new_all, info_all) = run(both, theta0, step)
    np.testing.assert_array_equal(new, new_all)
    assert int(info.n_backtracks) == int(info_all.n_backtracks)
    assert bool(info.accepted) == bool(info_all.accepted)
    assert bool(jnp.all(info_all.trace.tried))
    t = info.trace.tried
    np.testing.assert_allclose(info.trace.kl[t], info_all.trace.kl[t], rtol=1e-6)
    # KL grows with the fraction along this step (a quadratic): the trace shows it
    assert bool(jnp.all(jnp.diff(info_all.trace.kl) < 0))


def test_line_search_traced_delta_and_vmap_over_delta():
    kl_fn, surrogate_fn, theta0, F, g = quadratic_problem(3)
    step = 4.0 * trust_region_step(jnp.linalg.solve(F, g), lambda v: F @ v, 0.01)
    deltas = jnp.array([1e-3, 0.01, 0.1])
    news, infos = jax.jit(
        jax.vmap(lambda d: backtracking_line_search(surrogate_fn, kl_fn, theta0, step, d))
    )(deltas)
    for i, d in enumerate([1e-3, 0.01, 0.1]):
        new, info = backtracking_line_search(surrogate_fn, kl_fn, theta0, step, d)
        assert int(infos.n_backtracks[i]) == int(info.n_backtracks)
        np.testing.assert_allclose(news[i], new, rtol=1e-5, atol=1e-7)
    # shrink may be traced too (a hyper-parameter swept by train_many)
    shrinks = jnp.array([0.5, 0.8])
    _, infos = jax.jit(
        jax.vmap(lambda r: backtracking_line_search(surrogate_fn, kl_fn, theta0, step, 0.01, 10, r))
    )(shrinks)
    for i, r in enumerate([0.5, 0.8]):
        _, info = backtracking_line_search(surrogate_fn, kl_fn, theta0, step, 0.01, 10, r)
        assert int(infos.n_backtracks[i]) == int(info.n_backtracks)
        np.testing.assert_allclose(infos.trace.fractions[i], r ** np.arange(10), rtol=1e-6)


def test_trpo_step_on_a_categorical_policy_end_to_end():
    """grad → CG(F) → step scaling → line search on a real policy: KL ≤ δ, surrogate up."""
    k_obs, k_w, k_a, k_adv = jax.random.split(jax.random.PRNGKey(0), 4)
    obs = jax.random.normal(k_obs, (64, 4))
    params = {"w": 0.5 * jax.random.normal(k_w, (4, 3)), "b": jnp.zeros(3)}

    def logits_fn(p):
        return obs @ p["w"] + p["b"][None, :]

    old_logits = logits_fn(params)
    actions = jax.random.categorical(k_a, old_logits)
    logp_old = categorical_log_prob(old_logits, actions)
    adv = jax.random.normal(k_adv, (64,))
    delta = 0.01

    def surrogate_fn(p):
        return surrogate(categorical_log_prob(logits_fn(p), actions), logp_old, adv)

    def kl_of_outputs(z):
        return jnp.mean(categorical_kl(old_logits, z))

    def kl_fn(p):
        return kl_of_outputs(logits_fn(p))

    @jax.jit
    def step(p):
        g = jax.grad(surrogate_fn)(p)
        fvp = gauss_newton_fvp(logits_fn, kl_of_outputs, p, 1e-3)
        d, cg_info = conjugate_gradient(fvp, g, iters=10)
        s = trust_region_step(d, fvp, delta)
        return backtracking_line_search(surrogate_fn, kl_fn, p, s, delta), cg_info

    (new, info), cg_info = step(params)
    assert bool(info.accepted)
    assert float(kl_fn(new)) <= delta
    assert float(surrogate_fn(new)) > float(surrogate_fn(params))
    # the quadratic model is accurate for a small δ: the full step's true KL is close to δ
    assert float(info.trace.kl[0]) == pytest.approx(delta, rel=0.3)
    assert float(cg_info.residual_norms[-1]) < float(cg_info.residual_norms[0])


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"delta": 0.0}, "delta"),
        ({"delta": -0.1}, "delta"),
        ({"shrink": 0.0}, "shrink"),
        ({"shrink": 1.0}, "shrink"),
        ({"shrink": 1.5}, "shrink"),
        ({"max_backtracks": 0}, "max_backtracks"),
    ],
)
def test_line_search_bad_inputs_raise_naming_the_argument(kwargs, name):
    args = {"delta": 0.01, "max_backtracks": 10, "shrink": 0.8} | kwargs
    with pytest.raises(ValueError, match=name):
        backtracking_line_search(jnp.sum, jnp.sum, jnp.zeros(2), jnp.ones(2), **args)
    with pytest.raises(TypeError, match="max_backtracks"):
        backtracking_line_search(jnp.sum, jnp.sum, jnp.zeros(2), jnp.ones(2), 0.01, 2.0)
