"""Tests of the improvement bounds of lesson 04 (course_lib.lessons.l04_trust_region, section 4).

TRPO's Theorem 1 (Schulman et al. 2015) and the mean-KL bound of Achiam et al. (2017) are
checked three ways: each formula against a NumPy computation written here from the papers'
statements; every term of :func:`improvement_bounds` against an independent float64 NumPy
evaluation of a small MDP; and the bounds themselves (lower bound ≤ true gain, with every step
of the derivation) on lesson 03's MDP and on random MDPs, policies and updates. The MDP tests run
in float64 (``jax.enable_x64``): the KLs of the smallest updates are below float32's resolution.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import categorical_kl
from course_lib.lessons.l03_ratio import (
    TabularMDP,
    cliff_edge_mdp,
    cliff_edge_old_params,
    mean_kl,
    policy_evaluation,
    policy_logits,
    state_occupancy,
    surrogate_gain,
    surrogate_gradient,
    true_gain,
)
from course_lib.lessons.l04_trust_region import (
    ImprovementBounds,
    achiam_lower_bound,
    improvement_bounds,
    total_variation,
    trpo_lower_bound,
    trpo_penalty_coefficient,
)

TOL = 1e-9  # float64 round-off on quantities of order 1


@pytest.fixture
def x64():
    with jax.enable_x64(True):
        yield


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


# --------------------------------------------------------------------------- the formulas


def test_total_variation_matches_numpy_and_is_symmetric():
    rng = np.random.default_rng(0)
    p, q = rng.dirichlet(np.ones(4), size=6), rng.dirichlet(np.ones(4), size=6)
    expected = 0.5 * np.abs(p - q).sum(-1)
    np.testing.assert_allclose(total_variation(p, q), expected, rtol=1e-6)
    np.testing.assert_allclose(total_variation(q, p), expected, rtol=1e-6)
    np.testing.assert_allclose(total_variation(p, p), 0.0, atol=1e-7)
    assert float(total_variation(jnp.array([1.0, 0.0]), jnp.array([0.0, 1.0]))) == 1.0


def test_pinsker_holds_in_both_directions(x64):
    """TV(p, q) ≤ √(KL/2) for KL(p‖q) and KL(q‖p), from near-uniform to near-deterministic."""
    rng = np.random.default_rng(1)
    for concentration in (0.05, 0.5, 5.0):
        zp = np.log(rng.dirichlet(concentration * np.ones(5), size=200) + 1e-12)
        zq = np.log(rng.dirichlet(concentration * np.ones(5), size=200) + 1e-12)
        tv = np.asarray(total_variation(softmax(zp), softmax(zq)))
        for kl in (categorical_kl(zp, zq), categorical_kl(zq, zp)):
            assert np.all(tv <= np.sqrt(np.asarray(kl) / 2) + 1e-12)
    # Pinsker is tight to second order: TV² / (KL/2) → 1 for two nearby Bernoullis
    p = np.log(np.array([[0.5, 0.5]]))
    q = np.log(np.array([[0.5 + 1e-4, 0.5 - 1e-4]]))
    ratio = float(total_variation(softmax(p), softmax(q))[0]) ** 2 / (float(categorical_kl(p, q)[0]) / 2)
    assert ratio == pytest.approx(1.0, rel=1e-3)


def test_trpo_formulas_match_numpy():
    rng = np.random.default_rng(2)
    gain, max_kl, a_max = rng.normal(size=5), rng.uniform(0, 0.1, 5), rng.uniform(0, 10, 5)
    for gamma in (0.0, 0.9, 0.99):
        c = 4.0 * a_max * gamma / (1.0 - gamma) ** 2  # Schulman et al. 2015, Theorem 1 / eq. 9
        np.testing.assert_allclose(trpo_penalty_coefficient(a_max, gamma), c, rtol=1e-5)
        np.testing.assert_allclose(trpo_lower_bound(gain, max_kl, a_max, gamma), gain - c * max_kl,
                                   rtol=1e-5, atol=1e-6)
    assert round(float(trpo_penalty_coefficient(1.0, 0.99))) == 39600


def test_achiam_formula_matches_numpy():
    rng = np.random.default_rng(3)
    gain, kl, adv_max = rng.normal(size=5), rng.uniform(0, 0.1, 5), rng.uniform(0, 2, 5)
    for gamma in (0.0, 0.9, 0.99):
        # Achiam et al. 2017, Corollary 1 with Corollary 3: 2γ·Ā_max/(1−γ)² · √(KL/2)
        expected = gain - 2.0 * gamma * adv_max / (1.0 - gamma) ** 2 * np.sqrt(kl / 2.0)
        np.testing.assert_allclose(achiam_lower_bound(gain, kl, adv_max, gamma), expected, rtol=1e-5,
                                   atol=1e-6)


def test_formulas_under_jit_with_scalars_and_arrays(run):
    gain, kl = jnp.array([0.1, 0.2, 0.3]), jnp.array([1e-4, 1e-3, 1e-2])
    np.testing.assert_allclose(
        run(trpo_lower_bound, gain, kl, 2.0, 0.9), trpo_lower_bound(gain, kl, 2.0, 0.9), rtol=1e-5)
    np.testing.assert_allclose(
        run(achiam_lower_bound, gain, kl, 0.5, 0.9), achiam_lower_bound(gain, kl, 0.5, 0.9), rtol=1e-5)


# --------------------------------------------------------------------------- exact terms on an MDP


def small_mdp(seed, n_states=3, n_actions=2, gamma=0.8):
    """A random MDP whose episodes end with probability 10 % per step, tabular features."""
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(n_states), size=(n_states, n_actions)) * 0.9
    return TabularMDP(
        jnp.asarray(p),
        jnp.asarray(rng.normal(size=(n_states, n_actions)) * 3.0),
        jnp.asarray(rng.dirichlet(np.ones(n_states))),
        jnp.eye(n_states),
        jnp.asarray(gamma),
    )


def np_exact(mdp, theta):
    """π, A_π and ρ_π of a tabular policy, by NumPy linear algebra in float64."""
    P, R, mu, g = (np.asarray(x, np.float64) for x in (mdp.transitions, mdp.rewards, mdp.start,
                                                        mdp.gamma))
    logits = np.asarray(mdp.features, np.float64) @ np.asarray(theta, np.float64)
    pi = softmax(logits)
    p_pi = np.einsum("sa,sat->st", pi, P)
    v = np.linalg.solve(np.eye(len(mu)) - g * p_pi, (pi * R).sum(-1))
    adv = R + g * P @ v - v[:, None]
    rho = np.linalg.solve((np.eye(len(mu)) - g * p_pi).T, mu)
    return logits, pi, adv, rho, float(mu @ v)


def test_improvement_bounds_match_an_independent_numpy_computation(x64):
    mdp = small_mdp(4)
    rng = np.random.default_rng(5)
    theta_old, theta_new = rng.normal(size=(3, 2)), rng.normal(size=(3, 2))
    z_old, pi_old, adv, rho_old, j_old = np_exact(mdp, theta_old)
    z_new, pi_new, _, rho_new, j_new = np_exact(mdp, theta_new)
    g = float(mdp.gamma)
    got = improvement_bounds(z_old, z_new, adv, rho_old, rho_new, g)

    abar = (pi_new * adv).sum(-1)
    kl = (pi_old * (np.log(pi_old) - np.log(pi_new))).sum(-1)
    tv = 0.5 * np.abs(pi_new - pi_old).sum(-1)
    surrogate = rho_old @ abar
    a_max, adv_max = np.abs(adv).max(), np.abs(abar).max()
    scale = g / (1 - g) ** 2
    expected = {
        "true_gain": j_new - j_old,
        "surrogate_gain": surrogate,
        "mismatch": (j_new - j_old) - surrogate,
        "occupancy_l1": np.abs(rho_new - rho_old).sum(),
        "max_kl": kl.max(),
        "mean_kl": rho_old @ kl / rho_old.sum(),
        "discounted_kl": (1 - g) * rho_old @ kl,
        "max_tv": tv.max(),
        "discounted_tv": (1 - g) * rho_old @ tv,
        "a_max": a_max,
        "expected_adv_max": adv_max,
        "trpo_tv_bound": surrogate - 4 * a_max * scale * tv.max() ** 2,
        "trpo_bound": surrogate - 4 * a_max * scale * kl.max(),
        "achiam_tv_bound": surrogate - 2 * adv_max * scale * ((1 - g) * rho_old @ tv),
        "achiam_bound": surrogate - np.sqrt(2) * adv_max * scale * np.sqrt((1 - g) * rho_old @ kl),
    }
    assert set(expected) == set(ImprovementBounds._fields)
    for name, value in expected.items():
        np.testing.assert_allclose(getattr(got, name), value, rtol=1e-9, atol=1e-10, err_msg=name)


def test_surrogate_and_true_gain_are_lesson_03s(x64):
    """The bounds' L − J is lesson 03's surrogate_gain, their J' − J its true_gain and mean KL its mean_kl."""
    mdp = small_mdp(6)
    rng = np.random.default_rng(7)
    theta_old, theta_new = jnp.asarray(rng.normal(size=(3, 2))), jnp.asarray(rng.normal(size=(3, 2)))
    b = bounds_for(mdp, theta_old, theta_new)
    np.testing.assert_allclose(b.true_gain, true_gain(mdp, theta_old, theta_new), atol=TOL)
    np.testing.assert_allclose(b.surrogate_gain, surrogate_gain(mdp, theta_old, theta_new), atol=TOL)
    np.testing.assert_allclose(b.mean_kl, mean_kl(mdp, theta_old, theta_new), rtol=1e-9)


def bounds_for(mdp, theta_old, theta_new):
    v, q = policy_evaluation(mdp, theta_old)
    return improvement_bounds(policy_logits(mdp, theta_old), policy_logits(mdp, theta_new),
                              q - v[:, None], state_occupancy(mdp, theta_old),
                              state_occupancy(mdp, theta_new), mdp.gamma)


def test_bounds_are_tight_at_no_update(x64):
    mdp = small_mdp(8)
    theta = jnp.asarray(np.random.default_rng(9).normal(size=(3, 2)))
    b = bounds_for(mdp, theta, theta)
    for name in ("true_gain", "surrogate_gain", "max_kl", "discounted_kl", "trpo_bound", "achiam_bound"):
        assert abs(float(getattr(b, name))) < 1e-12, name


# --------------------------------------------------------------------------- the bounds hold


def assert_derivation_holds(b: ImprovementBounds, gamma: float) -> None:
    """Every step of lesson 04's derivation, and both bounds, on a batch of updates."""
    b = jax.tree.map(np.asarray, b)
    scale = gamma / (1 - gamma) ** 2
    np.testing.assert_allclose(b.mismatch, b.true_gain - b.surrogate_gain, atol=TOL)
    assert np.all(np.abs(b.mismatch) <= b.occupancy_l1 * b.expected_adv_max + TOL)
    assert np.all(b.occupancy_l1 <= 2 * scale * b.discounted_tv + TOL)  # Achiam et al., Lemma 3
    assert np.all(b.expected_adv_max <= 2 * b.a_max * b.max_tv + TOL)
    assert np.all(b.max_tv <= np.sqrt(b.max_kl / 2) + TOL)  # Pinsker
    assert np.all(b.discounted_tv <= np.sqrt(b.discounted_kl / 2) + TOL)  # Pinsker + Jensen
    assert np.all(b.true_gain >= b.trpo_tv_bound - TOL) and np.all(b.trpo_tv_bound >= b.trpo_bound)
    assert np.all(b.true_gain >= b.achiam_tv_bound - TOL) and np.all(b.achiam_tv_bound >= b.achiam_bound)


@pytest.mark.parametrize("seed", range(4))
def test_bounds_hold_on_random_mdps_policies_and_updates(x64, seed):
    rng = np.random.default_rng(100 + seed)
    gamma = (0.5, 0.8, 0.9, 0.95)[seed]
    mdp = small_mdp(seed, n_states=4, n_actions=3, gamma=gamma)
    theta_old = jnp.asarray(rng.normal(size=(4, 3)) * 1.5)
    directions = jnp.asarray(rng.normal(size=(3, 4, 3)))
    steps = jnp.logspace(-5, 1, 25)
    thetas = theta_old[None, None] + steps[None, :, None, None] * directions[:, None]  # [3, 25, S, A]
    b = jax.vmap(jax.vmap(lambda th: bounds_for(mdp, theta_old, th)))(thetas)
    assert_derivation_holds(b, gamma)
    np.testing.assert_allclose(
        b.true_gain, jax.vmap(jax.vmap(lambda th: true_gain(mdp, theta_old, th)))(thetas), atol=TOL)
    assert float(jnp.max(b.max_kl)) > 1.0 and float(jnp.min(b.max_kl)) < 1e-8  # tiny to large


def test_bounds_hold_along_lesson_03s_line_and_guarantee_only_tiny_steps(x64):
    """The lesson's family: θ_old + α·g on the cliff-edge MDP, mean KL from 1e-10 to about 1."""
    mdp = jax.tree.map(lambda x: jnp.asarray(x, jnp.float64), cliff_edge_mdp())
    theta_old = jnp.asarray(cliff_edge_old_params(0.2), jnp.float64)
    d = jnp.asarray(surrogate_gradient(mdp, theta_old), jnp.float64)
    d = d / jnp.linalg.norm(d)
    b = jax.vmap(lambda a: bounds_for(mdp, theta_old, theta_old + a * d))(jnp.logspace(-4.5, 0.5, 101))
    assert_derivation_holds(b, float(mdp.gamma))
    b = jax.tree.map(np.asarray, b)
    assert b.mean_kl.min() < 1e-9 and b.mean_kl.max() > 1.0
    assert np.all(b.achiam_bound >= b.trpo_bound)
    positive = b.mean_kl[b.trpo_bound > 0]
    assert positive.size and positive.max() < 1e-6  # Theorem 1: improvement only below KL 1e-6
    positive = b.mean_kl[b.achiam_bound > 0]
    assert positive.size and positive.max() < 1e-4
    near_delta = np.argmin(np.abs(np.log(b.mean_kl / 0.01)))
    assert b.true_gain[near_delta] > 0 > b.achiam_bound[near_delta] > b.trpo_bound[near_delta]


def test_improvement_bounds_under_jit_and_vmap(x64):
    mdp = small_mdp(10)
    rng = np.random.default_rng(11)
    theta_old, thetas = jnp.asarray(rng.normal(size=(3, 2))), jnp.asarray(rng.normal(size=(5, 3, 2)))
    batched = jax.jit(jax.vmap(lambda th: bounds_for(mdp, theta_old, th)))(thetas)
    for i in range(5):
        one = bounds_for(mdp, theta_old, thetas[i])
        for name in ImprovementBounds._fields:
            np.testing.assert_allclose(getattr(batched, name)[i], getattr(one, name), rtol=1e-9,
                                       atol=1e-12, err_msg=name)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: trpo_penalty_coefficient(1.0, 1.0), "gamma"),
        (lambda: trpo_penalty_coefficient(1.0, -0.1), "gamma"),
        (lambda: trpo_penalty_coefficient(1.0, jnp.array([0.9, 0.9])), "gamma"),
        (lambda: trpo_penalty_coefficient(-1.0, 0.9), "a_max"),
        (lambda: trpo_lower_bound(0.1, -1e-3, 1.0, 0.9), "max_kl"),
        (lambda: trpo_lower_bound(jnp.zeros(3), jnp.zeros(4), 1.0, 0.9), "max_kl"),
        (lambda: trpo_lower_bound(0.1, 1e-3, -1.0, 0.9), "a_max"),
        (lambda: achiam_lower_bound(0.1, -1e-3, 1.0, 0.9), "mean_kl"),
        (lambda: achiam_lower_bound(0.1, 1e-3, -1.0, 0.9), "expected_adv_max"),
        (lambda: achiam_lower_bound(0.1, 1e-3, 1.0, 1.5), "gamma"),
        (lambda: achiam_lower_bound(jnp.zeros(2), 1e-3, jnp.ones(3), 0.9), "expected_adv_max"),
        (lambda: total_variation(jnp.ones((2, 3)) / 3, jnp.ones((2, 2)) / 2), "p"),
        (lambda: total_variation(0.5, 0.5), "p"),
    ],
)
def test_formulas_reject_bad_arguments(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def good_inputs():
    mdp = small_mdp(12)
    z_old, _, adv, rho_old, _ = np_exact(mdp, np.zeros((3, 2)))
    z_new, _, _, rho_new, _ = np_exact(mdp, np.ones((3, 2)))
    return {"old_logits": z_old, "new_logits": z_new, "advantages": adv, "occupancy_old": rho_old,
            "occupancy_new": rho_new, "gamma": 0.8}


@pytest.mark.parametrize(
    "name, bad",
    [
        ("old_logits", np.zeros(3)),
        ("new_logits", np.zeros((3, 3))),
        ("advantages", np.zeros((2, 2))),
        ("occupancy_old", np.ones(4)),
        ("occupancy_old", -np.ones(3)),
        ("occupancy_new", np.ones(2)),
        ("occupancy_new", np.array([1.0, -0.5, 1.0])),
        ("gamma", 1.0),
    ],
)
def test_improvement_bounds_rejects_bad_arguments(name, bad):
    kwargs = good_inputs()
    kwargs[name] = bad
    with pytest.raises(ValueError, match=name):
        improvement_bounds(**kwargs)
