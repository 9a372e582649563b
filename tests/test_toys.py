"""Tests for course_lib.lessons.l05_natural_gradient (softmax bandit, natural gradient, network problem) and the
lesson-05 panel.

References are independent of the code under test: autodiff of the objective and of the KL
(``jax.grad``, ``course_lib.dense_fisher``), float64 numpy, Python loops, and closed forms
(the natural gradient of the logit bandit is the centred reward vector).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.core.curvature import dense_fisher, fisher_vector_product, gauss_newton_fvp
from course_lib.core.solvers import trust_region_step
from course_lib.lessons.l05_natural_gradient import (
    BANDIT_REWARDS,
    BANDIT_START,
    SIMPLEX_VERTICES,
    KLCurve,
    bandit_fisher,
    bandit_gradient,
    bandit_kl,
    bandit_objective,
    bandit_path,
    bandit_probs,
    kl_along_step,
    kl_matched_paths,
    kl_step_size,
    natural_direction,
    network_policy_problem,
    reward_threshold,
    score_jacobian,
    simplex_xy,
    softmax_fisher,
    steps_to_reach,
)
from course_lib.widgets.l05_natural_gradient import PANEL_STEPS, natural_gradient_panel

R = jnp.array(BANDIT_REWARDS)
START = jnp.array(BANDIT_START)
POINTS = [jnp.array([0.0, 0.0, 0.0]), jnp.array([-1.0, 0.3, 1.2]), jnp.array([2.0, -1.0, 0.5])]
SCALE = jnp.diag(jnp.array([3.0, 1.0, 1.0]))
OVER = jnp.array([[1.0, 0.0, 0.5, 2.0], [0.0, 1.0, -1.0, 0.0], [1.0, 1.0, 0.0, 1.0]])


# ----------------------------------------------------------------------------- exact bandit


@pytest.mark.parametrize("logits", POINTS)
def test_softmax_fisher_is_the_hessian_of_the_kl(run, logits):
    reference = dense_fisher(lambda z: bandit_kl(logits, z), logits)
    got = run(softmax_fisher, logits)
    np.testing.assert_allclose(got, reference, atol=1e-6)
    pi = np.exp(logits) / np.exp(logits).sum()
    np.testing.assert_allclose(got, np.diag(pi) - np.outer(pi, pi), atol=1e-6)
    np.testing.assert_allclose(got @ jnp.ones(3), 0.0, atol=1e-6)


@pytest.mark.parametrize("matrix", [SCALE, OVER], ids=["scaled", "over"])
def test_bandit_fisher_is_the_hessian_of_the_kl_in_any_parameterisation(matrix):
    theta = jnp.linspace(-1.0, 1.0, matrix.shape[1])
    reference = dense_fisher(lambda p: bandit_kl(theta, p, matrix), theta)
    np.testing.assert_allclose(bandit_fisher(theta, matrix), reference, atol=1e-5)
    b = score_jacobian(theta, matrix)
    pi = bandit_probs(theta, matrix)
    np.testing.assert_allclose(b.T @ jnp.diag(pi) @ b, reference, atol=1e-5)


@pytest.mark.parametrize("matrix", [None, SCALE, OVER], ids=["logits", "scaled", "over"])
def test_gradient_matches_autodiff_of_the_objective(run, matrix):
    p = 3 if matrix is None else matrix.shape[1]
    for theta in (jnp.linspace(-1.0, 2.0, p), jnp.linspace(1.5, -0.5, p)):
        reference = jax.grad(bandit_objective)(theta, R, matrix)
        got = run(lambda t, m=matrix: bandit_gradient(t, R, m), theta)
        np.testing.assert_allclose(got, reference, rtol=1e-5, atol=1e-7)


def test_objective_is_the_expected_reward():
    theta = jnp.array([0.2, -0.4, 1.0])
    pi = np.exp(np.array(theta, np.float64))
    pi /= pi.sum()
    assert float(bandit_objective(theta, R)) == pytest.approx(float(pi @ np.array(R)), rel=1e-6)


def test_gradient_keeps_relative_precision_near_a_vertex():
    theta = jnp.array([-30.0, 0.0, -25.0])  # pi ≈ (1e-13, 1, 1.4e-11)
    z = np.array(theta, np.float64)
    pi = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    r = np.array(R, np.float64)
    reference = pi * (r - pi @ r)
    got = np.array(bandit_gradient(theta, R), np.float64)
    np.testing.assert_allclose(got, reference, rtol=1e-4)
    pi32 = jax.nn.softmax(theta)
    naive = pi32 * (R - pi32 @ R)  # r − J rounds to 0 for the likely arm
    assert float(naive[1]) == 0.0 and float(got[1]) != 0.0


@pytest.mark.parametrize("theta", [*POINTS, jnp.array([-20.0, 0.0, 15.0])])
def test_natural_direction_of_the_logit_bandit_is_the_centred_reward(theta):
    np.testing.assert_allclose(natural_direction(theta, R), R - R.mean(), atol=1e-5)


@pytest.mark.parametrize("matrix", [None, SCALE, OVER], ids=["logits", "scaled", "over"])
def test_natural_direction_is_the_pseudo_inverse_solution(matrix):
    p = 3 if matrix is None else matrix.shape[1]
    theta = jnp.linspace(-0.5, 0.8, p)
    x = natural_direction(theta, R, matrix)
    m = np.eye(3) if matrix is None else np.array(matrix, np.float64)
    z = m @ np.array(theta, np.float64)
    pi = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    r = np.array(R, np.float64)
    f = m.T @ (np.diag(pi) - np.outer(pi, pi)) @ m  # float64 reference
    g = m.T @ (pi * (r - pi @ r))
    np.testing.assert_allclose(f @ np.array(x, np.float64), g, atol=1e-6)
    np.testing.assert_allclose(x, np.linalg.pinv(f, hermitian=True) @ g, atol=1e-5)


@pytest.mark.parametrize("delta", [1e-3, 1e-2, 0.1])
def test_kl_step_size_gives_the_exact_kl(delta):
    for theta, d in [(START, bandit_gradient(START, R)), (POINTS[1], jnp.array([1.0, -2.0, 0.3]))]:
        t = kl_step_size(theta, d, delta)
        assert float(bandit_kl(theta, theta + t * d)) == pytest.approx(delta, rel=1e-4)


# ----------------------------------------------------------------------------- paths


def test_vanilla_fixed_path_matches_a_python_loop():
    theta = np.array(START, np.float64)
    r = np.array(R, np.float64)
    expected = [theta.copy()]
    for _ in range(5):
        pi = np.exp(theta - theta.max())
        pi /= pi.sum()
        theta = theta + 0.7 * pi * (r - pi @ r)
        expected.append(theta.copy())
    path = bandit_path(START, R, 5, method="vanilla", step_rule="fixed", size=0.7)
    np.testing.assert_allclose(path.params, np.array(expected), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(path.probs.sum(-1), 1.0, atol=1e-6)


def test_natural_fixed_path_is_a_straight_line_in_logits():
    path = bandit_path(START, R, 40, method="natural", step_rule="fixed", size=0.5)
    expected = START[None, :] + 0.5 * jnp.arange(41.0)[:, None] * (R - R.mean())[None, :]
    np.testing.assert_allclose(path.params, expected, atol=1e-4)


@pytest.mark.parametrize("method", ["vanilla", "natural"])
def test_kl_rule_takes_steps_of_exact_kl(method):
    path = bandit_path(START, R, 40, method=method, step_rule="kl", size=0.02)
    np.testing.assert_allclose(path.step_kl[:12], 0.02, rtol=1e-3)
    for t in (0, 5, 11):
        kl = bandit_kl(path.params[t], path.params[t + 1])
        assert float(kl) == pytest.approx(0.02, rel=1e-3)
    assert np.all(np.diff(np.array(path.expected_reward[:13])) > 0)


def test_grad_norm_is_the_norm_of_the_gradient_and_vanishes_near_the_start_vertex():
    path = bandit_path(START, R, 40, method="vanilla", step_rule="fixed", size=1.0)
    for t in range(4):
        expected = jnp.linalg.norm(bandit_gradient(path.params[t], R))
        assert float(path.grad_norm[t]) == pytest.approx(float(expected), rel=1e-5)
    at_centre = float(jnp.linalg.norm(bandit_gradient(jnp.zeros(3), R)))
    assert float(path.grad_norm[0]) < 0.2 * at_centre


def test_natural_path_is_invariant_to_reparameterisation_and_vanilla_is_not():
    start_scaled = START / jnp.diag(SCALE)
    kw = {"step_rule": "kl", "size": 0.01}
    nat = bandit_path(START, R, 40, method="natural", **kw)
    nat_s = bandit_path(start_scaled, R, 40, method="natural", matrix=SCALE, **kw)
    van = bandit_path(START, R, 40, method="vanilla", **kw)
    van_s = bandit_path(start_scaled, R, 40, method="vanilla", matrix=SCALE, **kw)
    np.testing.assert_allclose(nat.probs, nat_s.probs, atol=1e-4)
    assert float(jnp.abs(van.probs - van_s.probs).max()) > 0.1


def test_natural_beats_vanilla_on_the_lesson_bandit():
    van, nat = kl_matched_paths(START, R, 0.01, PANEL_STEPS)
    n_van = int(steps_to_reach(van.expected_reward, R))
    n_nat = int(steps_to_reach(nat.expected_reward, R))
    assert 0 < n_nat < n_van
    fixed_van = bandit_path(START, R, 200, method="vanilla", step_rule="fixed", size=1.0)
    fixed_nat = bandit_path(START, R, 200, method="natural", step_rule="fixed", size=1.0)
    assert int(steps_to_reach(fixed_van.expected_reward, R)) == -1
    assert 0 < int(steps_to_reach(fixed_nat.expected_reward, R)) < 30


def test_kl_matched_paths_equal_the_single_paths():
    van, nat = kl_matched_paths(START, R, 0.03, 40)
    for got, method in [(van, "vanilla"), (nat, "natural")]:
        ref = bandit_path(START, R, 40, method=method, step_rule="kl", size=0.03)
        np.testing.assert_allclose(got.probs, ref.probs, atol=1e-6)


def test_steps_to_reach_and_threshold():
    assert float(reward_threshold(jnp.array([1.0, 0.5, 0.0]))) == pytest.approx(0.95)
    assert float(reward_threshold(jnp.array([3.0, 1.0, 2.0]), 0.5)) == pytest.approx(2.0)
    j = jnp.array([0.1, 0.5, 0.94, 0.96, 0.99])
    assert int(steps_to_reach(j, R)) == 3
    assert int(steps_to_reach(j[:3], R)) == -1
    assert int(jax.jit(steps_to_reach)(j, R)) == 3


def test_simplex_xy_maps_corners_and_centre():
    np.testing.assert_allclose(simplex_xy(jnp.eye(3)), SIMPLEX_VERTICES, atol=1e-7)
    centre = simplex_xy(jnp.full((3,), 1 / 3))
    np.testing.assert_allclose(centre, SIMPLEX_VERTICES.mean(0), atol=1e-6)
    assert simplex_xy(jnp.ones((4, 5, 3)) / 3).shape == (4, 5, 2)


# ----------------------------------------------------------------------------- network problem


@pytest.fixture(scope="module")
def problem():
    return network_policy_problem(jax.random.key(2))


def test_network_problem_kl_vanishes_at_theta_old_and_fvps_match(problem):
    p = problem.params
    kl, kl_grad = jax.jit(jax.value_and_grad(problem.kl_fn))(p)
    assert float(kl) == pytest.approx(0.0, abs=1e-6)
    np.testing.assert_allclose(kl_grad, 0.0, atol=1e-6)
    v = jax.random.normal(jax.random.key(3), p.shape)
    dense = jax.jit(lambda q: dense_fisher(problem.kl_fn, q))(p) @ v
    fvp = jax.jit(lambda q, u: fisher_vector_product(problem.kl_fn, q, 0.0)(u))(p, v)
    gn = jax.jit(lambda q, u: gauss_newton_fvp(problem.logits_fn, problem.kl_of_logits, q, 0.0)(u))(
        p, v
    )
    np.testing.assert_allclose(fvp, dense, atol=1e-5)
    np.testing.assert_allclose(gn, dense, atol=1e-5)


def test_kl_along_step_quadratic_model(problem):
    fvp = fisher_vector_product(problem.kl_fn, problem.params, 0.0)
    step = trust_region_step(problem.gradient, fvp, 0.01)
    curve = kl_along_step(problem.kl_fn, fvp, problem.params, step, jnp.array([0.0, 0.1, 1.0]))
    np.testing.assert_allclose(curve.quadratic_kl, [0.0, 1e-4, 1e-2], rtol=1e-4, atol=1e-9)
    assert float(curve.true_kl[0]) == pytest.approx(0.0, abs=1e-7)
    assert float(curve.true_kl[1]) == pytest.approx(1e-4, rel=0.05)
    expected = float(problem.kl_fn(problem.params + step))
    assert float(curve.true_kl[2]) == pytest.approx(expected, rel=1e-5)


def test_first_divergence():
    t = jnp.array([0.0, 1.0, 2.0, 3.0])
    quad = jnp.array([0.0, 1.0, 4.0, 9.0])
    curve = KLCurve(t=t, true_kl=jnp.array([0.0, 1.05, 4.5, 12.0]), quadratic_kl=quad)
    assert float(curve.first_divergence(0.1)) == 2.0
    assert float(curve.first_divergence(0.01)) == 1.0
    assert np.isnan(float(KLCurve(t, quad, quad).first_divergence()))


# ----------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: bandit_path(START, R, 0, method="vanilla", step_rule="kl", size=0.01), "n_steps"),
        (lambda: bandit_path(START, R, 5, method="newton", step_rule="kl", size=0.01), "method"),
        (
            lambda: bandit_path(START, R, 5, method="vanilla", step_rule="lr", size=0.01),
            "step_rule",
        ),
        (lambda: bandit_path(START, R, 5, method="vanilla", step_rule="kl", size=0.0), "size"),
        (lambda: bandit_objective(START, jnp.ones(4)), "rewards"),
        (lambda: bandit_objective(START, jnp.ones((3, 1))), "rewards"),
        (lambda: bandit_probs(jnp.zeros(3), jnp.eye(4)), "matrix"),
        (lambda: bandit_probs(jnp.zeros((3, 1))), "params"),
        (lambda: softmax_fisher(jnp.zeros((2, 3))), "logits"),
        (lambda: kl_step_size(START, jnp.ones(3), -0.1), "delta"),
        (lambda: kl_step_size(START, jnp.ones(4), 0.1), "direction"),
        (lambda: kl_matched_paths(START, R, 0.0, 10), "delta"),
        (lambda: reward_threshold(R, 1.5), "fraction"),
        (lambda: steps_to_reach(jnp.ones((2, 2)), R), "expected_reward"),
        (lambda: simplex_xy(jnp.ones(4)), "probs"),
        (lambda: network_policy_problem(jax.random.key(0), param_noise=-1.0), "param_noise"),
        (lambda: network_policy_problem(jax.random.key(0), n_actions=1), "n_actions"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ----------------------------------------------------------------------------- panel


def _expected(delta):
    van, nat = kl_matched_paths(START, R, delta, PANEL_STEPS)
    return (
        van,
        nat,
        int(steps_to_reach(van.expected_reward, R)),
        int(steps_to_reach(nat.expected_reward, R)),
    )


def test_panel_draws_both_paths_and_states_the_steps():
    panel = natural_gradient_panel(delta=0.01)
    assert set(panel.sliders) == {"delta"}
    for delta in (0.01, 0.05, 0.002):
        panel.sliders["delta"].value = delta
        van, nat, n_van, n_nat = _expected(delta)
        assert 0 < n_nat < n_van
        assert f"vanilla <b>{n_van} steps</b>" in panel.readout.value
        assert f"natural <b>{n_nat} steps</b>" in panel.readout.value
        simplex_ax, reward_ax = panel.figure.axes
        v_line, n_line = simplex_ax.lines[1], simplex_ax.lines[2]
        n = len(v_line.get_xdata())
        assert n > n_van
        np.testing.assert_allclose(
            np.c_[v_line.get_xdata(), v_line.get_ydata()], simplex_xy(van.probs[:n]), atol=1e-6
        )
        np.testing.assert_allclose(
            np.c_[n_line.get_xdata(), n_line.get_ydata()], simplex_xy(nat.probs[:n]), atol=1e-6
        )
        np.testing.assert_allclose(reward_ax.lines[0].get_ydata(), van.expected_reward[:n])
        np.testing.assert_allclose(reward_ax.lines[1].get_ydata(), nat.expected_reward[:n])


def test_panel_rejects_a_delta_outside_the_slider_range():
    with pytest.raises(ValueError, match="delta"):
        natural_gradient_panel(delta=0.5)
