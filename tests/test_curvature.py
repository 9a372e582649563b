"""Identity tests for course_lib.core.curvature: FVP = dense Fisher · v, both KL directions, damping.

Every identity is checked eagerly and under ``jax.jit``. The policies are small tanh MLPs with
nested-dict parameters (plain jnp, so nothing else of the library is involved): a categorical
policy and a diagonal Gaussian one with a learned, state-independent ``log_std``.
"""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

from course_lib.core.curvature import (
    dense_fisher,
    fisher_vector_product,
    gauss_newton_fvp,
    subsample,
)
from course_lib.core.distributions import categorical_kl, gaussian_kl

B, OBS, HID, ACT = 32, 3, 5, 4


def init_mlp(key, sizes, scale=1.0):
    params = {}
    for i, (n_in, n_out) in enumerate(itertools.pairwise(sizes)):
        key, kw, kb = jax.random.split(key, 3)
        params[f"layer{i}"] = {
            "w": scale * jax.random.normal(kw, (n_in, n_out)) / np.sqrt(n_in),
            "b": 0.1 * jax.random.normal(kb, (n_out,)),
        }
    return params


def mlp(params, x):
    n = len(params)
    for i in range(n):
        x = x @ params[f"layer{i}"]["w"] + params[f"layer{i}"]["b"][None, :]
        if i < n - 1:
            x = jnp.tanh(x)
    return x


def random_like(key, tree):
    flat, unravel = ravel_pytree(tree)
    return unravel(jax.random.normal(key, flat.shape, flat.dtype))


def tree_allclose(a, b, rtol=1e-4, atol=1e-5):
    fa, _ = ravel_pytree(a)
    fb, _ = ravel_pytree(b)
    np.testing.assert_allclose(np.asarray(fa), np.asarray(fb), rtol=rtol, atol=atol)


# ------------------------------------------------------------------------------ problems


class Categorical:
    """π(·|s) = softmax(mlp(θ, s)); KL(π_old ‖ π_θ) with π_old fixed at ``theta_old``."""

    def __init__(self, seed=0):
        k_obs, k_par, k_pert = jax.random.split(jax.random.PRNGKey(seed), 3)
        self.obs = jax.random.normal(k_obs, (B, OBS))
        self.theta_old = init_mlp(k_par, (OBS, HID, ACT), scale=1.5)
        # a point that is NOT θ_old, where the Gauss-Newton matrix differs from the Hessian
        pert = random_like(k_pert, self.theta_old)
        self.theta_far = jax.tree_util.tree_map(lambda p, d: p + 0.5 * d, self.theta_old, pert)
        self.old_out = jax.lax.stop_gradient(self.output(self.theta_old))

    def output(self, params):
        return mlp(params, self.obs)

    def kl_of_outputs(self, logits):
        return jnp.mean(categorical_kl(self.old_out, logits))

    def kl_reverse_of_outputs(self, logits):
        return jnp.mean(categorical_kl(logits, self.old_out))

    def kl(self, params):
        return self.kl_of_outputs(self.output(params))

    def kl_reverse(self, params):
        return self.kl_reverse_of_outputs(self.output(params))


class Gaussian:
    """Mean network plus a learned ``log_std [D]``; outputs are the tuple (mean, log_std)."""

    def __init__(self, seed=0):
        k_obs, k_par, k_std, k_pert = jax.random.split(jax.random.PRNGKey(seed), 4)
        self.obs = jax.random.normal(k_obs, (B, OBS))
        self.theta_old = {
            "mean_net": init_mlp(k_par, (OBS, HID, ACT - 1), scale=1.5),
            "log_std": 0.3 * jax.random.normal(k_std, (ACT - 1,)),
        }
        pert = random_like(k_pert, self.theta_old)
        self.theta_far = jax.tree_util.tree_map(lambda p, d: p + 0.5 * d, self.theta_old, pert)
        self.old_out = jax.lax.stop_gradient(self.output(self.theta_old))

    def output(self, params):
        return mlp(params["mean_net"], self.obs), params["log_std"]

    def kl_of_outputs(self, out):
        return jnp.mean(gaussian_kl(*self.old_out, *out))

    def kl_reverse_of_outputs(self, out):
        return jnp.mean(gaussian_kl(*out, *self.old_out))

    def kl(self, params):
        return self.kl_of_outputs(self.output(params))

    def kl_reverse(self, params):
        return self.kl_reverse_of_outputs(self.output(params))


PROBLEMS = {"categorical": Categorical, "gaussian": Gaussian}


@pytest.fixture(params=list(PROBLEMS))
def problem(request):
    return PROBLEMS[request.param]()


def generic_fvp(prob, params, v, damping=0.0, kl=None):
    return fisher_vector_product(kl or prob.kl, params, damping)(v)


def gn_fvp(prob, params, v, damping=0.0):
    return gauss_newton_fvp(prob.output, prob.kl_of_outputs, params, damping)(v)


def dense_times(matrix, v):
    flat_v, unravel = ravel_pytree(v)
    return unravel(matrix @ flat_v)


# ------------------------------------------------------------------------------ tests


def test_kl_is_zero_with_zero_gradient_at_theta_old(problem):
    assert abs(float(problem.kl(problem.theta_old))) < 1e-6
    g, _ = ravel_pytree(jax.grad(problem.kl)(problem.theta_old))
    assert float(jnp.max(jnp.abs(g))) < 1e-6


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_both_fvps_equal_dense_fisher_times_v_at_theta_old(problem, run, seed):
    v = random_like(jax.random.PRNGKey(100 + seed), problem.theta_old)
    F = dense_fisher(problem.kl, problem.theta_old)
    expected = dense_times(F, v)
    got_generic = run(lambda p, v: generic_fvp(problem, p, v), problem.theta_old, v)
    got_gn = run(lambda p, v: gn_fvp(problem, p, v), problem.theta_old, v)
    # structure of params is kept
    assert jax.tree_util.tree_structure(got_generic) == jax.tree_util.tree_structure(v)
    assert jax.tree_util.tree_structure(got_gn) == jax.tree_util.tree_structure(v)
    scale = float(jnp.max(jnp.abs(ravel_pytree(expected)[0])))
    assert scale > 1e-3  # a non-trivial product
    tree_allclose(got_generic, expected, rtol=1e-4, atol=1e-5 * scale)
    tree_allclose(got_gn, expected, rtol=1e-4, atol=1e-5 * scale)


def test_generic_fvp_is_exact_hessian_away_from_theta_old_gauss_newton_is_not(problem, run):
    """Away from θ_old the residual term Σ ∂KL/∂z ∇²z is non-zero: only the generic FVP
    tracks the Hessian there. For the categorical KL, H_out = diag(π) − ππᵀ is PSD at any
    logits, so the Gauss-Newton matrix stays PSD (the Gaussian KL in (mean, log_std) is not
    convex far from π_old, so there it need not be)."""
    theta = problem.theta_far
    H = dense_fisher(problem.kl, theta)
    v = random_like(jax.random.PRNGKey(7), theta)
    got = run(lambda p, v: generic_fvp(problem, p, v), theta, v)
    scale = float(jnp.max(jnp.abs(H)))
    tree_allclose(got, dense_times(H, v), rtol=1e-4, atol=1e-5 * scale)

    gn = jax.vmap(lambda e: ravel_pytree(gn_fvp(problem, theta, ravel_unravel(theta)(e)))[0])(
        jnp.eye(H.shape[0])
    )
    assert float(jnp.max(jnp.abs(gn - H))) > 1e-3 * scale  # the dropped term is visible
    if isinstance(problem, Categorical):
        assert float(jnp.min(jnp.linalg.eigvalsh(0.5 * (gn + gn.T)))) > -1e-5 * scale


def ravel_unravel(tree):
    return ravel_pytree(tree)[1]


def test_both_kl_directions_share_the_hessian_at_theta_old(problem, run):
    F_fwd = run(lambda p: dense_fisher(problem.kl, p), problem.theta_old)
    F_rev = run(lambda p: dense_fisher(problem.kl_reverse, p), problem.theta_old)
    scale = float(jnp.max(jnp.abs(F_fwd)))
    np.testing.assert_allclose(F_rev, F_fwd, atol=1e-4 * scale)
    # ... and the FVP of the reverse KL, and its Gauss-Newton form, agree with F too
    v = random_like(jax.random.PRNGKey(3), problem.theta_old)
    rev = run(lambda p, v: fisher_vector_product(problem.kl_reverse, p, 0.0)(v),
        problem.theta_old,
        v,
    )
    rev_gn = run(lambda p, v: gauss_newton_fvp(problem.output, problem.kl_reverse_of_outputs, p, 0.0)(v),
        problem.theta_old,
        v,
    )
    tree_allclose(rev, dense_times(F_fwd, v), rtol=1e-3, atol=1e-4 * scale)
    tree_allclose(rev_gn, dense_times(F_fwd, v), rtol=1e-3, atol=1e-4 * scale)


def test_directions_differ_away_from_theta_old(problem):
    """The shared Hessian is a property of θ_old only (so the test above can fail)."""
    F_fwd = dense_fisher(problem.kl, problem.theta_far)
    F_rev = dense_fisher(problem.kl_reverse, problem.theta_far)
    assert float(jnp.max(jnp.abs(F_fwd - F_rev))) > 1e-3 * float(jnp.max(jnp.abs(F_fwd)))


def test_dense_fisher_is_symmetric_psd_and_flat_sized(problem, run):
    F = run(lambda p: dense_fisher(problem.kl, p), problem.theta_old)
    n = ravel_pytree(problem.theta_old)[0].size
    assert F.shape == (n, n)
    scale = float(jnp.max(jnp.abs(F)))
    np.testing.assert_allclose(F, F.T, atol=1e-6 * scale)
    eig = np.linalg.eigvalsh(np.asarray(F, np.float64))
    assert eig.min() > -1e-5 * scale
    assert eig.max() > 0


@pytest.mark.parametrize("damping", [0.0, 0.1, 2.5])
def test_damping_adds_damping_times_v(problem, run, damping):
    theta, v = problem.theta_old, random_like(jax.random.PRNGKey(5), problem.theta_old)
    for build in (
        lambda d: fisher_vector_product(problem.kl, theta, d),
        lambda d: gauss_newton_fvp(problem.output, problem.kl_of_outputs, theta, d),
    ):
        plain = run(lambda v, build=build: build(0.0)(v), v)
        damped = run(lambda v, build=build: build(damping)(v), v)
        diff = jax.tree_util.tree_map(lambda a, b: a - b, damped, plain)
        tree_allclose(diff, jax.tree_util.tree_map(lambda x: damping * x, v), rtol=1e-4, atol=1e-5)


def test_damping_can_be_traced():
    prob = Categorical()
    v = random_like(jax.random.PRNGKey(1), prob.theta_old)

    @jax.jit
    def f(d):
        return fisher_vector_product(prob.kl, prob.theta_old, d)(v)

    diff = jax.tree_util.tree_map(lambda a, b: a - b, f(0.3), f(0.0))
    tree_allclose(diff, jax.tree_util.tree_map(lambda x: 0.3 * x, v), atol=1e-5)


def test_fvp_is_linear_and_symmetric(problem, run):
    theta = problem.theta_old
    u = random_like(jax.random.PRNGKey(11), theta)
    w = random_like(jax.random.PRNGKey(12), theta)
    for build in (
        lambda: fisher_vector_product(problem.kl, theta, 0.1),
        lambda: gauss_newton_fvp(problem.output, problem.kl_of_outputs, theta, 0.1),
    ):

        def quad(u, w, build=build):
            fvp = build()
            fu, fw = ravel_pytree(fvp(u))[0], ravel_pytree(fvp(w))[0]
            f_sum = ravel_pytree(fvp(jax.tree_util.tree_map(lambda a, b: 2 * a - b, u, w)))[0]
            fu_w = jnp.vdot(fu, ravel_pytree(w)[0])
            u_fw = jnp.vdot(ravel_pytree(u)[0], fw)
            return f_sum, 2 * fu - fw, fu_w, u_fw

        f_sum, expected, fu_w, u_fw = run(quad, u, w)
        np.testing.assert_allclose(f_sum, expected, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(fu_w, u_fw, rtol=1e-4, atol=1e-6)


def test_flat_vector_params(run):
    prob = Categorical()
    flat, unravel = ravel_pytree(prob.theta_old)
    v = jax.random.normal(jax.random.PRNGKey(4), flat.shape)
    F = dense_fisher(lambda f: prob.kl(unravel(f)), flat)
    np.testing.assert_allclose(F, dense_fisher(prob.kl, prob.theta_old), rtol=1e-6, atol=1e-7)
    got = run(lambda f, v: fisher_vector_product(lambda q: prob.kl(unravel(q)), f, 0.0)(v), flat, v
    )
    got_gn = run(lambda f, v: gauss_newton_fvp(
            lambda q: prob.output(unravel(q)), prob.kl_of_outputs, f, 0.0
        )(v),
        flat,
        v,
    )
    assert got.shape == flat.shape and got_gn.shape == flat.shape
    scale = float(jnp.max(jnp.abs(F @ v)))
    np.testing.assert_allclose(got, F @ v, rtol=1e-4, atol=1e-5 * scale)
    np.testing.assert_allclose(got_gn, F @ v, rtol=1e-4, atol=1e-5 * scale)


def test_generic_fvp_matches_finite_differences_of_the_gradient():
    """An oracle independent of forward-over-reverse: (∇KL(θ+εv) − ∇KL(θ−εv)) / 2ε, float64."""
    with jax.enable_x64(True):
        prob = Gaussian(seed=3)
        theta = jax.tree_util.tree_map(lambda x: x.astype(jnp.float64), prob.theta_far)
        v = random_like(jax.random.PRNGKey(9), theta)
        grad = jax.grad(prob.kl)
        eps = 1e-5
        fd = jax.tree_util.tree_map(
            lambda a, b: (a - b) / (2 * eps),
            grad(jax.tree_util.tree_map(lambda p, d: p + eps * d, theta, v)),
            grad(jax.tree_util.tree_map(lambda p, d: p - eps * d, theta, v)),
        )
        got = fisher_vector_product(prob.kl, theta, 0.0)(v)
        tree_allclose(got, fd, rtol=1e-6, atol=1e-8)


@pytest.mark.parametrize("bad", [-1e-3, -1.0, float("nan"), float("inf")])
def test_negative_damping_raises_naming_it(bad):
    prob = Categorical()
    with pytest.raises(ValueError, match="damping"):
        fisher_vector_product(prob.kl, prob.theta_old, bad)
    with pytest.raises(ValueError, match="damping"):
        gauss_newton_fvp(prob.output, prob.kl_of_outputs, prob.theta_old, bad)
    with pytest.raises(ValueError, match="damping"):
        jax.jit(lambda p: fisher_vector_product(prob.kl, p, bad)(p))(prob.theta_old)


# ------------------------------------------------------------------------------ subsample


def test_subsample_every_kth_row(run):
    x = jnp.arange(40.0).reshape(20, 2)
    y = jnp.arange(20)
    xs, ys = run(lambda x, y: subsample((x, y), 0.25), x, y)
    np.testing.assert_array_equal(ys, [0, 4, 8, 12, 16])
    np.testing.assert_array_equal(xs, x[ys])
    # a fraction that does not divide: ceil(0.1 * 2048) = 205 evenly spaced rows over the batch
    (rows,) = subsample((jnp.arange(2048),), 0.1)
    assert rows.shape == (205,)
    assert rows[0] == 0 and rows[-1] > 2000 and bool(jnp.all(jnp.diff(rows) > 0))
    # fraction 1 keeps the batch
    (same,) = subsample((y,), 1.0)
    np.testing.assert_array_equal(same, y)


def test_subsample_random_rows_are_distinct_and_aligned(run):
    x = jnp.arange(100.0)
    y = 2 * jnp.arange(100)
    xs, ys = run(lambda k: subsample((x, y), 0.1, k), jax.random.PRNGKey(0))
    assert xs.shape == (10,)
    assert len(set(np.asarray(xs).tolist())) == 10
    np.testing.assert_array_equal(ys, 2 * xs.astype(ys.dtype))


@pytest.mark.parametrize("bad", [0.0, -0.1, 1.5])
def test_subsample_bad_fraction_raises(bad):
    with pytest.raises(ValueError, match="fraction"):
        subsample((jnp.zeros(10),), bad)


def test_subsample_mismatched_leaves_raise():
    with pytest.raises(ValueError, match="leading"):
        subsample((jnp.zeros(10), jnp.zeros(9)), 0.5)


def test_fvp_on_a_subsample_is_the_fisher_of_the_subsample():
    prob = Categorical()
    obs_s, old_s = subsample((prob.obs, prob.old_out), 0.25)
    assert obs_s.shape[0] == B // 4

    def out_s(p):
        return mlp(p, obs_s)

    def kl_s(p):
        return jnp.mean(categorical_kl(old_s, out_s(p)))

    v = random_like(jax.random.PRNGKey(2), prob.theta_old)
    F_s = dense_fisher(kl_s, prob.theta_old)
    got = gauss_newton_fvp(
        out_s, lambda z: jnp.mean(categorical_kl(old_s, z)), prob.theta_old, 0.0
    )(v)
    tree_allclose(got, dense_times(F_s, v), rtol=1e-4, atol=1e-6)


def test_fvps_work_under_vmap_over_params_and_vectors():
    """The contract: pure functions that work under jax.vmap (e.g. over seeds)."""
    prob = Categorical()
    thetas = [prob.theta_old, prob.theta_far]
    vs = [random_like(jax.random.PRNGKey(i), prob.theta_old) for i in (20, 21)]

    def stack(trees):
        return jax.tree_util.tree_map(lambda *xs: jnp.stack(xs), *trees)

    def both(theta, v):
        return (
            fisher_vector_product(prob.kl, theta, 0.1)(v),
            gauss_newton_fvp(prob.output, prob.kl_of_outputs, theta, 0.1)(v),
        )

    batched = jax.jit(jax.vmap(both))(stack(thetas), stack(vs))
    for i, (theta, v) in enumerate(zip(thetas, vs, strict=True)):
        single = both(theta, v)
        for got, want in zip(batched, single, strict=True):
            tree_allclose(jax.tree_util.tree_map(lambda x, i=i: x[i], got), want, atol=1e-5)
