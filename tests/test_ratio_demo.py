"""Tests of course_lib.lessons.l03_ratio and its panel: the worked example, importance sampling, and the
surrogate against the exact objective of a tiny MDP (numpy oracles, identities, the lesson's claims).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.lessons.l03_ratio import (
    LineScan,
    TabularMDP,
    WorkedExample,
    cliff_edge_mdp,
    cliff_edge_old_params,
    contextual_bandit,
    contribution_curves,
    first_overestimate,
    importance_sampling_estimates,
    importance_sampling_std,
    initial_slopes,
    mean_kl,
    objective_along_line,
    policy_evaluation,
    policy_probs,
    state_occupancy,
    surrogate_gain,
    surrogate_gradient,
    true_gain,
    true_objective,
    worked_example,
)
from course_lib.widgets.l03_ratio import P_NEW_GRID, ratio_panel

# --------------------------------------------------------------------------- one sample


def np_terms(p_old, p_new, adv, eps):
    r = p_new / p_old
    return r, r * adv, min(r * adv, np.clip(r, 1 - eps, 1 + eps) * adv)


def test_worked_example_of_the_syllabus():
    """π_old = 0.2, π_new = 0.8, A = +5: r = 4, r·A = 20, clip(4, 0.8, 1.2)·5 = 6."""
    ex = worked_example(0.2, 0.8, 5.0, 0.2)
    assert isinstance(ex, WorkedExample)
    np.testing.assert_allclose(ex.ratio, 4.0, rtol=1e-6)
    np.testing.assert_allclose(ex.contribution, 20.0, rtol=1e-6)
    np.testing.assert_allclose(ex.clipped_contribution, 6.0, rtol=1e-6)
    np.testing.assert_allclose(ex.grad_contribution, 20.0, rtol=1e-6)  # ∂(r·A)/∂log π = r·A
    assert float(ex.grad_clipped) == 0.0


@pytest.mark.parametrize(
    "p_old, p_new, adv, clipped_value, clipped_grad",
    [
        (0.5, 0.25, -5.0, -4.0, 0.0),  # A < 0, r = 0.5 < 1−ε: the clip takes over, no gradient
        (0.2, 0.8, -5.0, -20.0, -20.0),  # A < 0, r = 4: the unclipped (pessimistic) term stays
        (0.5, 0.25, 5.0, 2.5, 2.5),  # A > 0, r = 0.5: still pulled up
        (0.5, 0.55, 3.0, 3.3, 3.3),  # inside the clip range: plain surrogate
    ],
)
def test_worked_example_on_each_side_of_the_clip(p_old, p_new, adv, clipped_value, clipped_grad):
    ex = worked_example(p_old, p_new, adv, 0.2)
    np.testing.assert_allclose(ex.clipped_contribution, clipped_value, rtol=1e-5)
    np.testing.assert_allclose(ex.grad_clipped, clipped_grad, rtol=1e-5, atol=1e-7)


def test_worked_example_matches_numpy_and_finite_differences():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p_old, p_new = rng.uniform(0.05, 0.95, size=2)
        adv, eps = rng.normal() * 5, rng.uniform(0.0, 0.4)
        ex = worked_example(p_old, p_new, adv, eps)
        r, value, clipped = np_terms(p_old, p_new, adv, eps)
        np.testing.assert_allclose(ex.ratio, r, rtol=1e-5)
        np.testing.assert_allclose(ex.contribution, value, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ex.clipped_contribution, clipped, rtol=1e-5, atol=1e-5)
        h = 1e-4  # central difference in log π_new, in float64
        up = np_terms(p_old, p_new * np.exp(h), adv, eps)
        down = np_terms(p_old, p_new * np.exp(-h), adv, eps)
        np.testing.assert_allclose(ex.grad_contribution, (up[1] - down[1]) / (2 * h), rtol=1e-3)
        if abs(abs(r - 1) - eps) > 1e-3:  # away from the kink
            np.testing.assert_allclose(
                ex.grad_clipped, (up[2] - down[2]) / (2 * h), rtol=1e-3, atol=1e-4
            )


def test_contribution_curves_match_pointwise_worked_examples():
    grid = jnp.array([0.05, 0.2, 0.23, 0.5, 0.8])
    curves = contribution_curves(0.2, -3.0, 0.15, grid)
    assert curves.ratio.shape == (5,)
    for i, p in enumerate(grid):
        one = worked_example(0.2, float(p), -3.0, 0.15)
        for got, expected in zip(curves, one, strict=True):
            np.testing.assert_allclose(got[i], expected, rtol=1e-6, atol=1e-7)


def test_worked_example_under_vmap_and_jit():
    p_new = jnp.array([0.1, 0.8])
    got = jax.jit(jax.vmap(lambda p: worked_example(0.2, p, 5.0, 0.2)))(p_new)
    np.testing.assert_allclose(got.contribution, [2.5, 20.0], rtol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"p_old": 0.0, "p_new": 0.5, "advantage": 1.0, "eps": 0.2}, "p_old"),
        ({"p_old": 0.5, "p_new": 1.5, "advantage": 1.0, "eps": 0.2}, "p_new"),
        ({"p_old": 0.5, "p_new": 0.5, "advantage": 1.0, "eps": -0.1}, "eps"),
        ({"p_old": 0.5, "p_new": 0.5, "advantage": jnp.ones(2), "eps": 0.2}, "advantage"),
    ],
)
def test_worked_example_rejects_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        worked_example(**kwargs)


def test_contribution_curves_rejects_bad_grid():
    with pytest.raises(ValueError, match="p_new"):
        contribution_curves(0.2, 1.0, 0.2, jnp.ones((2, 2)) * 0.5)
    with pytest.raises(ValueError, match="p_new"):
        contribution_curves(0.2, 1.0, 0.2, jnp.array([0.0, 0.5]))


# --------------------------------------------------------------------------- importance sampling

P_OLD, P_NEW, ADV = [0.2, 0.8], [0.8, 0.2], [5.0, -1.25]


def test_importance_sampling_is_unbiased_and_its_spread_is_the_formula():
    est = importance_sampling_estimates(jax.random.key(0), P_OLD, P_NEW, ADV, 32, 4000)
    np.testing.assert_allclose(est.exact, 0.8 * 5.0 - 0.2 * 1.25, rtol=1e-6)
    std = float(importance_sampling_std(P_OLD, P_NEW, ADV, 32))
    assert est.estimates.shape == (4000,)
    assert abs(float(jnp.mean(est.estimates)) - 3.75) < 4 * std / np.sqrt(4000)
    np.testing.assert_allclose(float(jnp.std(est.estimates)), std, rtol=0.08)


def test_importance_sampling_std_matches_numpy_and_grows_with_the_ratio():
    p_old, adv = np.array(P_OLD), np.array(ADV)
    stds = []
    for q in (0.2, 0.4, 0.6, 0.8):
        p_new = np.array([q, 1 - q])
        r = p_new / p_old
        var = np.sum(p_old * (r * adv) ** 2) - np.sum(p_new * adv) ** 2
        got = float(importance_sampling_std(p_old, p_new, adv, 10))
        np.testing.assert_allclose(got, np.sqrt(var / 10), rtol=1e-5)
        stds.append(got)
    assert np.all(np.diff(stds) > 0)
    # At π_new = π_old it is the plain Monte Carlo error of E_old[A].
    np.testing.assert_allclose(stds[0], np.sqrt(np.sum(p_old * adv**2) / 10), rtol=1e-5)


def test_importance_sampling_rejects_bad_arguments():
    key = jax.random.key(0)
    with pytest.raises(ValueError, match="p_old"):
        importance_sampling_estimates(key, [0.0, 1.0], P_NEW, ADV, 4, 4)
    with pytest.raises(ValueError, match="p_new"):
        importance_sampling_std(P_OLD, [0.5, 0.6], ADV, 4)
    with pytest.raises(ValueError, match="values"):
        importance_sampling_std(P_OLD, P_NEW, [1.0, 2.0, 3.0], 4)
    with pytest.raises(ValueError, match="batch_size"):
        importance_sampling_estimates(key, P_OLD, P_NEW, ADV, 0, 4)


# --------------------------------------------------------------------------- the tiny MDP


def random_mdp(seed, n_states=4, n_actions=3, n_features=None, gamma=0.8):
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions)) * 0.95  # 5% ends
    features = np.eye(n_states) if n_features is None else rng.normal(size=(n_states, n_features))
    return TabularMDP(
        jnp.asarray(p, jnp.float32),
        jnp.asarray(rng.normal(size=(n_states, n_actions)), jnp.float32),
        jnp.asarray(rng.dirichlet(np.ones(n_states)), jnp.float32),
        jnp.asarray(features, jnp.float32),
        jnp.asarray(gamma, jnp.float32),
    )


def random_theta(mdp, seed, scale=1.0):
    shape = (mdp.features.shape[1], mdp.rewards.shape[1])
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape) * scale, jnp.float32)


def np_policy_evaluation(mdp, theta, sweeps=400):
    """Iterative Bellman backups in float64 (an independent route to V and Q)."""
    logits = np.asarray(mdp.features, np.float64) @ np.asarray(theta, np.float64)
    pi = np.exp(logits - logits.max(-1, keepdims=True))
    pi /= pi.sum(-1, keepdims=True)
    P, R, g = (
        np.asarray(mdp.transitions, np.float64),
        np.asarray(mdp.rewards, np.float64),
        float(mdp.gamma),
    )
    v = np.zeros(R.shape[0])
    for _ in range(sweeps):
        q = R + g * P @ v
        v = np.sum(pi * q, -1)
    occupancy, d = np.zeros_like(v), np.asarray(mdp.start, np.float64)
    for t in range(sweeps):
        occupancy += g**t * d
        d = np.einsum("s,sa,sat->t", d, pi, P)
    return pi, v, R + g * P @ v, occupancy


@pytest.mark.parametrize("features", [None, 2])
def test_exact_evaluation_matches_bellman_backups(features):
    mdp = random_mdp(1, n_features=features)
    theta = random_theta(mdp, 2)
    pi, v, q, occupancy = np_policy_evaluation(mdp, theta)
    got_v, got_q = policy_evaluation(mdp, theta)
    np.testing.assert_allclose(policy_probs(mdp, theta), pi, rtol=1e-5)
    np.testing.assert_allclose(got_v, v, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got_q, q, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(state_occupancy(mdp, theta), occupancy, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(true_objective(mdp, theta), np.dot(mdp.start, v), rtol=1e-4)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_performance_difference_lemma(seed):
    """J(θ) − J(θ_old) = Σ_s ρ_θ(s) Σ_a π_θ(a|s) A_old(s, a); the surrogate swaps ρ_θ for ρ_old."""
    mdp = random_mdp(seed, n_features=3)
    theta_old, theta = random_theta(mdp, 10 + seed), random_theta(mdp, 20 + seed)
    v_old, q_old = policy_evaluation(mdp, theta_old)
    adv = q_old - v_old[:, None]
    pi = policy_probs(mdp, theta)
    new_states = state_occupancy(mdp, theta)[:, None]
    old_states = state_occupancy(mdp, theta_old)[:, None]
    np.testing.assert_allclose(
        true_gain(mdp, theta_old, theta), jnp.sum(new_states * pi * adv), rtol=1e-4, atol=1e-5
    )
    np.testing.assert_allclose(
        surrogate_gain(mdp, theta_old, theta), jnp.sum(old_states * pi * adv), rtol=1e-4, atol=1e-5
    )


@pytest.mark.parametrize("features", [None, 2])
def test_surrogate_gradient_is_the_policy_gradient(features):
    mdp = random_mdp(3, n_features=features)
    theta_old = random_theta(mdp, 4)
    np.testing.assert_allclose(surrogate_gain(mdp, theta_old, theta_old), 0.0, atol=1e-6)
    np.testing.assert_allclose(
        surrogate_gradient(mdp, theta_old),
        jax.jit(jax.grad(lambda th: true_objective(mdp, th)))(theta_old),
        rtol=1e-4,
        atol=1e-6,
    )
    d = surrogate_gradient(mdp, theta_old)
    true_slope, surr_slope = initial_slopes(mdp, theta_old, d)
    np.testing.assert_allclose(true_slope, jnp.sum(d * d), rtol=1e-4)
    np.testing.assert_allclose(surr_slope, jnp.sum(d * d), rtol=1e-4)


def test_surrogate_is_exact_on_a_contextual_bandit():
    bandit = contextual_bandit([[1.0, 0.0, 2.0], [0.0, 3.0, -1.0]], [0.3, 0.7])
    theta_old = random_theta(bandit, 5)
    direction = random_theta(bandit, 6)
    scan = objective_along_line(bandit, theta_old, direction, jnp.linspace(-5.0, 5.0, 21))
    np.testing.assert_allclose(scan.surrogate_gain, scan.true_gain, atol=1e-5)
    assert float(jnp.max(jnp.abs(scan.true_gain))) > 0.1  # the test is not vacuous


def test_mean_kl_matches_numpy():
    mdp = random_mdp(7, n_features=2)
    theta_old, theta = random_theta(mdp, 8), random_theta(mdp, 9)
    pi_old, *_, occupancy = np_policy_evaluation(mdp, theta_old)
    pi_new = np_policy_evaluation(mdp, theta, sweeps=1)[0]
    kl = np.sum(pi_old * (np.log(pi_old) - np.log(pi_new)), -1)
    np.testing.assert_allclose(
        mean_kl(mdp, theta_old, theta), np.sum(occupancy * kl) / occupancy.sum(), rtol=1e-4
    )
    np.testing.assert_allclose(mean_kl(mdp, theta_old, theta_old), 0.0, atol=1e-7)


def test_objective_along_line_matches_pointwise_calls():
    mdp = random_mdp(11, n_features=2)
    theta_old, d = random_theta(mdp, 12), random_theta(mdp, 13)
    steps = jnp.array([0.0, 0.3, 1.0, 2.5])
    scan = objective_along_line(mdp, theta_old, d, steps)
    assert isinstance(scan, LineScan)
    for i, t in enumerate(steps):
        theta = theta_old + t * d
        np.testing.assert_allclose(scan.true_gain[i], true_gain(mdp, theta_old, theta), atol=1e-5)
        np.testing.assert_allclose(
            scan.surrogate_gain[i], surrogate_gain(mdp, theta_old, theta), atol=1e-5
        )
        np.testing.assert_allclose(scan.kl[i], mean_kl(mdp, theta_old, theta), atol=1e-6)


def test_first_overestimate_on_a_synthetic_scan():
    steps = jnp.array([0.0, 1.0, 2.0, 3.0, 4.0])
    surr = jnp.array([0.0, 1.0, 2.0, 3.0, 4.0])
    scan = LineScan(steps, jnp.array([0.0, 0.9, 1.2, 1.4, -1.0]), surr, jnp.zeros(5))
    assert float(first_overestimate(scan)) == 3.0  # 3.0 > 2 × 1.4
    assert float(first_overestimate(scan, factor=1.5)) == 2.0
    never = LineScan(steps, surr, surr, jnp.zeros(5))
    assert bool(jnp.isnan(first_overestimate(never)))
    with pytest.raises(ValueError, match="factor"):
        first_overestimate(scan, factor=0.0)


def test_cliff_edge_tells_the_lessons_story():
    """Near θ_old the surrogate tracks the true gain; further out it promises gains that turn
    into losses, because the new policy runs more and so reaches the edge more often."""
    mdp, theta_old = cliff_edge_mdp(), cliff_edge_old_params(0.2)
    np.testing.assert_allclose(policy_probs(mdp, theta_old)[:, 1], [0.2, 0.2], rtol=1e-6)
    d = surrogate_gradient(mdp, theta_old)
    scan = objective_along_line(mdp, theta_old, d, jnp.linspace(0.0, 4.0, 161))
    small = int(jnp.argmin(jnp.abs(scan.kl - 0.01)))  # TRPO's typical δ
    assert 0 < float(scan.true_gain[small]) < float(scan.surrogate_gain[small])
    assert float(scan.true_gain[small]) > 0.7 * float(scan.surrogate_gain[small])
    t2 = float(first_overestimate(scan))
    assert 1.0 < t2 < 1.6
    at_3 = 120  # t = 3.0
    assert float(scan.true_gain[at_3]) < 0
    assert float(scan.surrogate_gain[at_3]) > 1.0
    # The cause: the new policy spends more (discounted) time at the edge.
    theta_far = theta_old + 3.0 * d
    assert float(state_occupancy(mdp, theta_far)[1]) > 2 * float(state_occupancy(mdp, theta_old)[1])


def test_mdp_functions_work_under_jit():
    mdp, theta_old = cliff_edge_mdp(), cliff_edge_old_params()
    d = surrogate_gradient(mdp, theta_old)
    got = jax.jit(lambda m, a, b: surrogate_gain(m, a, b))(mdp, theta_old, theta_old + d)
    np.testing.assert_allclose(got, surrogate_gain(mdp, theta_old, theta_old + d), rtol=1e-5)


def test_mdp_functions_reject_bad_arguments():
    mdp, theta = cliff_edge_mdp(), cliff_edge_old_params()
    with pytest.raises(ValueError, match="theta"):
        true_objective(mdp, jnp.zeros((3, 2)))
    with pytest.raises(ValueError, match="direction"):
        objective_along_line(mdp, theta, jnp.zeros(2), jnp.zeros(3))
    with pytest.raises(ValueError, match="steps"):
        objective_along_line(mdp, theta, theta, jnp.zeros((3, 1)))
    with pytest.raises(ValueError, match="gamma"):
        true_objective(mdp._replace(gamma=jnp.asarray(1.0)), theta)
    with pytest.raises(ValueError, match="transitions"):
        true_objective(mdp._replace(transitions=jnp.zeros((2, 2, 3))), theta)
    with pytest.raises(ValueError, match="theta_old"):
        surrogate_gain(mdp, jnp.zeros((2, 3)), theta)
    with pytest.raises(ValueError, match="theta_old"):
        true_gain(mdp, jnp.zeros(4), theta)
    for fn in (true_objective, lambda m, th: surrogate_gain(m, th, th)):
        with pytest.raises(TypeError, match="mdp"):
            fn((1, 2), theta)
    with pytest.raises(ValueError, match="p_run"):
        cliff_edge_old_params(1.0)
    with pytest.raises(ValueError, match="p_edge"):
        cliff_edge_mdp(p_edge=1.5)


# --------------------------------------------------------------------------- the panel


def line(panel, name):
    (found,) = [ln for ln in panel.figure.axes[0].lines if ln.get_label() == name]
    return found


def readout_numbers(panel):
    import re

    return [float(x) for x in re.findall(r"<b>(-?[\d.]+)", panel.readout.value)]


def test_ratio_panel_starts_on_the_worked_example():
    panel = ratio_panel()
    assert set(panel.sliders) == {"p_old", "p_new", "advantage", "eps"}
    assert readout_numbers(panel) == [4.0, 20.0, 6.0, 20.0, 0.0]
    assert "clipped: no gradient" in panel.readout.value
    np.testing.assert_allclose(
        line(panel, "r·A (surrogate)").get_ydata(), np.asarray(P_NEW_GRID) / 0.2 * 5.0, rtol=1e-5
    )
    assert len(panel.png()) > 1000


def test_ratio_panel_follows_each_slider():
    panel = ratio_panel()
    grid = np.asarray(P_NEW_GRID)

    panel.sliders["p_new"].value = 0.22
    assert readout_numbers(panel)[:3] == pytest.approx([1.1, 5.5, 5.5], rel=1e-4)
    assert "not clipped" in panel.readout.value
    markers = [ln for ln in panel.figure.axes[0].lines if ln.get_marker() == "o"]
    assert markers[0].get_xdata()[0] == pytest.approx(0.22)
    assert markers[0].get_ydata()[0] == pytest.approx(5.5, rel=1e-4)

    panel.sliders["p_old"].value = 0.4
    r = grid / 0.4
    np.testing.assert_allclose(line(panel, "r·A (surrogate)").get_ydata(), r * 5.0, rtol=1e-5)

    panel.sliders["advantage"].value = -2.0
    clipped = np.minimum(r * -2.0, np.clip(r, 0.8, 1.2) * -2.0)
    np.testing.assert_allclose(
        line(panel, "min(r·A, clip(r)·A) (PPO)").get_ydata(), clipped, rtol=1e-5, atol=1e-6
    )

    panel.sliders["eps"].value = 0.3
    clipped = np.minimum(r * -2.0, np.clip(r, 0.7, 1.3) * -2.0)
    np.testing.assert_allclose(
        line(panel, "min(r·A, clip(r)·A) (PPO)").get_ydata(), clipped, rtol=1e-5, atol=1e-6
    )
    # p_new = 0.22, p_old = 0.4: r = 0.55 < 1 − ε and A < 0: clipped, −2 · 0.7 = −1.4.
    assert readout_numbers(panel) == pytest.approx([0.55, -1.1, -1.4, -1.1, 0.0], rel=1e-4)
