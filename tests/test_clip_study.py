"""Tests of lesson 07's computations (``course_lib.lessons.l07_ppo_clip``) and panels (``widgets.clip``).

* the per-sample clipped objective and its gradients against a numpy formula;
* :func:`training_batch` against the training loop's own iteration (same update, same params);
* :func:`run_epochs` against ``ppo_update`` run in one call (full-batch minibatches, where the
  order of rows does not matter) and against a Python loop of one-epoch calls; early stopping;
* :func:`epoch_study` on a tiny config: shapes, shared start, early stopping, argument checks;
* :func:`eps_view`, :func:`replay_beta`, :func:`study_summary` on known arrays;
* both panels headless: set the slider, check the figure's data and the readout.

Everything trains a tiny config (2 envs × 16 steps, an (8,) network), so nothing is slow.
"""

from __future__ import annotations

import functools
import importlib
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import TINY_CONFIG

from course_lib import TrainConfig, clipped_surrogate
from course_lib.lessons.l07_ppo_clip import (
    VARIANTS,
    EpochStudy,
    clip_objective,
    epoch_study,
    eps_view,
    flat_region,
    replay_beta,
    study_summary,
)
from course_lib.rl.networks import model_from_config
from course_lib.rl.ppo import EPOCH_DIAGNOSTICS, PPOHyper, adapt_beta, ppo_update, run_epochs
from course_lib.rl.rollout import policy_diagnostics
from course_lib.rl.train import Params, TrainResult, training_batch
from course_lib.widgets.l07_ppo_clip import RATIO_GRID, clip_panel, ppo_eps_panel

T = importlib.import_module("course_lib.rl.train")
TINY = TINY_CONFIG.replace(total_steps=4 * 2 * 16, epochs=2)


# ------------------------------------------------------------------------------------------
# L^CLIP per sample
# ------------------------------------------------------------------------------------------


def reference(r, a, eps):
    """numpy: the term, d/dr and the mask where d/dr = 0, written from the PPO paper's eq. 7."""
    r = np.asarray(r, np.float64)
    term = np.minimum(r * a, np.clip(r, 1 - eps, 1 + eps) * a)
    if a > 0:
        grad = np.where(r < 1 + eps, a, 0.0)
    elif a < 0:
        grad = np.where(r > 1 - eps, a, 0.0)
    else:
        grad = np.zeros_like(r)
    return term, grad


@pytest.mark.parametrize("a", [2.0, 1.0, -0.5, -3.0, 0.0])
@pytest.mark.parametrize("eps", [0.0, 0.1, 0.2, 0.45])
def test_clip_objective_matches_the_formula(a, eps):
    r = np.asarray(RATIO_GRID)
    c = clip_objective(r, a, eps)
    term, grad = reference(r, a, eps)
    np.testing.assert_allclose(c.objective, term, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.unclipped, r * a, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.grad_ratio, grad, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(c.grad_logp, r * grad, rtol=1e-5, atol=1e-6)
    lo, hi = flat_region(a, eps)
    np.testing.assert_array_equal(np.asarray(c.flat), (r > lo) & (r < hi))


def test_clip_objective_worked_example_and_library_mean():
    c = clip_objective(jnp.array([4.0, 0.5]), 5.0, 0.2)
    assert float(c.unclipped[0]) == pytest.approx(20.0)
    assert float(c.objective[0]) == pytest.approx(6.0)        # 1.2 · 5, flat
    assert float(c.grad_ratio[0]) == 0.0 and bool(c.flat[0])
    assert float(c.objective[1]) == pytest.approx(2.5)        # r·A kept: it is the smaller
    assert float(c.grad_ratio[1]) == pytest.approx(5.0)
    # the mean of the per-sample terms is the library's batch objective
    r = jnp.array([0.5, 0.9, 1.3, 2.0])
    adv = jnp.array([1.0, -2.0, 0.5, -1.0])
    terms = [float(clip_objective(r[i:i + 1], float(adv[i]), 0.2).objective[0]) for i in range(4)]
    lib = clipped_surrogate(jnp.log(r), jnp.zeros(4), adv, 0.2)
    assert np.mean(terms) == pytest.approx(float(lib), rel=1e-6)


def test_flat_region_values():
    assert flat_region(1.0, 0.2) == (1.2, math.inf)
    assert flat_region(-1.0, 0.2) == (0.0, 0.8)
    assert flat_region(-1.0, 1.5) == (0.0, 0.0)
    assert flat_region(0.0, 0.2) == (0.0, math.inf)


@pytest.mark.parametrize("args, name", [
    ((np.ones((2, 2)), 1.0, 0.2), "ratios"),
    ((np.array([1.0, 0.0]), 1.0, 0.2), "ratios"),
    ((np.array([1.0]), 1.0, -0.1), "eps"),
    ((np.array([1.0]), float("nan"), 0.2), "advantage"),
])
def test_clip_objective_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        clip_objective(*args)


def test_flat_region_rejects_bad_arguments():
    with pytest.raises(ValueError, match="eps"):
        flat_region(1.0, -0.2)
    with pytest.raises(ValueError, match="advantage"):
        flat_region(float("inf"), 0.2)


# ------------------------------------------------------------------------------------------
# The training loop's batch and one update, epoch by epoch
# ------------------------------------------------------------------------------------------


@functools.cache
def warm_state(config: TrainConfig = TINY, seed: int = 0, warmup: int = 1):
    """The tiny config's training state after ``warmup`` iterations, and its numbers."""
    static, num = T.prepare(config), T.numbers(config)

    @jax.jit
    def go(seed):
        carry = T.init_carry(static, num, seed)
        for i in range(warmup):
            carry, _ = T.iteration(static, num, carry, jnp.int32(i))
        return carry

    return static, num, go(jnp.int32(seed))


def hyper(num, lr, eps=None, target_kl=math.inf):
    return PPOHyper.from_config(num, lr=lr, eps=num["eps"] if eps is None else eps,
                                target_kl=target_kl)


def test_training_batch_is_the_batch_the_training_loop_updates_on():
    static, num, carry = warm_state()
    model = model_from_config(static)
    it = jnp.int32(1)

    @jax.jit
    def both(carry):
        batch, lr, k_update = training_batch(static, num, carry, it)
        params, _, _ = ppo_update(carry.learner.params, carry.learner.opt_state, batch, k_update,
                                  hyper(num, lr), model, epochs=static.epochs,
                                  minibatches=static.minibatches)
        loop_carry, _ = T.iteration(static, num, carry, it)
        return batch, lr, params, loop_carry.learner.params

    batch, lr, mine, loop = both(carry)
    assert batch.obs.shape == (TINY.batch_size, 4)
    assert float(lr) == pytest.approx(TINY.lr * (1 - 1 / TINY.iterations))
    assert float(jnp.mean(batch.advantages)) == pytest.approx(0.0, abs=1e-5)
    for x, y in zip(jax.tree.leaves(mine), jax.tree.leaves(loop)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=1e-5, atol=1e-6)
    # the update really moved the policy, so the comparison is not vacuous
    assert float(jnp.max(jnp.abs(mine[0] - carry.learner.params[0]))) > 1e-4


RUN = jax.jit(run_epochs, static_argnames=("model", "epochs", "minibatches", "objective",
                                            "clip_value", "minibatch_advantages"))
"""``run_epochs`` compiled once per static setting and shared by the tests below."""


@functools.cache
def batch_and_hp(lr=5e-3):
    """A fresh policy's batch (no training iteration, to keep compiles few)."""
    static, num, carry = warm_state(warmup=0)
    batch, _, key = jax.jit(lambda c: training_batch(static, num, c, jnp.int32(0)))(carry)
    return static, num, carry, batch, key, model_from_config(static), jnp.float32(lr)


def run(hp, epochs=4, minibatches=2, objective="clip"):
    _, num, carry, batch, key, model, _ = batch_and_hp()
    return RUN(carry.learner.params, carry.learner.opt_state, batch, key, hp, model,
               epochs=epochs, minibatches=minibatches, objective=objective,
               diagnostic_eps=num["eps"])


def test_run_epochs_with_one_minibatch_equals_one_ppo_update_call():
    """With the whole batch as the minibatch the row order is irrelevant, so E one-epoch calls
    land where one E-epoch call lands, early stopping included."""
    _, num, carry, batch, key, model, lr = batch_and_hp()
    p0, o0 = carry.learner.params, carry.learner.opt_state

    @jax.jit
    def direct(hp):
        params, _, info = ppo_update(p0, o0, batch, key, hp, model, epochs=4, minibatches=1)
        return policy_diagnostics(model, params[0], batch, num["eps"]), info["updates_done"]

    free = run(hyper(num, lr), minibatches=1)
    np.testing.assert_array_equal(np.asarray(free["updates_done"]), np.ones(4))
    # a threshold between the k3 after epochs 2 and 3: epoch 4 sees k3 > target and stops
    k3 = np.asarray(free["kl_k3"])
    assert np.all(np.diff(k3) > 0)
    stopping = hyper(num, lr, target_kl=float(np.sqrt(k3[1] * k3[2])))
    stopped = run(stopping, minibatches=1)
    np.testing.assert_array_equal(np.asarray(stopped["updates_done"]), [1, 1, 1, 0])
    np.testing.assert_allclose(stopped["kl"][:3], free["kl"][:3], rtol=1e-6)
    for hp, per_epoch, fraction in ((hyper(num, lr), free, 1.0), (stopping, stopped, 0.75)):
        diag, done = direct(hp)
        assert float(done) == pytest.approx(fraction)
        for name in EPOCH_DIAGNOSTICS[:-1]:
            np.testing.assert_allclose(per_epoch[name][-1], diag[name], rtol=2e-3, atol=1e-7,
                                       err_msg=name)


def test_run_epochs_equals_a_loop_of_one_epoch_updates():
    _, num, carry, batch, key, model, lr = batch_and_hp()
    hp = hyper(num, lr)
    got = run(hp)
    one = jax.jit(lambda p, o, k: ppo_update(p, o, batch, k, hp, model, epochs=1,
                                             minibatches=2)[:2])
    params, opt = carry.learner.params, carry.learner.opt_state
    for e, k in enumerate(jax.random.split(key, 4)):
        params, opt = one(params, opt, k)
        dist = model.policy(params[0], batch.obs)
        logp = model.log_prob(dist, batch.actions)
        kl = jnp.mean(model.kl(batch.dist_old, dist))
        np.testing.assert_allclose(got["kl"][e], kl, rtol=1e-4, atol=1e-9)
        np.testing.assert_allclose(got["max_ratio"][e], jnp.max(jnp.exp(logp - batch.logp_old)),
                                   rtol=1e-5)
    assert np.all(np.diff(np.asarray(got["kl"])) != 0)      # the policy moved every epoch


def test_run_epochs_early_stop_freezes_the_policy():
    num, lr = batch_and_hp()[1], batch_and_hp()[-1]
    got = run(hyper(num, lr, target_kl=1e-9))    # exceeded as soon as the policy has moved
    np.testing.assert_array_equal(np.asarray(got["updates_done"]), [0.5, 0.0, 0.0, 0.0])
    kl = np.asarray(got["kl"])
    assert kl[0] > 0 and np.all(kl == kl[0])


def test_clip_with_infinite_eps_is_the_plain_surrogate():
    """epoch_study's "no clip" variant is L^CLIP with ε = ∞; it equals objective "none"."""
    num, lr = batch_and_hp()[1], batch_and_hp()[-1]
    plain = run(hyper(num, lr), objective="none")
    inf = run(hyper(num, lr, eps=jnp.float32(math.inf)))   # traced ε, as in epoch_study
    for name in EPOCH_DIAGNOSTICS:
        np.testing.assert_allclose(inf[name], plain[name], rtol=1e-5, atol=1e-9)
    clipped = run(hyper(num, jnp.float32(0.05), eps=jnp.float32(0.05)))
    free = run(hyper(num, jnp.float32(0.05)), objective="none")
    assert float(free["kl"][-1]) > float(clipped["kl"][-1])   # the clip changes the update


# ------------------------------------------------------------------------------------------
# The study
# ------------------------------------------------------------------------------------------


@functools.cache
def tiny_study():
    return epoch_study(TINY.replace(lr=0.03), seeds=[0, 1], warmup_iterations=(0, 2), epochs=5,
                       target_kl=2e-3)


def test_epoch_study_shapes_and_structure():
    s = tiny_study()
    assert s.variants == VARIANTS
    for name in EPOCH_DIAGNOSTICS:
        assert getattr(s, name).shape == (3, 2, 2, 5)
    assert s.return_before.shape == (2, 2)
    assert s.warmup_iterations == (0, 2) and s.seeds == (0, 1) and s.config_epochs == 2
    clip, free, stop = 0, 1, 2
    # same start, same minibatch orders: the clip and early-stop runs agree until the stop
    full = s.updates_done[stop, :, :, 0] == 1
    assert full.any()
    np.testing.assert_allclose(s.kl[stop, :, :, 0][full], s.kl[clip, :, :, 0][full], rtol=1e-4,
                               atol=1e-8)
    # the plain surrogate moves the policy further than the clip after several epochs
    assert np.median(s.kl[free, :, :, -1]) > np.median(s.kl[clip, :, :, -1])
    assert np.all(s.kl > 0) and np.all(s.kl_k3 >= 0) and np.all(s.max_ratio >= 1)
    assert np.all((s.clipfrac >= 0) & (s.clipfrac <= 1))
    # early stopping: once an epoch is cut short, the policy never moves again
    for w in range(2):
        for i in range(2):
            done = s.updates_done[stop, w, i]
            cut = np.flatnonzero(done < 1)
            if cut.size:
                e = cut[0]
                np.testing.assert_array_equal(done[e + 1:], 0.0)
                assert np.all(s.kl[stop, w, i, e:] == s.kl[stop, w, i, e])
    assert (s.updates_done[stop] < 1).any(), "target_kl = 2e-3 stops some tiny update"


def test_epoch_study_is_reproducible_and_stage_zero_starts_fresh():
    a = tiny_study()
    b = epoch_study(TINY.replace(lr=0.03), seeds=[1], warmup_iterations=0, epochs=5,
                    target_kl=2e-3)
    np.testing.assert_allclose(b.kl[:, 0, 0], a.kl[:, 0, 1], rtol=1e-4, atol=1e-8)
    np.testing.assert_array_equal(a.return_before[0], 0.0)   # no iteration trained yet


@pytest.mark.parametrize("kwargs, name", [
    ({"config": TINY.replace(algo="trpo")}, "algo"),
    ({"config": TINY.replace(clip_value=True)}, "clip_value"),
    ({"warmup_iterations": 4}, "warmup_iterations"),
    ({"warmup_iterations": -1}, "warmup_iterations"),
    ({"epochs": 0}, "epochs"),
    ({"target_kl": 0.0}, "target_kl"),
    ({"seeds": []}, "seeds"),
])
def test_epoch_study_rejects_bad_arguments(kwargs, name):
    args = {"config": TINY, "seeds": [0], "warmup_iterations": 0, "epochs": 2, "target_kl": 0.01}
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        epoch_study(args.pop("config"), args.pop("seeds"), **args)


def test_epoch_study_rejects_a_non_config():
    with pytest.raises(TypeError, match="config"):
        epoch_study({"algo": "ppo"}, [0])


def test_study_summary_reads_the_right_cells():
    kl = np.zeros((3, 2, 3, 4))
    kl[1, 1, :, 2] = [0.1, 0.3, 0.2]
    ones = np.ones_like(kl)
    done = ones.copy()
    done[2, 1, :, 1:] = 0.0
    s = EpochStudy(VARIANTS, kl, kl, 1 + kl, kl, done, np.zeros((2, 3)), (0, 5), (0, 1, 2), 4,
                   0.2, 0.01, 8)
    out = study_summary(s, epoch=3, stage=1)
    assert out["no clip"]["kl_median"] == pytest.approx(0.2)
    assert out["no clip"]["kl_max"] == pytest.approx(0.3)
    assert out["no clip"]["max_ratio_max"] == pytest.approx(1.3)
    assert out["clip"]["kl_max"] == 0.0
    assert out["clip + early stop"]["epochs_run_median"] == 1.0
    assert out["clip"]["epochs_run_median"] == 3.0
    with pytest.raises(ValueError, match="epoch"):
        study_summary(s, epoch=5)
    with pytest.raises(ValueError, match="stage"):
        study_summary(s, epoch=1, stage=2)


# ------------------------------------------------------------------------------------------
# ε sweeps and β
# ------------------------------------------------------------------------------------------

EPS_GRID = [0.1, 0.2, 0.4]


def fake_sweep(k=3, s=2, i=6) -> TrainResult:
    """A TrainResult shaped like train_many(..., eps=EPS_GRID) with known numbers."""
    grid = np.arange(k)[:, None, None]
    seed = np.arange(s)[None, :, None]
    it = np.arange(i)[None, None, :]
    ret = 100.0 * grid + 10.0 * seed + it + 0.0 * grid * seed * it
    shape = ret.shape
    diag = {
        "kl": np.broadcast_to(0.001 * (grid + 1) * (1 + seed), shape).astype(np.float32),
        "max_ratio": np.broadcast_to(1.0 + 0.1 * (grid + 1) + 0.01 * it, shape).astype(np.float32),
        "clipfrac": np.broadcast_to(0.05 * (grid + 1), shape).astype(np.float32),
    }
    steps = np.broadcast_to((np.arange(1, i + 1) * 1024)[None, None], shape)
    params = Params(np.zeros((k, s, 3)), np.zeros((k, s, 2)))
    return TrainResult(params, steps, ret.astype(np.float32), diag)


def test_eps_view_summarises_the_nearest_row():
    v = eps_view(fake_sweep(), EPS_GRID, 0.19)
    assert v.eps == 0.2 and v.index == 1
    np.testing.assert_allclose(v.returns.mean, 105.0 + np.arange(6))
    np.testing.assert_allclose(v.returns.lo, 100.0 + np.arange(6))
    np.testing.assert_allclose(v.final, [100 + 3, 110 + 3])       # mean of iterations 1..5
    assert v.mean_kl == pytest.approx(0.002 * 1.5)
    assert v.max_ratio_all == pytest.approx(1.25)
    assert v.clipfrac == pytest.approx(0.1)
    np.testing.assert_array_equal(v.env_steps, np.arange(1, 7) * 1024)


def test_eps_view_rejects_bad_arguments():
    with pytest.raises(ValueError, match="eps_values"):
        eps_view(fake_sweep(), [0.1, 0.2], 0.2)
    r = fake_sweep()
    with pytest.raises(ValueError, match="max_ratio"):
        eps_view(r._replace(diagnostics={"kl": r.diagnostics["kl"]}), EPS_GRID, 0.2)
    with pytest.raises(TypeError, match="result"):
        eps_view({"mean_return": 1}, EPS_GRID, 0.2)


def test_replay_beta_follows_the_rule():
    got = replay_beta([0.001, 0.02, 0.01, 0.1, 0.0068, 0.014, 0.005], 1.0, 0.01)
    np.testing.assert_allclose(got, [0.5, 1.0, 1.0, 2.0, 2.0, 2.0, 1.0])
    kls = np.random.default_rng(0).uniform(0, 0.04, 30)
    beta, expected = 1.0, []
    for kl in kls:
        beta = float(adapt_beta(jnp.float32(beta), jnp.float32(kl), jnp.float32(0.01)))
        expected.append(beta)
    np.testing.assert_allclose(replay_beta(kls, 1.0, 0.01), expected)


def test_replay_beta_reproduces_a_penalty_run():
    from course_lib import train

    r = train(TINY.replace(algo="ppo_penalty", target_kl=0.001, beta=2.0), seed=0)
    np.testing.assert_allclose(replay_beta(r.diagnostics["kl"], 2.0, 0.001), r.diagnostics["beta"])


@pytest.mark.parametrize("args, name", [
    ((np.ones((2, 2)), 1.0, 0.01), "kls"), ((np.ones(2), 0.0, 0.01), "beta0"),
    ((np.ones(2), 1.0, -1.0), "target_kl"),
])
def test_replay_beta_rejects_bad_arguments(args, name):
    with pytest.raises(ValueError, match=name):
        replay_beta(*args)


# ------------------------------------------------------------------------------------------
# Panels
# ------------------------------------------------------------------------------------------


def test_clip_panel_redraws_for_a_new_eps():
    panel = clip_panel(eps=0.2)
    assert set(panel.sliders) == {"eps"}
    assert "[0.80, 1.20]" in panel.readout.value
    panel.sliders["eps"].value = 0.3
    assert "[0.70, 1.30]" in panel.readout.value
    assert "r &gt; 1.30" in panel.readout.value and "r &lt; 0.70" in panel.readout.value
    assert "L^CLIP = 6.50" in panel.readout.value               # 1.3 · 5 for r = 4, A = +5
    r = np.asarray(RATIO_GRID)
    ax_pos, ax_neg = panel.figure.axes
    for ax, a in ((ax_pos, 1.0), (ax_neg, -1.0)):
        term, grad = reference(r, a, 0.3)
        np.testing.assert_allclose(ax.lines[0].get_ydata(), term, atol=1e-6)
        np.testing.assert_allclose(ax.lines[1].get_ydata(), r * a, atol=1e-6)
        np.testing.assert_allclose(ax.lines[2].get_ydata(), grad, atol=1e-6)
    assert np.all(ax_pos.lines[2].get_ydata()[r > 1.3] == 0)
    np.testing.assert_allclose(ax_pos.lines[2].get_ydata()[r < 1.3], 1.0, rtol=1e-6)
    assert np.all(ax_neg.lines[2].get_ydata()[r < 0.7] == 0)
    assert panel.png()[:4] == b"\x89PNG"


def test_clip_panel_rejects_eps_out_of_range():
    with pytest.raises(ValueError, match="eps"):
        clip_panel(eps=1.5)


def test_ppo_eps_panel_redraws_the_chosen_row():
    sweep = fake_sweep()
    panel = ppo_eps_panel(sweep, EPS_GRID, eps=0.2)
    assert set(panel.sliders) == {"eps"}
    ax_ret, ax_kl = panel.figure.axes
    np.testing.assert_allclose(ax_ret.lines[0].get_ydata(), 105.0 + np.arange(6))
    assert "ε = 0.2" in panel.readout.value
    panel.sliders["eps"].value = 0.4
    ax_ret, ax_kl = panel.figure.axes
    np.testing.assert_allclose(ax_ret.lines[0].get_ydata(), 205.0 + np.arange(6))
    np.testing.assert_allclose(ax_kl.lines[0].get_ydata(), np.full(6, 0.003 * 1.5), rtol=1e-6)
    assert len(ax_ret.lines) == 3                                # the mean + two other ε
    readout = panel.readout.value
    assert "ε = 0.4" in readout and "<b>208</b>" in readout      # final return (203 + 213) / 2
    assert "<b>0.0045</b>" in readout and "<b>1.35</b>" in readout


def test_ppo_eps_panel_rejects_a_mismatched_grid():
    with pytest.raises(ValueError, match="eps_values"):
        ppo_eps_panel(fake_sweep(), [0.1, 0.2])
