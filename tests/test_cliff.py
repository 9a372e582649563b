"""Lesson 01's computations (course_lib.lessons.l01_cliff) and its step-size panel.

Most tests use a small untrained CartPole policy (a (16,) tanh network) perturbed away from
uniform, so that nothing here trains; ``test_lesson_setup_shows_the_cliff`` (slow) trains the
lesson's policy and checks the lesson's claims.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CARTPOLE, CARTPOLE_MODEL

from course_lib.core.surrogate import surrogate
from course_lib.lessons import l01_cliff as C
from course_lib.rl.evaluate import episode_returns
from course_lib.rl.networks import model_from_config
from course_lib.rl.train import Params

MODEL, ENV = CARTPOLE_MODEL, CARTPOLE
LOGITS = jax.jit(lambda theta, obs: MODEL.policy(theta, obs).logits)


@pytest.fixture(scope="module")
def params(cartpole_params) -> Params:
    return cartpole_params


@pytest.fixture(scope="module")
def batch(cartpole_batch):
    return cartpole_batch


@pytest.fixture(scope="module")
def setup(params) -> C.CliffSetup:
    return C.setup_from_params(
        params,
        MODEL,
        ENV,
        jax.random.key(3),
        jax.random.key(4),
        n_episodes=8,
        num_envs=4,
        num_steps=32,
        step_sizes=np.logspace(-1, 2, 7),
    )


# ----------------------------------------------------------------------------- the batch


# ----------------------------------------------------------------------------- the gradient


def test_policy_gradient_is_the_score_function_gradient(params, batch):
    g = C.policy_gradient(params.policy, batch, MODEL)

    def reinforce(theta):  # E[log π(a|s)·A]: same gradient as the surrogate at θ_old
        logp = MODEL.log_prob(MODEL.policy(theta, batch.obs), batch.actions)
        return jnp.mean(logp * batch.advantages)

    np.testing.assert_allclose(g, jax.grad(reinforce)(params.policy), rtol=1e-4, atol=1e-6)


def test_policy_gradient_matches_finite_differences(params, batch):
    g = C.policy_gradient(params.policy, batch, MODEL)
    v = jax.random.normal(jax.random.key(5), g.shape)
    v = v / jnp.linalg.norm(v)

    def objective(theta):
        logp = MODEL.log_prob(MODEL.policy(theta, batch.obs), batch.actions)
        return float(surrogate(logp, batch.logp_old, batch.advantages))

    h = 1e-2
    fd = (objective(params.policy + h * v) - objective(params.policy - h * v)) / (2 * h)
    assert math.isclose(float(g @ v), fd, rel_tol=2e-2, abs_tol=1e-4)


def test_policy_gradient_step_moves_along_the_gradient(params, batch):
    g = C.policy_gradient(params.policy, batch, MODEL)
    new = C.policy_gradient_step(params.policy, batch, MODEL, 2.5)
    np.testing.assert_allclose(new, params.policy + 2.5 * g, rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(
        C.policy_gradient_step(params.policy, batch, MODEL, 0.0), params.policy
    )
    # A small ascent step raises the surrogate (first order: α·‖g‖²).
    logp = lambda th: MODEL.log_prob(MODEL.policy(th, batch.obs), batch.actions)
    small = C.policy_gradient_step(params.policy, batch, MODEL, 1e-2)
    before = surrogate(logp(params.policy), batch.logp_old, batch.advantages)
    assert float(surrogate(logp(small), batch.logp_old, batch.advantages)) > float(before)
    with pytest.raises(ValueError, match="step_size"):
        C.policy_gradient_step(params.policy, batch, MODEL, -1.0)


def test_policy_gradient_step_works_under_vmap(params, batch):
    alphas = jnp.array([0.0, 1.0, 3.0])
    stepped = jax.vmap(lambda a: C.policy_gradient_step(params.policy, batch, MODEL, a))(alphas)
    g = C.policy_gradient(params.policy, batch, MODEL)
    np.testing.assert_allclose(stepped[2], params.policy + 3.0 * g, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- the distances


def _numpy_change(old, new, obs):
    lo = np.asarray(MODEL.policy(old, obs).logits, np.float64)
    ln = np.asarray(MODEL.policy(new, obs).logits, np.float64)
    po = np.exp(lo) / np.exp(lo).sum(-1, keepdims=True)
    pn = np.exp(ln) / np.exp(ln).sum(-1, keepdims=True)
    kl = (po * (np.log(po) - np.log(pn))).sum(-1)
    d = np.asarray(new, np.float64) - np.asarray(old, np.float64)
    return {
        "l2": np.linalg.norm(d),
        "rel_l2": np.linalg.norm(d) / np.linalg.norm(np.asarray(old, np.float64)),
        "kl": kl.mean(),
        "max_kl": kl.max(),
        "tv": 0.5 * np.abs(pn - po).sum(-1).mean(),
        "flipped": (po.argmax(-1) != pn.argmax(-1)).mean(),
    }


def test_policy_change_matches_numpy(params, batch):
    new = C.policy_gradient_step(params.policy, batch, MODEL, 5.0)
    got = C.policy_change(params.policy, new, batch.obs, MODEL)
    ref = _numpy_change(params.policy, new, batch.obs)
    for name, value in ref.items():
        assert math.isclose(float(getattr(got, name)), value, rel_tol=1e-4, abs_tol=1e-5), name
    assert float(got.kl) > 0 and 0 < float(got.flipped) < 1


def test_policy_change_of_no_step_is_zero(params, batch):
    got = C.policy_change(params.policy, params.policy, batch.obs, MODEL)
    assert all(float(x) == 0.0 for x in got)


def test_policy_change_rejects_bad_shapes(params, batch):
    with pytest.raises(ValueError, match="new_params"):
        C.policy_change(params.policy, params.policy[:-1], batch.obs, MODEL)
    with pytest.raises(ValueError, match="obs"):
        C.policy_change(params.policy, params.policy, batch.obs[0], MODEL)


def test_random_step_has_the_same_length_and_a_tiny_kl(params, batch):
    step = 5.0 * C.policy_gradient(params.policy, batch, MODEL)
    moved = C.random_step_like(params.policy, step, jax.random.key(7))
    assert math.isclose(
        float(jnp.linalg.norm(moved - params.policy)), float(jnp.linalg.norm(step)), rel_tol=1e-4
    )
    along = C.policy_change(params.policy, params.policy + step, batch.obs, MODEL)
    random = C.policy_change(params.policy, moved, batch.obs, MODEL)
    assert math.isclose(float(random.l2), float(along.l2), rel_tol=1e-4)
    assert float(random.kl) < float(along.kl)
    with pytest.raises(ValueError, match="step"):
        C.random_step_like(params.policy, step[:3], jax.random.key(7))


# ----------------------------------------------------------------------------- the return


def test_sweep_equals_one_step_at_a_time(params, batch):
    g = C.policy_gradient(params.policy, batch, MODEL)
    alphas = [0.0, 0.5, 4.0, 30.0]
    key = jax.random.key(13)
    sweep = C.step_size_sweep(params.policy, g, alphas, batch.obs, MODEL, ENV, key, 8)
    assert sweep.mean_return.shape == (4,) and sweep.change.kl.shape == (4,)
    for i, a in enumerate(alphas):
        one = C.step_outcome(params.policy, g, a, batch.obs, MODEL, ENV, key, 8)
        new = params.policy + a * g
        mean = float(jnp.mean(episode_returns(new, MODEL, ENV, key, 8)))
        assert math.isclose(float(one.mean_return), mean, rel_tol=1e-6)
        assert math.isclose(float(sweep.mean_return[i]), mean, rel_tol=1e-6)
        assert math.isclose(
            float(sweep.change.kl[i]), float(one.change.kl), rel_tol=1e-3, abs_tol=1e-7
        )
    # The weight distance is linear in α; the KL starts at 0 and grows.
    rel = np.asarray(sweep.change.rel_l2)
    np.testing.assert_allclose(rel, np.asarray(alphas) * rel[1] / 0.5, rtol=1e-4)
    assert float(sweep.change.kl[0]) == 0.0
    assert np.all(np.diff(np.asarray(sweep.change.kl)) > 0)


def test_sweep_rejects_bad_step_sizes(params, batch):
    g = C.policy_gradient(params.policy, batch, MODEL)
    args = (batch.obs, MODEL, ENV, jax.random.key(0))
    with pytest.raises(ValueError, match="step_sizes"):
        C.step_size_sweep(params.policy, g, [1.0, -1.0], *args)
    with pytest.raises(ValueError, match="step_sizes"):
        C.step_size_sweep(params.policy, g, [[1.0]], *args)
    with pytest.raises(ValueError, match="gradient"):
        C.step_size_sweep(params.policy, g[:5], [1.0], *args)
    with pytest.raises(ValueError, match="step_size"):
        C.step_outcome(params.policy, g, -0.1, *args)


# ----------------------------------------------------------------------------- KL crossing


def test_predict_step_size_inverts_the_quadratic_model():
    assert math.isclose(C.predict_step_size(1.0, 0.01, 0.1), math.sqrt(10.0))
    assert math.isclose(C.predict_step_size(0.5, 0.4, 0.1), 0.25)
    with pytest.raises(ValueError, match="kl"):
        C.predict_step_size(1.0, 0.0, 0.1)
    with pytest.raises(ValueError, match="target_kl"):
        C.predict_step_size(1.0, 0.1, -0.1)


def test_crossing_step_size_is_exact_for_a_power_law():
    alphas = np.logspace(-2, 2, 21)
    kls = 0.003 * alphas**2
    assert math.isclose(
        C.crossing_step_size(alphas, kls, 0.1), math.sqrt(0.1 / 0.003), rel_tol=1e-9
    )
    assert math.isnan(C.crossing_step_size(alphas, kls, 1e3))
    assert C.crossing_step_size(alphas, kls, 1e-9) == alphas[0]
    with pytest.raises(ValueError, match="kls"):
        C.crossing_step_size(alphas, kls[:-1], 0.1)
    with pytest.raises(ValueError, match="increasing"):
        C.crossing_step_size(alphas[::-1], kls, 0.1)


# ----------------------------------------------------------------------------- the panel


def test_step_view_reuses_the_setup(setup):
    view = C.step_view(setup, 10.0, n_states=32)
    new = setup.params.policy + 10.0 * setup.gradient
    probs_old = np.asarray(
        C.action_probabilities(setup.params.policy, setup.batch.obs[:32], MODEL)
    )[:, 1]
    probs_new = np.asarray(C.action_probabilities(new, setup.batch.obs[:32], MODEL))[:, 1]
    order = np.argsort(probs_old, kind="stable")
    np.testing.assert_allclose(view.p_old, probs_old[order], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(view.p_new, probs_new[order], rtol=1e-4, atol=1e-5)
    assert np.all(np.diff(view.p_old) >= 0)
    mean = float(jnp.mean(episode_returns(new, MODEL, ENV, setup.eval_key, 8)))
    assert math.isclose(float(view.outcome.mean_return), mean, rel_tol=1e-6)


def _numbers(html: str) -> list[float]:
    import re

    text = re.sub(r"<[^>]+>|&nbsp;", " ", html)
    return [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?(?:e-?\d+)?", text)]


def test_panel_redraws_on_every_slider_move(setup):
    from course_lib.widgets.l01_cliff import step_size_panel

    panel = step_size_panel(step_size=0.5, setup=setup)
    assert list(panel.sliders) == ["step_size"]
    for alpha in (0.5, 30.0, 2.0):
        panel.sliders["step_size"].value = alpha
        view = C.step_view(setup, alpha)
        ax_p, ax_r, ax_d, ax_w = panel.figure.axes
        np.testing.assert_allclose(ax_p.lines[1].get_ydata(), view.p_new, rtol=1e-5)
        marker = ax_r.lines[-1]
        assert math.isclose(float(marker.get_xdata()[0]), alpha, rel_tol=1e-6)
        assert math.isclose(
            float(marker.get_ydata()[0]), float(view.outcome.mean_return), rel_tol=1e-6
        )
        # Each distance has its own axis: the KL (nats) on the left, ‖Δθ‖/‖θ_old‖ on the right.
        np.testing.assert_allclose(ax_d.lines[-1].get_ydata(), [float(view.outcome.change.kl)],
                                   rtol=1e-5)
        np.testing.assert_allclose(ax_w.lines[-1].get_ydata(),
                                   [float(view.outcome.change.rel_l2)], rtol=1e-5)
        assert "nats" in ax_d.get_ylabel() and "‖Δθ‖" in ax_w.get_ylabel()
        nums = _numbers(panel.readout.value)
        c = view.outcome.change
        assert math.isclose(nums[0], alpha, rel_tol=1e-2)
        assert nums[1] == round(setup.return_before) and nums[2] == round(
            float(view.outcome.mean_return)
        )
        assert math.isclose(nums[3], float(c.rel_l2), abs_tol=1e-3)
        assert math.isclose(nums[4], float(c.kl), rel_tol=1e-2, abs_tol=1e-6)
        assert math.isclose(nums[6], round(100 * float(c.flipped)), abs_tol=0.5)
    # The curve behind the marker is the stored sweep.
    np.testing.assert_allclose(ax_r.lines[0].get_ydata(), setup.sweep.mean_return)


def test_panel_rejects_bad_arguments(setup):
    from course_lib.widgets.l01_cliff import step_size_panel

    with pytest.raises(ValueError, match="step_size"):
        step_size_panel(step_size=1e3, setup=setup)
    with pytest.raises(TypeError, match="setup"):
        step_size_panel(step_size=1.0, setup=object())


# ----------------------------------------------------------------------------- the lesson


@pytest.mark.slow
def test_lesson_setup_shows_the_cliff():
    """The lesson's trained policy: small steps keep or raise its return, one step of
    α = 20 drops it to a tenth while the weights move by about a tenth of their norm."""
    setup = C.make_cliff_setup()
    assert 120 <= setup.return_before <= 320
    sweep = setup.sweep
    a = np.asarray(sweep.step_size)
    r = np.asarray(sweep.mean_return)
    assert r[a <= 1.0].min() >= 0.9 * setup.return_before
    assert r[a >= 40.0].max() <= 40.0
    view = C.step_view(setup, 20.0)
    assert float(view.outcome.mean_return) <= 0.25 * setup.return_before
    assert float(view.outcome.change.rel_l2) <= 0.2
    assert float(view.outcome.change.kl) >= 0.1


def test_a_stored_run_loads_as_it_was_saved(tmp_path, params):
    path = tmp_path / "run.npz"
    result = C.CliffRun(params, np.array([1024, 2048]), np.array([20.5, 40.25]))
    C.save_cliff_run(result, path)
    loaded = C.load_cliff_run(path)
    np.testing.assert_array_equal(loaded.params.policy, params.policy)
    np.testing.assert_array_equal(loaded.params.value, params.value)
    np.testing.assert_array_equal(loaded.mean_return, [20.5, 40.25])
    assert loaded.params.policy.dtype == jnp.float32


def test_the_stored_lesson_run_fits_the_lesson_model():
    run = C.load_cliff_run()
    pi, v = model_from_config(C.CLIFF_CONFIG).init(jax.random.key(0))
    assert run.params.policy.shape == pi.shape and run.params.value.shape == v.shape
    assert run.env_steps.shape == run.mean_return.shape == (C.CLIFF_CONFIG.iterations,)
    assert bool(jnp.all(jnp.isfinite(run.params.policy)))
