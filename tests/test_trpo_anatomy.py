"""Lesson 06's computations (course_lib.lessons.l06_trpo) and its two δ panels.

The update tests use a small CartPole policy (one tanh layer of 8 units, P = 58 parameters)
perturbed away from uniform, so the dense Fisher matrix is a cheap independent reference.
The sweep summaries and the sweep panel run on synthetic ``TrainResult`` arrays; only the
live panel trains (a tiny configuration).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.core.curvature import dense_fisher
from course_lib.lessons.l06_trpo import (
    batch_kl,
    batch_surrogate,
    delta_view,
    dissect_trpo_update,
    library_trpo_step,
    live_run,
    overshoot_fraction,
)
from course_lib.rl.config import TrainConfig
from course_lib.rl.envs import make_env
from course_lib.rl.networks import ActorCritic
from course_lib.rl.rollout import collect_batch
from course_lib.rl.train import Params, TrainResult, train
from course_lib.widgets.l06_trpo import trpo_delta_panel, trpo_live_panel

MODEL = ActorCritic(obs_dim=4, n_actions=2, discrete=True, hidden=(8,))


@pytest.fixture(scope="module")
def theta():
    pi, _ = MODEL.init(jax.random.key(0))
    return pi + 0.3 * jax.random.normal(jax.random.key(1), pi.shape)


@pytest.fixture(scope="module")
def batch(theta):
    _, v = MODEL.init(jax.random.key(0))
    env = make_env("CartPole-v1")
    return collect_batch(Params(theta, v), MODEL, env, jax.random.key(2), num_envs=4,
                         num_steps=32)


@pytest.fixture(scope="module")
def fisher(theta, batch):
    """The dense [P, P] Fisher matrix: the Hessian of the mean KL at θ_old."""
    return dense_fisher(lambda p: batch_kl(p, batch, MODEL), theta)


# ------------------------------------------------------------------------- one update


def test_gradient_is_the_score_function_policy_gradient(theta, batch):
    a = dissect_trpo_update(theta, batch, MODEL, 0.01)

    def score(p):
        logp = MODEL.log_prob(MODEL.policy(p, batch.obs), batch.actions)
        return jnp.mean(logp * batch.advantages)

    np.testing.assert_allclose(a.gradient, jax.grad(score)(theta), rtol=1e-4, atol=1e-6)
    assert float(batch_surrogate(theta, batch, MODEL)) == pytest.approx(
        float(jnp.mean(batch.advantages)), abs=1e-6)
    assert float(batch_kl(theta, batch, MODEL)) == pytest.approx(0.0, abs=1e-7)


def test_direction_solves_the_damped_fisher_system(theta, batch, fisher):
    lam = 0.1
    a = dissect_trpo_update(theta, batch, MODEL, 0.01, cg_damping=lam)
    damped = fisher + lam * jnp.eye(fisher.shape[0])
    expected = jnp.linalg.solve(damped, a.gradient)
    np.testing.assert_allclose(a.direction, expected, rtol=2e-3, atol=1e-5)
    true_residual = jnp.linalg.norm(a.gradient - damped @ a.direction)
    assert float(a.true_residual) == pytest.approx(float(true_residual), abs=1e-5)


def test_cg_residuals_start_at_the_gradient_norm_and_fall(theta, batch):
    a = dissect_trpo_update(theta, batch, MODEL, 0.01)
    r = np.asarray(a.cg_residuals)
    assert r.shape == (11,)
    assert r[0] == pytest.approx(float(jnp.linalg.norm(a.gradient)), rel=1e-6)
    assert r[-1] < 1e-3 * r[0]
    assert float(a.true_residual) < 1e-3 * r[0]


@pytest.mark.parametrize("delta", [0.01, 0.1])
def test_scaled_step_puts_the_quadratic_model_on_delta(theta, batch, fisher, delta):
    lam = 0.1
    a = dissect_trpo_update(theta, batch, MODEL, delta, cg_damping=lam)
    d, s = a.direction, a.full_step
    damped = fisher + lam * jnp.eye(fisher.shape[0])
    assert float(a.dFd) == pytest.approx(float(d @ damped @ d), rel=1e-4)
    assert float(a.scale) == pytest.approx(float(jnp.sqrt(2 * delta / (d @ damped @ d))), rel=1e-4)
    np.testing.assert_allclose(s, a.scale * d, rtol=1e-5, atol=1e-8)
    assert float(a.quadratic_kl) == pytest.approx(delta, rel=1e-4)
    assert float(a.quadratic_kl_undamped) == pytest.approx(float(0.5 * s @ fisher @ s), rel=1e-3)
    assert float(a.quadratic_kl_undamped) == pytest.approx(
        delta - 0.5 * lam * float(s @ s), rel=1e-3)
    assert float(a.linear_gain) == pytest.approx(float(a.gradient @ s), rel=1e-5)
    assert float(a.full_step_kl) == pytest.approx(float(batch_kl(theta + s, batch, MODEL)), rel=1e-5)


@pytest.mark.parametrize("delta, damping", [(0.01, 0.1), (0.1, 1e-3), (1.0, 1e-3), (1.0, 0.0)])
def test_dissection_lands_where_the_library_update_lands(theta, batch, delta, damping):
    a = dissect_trpo_update(theta, batch, MODEL, delta, cg_damping=damping)
    new, diag = library_trpo_step(theta, batch, MODEL, delta, cg_damping=damping)
    np.testing.assert_allclose(a.new_params, new, rtol=0, atol=1e-6)
    assert int(diag["backtracks"]) == int(a.line_search.n_backtracks)
    assert bool(diag["accepted"]) == bool(a.line_search.accepted)


@pytest.mark.parametrize("delta, damping", [(0.01, 0.1), (0.1, 1e-3), (1.0, 0.0)])
def test_line_search_trace_accepts_the_first_acceptable_fraction(theta, batch, delta, damping):
    a = dissect_trpo_update(theta, batch, MODEL, delta, cg_damping=damping)
    ls, t = a.line_search, a.line_search.trace
    assert np.asarray(t.tried).all()                          # the full trace
    fractions = 0.8 ** np.arange(10)
    np.testing.assert_allclose(t.fractions, fractions, rtol=1e-6)
    for k in range(10):
        cand = theta + fractions[k] * a.full_step
        assert float(t.kl[k]) == pytest.approx(float(batch_kl(cand, batch, MODEL)), rel=1e-4, abs=1e-9)
        gain = batch_surrogate(cand, batch, MODEL) - batch_surrogate(theta, batch, MODEL)
        assert float(t.improvement[k]) == pytest.approx(float(gain), rel=1e-4, abs=1e-7)
    ok = (np.asarray(t.kl) <= delta) & (np.asarray(t.improvement) > 0)
    np.testing.assert_array_equal(np.asarray(t.acceptable), ok)
    k = int(np.argmax(ok)) if ok.any() else 10
    assert int(ls.n_backtracks) == k
    if ok.any():
        np.testing.assert_allclose(a.new_params, theta + fractions[k] * a.full_step, atol=1e-6)
        assert float(ls.kl) <= delta
    else:
        np.testing.assert_array_equal(a.new_params, theta)


def test_the_cases_above_cover_backtracking_and_rejection(theta, batch):
    ks = [int(dissect_trpo_update(theta, batch, MODEL, d, cg_damping=lam).line_search.n_backtracks)
          for d, lam in [(0.01, 0.1), (0.1, 1e-3), (1.0, 0.0)]]
    assert ks[0] == 0 and 1 <= ks[1] <= 9 and ks[2] == 10


def test_npg_is_the_full_step(theta, batch):
    a = dissect_trpo_update(theta, batch, MODEL, 0.1, cg_damping=1e-3)
    new, diag = library_trpo_step(theta, batch, MODEL, 0.1, cg_damping=1e-3, line_search=False)
    np.testing.assert_allclose(new, theta + a.full_step, atol=1e-6)
    assert int(diag["backtracks"]) == 0 and float(diag["step_norm"]) == pytest.approx(
        float(jnp.linalg.norm(a.full_step)), rel=1e-5)
    assert int(a.line_search.n_backtracks) >= 1          # TRPO would have shrunk this one


def test_fisher_subsample_changes_only_the_curvature(theta, batch):
    full = dissect_trpo_update(theta, batch, MODEL, 0.01)
    sub = dissect_trpo_update(theta, batch, MODEL, 0.01, fisher_subsample=4)
    np.testing.assert_allclose(sub.gradient, full.gradient, rtol=1e-6)
    assert float(jnp.linalg.norm(sub.direction - full.direction)) > 1e-4
    assert float(sub.quadratic_kl) == pytest.approx(0.01, rel=1e-4)


@pytest.mark.parametrize("kwargs, name", [
    ({"delta": 0.0}, "delta"),
    ({"delta": -1.0}, "delta"),
    ({"cg_damping": -0.1}, "cg_damping"),
    ({"backtrack_ratio": 1.0}, "backtrack_ratio"),
    ({"cg_iters": 0}, "cg_iters"),
    ({"max_backtracks": 0}, "max_backtracks"),
    ({"fisher_subsample": 0}, "fisher_subsample"),
])
def test_update_rejects_bad_arguments(theta, batch, kwargs, name):
    with pytest.raises(ValueError, match=name):
        dissect_trpo_update(theta, batch, MODEL, **kwargs)
    with pytest.raises(ValueError, match=name):
        library_trpo_step(theta, batch, MODEL, **kwargs)


def test_update_rejects_bad_types_and_shapes(theta, batch):
    with pytest.raises(ValueError, match="policy_params"):
        dissect_trpo_update(theta[None], batch, MODEL)
    with pytest.raises(TypeError, match="model"):
        dissect_trpo_update(theta, batch, "model")
    with pytest.raises(TypeError, match="batch"):
        dissect_trpo_update(theta, tuple(batch), MODEL)
    with pytest.raises(TypeError, match="cg_iters"):
        dissect_trpo_update(theta, batch, MODEL, cg_iters=2.0)


# ------------------------------------------------------------------------ sweep summaries

DELTAS = [0.001, 0.01, 0.1]
S, ITERS = 3, 8


def fake_sweep() -> TrainResult:
    """A [3 δ, 3 seeds, 8 iterations] result with known values."""
    rng = np.random.default_rng(0)
    ret = rng.uniform(0, 500, (len(DELTAS), S, ITERS)).astype(np.float32)
    kl = (np.array(DELTAS)[:, None, None] * rng.uniform(0.5, 1.2, (len(DELTAS), S, ITERS)))
    accepted = (rng.uniform(size=kl.shape) > 0.1).astype(np.float32)
    backtracks = np.where(accepted > 0, rng.integers(0, 3, kl.shape), 10).astype(np.float32)
    diag = {"kl": kl.astype(np.float32), "accepted": accepted, "backtracks": backtracks}
    steps = np.broadcast_to(np.arange(1, ITERS + 1) * 1024, ret.shape)
    zeros = np.zeros((len(DELTAS), S, 4), np.float32)
    return TrainResult(Params(zeros, zeros), steps, ret, diag)


def test_overshoot_fraction_counts_updates_above_delta():
    kl = np.array([[[0.005, 0.011, 0.02], [0.009, 0.016, 0.001]],
                   [[0.05, 0.2, 0.09], [0.1, 0.149, 0.0]]])
    np.testing.assert_allclose(overshoot_fraction(kl, [0.01, 0.1]), [3 / 6, 2 / 6])
    np.testing.assert_allclose(overshoot_fraction(kl, [0.01, 0.1], factor=1.5), [2 / 6, 1 / 6])
    assert float(overshoot_fraction(kl[0], 0.01)) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="delta"):
        overshoot_fraction(kl, [0.01, 0.1, 1.0])
    with pytest.raises(ValueError, match="delta"):
        overshoot_fraction(kl, 0.0)
    with pytest.raises(ValueError, match="kl"):
        overshoot_fraction(np.zeros(3), 0.01)
    with pytest.raises(ValueError, match="factor"):
        overshoot_fraction(kl, 0.01 * np.ones(2), factor=0)


def test_delta_view_summarises_one_row():
    result = fake_sweep()
    v = delta_view(result, DELTAS, 0.012)
    assert v.delta == 0.01 and v.index == 1
    np.testing.assert_allclose(v.returns.mean, result.mean_return[1].mean(axis=0), rtol=1e-6)
    np.testing.assert_allclose(v.kl.hi, result.diagnostics["kl"][1].max(axis=0), rtol=1e-6)
    np.testing.assert_allclose(v.final, result.mean_return[1][:, -5:].mean(axis=-1), rtol=1e-6)
    np.testing.assert_array_equal(v.env_steps, np.arange(1, ITERS + 1) * 1024)
    acc = result.diagnostics["accepted"][1] > 0.5
    assert v.accepted == pytest.approx(acc.mean())
    assert v.backtracked == pytest.approx((acc & (result.diagnostics["backtracks"][1] >= 1)).mean())
    assert v.overshoot == pytest.approx((result.diagnostics["kl"][1] > 0.01).mean())


def test_delta_view_rejects_a_result_of_another_grid():
    with pytest.raises(ValueError, match="deltas"):
        delta_view(fake_sweep(), [0.01, 0.1], 0.01)
    with pytest.raises(TypeError, match="result"):
        delta_view({"mean_return": 1}, DELTAS, 0.01)


# --------------------------------------------------------------------------------- panels


def test_delta_panel_redraws_the_chosen_row():
    result = fake_sweep()
    panel = trpo_delta_panel(result, DELTAS, delta=0.002)     # snaps to the nearest, 0.001
    slider = panel.sliders["delta"]
    assert slider.value == 0.001
    for i, d in [(2, 0.1), (1, 0.01), (0, 0.001)]:
        slider.value = d
        ax_ret, ax_kl = panel.figure.axes
        np.testing.assert_allclose(ax_ret.lines[0].get_ydata(),
                                   result.mean_return[i].mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(ax_kl.lines[0].get_ydata(),
                                   result.diagnostics["kl"][i].mean(axis=0), rtol=1e-6)
        np.testing.assert_allclose(ax_kl.lines[1].get_ydata(), [d, d])
        assert len(ax_ret.lines) == 1 + len(DELTAS) - 1      # the others in grey
        final = result.mean_return[i][:, -5:].mean()
        assert f"δ = {d:g}</b>" in panel.readout.value
        assert f"<b>{final:.0f}</b>" in panel.readout.value


def test_delta_panel_rejects_a_mismatched_grid():
    with pytest.raises(ValueError, match="deltas"):
        trpo_delta_panel(fake_sweep(), [0.01, 0.1])


TINY = TrainConfig(algo="trpo", total_steps=4 * 128, num_envs=2, num_steps=64, hidden=(8,),
                   epochs=1, minibatches=2)


@pytest.mark.slow
def test_live_run_is_a_fresh_training_run():
    run = live_run(TINY, 0.05, seed=3)
    ref = train(TINY.replace(delta=0.05), 3)
    np.testing.assert_array_equal(run.mean_return, ref.mean_return)
    np.testing.assert_array_equal(run.kl, ref.diagnostics["kl"])
    assert run.delta == 0.05 and run.seed == 3 and run.env_steps.shape == (4,)
    assert (run.kl <= 0.05 * (1 + 1e-4)).all()


@pytest.mark.slow
def test_live_panel_retrains_on_every_move():
    panel = trpo_live_panel(delta=0.01, seed=1, config=TINY)
    for d in (0.2, 0.002):
        panel.sliders["delta"].value = d
        run = live_run(TINY, panel.sliders["delta"].value, seed=1)
        ax_ret, ax_kl = panel.figure.axes
        np.testing.assert_allclose(ax_ret.lines[0].get_ydata(), run.mean_return)
        np.testing.assert_allclose(ax_kl.lines[0].get_ydata(), run.kl)
        np.testing.assert_allclose(ax_kl.lines[1].get_ydata(), [run.delta] * 2)
        assert f"δ = {run.delta:.3g}</b>" in panel.readout.value


def test_live_panel_and_run_reject_bad_arguments():
    with pytest.raises(ValueError, match="delta"):
        trpo_live_panel(delta=0.0001)
    with pytest.raises(ValueError, match="algo"):
        trpo_live_panel(config=TrainConfig(algo="ppo"))
    with pytest.raises(ValueError, match="delta"):
        live_run(TINY, 0.0)
    with pytest.raises(TypeError, match="config"):
        live_run({"algo": "trpo"}, 0.01)
