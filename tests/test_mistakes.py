"""Lesson 09's computations (course_lib.lessons.l09_mistakes) and its epochs panel.

Everything runs on a small untrained CartPole policy (a (16,) tanh network perturbed away from
uniform) and short batches, so nothing here trains.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CARTPOLE, CARTPOLE_MODEL

from course_lib import TrainConfig, episode_returns
from course_lib.lessons import l09_mistakes as M
from course_lib.rl import ppo, trpo
from course_lib.rl.ppo import PPOHyper, optimizer, ppo_update
from course_lib.rl.train import Params
from course_lib.rl.trpo import TRPOHyper, trpo_policy_step
from course_lib.widgets.l09_mistakes import epochs_panel

MODEL, ENV = CARTPOLE_MODEL, CARTPOLE


@pytest.fixture(scope="module")
def params(cartpole_params) -> Params:
    return cartpole_params


@pytest.fixture(scope="module")
def batch(cartpole_batch):
    return cartpole_batch


@pytest.fixture(scope="module")
def study(params, batch) -> M.EpochStudy:
    return M.epoch_study(MODEL, params, batch, jax.random.key(3), max_epochs=8, lr=1e-2,
                         minibatches=4)


def _surrogate_gradient(policy_params, batch):
    """∇ mean(r·A) written out by hand (no course_lib.core.surrogate)."""
    def plain(p):
        logp = MODEL.log_prob(MODEL.policy(p, batch.obs), batch.actions)
        return jnp.mean(jnp.exp(logp - batch.logp_old) * batch.advantages)

    return jax.grad(plain)(policy_params)


def _kl(policy_params, batch):
    return float(jnp.mean(MODEL.kl(batch.dist_old, MODEL.policy(policy_params, batch.obs))))


# ---------------------------------------------------------------------- training summaries


def test_worst_drop_on_known_curves():
    curves = np.array([[1.0, 2.0, 1.0, 4.0, 2.0], [10.0, 20.0, 30.0, 40.0, 50.0]])
    # best so far [1, 2, 2, 4, 4]: falls 0, 0, 1/2, 0, 1/2; a rising curve never falls.
    np.testing.assert_allclose(M.worst_drop(curves), [0.5, 0.0])
    assert M.worst_drop(np.array([500.0, 9.0])) == pytest.approx(0.982)
    assert M.worst_drop(np.ones((2, 3, 4))).shape == (2, 3)


def test_summaries_reject_bad_arguments():
    with pytest.raises(ValueError, match="mean_return"):
        M.worst_drop(np.array([1.0, 0.0]))


def test_epochs_until_stop():
    assert M.epochs_until_stop([0.001, 0.004, 0.03, 0.2], 0.02) == 3
    assert M.epochs_until_stop([0.001, 0.002], 0.02) == 2        # never exceeded: all ran
    assert M.epochs_until_stop([0.5, 0.001], 0.02) == 1          # the first epoch crossed
    assert M.epochs_until_stop([0.02, 0.021], 0.02) == 2         # equal is not "exceeds"
    with pytest.raises(ValueError, match="target_kl"):
        M.epochs_until_stop([0.1], 0.0)
    with pytest.raises(ValueError, match="kl_after_epoch"):
        M.epochs_until_stop([], 0.02)


# ---------------------------------------------------------------------- the epoch study


def test_epoch_study_shapes_and_start(study):
    assert study.epochs.tolist() == list(range(9))
    for arr in (study.kl, study.max_ratio, study.clipfrac):
        assert arr.shape == (2, 9)
    np.testing.assert_allclose(study.kl[:, 0], 0.0, atol=1e-6)       # epoch 0 is θ_old
    np.testing.assert_allclose(study.max_ratio[:, 0], 1.0, atol=1e-5)
    assert study.eps == 0.2 and study.lr == 1e-2


def test_epoch_study_matches_ppo_update_run_by_hand(params, batch, study):
    """Rows equal two library ppo_update(epochs=1) calls with the same keys and one Adam state."""
    hp = PPOHyper.from_config(TrainConfig(), lr=1e-2, eps=0.2, target_kl=jnp.inf, beta=0.0)
    keys = jax.random.split(jax.random.key(3), 8)
    update = jax.jit(ppo_update, static_argnames=("model", "epochs", "minibatches", "objective"))
    for row, objective in enumerate(("clip", "none")):
        p = (params.policy, params.value)
        state = optimizer(hp.max_grad_norm).init(p)
        for epoch in range(2):
            p, state, _ = update(p, state, batch, keys[epoch], hp, model=MODEL, epochs=1,
                                 minibatches=4, objective=objective)
            assert study.kl[row, epoch + 1] == pytest.approx(_kl(p[0], batch), rel=1e-4, abs=1e-7)


def test_epoch_study_clip_holds_the_policy_back(study):
    assert study.kl[1, -1] > 2 * study.kl[0, -1]
    assert study.max_ratio[1, -1] > study.max_ratio[0, -1]
    assert study.kl[1, -1] > study.kl[1, 1] > 0


def test_epoch_study_rejects_bad_arguments(params, batch):
    with pytest.raises(ValueError, match="minibatches"):
        M.epoch_study(MODEL, params, batch, jax.random.key(0), max_epochs=2, minibatches=3)
    with pytest.raises(ValueError, match="max_epochs"):
        M.epoch_study(MODEL, params, batch, jax.random.key(0), max_epochs=0)
    with pytest.raises(ValueError, match="eps"):
        M.epoch_study(MODEL, params, batch, jax.random.key(0), eps=-0.1)
    with pytest.raises(ValueError, match="lr"):
        M.epoch_study(MODEL, params, batch, jax.random.key(0), lr=0.0)
    with pytest.raises(TypeError, match="params"):
        M.epoch_study(MODEL, tuple(params), batch, jax.random.key(0))


def test_epoch_view_slices_the_study(study):
    view = M.epoch_view(study, 5, clip=False)
    assert view.x.tolist() == [0, 1, 2, 3, 4, 5] and view.selected == 1
    np.testing.assert_array_equal(view.kl, study.kl[:, :6])
    np.testing.assert_array_equal(view.kl_at, study.kl[:, 5])
    np.testing.assert_array_equal(view.max_ratio_at, study.max_ratio[:, 5])
    assert M.epoch_view(study, 8, clip=True).selected == 0
    with pytest.raises(ValueError, match="epochs"):
        M.epoch_view(study, 9, clip=True)
    with pytest.raises(ValueError, match="epochs"):
        M.epoch_view(study, 0, clip=True)


# ---------------------------------------------------------------------- advantage scale


@pytest.fixture(scope="module")
def scale(params, batch):
    return M.advantage_scale_study(MODEL, params.policy, batch, scales=[0.1, 1.0, 10.0, 1.0],
                                   shifts=[0.0, 0.0, 0.0, 5.0], penalty_steps=20)


def test_scale_study_trpo_is_scale_free(params, batch, scale):
    np.testing.assert_allclose(scale.trpo_kl[:3], scale.trpo_kl[1], rtol=1e-3)
    np.testing.assert_allclose(scale.trpo_cosine[:3], 1.0, atol=1e-4)
    np.testing.assert_allclose(scale.trpo_gain[:3], scale.trpo_gain[1], rtol=1e-3)
    # the line search's improvement is in the units of c·A: it scales with c exactly
    np.testing.assert_allclose(scale.trpo_improvement[:3] / scale.scales[:3],
                               scale.trpo_improvement[1], rtol=1e-3)
    assert scale.trpo_accepted.all() and (scale.trpo_kl <= scale.delta).all()


def test_scale_study_reference_step_is_the_library_trpo_step(params, batch, scale):
    hp = TRPOHyper.from_config(TrainConfig(), delta=0.01, lr=0.0)
    new, _ = jax.jit(trpo_policy_step, static_argnames="model")(params.policy, batch, hp,
                                                                model=MODEL)
    np.testing.assert_allclose(scale.reference_step, new - params.policy, rtol=1e-4, atol=1e-6)
    # the learning rate α of the gradient step makes its c = 1 step as long as TRPO's
    g = _surrogate_gradient(params.policy, batch)
    assert scale.lr * float(jnp.linalg.norm(g)) == pytest.approx(
        float(jnp.linalg.norm(scale.reference_step)), rel=1e-4)


def test_scale_study_gradient_and_penalty_grow_with_scale(params, batch, scale):
    g = _surrogate_gradient(params.policy, batch)
    for i in range(3):
        expected = _kl(params.policy + scale.lr * scale.scales[i] * g, batch)
        assert scale.gradient_kl[i] == pytest.approx(expected, rel=1e-3, abs=1e-8)
    # KL of θ + α·c·g is quadratic in c for small steps: 10x c → ~100x KL
    assert scale.gradient_kl[1] / scale.gradient_kl[0] == pytest.approx(100.0, rel=0.15)
    assert scale.penalty_kl[2] > scale.penalty_kl[1] > scale.penalty_kl[0]


def test_scale_study_shift_turns_the_trpo_step(scale):
    assert scale.trpo_cosine[3] < 0.99
    assert scale.trpo_gain[3] < scale.trpo_gain[1]


def test_scale_study_rejects_bad_arguments(params, batch):
    with pytest.raises(ValueError, match="scales"):
        M.advantage_scale_study(MODEL, params.policy, batch, scales=[1.0, -1.0])
    with pytest.raises(ValueError, match="shifts"):
        M.advantage_scale_study(MODEL, params.policy, batch, scales=[1.0], shifts=[0.0, 1.0])
    with pytest.raises(ValueError, match="delta"):
        M.advantage_scale_study(MODEL, params.policy, batch, delta=0.0)
    with pytest.raises(ValueError, match="penalty_steps"):
        M.advantage_scale_study(MODEL, params.policy, batch, penalty_steps=0)


# ---------------------------------------------------------------------- one surrogate


def _numpy_objectives(policy_params, batch, eps):
    logp = np.asarray(MODEL.log_prob(MODEL.policy(policy_params, batch.obs), batch.actions),
                      np.float64)
    r = np.exp(logp - np.asarray(batch.logp_old, np.float64))
    a = np.asarray(batch.advantages, np.float64)
    return (r * a).mean(), np.minimum(r * a, np.clip(r, 1 - eps, 1 + eps) * a).mean()


def test_surrogate_line_against_numpy(params, batch, scale):
    step = scale.reference_step
    line = M.surrogate_line(MODEL, params.policy, batch, step, [0.0, 0.5, 1.0, 3.0], eps=0.2)
    for i, t in enumerate(line.fractions):
        plain, clipped = _numpy_objectives(params.policy + t * step, batch, 0.2)
        assert line.surrogate[i] == pytest.approx(plain, abs=1e-5)
        assert line.clipped[i] == pytest.approx(clipped, abs=1e-5)
    assert line.grad_gap[0] < 1e-6 and line.max_deviation[0] < 1e-6 and line.kl[0] < 1e-7
    assert line.grad_norm[0] == pytest.approx(line.clipped_grad_norm[0], rel=1e-6)
    assert (line.clipped <= line.surrogate + 1e-6).all()
    assert line.clipfrac[-1] > 0 and line.surrogate[-1] > line.clipped[-1]


def test_surrogate_line_equal_while_ratios_inside(params, batch, scale):
    line = M.surrogate_line(MODEL, params.policy, batch, scale.reference_step,
                            np.linspace(0, 2, 21), eps=0.2)
    inside = line.max_deviation <= 0.2
    assert inside.sum() >= 2
    np.testing.assert_allclose(line.surrogate[inside], line.clipped[inside], atol=1e-7)
    np.testing.assert_allclose(line.grad_gap[inside], 0.0, atol=1e-6)


def test_surrogate_line_rejects_bad_arguments(params, batch):
    with pytest.raises(ValueError, match="step"):
        M.surrogate_line(MODEL, params.policy, batch, jnp.zeros(3), [0.0])
    with pytest.raises(ValueError, match="fractions"):
        M.surrogate_line(MODEL, params.policy, batch, params.policy, [])
    with pytest.raises(ValueError, match="eps"):
        M.surrogate_line(MODEL, params.policy, batch, params.policy, [0.0], eps=-1.0)


def test_source_lines_find_the_surrogate_calls():
    assert M.source_lines(trpo.batch_surrogate, ["surrogate"]) == [
        "return surrogate(logp, batch.logp_old, batch.advantages)"]
    assert M.source_lines(trpo.trpo_policy_step, ["batch_surrogate"]) == [
        "return batch_surrogate(p, batch, model)"]
    ppo_lines = M.source_lines(ppo.ppo_loss, ["clipped_surrogate"])
    assert len(ppo_lines) == 1 and ppo_lines[0].startswith("pg = clipped_surrogate(")

    def toy(x):
        y = helper(x)  # noqa: F821
        return obj.helper(y)  # noqa: F821  (an attribute, not the name)

    assert M.source_lines(toy, ["helper"]) == ["y = helper(x)  # noqa: F821"]
    with pytest.raises(ValueError, match="names"):
        M.source_lines(toy, "helper")
    with pytest.raises(TypeError, match="fn"):
        M.source_lines(3, ["helper"])


# ---------------------------------------------------------------------- the guarantee


@pytest.mark.slow
def test_guarantee_check_wiring(params):
    """One compiled program: batches, TRPO steps and evaluation rollouts (slow to compile)."""
    key = jax.random.key(7)
    check = M.guarantee_check(params, MODEL, ENV, key, n_updates=3, episodes=6, num_envs=2,
                              num_steps=32)
    for arr in (check.return_after, check.paired_se, check.kl, check.max_kl, check.gain,
                check.heldout_gain, check.raw_gain, check.max_abs_advantage):
        assert arr.shape == (3,)
    _, k_eval = jax.random.split(key)
    before = episode_returns(params.policy, MODEL, ENV, k_eval, 6)
    assert check.return_before == pytest.approx(float(jnp.mean(before)), rel=1e-6)
    # what the line search guarantees, and what a mean can and cannot exceed
    acc = check.accepted
    assert acc.any()
    assert (check.kl[acc] <= check.delta).all() and (check.gain[acc] > 0).all()
    assert (check.max_kl >= check.kl).all() and (check.paired_se >= 0).all()
    assert (check.max_abs_advantage > 0).all()


def test_guarantee_check_rejects_bad_arguments(params):
    with pytest.raises(ValueError, match="episodes"):
        M.guarantee_check(params, MODEL, ENV, jax.random.key(0), episodes=1)
    with pytest.raises(ValueError, match="gamma"):
        M.guarantee_check(params, MODEL, ENV, jax.random.key(0), gamma=1.5)
    with pytest.raises(ValueError, match="delta"):
        M.guarantee_check(params, MODEL, ENV, jax.random.key(0), delta=-0.01)


def test_broken_promises():
    got = M.broken_promises(100.0, [80.0, 95.0, 80.0, 80.0, 89.9], [0.1, 0.1, -0.1, 0.1, 1e-9],
                            [0.005, 0.005, 0.005, 0.02, 0.01], 0.01)
    assert got.tolist() == [True, False, False, False, True]
    assert M.broken_promises([100.0, 100.0], [85.0, 85.0], [0.1, 0.1], [0.0, 0.0], 0.01,
                             drop=0.2).tolist() == [False, False]
    with pytest.raises(ValueError, match="delta"):
        M.broken_promises(1.0, 1.0, 1.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="drop"):
        M.broken_promises(1.0, 1.0, 1.0, 1.0, 0.01, drop=1.0)


def test_monotonic_bound_known_numbers():
    # C = 4·ε·γ/(1−γ)² = 4·10·0.9/0.01 = 3600; gain/(1−γ) = 0.5/0.1 = 5
    b = M.monotonic_bound(0.5, 10.0, 0.01, 0.9)
    assert float(b.gain_term) == pytest.approx(5.0)
    assert float(b.penalty_term) == pytest.approx(36.0)
    assert float(b.bound) == pytest.approx(-31.0)
    assert float(M.monotonic_bound(0.5, 10.0, 0.0, 0.9).bound) == pytest.approx(5.0)
    with pytest.raises(ValueError, match="gamma"):
        M.monotonic_bound(0.5, 10.0, 0.01, 1.0)
    with pytest.raises(ValueError, match="max_kl"):
        M.monotonic_bound(0.5, 10.0, -0.01, 0.9)


# ---------------------------------------------------------------------- the panel


def test_epochs_panel_follows_its_widgets(study):
    panel = epochs_panel(epochs=3, clip=True, study=study)
    ax_kl, ax_ratio = panel.figure.axes[:2]
    assert len(ax_kl.lines[0].get_ydata()) == 4
    np.testing.assert_allclose(ax_kl.lines[1].get_ydata(), np.maximum(study.kl[1, :4], 1e-6))
    assert ax_kl.lines[0].get_linewidth() > ax_kl.lines[1].get_linewidth()  # clip row selected
    assert f"<b>clip on: KL = {study.kl[0, 3]:.3g} nats" in panel.readout.value

    panel.sliders["epochs"].value = 8
    ax_kl, ax_ratio = panel.figure.axes[:2]
    np.testing.assert_allclose(ax_kl.lines[0].get_ydata(), np.maximum(study.kl[0], 1e-6))
    np.testing.assert_allclose(ax_ratio.lines[1].get_ydata(), study.max_ratio[1])
    assert "after 8 epochs" in panel.readout.value
    assert f"max ratio = {study.max_ratio[1, 8]:.3g}" in panel.readout.value

    panel.sliders["clip"].value = False
    ax_kl = panel.figure.axes[0]
    assert ax_kl.lines[1].get_linewidth() > ax_kl.lines[0].get_linewidth()
    assert f"<b>clip off: KL = {study.kl[1, 8]:.3g} nats" in panel.readout.value
    assert "<b>clip on" not in panel.readout.value


def test_epochs_panel_rejects_bad_arguments(study):
    with pytest.raises(ValueError, match="epochs"):
        epochs_panel(epochs=9, study=study)
    with pytest.raises(TypeError, match="epochs"):
        epochs_panel(epochs=2.5, study=study)
    with pytest.raises(TypeError, match="study"):
        epochs_panel(study="not a study")
