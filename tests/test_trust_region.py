"""Tests of course_lib.lessons.l04_trust_region (lesson 04) and its panel.

The toy is checked against closed forms (softmax gradient and Fisher) and an independent
brute-force grid search of the constrained problem; the CartPole machinery against known
CartPole facts (a constant action ends an episode in about 10 steps, a uniformly random
policy lasts about 22) and against dense linear algebra on a tiny network.
"""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.core.curvature import dense_fisher
from course_lib.lessons.l04_trust_region import (
    DEFAULT_TOY,
    DIRECTION_KINDS,
    KL_REGIMES,
    SoftmaxToy,
    advantage_scale_table,
    batch_kl,
    bisect_step_size,
    kl_sweep,
    policy_directions,
    regime_table,
    toy_constrained_optimum,
    toy_fisher,
    toy_gradient,
    toy_kl,
    toy_kl_boundary,
    toy_kl_on_circle,
    toy_logits,
    toy_natural_step,
    toy_surrogate_gain,
    toy_trust_region,
    two_action_split,
)
from course_lib.rl.envs import make_env
from course_lib.rl.networks import ActorCritic, Params
from course_lib.rl.rollout import collect_batch
from course_lib.widgets.l04_trust_region import DELTA_RANGE, trust_region_panel

TINY = ActorCritic(obs_dim=4, n_actions=2, discrete=True, hidden=(8,))
OPTIMUM = jax.jit(toy_constrained_optimum)
BOUNDARY = jax.jit(toy_kl_boundary)


def softmax_np(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def toy_np(toy=DEFAULT_TOY):
    """π_old, the weights and the advantages of the toy as float64 NumPy arrays."""
    w = np.asarray(toy.weights, np.float64)
    a = np.asarray(toy.advantages, np.float64)
    z = np.concatenate([w * np.asarray(toy.theta_old, np.float64), [0.0]])
    return softmax_np(z), w, a


def toy_np_kl_gain(thetas, toy=DEFAULT_TOY):
    """Exact KL(π_old‖π_θ) and surrogate gain of each row of ``thetas [N, 2]`` in float64."""
    pi_old, w, a = toy_np(toy)
    z = np.concatenate([thetas * w[None, :], np.zeros((len(thetas), 1))], axis=1)
    log_q = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    kl = np.sum(pi_old[None, :] * (np.log(pi_old)[None, :] - log_q), axis=1)
    gain = np.exp(log_q) @ a - pi_old @ a
    return kl, gain


# ------------------------------------------------------------------------------------------
# The toy
# ------------------------------------------------------------------------------------------


def test_toy_kl_and_gain_are_zero_at_theta_old_and_match_numpy():
    assert float(toy_kl(DEFAULT_TOY.theta_old)) == pytest.approx(0.0, abs=1e-7)
    assert float(toy_surrogate_gain(DEFAULT_TOY.theta_old)) == pytest.approx(0.0, abs=1e-7)
    thetas = np.array([[0.0, 0.0], [1.0, -2.0], [-0.7, 3.0]])
    kl_ref, gain_ref = toy_np_kl_gain(thetas)
    kl = jax.jit(jax.vmap(toy_kl))(jnp.asarray(thetas, jnp.float32))
    gain = jax.jit(jax.vmap(toy_surrogate_gain))(jnp.asarray(thetas, jnp.float32))
    np.testing.assert_allclose(kl, kl_ref, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(gain, gain_ref, rtol=1e-5, atol=1e-6)
    assert np.all(np.asarray(kl) > 0)


def test_toy_logits_follow_the_weights():
    np.testing.assert_allclose(toy_logits(jnp.array([1.0, 2.0])), [1.5, 1.2, 0.0], rtol=1e-6)


def test_toy_gradient_and_fisher_match_the_softmax_closed_forms():
    pi, w, a = toy_np()
    # ∂L/∂z_a = π_a (A_a − Σ π A); F_z = diag(π) − ππᵀ; chain rule through z_i = w_i θ_i.
    g_ref = w * (pi * (a - pi @ a))[:2]
    f_ref = (np.diag(pi) - np.outer(pi, pi))[:2, :2] * np.outer(w, w)
    np.testing.assert_allclose(jax.jit(toy_gradient)(DEFAULT_TOY), g_ref, rtol=1e-5)
    np.testing.assert_allclose(jax.jit(toy_fisher)(DEFAULT_TOY), f_ref, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("delta", [1e-3, 0.01, 0.3])
def test_natural_step_sits_on_the_quadratic_boundary_along_f_inverse_g(delta):
    s = np.asarray(jax.jit(toy_natural_step)(delta), np.float64)
    f = np.asarray(toy_fisher(), np.float64)
    assert 0.5 * s @ f @ s == pytest.approx(delta, rel=1e-4)
    d = np.linalg.solve(f, np.asarray(toy_gradient(), np.float64))
    assert s @ d / (np.linalg.norm(s) * np.linalg.norm(d)) == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("delta", [1e-3, 0.05, 0.8])
def test_kl_boundary_points_have_kl_delta(delta):
    points = np.asarray(BOUNDARY(delta), np.float64)
    kl, _ = toy_np_kl_gain(points)
    np.testing.assert_allclose(kl, delta, rtol=2e-3)


@pytest.mark.parametrize("delta", [0.01, 0.1, 0.5])
def test_constrained_optimum_matches_a_brute_force_grid_search(delta):
    theta, gain, kl = OPTIMUM(delta)
    assert float(kl) == pytest.approx(delta, rel=2e-3)
    # Independent reference: every point of a fine float64 grid inside the region.
    radius = 1.3 * np.max(np.abs(np.asarray(BOUNDARY(delta))
                                 - np.asarray(DEFAULT_TOY.theta_old)[None, :]))
    axis = np.linspace(-radius, radius, 801)
    grid = np.stack(np.meshgrid(axis, axis), -1).reshape(-1, 2) + np.asarray(
        DEFAULT_TOY.theta_old, np.float64)[None, :]
    kl_grid, gain_grid = toy_np_kl_gain(grid)
    best = np.argmax(np.where(kl_grid <= delta, gain_grid, -np.inf))
    assert float(gain) == pytest.approx(gain_grid[best], rel=2e-3)
    # In float64, the optimum is feasible and at least as good as the best grid point.
    kl64, gain64 = toy_np_kl_gain(np.asarray(theta, np.float64)[None, :])
    assert kl64[0] <= delta * (1 + 1e-3)
    assert gain64[0] >= gain_grid[best] - 1e-5
    # The gain is flat along the boundary near the optimum, so positions agree more loosely.
    step = np.linalg.norm(grid[best] - np.asarray(DEFAULT_TOY.theta_old))
    assert np.linalg.norm(np.asarray(theta) - grid[best]) < 0.05 * step


def test_trpo_step_agrees_with_the_exact_optimum_only_for_small_delta():
    old = np.asarray(DEFAULT_TOY.theta_old)
    for delta, tol in [(1e-3, 0.02), (1e-2, 0.05)]:
        exact, _, _ = OPTIMUM(delta)
        trpo = old + np.asarray(toy_natural_step(delta))
        assert np.linalg.norm(trpo - np.asarray(exact)) < tol * np.linalg.norm(trpo - old)
    # At δ = 1 the quadratic model is off: the TRPO step's true KL misses δ by > 5 %.
    big = toy_natural_step(1.0) + DEFAULT_TOY.theta_old
    assert abs(float(toy_kl(big)) - 1.0) > 0.05


def test_toy_trust_region_bundles_consistent_pieces():
    tr = toy_trust_region(0.02, lr=0.7, grid=21, n_angles=90)
    assert tr.xs.shape == (21,) and tr.gain_grid.shape == (21, 21)
    assert tr.boundary.shape == (90, 2) and tr.quadratic_boundary.shape == (90, 2)
    assert float(tr.optimum_kl) == pytest.approx(0.02, rel=2e-3)
    np.testing.assert_allclose(tr.gradient, DEFAULT_TOY.theta_old + 0.7 * toy_gradient(),
                               rtol=1e-6)
    f = np.asarray(toy_fisher(), np.float64)
    dq = np.asarray(tr.quadratic_boundary, np.float64) - np.asarray(tr.theta_old)[None, :]
    np.testing.assert_allclose(0.5 * np.einsum("ni,ij,nj->n", dq, f, dq), 0.02, rtol=1e-4)
    # The grid values are the KL and gain at the grid points (row = y, column = x).
    kl_ref, gain_ref = toy_np_kl_gain(np.array([[float(tr.xs[3]), float(tr.ys[5])]]))
    assert float(tr.kl_grid[5, 3]) == pytest.approx(kl_ref[0], rel=1e-4, abs=1e-7)
    assert float(tr.gain_grid[5, 3]) == pytest.approx(gain_ref[0], rel=1e-4, abs=1e-7)
    # The gradient direction cut at the boundary: KL = δ, along g, and worse than the optimum.
    cut = np.asarray(tr.gradient_cut, np.float64) - np.asarray(tr.theta_old)
    g = np.asarray(toy_gradient(), np.float64)
    assert cut @ g / (np.linalg.norm(cut) * np.linalg.norm(g)) == pytest.approx(1.0, abs=1e-6)
    assert toy_np_kl_gain(np.asarray(tr.gradient_cut, np.float64)[None, :])[0][0] == \
        pytest.approx(0.02, rel=1e-3)
    assert float(tr.gradient_cut_gain) < float(tr.optimum_gain)
    # The optimum gains more than TRPO's quadratic step whose KL is not larger.
    if float(tr.natural_kl) <= 0.02:
        assert float(tr.optimum_gain) >= float(tr.natural_gain) - 1e-5


def test_kl_on_a_weight_space_circle_varies_with_direction():
    kls = np.asarray(jax.jit(toy_kl_on_circle, static_argnums=2)(0.2, DEFAULT_TOY, 8))
    old = np.asarray(DEFAULT_TOY.theta_old, np.float64)
    angles = np.arange(8) * 2 * np.pi / 8
    points = old[None, :] + 0.2 * np.stack([np.cos(angles), np.sin(angles)], -1)
    np.testing.assert_allclose(kls, toy_np_kl_gain(points)[0], rtol=1e-4)
    assert kls.max() > 5 * kls.min()
    with pytest.raises(ValueError, match="radius"):
        toy_kl_on_circle(0.0)


def test_bigger_delta_gives_a_bigger_gain():
    gains = [float(OPTIMUM(d)[1]) for d in (0.001, 0.01, 0.1)]
    assert gains[0] < gains[1] < gains[2]


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: toy_trust_region(0.0), "delta"),
        (lambda: toy_trust_region(-1.0), "delta"),
        (lambda: toy_trust_region(0.01, lr=0.0), "lr"),
        (lambda: toy_trust_region(0.01, grid=3), "grid"),
        (lambda: toy_kl_boundary(0.01, n_angles=4), "n_angles"),
        (lambda: toy_natural_step(-0.1), "delta"),
        (lambda: toy_kl(jnp.zeros(3)), "theta"),
        (lambda: toy_kl(jnp.zeros(2), SoftmaxToy(jnp.zeros(2), jnp.ones(2), jnp.zeros(2))),
         "advantages"),
    ],
)
def test_toy_bad_arguments_raise_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_toy_rejects_a_non_toy():
    with pytest.raises(TypeError, match="toy"):
        toy_kl(jnp.zeros(2), (1, 2, 3))


# ------------------------------------------------------------------------------------------
# CartPole: batches, rollouts, directions, step sizes
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny():
    pi, v = TINY.init(jax.random.key(0))
    batch = collect_batch(Params(pi, v), TINY, make_env("CartPole-v1"), jax.random.key(1),
                          num_envs=4, num_steps=32)
    return pi, v, batch


def test_policy_directions_are_unit_gradient_natural_and_random(tiny):
    pi, _, batch = tiny
    dirs = jax.jit(lambda p, b, k: policy_directions(TINY, p, b, k, cg_iters=80, damping=0.1))(
        pi, batch, jax.random.key(2))
    assert dirs.shape == (3, pi.shape[0])
    np.testing.assert_allclose(jnp.linalg.norm(dirs, axis=1), 1.0, rtol=1e-5)

    def gain(p):
        logp = TINY.log_prob(TINY.policy(p, batch.obs), batch.actions)
        return jnp.mean(jnp.exp(logp - batch.logp_old) * batch.advantages)

    g = np.asarray(jax.jit(jax.grad(gain))(pi), np.float64)
    assert dirs[0] @ g / np.linalg.norm(g) == pytest.approx(1.0, abs=1e-5)
    fisher = jax.jit(lambda p, b: dense_fisher(lambda q: batch_kl(q, b, TINY), p))(pi, batch)
    fisher = np.asarray(fisher, np.float64)
    natural = np.linalg.solve(fisher + 0.1 * np.eye(len(g)), g)
    cosine = float(np.asarray(dirs[1], np.float64) @ natural / np.linalg.norm(natural))
    assert cosine > 0.999
    assert abs(float(dirs[2] @ dirs[0])) < 0.5


def test_bisect_step_size_solves_a_quadratic_kl():
    alpha = bisect_step_size(lambda a: 0.5 * 3.0 * a**2, 0.01)
    assert float(alpha) == pytest.approx(math.sqrt(2 * 0.01 / 3.0), rel=1e-4)
    assert float(bisect_step_size(lambda a: 1e-9 * a, 0.5, hi=10.0)) == pytest.approx(10.0,
                                                                                      rel=1e-4)
    with pytest.raises(ValueError, match="target"):
        bisect_step_size(lambda a: a, 0.0)
    with pytest.raises(ValueError, match="lo and hi"):
        bisect_step_size(lambda a: a, 0.1, lo=1.0, hi=0.5)


@pytest.mark.slow
def test_kl_sweep_hits_its_target_kls(tiny):
    pi, v, _ = tiny
    targets = (1e-3, 1e-2, 1e-1)
    sweep = kl_sweep(TINY, pi, v, jax.random.key(4), targets, n_batches=2, episodes=4,
                     num_envs=2, num_steps=32)
    assert sweep.kinds == DIRECTION_KINDS
    assert sweep.kl.shape == (2, 3, 3) and sweep.return_after.shape == (2, 3, 3)
    np.testing.assert_allclose(sweep.kl, np.broadcast_to(targets, (2, 3, 3)), rtol=1e-3)
    assert np.all(np.diff(sweep.step_norm, axis=-1) > 0), "a larger KL needs a longer step"
    assert 1 <= sweep.return_before <= 500
    # The gradient and natural directions raise the surrogate; a small step raises it little.
    assert np.all(sweep.surrogate_gain[:, :2, 0] > 0)
    with pytest.raises(ValueError, match="target_kls"):
        kl_sweep(TINY, pi, v, jax.random.key(4), (0.01, -1.0))
    with pytest.raises(ValueError, match="episodes"):
        kl_sweep(TINY, pi, v, jax.random.key(4), (0.01,), episodes=0)


def test_two_action_split_inverts_the_kl_of_a_fifty_fifty_choice():
    assert two_action_split(0.0) == 0.5
    for kl in (1e-4, 2e-3, 0.01, 0.1, 2.0):
        p = two_action_split(kl)
        assert 0.5 < p < 1.0
        exact = 0.5 * math.log(0.5 / p) + 0.5 * math.log(0.5 / (1.0 - p))
        assert exact == pytest.approx(kl, rel=1e-9)
    assert round(100 * two_action_split(0.01)) == 57
    with pytest.raises(ValueError, match="kl"):
        two_action_split(-0.1)


def test_regime_table_counts_collapses_per_band():
    kl = np.array([1e-4, 1e-3, 0.01, 0.02, 0.05, 0.2, 0.5, 1.0])
    after = np.array([100, 90, 60, 40, 100, 10, 49, 51])
    rows = regime_table(kl, 100.0, after)
    assert [r.name for r in rows] == [r[0] for r in KL_REGIMES]
    assert [r.count for r in rows] == [2, 2, 1, 3]
    assert [r.collapses for r in rows] == [0, 1, 0, 2]
    assert rows[1].collapse_fraction == pytest.approx(0.5)
    assert rows[3].collapse_fraction == pytest.approx(2 / 3)
    assert rows[0].median_change == pytest.approx(-5.0)
    empty = regime_table(np.array([1e-4]), 10.0, np.array([10.0]))
    assert empty[3].count == 0 and math.isnan(empty[3].collapse_fraction)
    with pytest.raises(ValueError, match="return_after"):
        regime_table(kl, 100.0, after[:3])
    with pytest.raises(ValueError, match="return_before"):
        regime_table(kl, 0.0, after)
    with pytest.raises(ValueError, match="collapse_drop"):
        regime_table(kl, 100.0, after, collapse_drop=1.5)


def test_advantage_scale_moves_the_gradient_step_but_not_the_trust_region_step(tiny):
    pi, _, batch = tiny
    table = advantage_scale_table(TINY, pi, batch, scales=(0.1, 1.0, 10.0), delta=0.01,
                                  reference_kl=0.001)
    np.testing.assert_allclose(table.grad_norm / table.grad_norm[1], [0.1, 1.0, 10.0],
                               rtol=1e-4)
    assert table.gradient_kl[1] == pytest.approx(0.001, rel=1e-3)
    assert table.gradient_kl[0] / table.gradient_kl[1] == pytest.approx(0.01, rel=0.1)
    assert table.gradient_kl[2] > 20 * table.gradient_kl[1]
    np.testing.assert_allclose(table.trust_region_kl, table.trust_region_kl[1], rtol=1e-3)
    np.testing.assert_allclose(table.trust_region_norm, table.trust_region_norm[1], rtol=1e-3)
    assert 0.005 < table.trust_region_kl[1] < 0.012
    assert table.penalty_kl[0] < table.penalty_kl[1] < table.penalty_kl[2]
    with pytest.raises(ValueError, match="scales"):
        advantage_scale_table(TINY, pi, batch, scales=(1.0, -2.0))
    with pytest.raises(ValueError, match="delta"):
        advantage_scale_table(TINY, pi, batch, delta=0.0)


# ------------------------------------------------------------------------------------------
# The panel
# ------------------------------------------------------------------------------------------


def test_panel_redraws_the_region_for_each_delta():
    panel = trust_region_panel(delta=0.01)
    assert list(panel.sliders) == ["delta"]
    assert "δ = 0.0100" in panel.readout.value
    ax = panel.figure.axes[0]
    before = np.asarray(ax.lines[0].get_xydata())
    np.testing.assert_allclose(before[:-1], toy_trust_region(0.01).boundary, rtol=1e-5)

    panel.sliders["delta"].value = 0.1
    assert "δ = 0.1000" in panel.readout.value
    tr = toy_trust_region(0.1)
    ax = panel.figure.axes[0]
    np.testing.assert_allclose(np.asarray(ax.lines[0].get_xydata())[:-1], tr.boundary,
                               rtol=1e-5)
    star = next(line for line in ax.lines if line.get_marker() == "*")
    np.testing.assert_allclose(star.get_xydata()[0], tr.optimum, rtol=1e-5)
    assert f"surrogate gain = {float(tr.optimum_gain):.4f}" in panel.readout.value
    assert f"KL = {float(tr.optimum_kl):.4f}" in panel.readout.value
    # A bigger δ: a bigger region (the boundary reaches further from θ_old).
    old = np.asarray(DEFAULT_TOY.theta_old)
    assert np.max(np.linalg.norm(np.asarray(tr.boundary) - old, axis=1)) > 2 * np.max(
        np.linalg.norm(before - old, axis=1))


def test_panel_axes_stay_fixed_while_the_region_changes():
    """Moving δ over the slider's whole range keeps the axes' limits: the region's size on the
    screen is δ's doing, not the axes' rescaling."""
    panel = trust_region_panel(delta=0.01)
    slider = panel.sliders["delta"]
    limits, boundaries, images = [], [], []
    for delta in (DELTA_RANGE[0], 0.01, 0.1, DELTA_RANGE[1]):
        slider.value = delta
        ax = panel.figure.axes[0]
        limits.append((ax.get_xlim(), ax.get_ylim()))
        boundaries.append(np.asarray(ax.lines[0].get_xydata()))
        images.append(panel.png())
    assert all(np.allclose(lim, limits[0]) for lim in limits), limits
    # the drawn boundary KL = δ grows with δ, inside the same axes
    old = np.asarray(DEFAULT_TOY.theta_old)
    reach = [np.max(np.linalg.norm(b - old, axis=1)) for b in boundaries]
    assert all(b > 2 * a for a, b in itertools.pairwise(reach)), reach
    (x0, x1), (y0, y1) = limits[0]
    small = boundaries[1]   # δ = 0.01: well inside the window, and not a dot
    assert x0 < small[:, 0].min() and small[:, 0].max() < x1
    assert y0 < small[:, 1].min() and small[:, 1].max() < y1
    assert np.ptp(small[:, 1]) > 0.1 * (y1 - y0)
    assert len(set(images)) == len(images), "every δ draws a different picture"


def test_panel_rejects_delta_outside_its_range():
    with pytest.raises(ValueError, match="delta"):
        trust_region_panel(delta=5.0)
