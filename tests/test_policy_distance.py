"""Tests for course_lib.lessons.l02_policy_distance and the lesson-02 panel (course_lib.widgets.l02_policy_distance).

Most identities use a linear softmax policy, logits = X W, whose Fisher matrix has a closed
form: F = mean_b (x_b x_bᵀ) ⊗ (diag p_b − p_b p_bᵀ). The references are computed in float64
numpy, independently of the library.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from course_lib.core.distributions import categorical_kl
from course_lib.lessons.l02_policy_distance import (
    DISPLAY_STATES,
    balancing_controller,
    cartpole_observations,
    distance_setup,
    distance_view,
    fit_policy,
    kl_along,
    mean_kl,
    mix_directions,
    naive_kl_from_probs,
    perturb,
    quadratic_kl,
    radius_at_kl,
    radius_grid,
    random_direction,
    sensitive_direction,
    shift_for_kl,
    unit,
)
from course_lib.rl.envs import make_env
from course_lib.widgets.l02_policy_distance import distance_panel

B, D, A = 40, 3, 3


@pytest.fixture(scope="module")
def linear():
    """A linear softmax policy on fixed states: (logits_fn, params [D*A], X [B, D])."""
    kx, kw = jax.random.split(jax.random.key(3))
    x = jax.random.normal(kx, (B, D))
    params = 0.7 * jax.random.normal(kw, (D * A,))

    def logits_fn(theta):
        return x @ theta.reshape(D, A)

    return logits_fn, params, np.asarray(x, np.float64)


def softmax64(z):
    z = np.asarray(z, np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def kl64(p, q):
    """KL(p‖q) per row in float64, terms with p = 0 dropped."""
    with np.errstate(divide="ignore", invalid="ignore"):
        terms = np.where(p > 0, p * (np.log(p) - np.log(q)), 0.0)
    return terms.sum(axis=-1)


def linear_fisher64(x, params):
    """Closed-form Fisher of the linear softmax policy, row-major flattening of W [D, A]."""
    p = softmax64(x @ np.asarray(params, np.float64).reshape(D, A))
    fisher = np.zeros((D * A, D * A))
    for xb, pb in zip(x, p, strict=True):
        fisher += np.kron(np.outer(xb, xb), np.diag(pb) - np.outer(pb, pb))
    return fisher / len(x)


# --------------------------------------------------------------------------- directions


def test_perturb_moves_exactly_radius_in_l2(linear):
    _, params, _ = linear
    d = jnp.arange(1.0, D * A + 1.0)
    for r in (0.0, 0.3, 2.5):
        moved = perturb(params, d, r)
        assert float(jnp.linalg.norm(moved - params)) == pytest.approx(r, rel=1e-5, abs=1e-6)
        if r > 0:
            np.testing.assert_allclose((moved - params) / r, d / jnp.linalg.norm(d), rtol=1e-5)


def test_perturb_and_unit_reject_bad_arguments(linear):
    _, params, _ = linear
    with pytest.raises(ValueError, match="radius"):
        perturb(params, jnp.ones_like(params), -0.1)
    with pytest.raises(ValueError, match="direction"):
        perturb(params, jnp.ones(D * A + 1), 0.1)
    with pytest.raises(ValueError, match="direction"):
        unit(jnp.zeros(4))
    with pytest.raises(ValueError, match="params"):
        perturb(params[None, :], jnp.ones_like(params), 0.1)


def test_random_direction_is_unit_and_reproducible(linear):
    _, params, _ = linear
    a = random_direction(jax.random.key(0), params)
    b = random_direction(jax.random.key(0), params)
    c = random_direction(jax.random.key(1), params)
    assert float(jnp.linalg.norm(a)) == pytest.approx(1.0, rel=1e-6)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_mix_directions_endpoints_and_bounds():
    a = jnp.array([2.0, 0.0, 0.0])
    b = jnp.array([0.0, 0.0, -5.0])
    np.testing.assert_allclose(mix_directions(a, b, 0.0), [1.0, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(mix_directions(a, b, 1.0), [0.0, 0.0, -1.0], atol=1e-7)
    half = mix_directions(a, b, 0.5)
    np.testing.assert_allclose(half, np.array([1.0, 0.0, -1.0]) / np.sqrt(2.0), rtol=1e-6)
    with pytest.raises(ValueError, match="mix"):
        mix_directions(a, b, 1.5)
    with pytest.raises(ValueError, match="insensitive"):
        mix_directions(a, jnp.ones(4), 0.5)


def test_sensitive_direction_is_top_eigenvector_of_closed_form_fisher(linear):
    logits_fn, params, x = linear
    fisher = linear_fisher64(x, params)
    eigenvalues, eigenvectors = np.linalg.eigh(fisher)
    direction, top = sensitive_direction(logits_fn, params)
    assert float(top) == pytest.approx(eigenvalues[-1], rel=1e-4)
    assert abs(float(np.dot(np.asarray(direction, np.float64), eigenvectors[:, -1]))) == (
        pytest.approx(1.0, abs=1e-4)
    )
    # sign convention: the largest-magnitude entry is positive
    d = np.asarray(direction)
    assert d[np.argmax(np.abs(d))] > 0
    jitted, _ = jax.jit(sensitive_direction, static_argnums=0)(logits_fn, params)
    np.testing.assert_allclose(jitted, direction, atol=1e-5)


def test_sensitive_direction_beats_random_directions(linear):
    logits_fn, params, _ = linear
    direction, _ = sensitive_direction(logits_fn, params)
    r = jnp.array([0.05])
    best = float(kl_along(logits_fn, params, direction, r)[0])
    for seed in range(20):
        d = random_direction(jax.random.key(seed), params)
        assert float(kl_along(logits_fn, params, d, r)[0]) < best


# --------------------------------------------------------------------------- KL along a ray


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_kl_along_matches_float64_reference(linear, reverse, mode):
    logits_fn, params, x = linear
    d = jnp.linspace(-1.0, 1.0, D * A)
    radii = jnp.array([0.0, 0.1, 0.7, 3.0])
    fn = kl_along
    if mode == "jit":
        fn = jax.jit(kl_along, static_argnums=(0, 4))
    got = np.asarray(fn(logits_fn, params, d, radii, reverse))
    w_old = np.asarray(params, np.float64).reshape(D, A)
    d64 = np.asarray(d, np.float64) / np.linalg.norm(np.asarray(d, np.float64))
    p_old = softmax64(x @ w_old)
    for r, value in zip(np.asarray(radii), got, strict=True):
        p_new = softmax64(x @ (w_old + r * d64.reshape(D, A)))
        want = kl64(p_new, p_old).mean() if reverse else kl64(p_old, p_new).mean()
        assert value == pytest.approx(want, rel=2e-3, abs=1e-6)
    assert got[0] == pytest.approx(0.0, abs=1e-7)


def test_mean_kl_orders_its_arguments(linear):
    logits_fn, params, _ = linear
    other = perturb(params, jnp.ones_like(params), 2.0)
    forward = float(mean_kl(logits_fn, params, other))
    backward = float(mean_kl(logits_fn, other, params))
    along = kl_along(logits_fn, params, jnp.ones_like(params), jnp.array([2.0]))
    along_rev = kl_along(logits_fn, params, jnp.ones_like(params), jnp.array([2.0]), True)
    assert forward == pytest.approx(float(along[0]), rel=1e-5)
    assert backward == pytest.approx(float(along_rev[0]), rel=1e-5)
    assert abs(forward - backward) > 1e-3 * forward  # the two directions differ
    with pytest.raises(ValueError, match="params_q"):
        mean_kl(logits_fn, params, params[:-1])


def test_quadratic_kl_is_half_dFd_and_matches_small_steps(linear):
    logits_fn, params, x = linear
    d = jnp.linspace(0.5, -1.5, D * A)
    d64 = np.asarray(d, np.float64) / np.linalg.norm(np.asarray(d, np.float64))
    curvature = d64 @ linear_fisher64(x, params) @ d64
    radii = jnp.array([0.01, 0.03, 2.0])
    quad = np.asarray(quadratic_kl(logits_fn, params, d, radii))
    np.testing.assert_allclose(quad, 0.5 * curvature * np.asarray(radii) ** 2, rtol=1e-4)
    forward = np.asarray(kl_along(logits_fn, params, d, radii))
    backward = np.asarray(kl_along(logits_fn, params, d, radii, reverse=True))
    np.testing.assert_allclose(forward[:2], quad[:2], rtol=0.05)
    np.testing.assert_allclose(backward[:2], quad[:2], rtol=0.05)
    assert abs(forward[2] - quad[2]) > 0.05 * quad[2]  # far away, the quadratic is off


def test_kl_along_rejects_bad_arguments(linear):
    logits_fn, params, _ = linear
    with pytest.raises(ValueError, match="radii"):
        kl_along(logits_fn, params, jnp.ones_like(params), jnp.ones((2, 2)))
    with pytest.raises(ValueError, match="direction"):
        kl_along(logits_fn, params, jnp.ones(3), jnp.ones(2))
    with pytest.raises(TypeError, match="reverse"):
        kl_along(logits_fn, params, jnp.ones_like(params), jnp.ones(2), reverse="yes")


def test_radius_at_kl_hits_the_target(linear):
    logits_fn, params, _ = linear
    direction, top = sensitive_direction(logits_fn, params)
    for target in (1e-4, 0.01, 0.3):
        r = float(radius_at_kl(logits_fn, params, direction, target))
        kl = float(kl_along(logits_fn, params, direction, jnp.array([r]))[0])
        assert kl == pytest.approx(target, rel=1e-3)
    small = float(radius_at_kl(logits_fn, params, direction, 1e-5))
    assert small == pytest.approx(np.sqrt(2e-5 / float(top)), rel=0.02)  # KL ≈ ½ λ r²
    assert np.isnan(float(radius_at_kl(logits_fn, params, direction, 0.01, r_max=1e-3)))
    with pytest.raises(ValueError, match="target"):
        radius_at_kl(logits_fn, params, direction, 0.0)
    with pytest.raises(ValueError, match="iters"):
        radius_at_kl(logits_fn, params, direction, 0.01, iters=0)


@pytest.mark.parametrize("p_old", [0.1, 0.5, 0.9])
@pytest.mark.parametrize("target", [0.001, 0.01, 0.1, 1.0])
def test_shift_for_kl_solves_the_bernoulli_kl(p_old, target):
    q = float(shift_for_kl(p_old, target))
    assert p_old < q < 1.0
    got = kl64(np.array([[1 - p_old, p_old]]), np.array([[1 - q, q]]))[0]
    # q near 1 is rounded to float32, which moves the KL by up to ~0.2 % at KL = 1
    assert got == pytest.approx(target, rel=5e-3)


def test_shift_for_kl_known_values_and_errors():
    assert float(shift_for_kl(0.5, 0.01)) == pytest.approx(0.5704, abs=2e-4)
    assert float(shift_for_kl(0.5, 0.1)) == pytest.approx(0.7129, abs=2e-4)
    with pytest.raises(ValueError, match="p_old"):
        shift_for_kl(1.0, 0.01)
    with pytest.raises(ValueError, match="target"):
        shift_for_kl(0.5, -0.01)


# --------------------------------------------------------------------------- the naive formula


def test_naive_kl_agrees_when_nothing_is_zero():
    key = jax.random.key(0)
    p_logits, q_logits = jax.random.normal(key, (2, 6, 4))
    p, q = jax.nn.softmax(p_logits), jax.nn.softmax(q_logits)
    np.testing.assert_allclose(
        naive_kl_from_probs(p, q), categorical_kl(p_logits, q_logits), rtol=1e-4, atol=1e-6
    )


def test_naive_kl_fails_where_categorical_kl_does_not():
    p_logits = jnp.array([[0.0, 1.0, -jnp.inf]])
    q_logits = jnp.zeros((1, 3))
    p, q = jax.nn.softmax(p_logits), jax.nn.softmax(q_logits)
    assert np.isnan(float(naive_kl_from_probs(p, q)[0]))
    exact = float(categorical_kl(p_logits, q_logits)[0])
    p64 = softmax64(np.array([[0.0, 1.0, -np.inf]]))
    assert exact == pytest.approx(kl64(p64, np.full((1, 3), 1 / 3))[0], rel=1e-5)
    assert float(naive_kl_from_probs(p, q, mask_zeros=True)[0]) == pytest.approx(exact, rel=1e-5)

    # q underflows in float32: the naive value is inf, the exact one is finite (≈ 99.31)
    p_u, q_u = jnp.zeros((1, 2)), jnp.array([[0.0, -200.0]])
    naive = float(naive_kl_from_probs(jax.nn.softmax(p_u), jax.nn.softmax(q_u))[0])
    assert np.isinf(naive)
    assert float(categorical_kl(p_u, q_u)[0]) == pytest.approx(100.0 + np.log(0.5), rel=1e-6)

    # gradients: with respect to p's logits where p(a) = 0 ...
    def naive_of_p(z, mask):
        return naive_kl_from_probs(jax.nn.softmax(z), q, mask_zeros=mask).sum()

    assert np.isnan(np.asarray(jax.grad(naive_of_p)(p_logits, False))).any()
    assert np.isnan(np.asarray(jax.grad(naive_of_p)(p_logits, True))).any()  # the where leaks
    good = jax.grad(lambda z: categorical_kl(z, q_logits).sum())(p_logits)
    assert np.isfinite(np.asarray(good)).all()

    # ... and with respect to q's logits where q underflowed: exact gradient is q - p
    def naive_of_q(z):
        return naive_kl_from_probs(jax.nn.softmax(p_u), jax.nn.softmax(z)).sum()

    assert not np.isfinite(np.asarray(jax.grad(naive_of_q)(q_u))).all()
    good_q = jax.grad(lambda z: categorical_kl(p_u, z).sum())(q_u)
    np.testing.assert_allclose(good_q, [[0.5, -0.5]], atol=1e-6)
    with pytest.raises(ValueError, match="q"):
        naive_kl_from_probs(p, q[:, :2])


# --------------------------------------------------------------------------- the lesson's policy


def test_cartpole_observations_lie_in_the_box():
    obs = cartpole_observations(jax.random.key(0), 500)
    assert obs.shape == (500, 4)
    high = np.array([2.4, 2.0, 0.21, 2.0])
    assert (np.abs(np.asarray(obs)) <= high).all()
    assert (np.abs(np.asarray(obs)).max(axis=0) > 0.9 * high).all()
    with pytest.raises(ValueError, match="n"):
        cartpole_observations(jax.random.key(0), 0)


def test_balancing_controller_probabilities_and_greedy_balance():
    obs = jnp.array([[0.0, 0.0, 0.1, 0.0], [0.0, 0.0, -0.1, 0.0], [0.0, 0.0, 0.0, 0.0]])
    probs = np.asarray(balancing_controller(obs))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=1e-6)
    assert probs[0, 1] > 0.7 and probs[1, 1] < 0.3  # push towards the lean
    assert probs[2, 1] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="obs"):
        balancing_controller(jnp.zeros((3, 3)))
    with pytest.raises(ValueError, match="temperature"):
        balancing_controller(obs, temperature=0.0)

    env = make_env("CartPole-v1")

    def episode(key):
        state, o = env.reset(key)

        def step(carry, _):
            state, o, alive = carry
            action = jnp.argmax(balancing_controller(o[None, :])[0]).astype(jnp.int32)
            state, o, _, terminated, _ = env.step(state, action)
            return (state, o, alive & ~terminated), alive

        _, alive = jax.lax.scan(step, (state, o, jnp.bool_(True)), None, 500)
        return alive.sum()

    lengths = jax.jit(jax.vmap(episode))(jax.random.split(jax.random.key(0), 4))
    assert (np.asarray(lengths) == 500).all()


def test_fit_policy_fits_targets(linear):
    logits_fn, params, _ = linear
    target_params = params[::-1] * 1.5
    targets = jax.nn.softmax(logits_fn(target_params))
    fitted, losses = fit_policy(logits_fn, jnp.zeros_like(params), targets, steps=400)
    assert losses.shape == (400,)
    assert float(losses[-1]) < float(losses[0])
    kl = jnp.mean(categorical_kl(logits_fn(target_params), logits_fn(fitted)))
    assert float(kl) < 1e-3
    with pytest.raises(ValueError, match="steps"):
        fit_policy(logits_fn, params, targets, steps=0)
    with pytest.raises(ValueError, match="targets"):
        fit_policy(logits_fn, params, targets[0])


@pytest.fixture(scope="module")
def setup():
    return distance_setup()


def test_distance_setup_shows_the_lesson_claim(setup):
    p = setup.params.shape[0]
    assert setup.obs.shape == (256, 4)
    assert setup.display_obs.shape == (len(DISPLAY_STATES), 4)
    for d in (setup.random_dir, setup.sensitive_dir):
        assert d.shape == (p,)
        assert float(jnp.linalg.norm(d)) == pytest.approx(1.0, rel=1e-5)
    # the fitted policy imitates the controller
    targets = balancing_controller(setup.obs)
    fit_kl = jnp.mean(categorical_kl(jnp.log(targets), setup.logits_fn(setup.params)))
    assert float(fit_kl) < 0.01
    # equal L2, KLs two orders of magnitude apart
    r = jnp.array([0.1])
    sens = float(kl_along(setup.logits_fn, setup.params, setup.sensitive_dir, r)[0])
    rand = float(kl_along(setup.logits_fn, setup.params, setup.random_dir, r)[0])
    assert sens > 50 * rand
    assert sens == pytest.approx(0.5 * float(setup.top_eigenvalue) * 0.01, rel=0.1)


def test_distance_view_measures_the_step(setup):
    view = distance_view(setup, 0.4, 0.25)
    direction = mix_directions(setup.random_dir, setup.sensitive_dir, 0.25)
    new = perturb(setup.params, direction, 0.4)
    assert float(view.l2) == pytest.approx(0.4, rel=1e-5)
    assert float(view.kl_old_new) == pytest.approx(
        float(mean_kl(setup.logits_fn, setup.params, new)), rel=1e-4
    )
    assert float(view.kl_new_old) == pytest.approx(
        float(mean_kl(setup.logits_fn, new, setup.params)), rel=1e-4
    )
    np.testing.assert_allclose(view.probs_old.sum(-1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(
        view.probs_new,
        jax.nn.softmax(setup.model.policy(new, setup.display_obs).logits),
        rtol=1e-4,
        atol=1e-6,
    )
    np.testing.assert_allclose(view.radii, radius_grid(), rtol=1e-6)
    np.testing.assert_allclose(
        view.kl_curve,
        kl_along(setup.logits_fn, setup.params, direction, radius_grid()),
        rtol=1e-4,
        atol=1e-8,
    )
    with pytest.raises(ValueError, match="mix"):
        distance_view(setup, 0.4, 1.2)
    with pytest.raises(ValueError, match="radius"):
        distance_view(setup, -0.4, 0.5)


# --------------------------------------------------------------------------- the panel


def readout_numbers(html: str) -> dict[str, float]:
    found = dict(
        re.findall(
            r"(L2|KL\(old‖new\)|KL\(new‖old\)) = (?:</?b>)?\s*([-+.e\d]+)", html.replace("</b>", "")
        )
    )
    return {k: float(v) for k, v in found.items()}


def test_distance_panel_headless(setup):
    panel = distance_panel(radius=0.3, mix=1.0, setup=setup)
    assert set(panel.sliders) == {"radius", "mix"}
    ax_p, ax_kl = panel.figure.axes

    panel.sliders["radius"].value = 0.6
    view = distance_view(setup, 0.6, 1.0)
    numbers = readout_numbers(panel.readout.value)
    assert numbers["L2"] == pytest.approx(0.6, abs=1e-3)
    assert numbers["KL(old‖new)"] == pytest.approx(float(view.kl_old_new), rel=1e-2)
    assert numbers["KL(new‖old)"] == pytest.approx(float(view.kl_new_old), rel=1e-2)
    ax_p, ax_kl = panel.figure.axes
    point = ax_kl.lines[3]
    assert point.get_xdata()[0] == pytest.approx(0.6, rel=1e-5)
    assert point.get_ydata()[0] == pytest.approx(float(view.kl_old_new), rel=1e-5)
    heights = [bar.get_height() for bar in ax_p.patches]
    n = len(DISPLAY_STATES)
    np.testing.assert_allclose(heights[:n], view.probs_old[:, 1], rtol=1e-5)
    np.testing.assert_allclose(heights[n:], view.probs_new[:, 1], rtol=1e-5)
    sensitive_kl = float(view.kl_old_new)

    panel.sliders["mix"].value = 0.0
    view = distance_view(setup, 0.6, 0.0)
    numbers = readout_numbers(panel.readout.value)
    assert numbers["KL(old‖new)"] == pytest.approx(float(view.kl_old_new), rel=1e-2)
    assert numbers["KL(old‖new)"] < sensitive_kl / 50
    ax_p, ax_kl = panel.figure.axes
    np.testing.assert_allclose(
        ax_kl.lines[2].get_ydata(),
        np.maximum(
            np.asarray(kl_along(setup.logits_fn, setup.params, setup.random_dir, radius_grid())),
            1e-9,
        ),
        rtol=1e-4,
        atol=1e-8,
    )
    np.testing.assert_allclose(
        ax_kl.lines[2].get_ydata(), ax_kl.lines[0].get_ydata(), rtol=1e-4, atol=1e-8
    )
    assert panel.png()[:4] == b"\x89PNG"


def test_distance_panel_rejects_out_of_range_values(setup):
    with pytest.raises(ValueError, match="radius"):
        distance_panel(radius=10.0, setup=setup)
    with pytest.raises(ValueError, match="mix"):
        distance_panel(mix=-0.1, setup=setup)
