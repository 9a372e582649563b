"""Tests of the updates as pure functions: PPO (clip, ablation, penalty, early stopping, value
clip), adaptive β, TRPO / NPG policy steps, the value fit and the batch diagnostics.

Every test builds a small synthetic :class:`~course_lib.rl.rollout.Batch` (64 states of a
4-dimensional observation, 2 actions, a (16,) tanh network) and checks a behaviour the
course states, not an implementation detail.
"""

from __future__ import annotations

import math
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import TrainConfig
from course_lib.core.surrogate import clipped_surrogate, surrogate
from course_lib.rl.networks import ActorCritic
from course_lib.rl.ppo import PPOHyper, adapt_beta, optimizer, ppo_loss, ppo_update
from course_lib.rl.rollout import Batch, explained_variance, policy_diagnostics
from course_lib.rl.trpo import TRPOHyper, fit_value, trpo_policy_step

MODEL = ActorCritic(obs_dim=4, n_actions=2, discrete=True, hidden=(16,))
N = 64
f32 = jnp.float32


@partial(jax.jit, static_argnames=("spread", "n"))
def make_batch(seed: int, spread: float = 0.5, n: int = N):
    """``((policy_params, value_params), batch)`` with π_old = the given policy.

    ``spread`` perturbs the freshly initialised (near-uniform) policy so that π_old is not
    uniform and some taken actions have small probabilities (ratios can then grow large).
    Advantages are standard normal; returns are the old values plus the advantages.
    """
    k_init, k_obs, k_act, k_adv, k_pert = jax.random.split(jax.random.key(seed), 5)
    pi, v = MODEL.init(k_init)
    pi = pi + spread * jax.random.normal(k_pert, pi.shape)
    obs = jax.random.normal(k_obs, (n, 4))
    dist = MODEL.policy(pi, obs)
    actions = MODEL.sample(dist, k_act)
    logp = MODEL.log_prob(dist, actions)
    values = MODEL.value(v, obs)
    adv = jax.random.normal(k_adv, (n,))
    return (pi, v), Batch(obs, actions, logp, dist, values, adv, values + adv)


def ppo_hyper(lr=1e-2, eps=0.2, target_kl=math.inf, beta=0.0, vf_coef=0.5, ent_coef=0.0):
    return PPOHyper.from_config(TrainConfig(), lr=lr, eps=eps, target_kl=target_kl, beta=beta,
                                vf_coef=vf_coef, ent_coef=ent_coef)


def trpo_hyper(delta=0.01, damping=0.1, shrink=0.8, lr=1e-2):
    return TRPOHyper.from_config(TrainConfig(), delta=delta, cg_damping=damping,
                                 backtrack_ratio=shrink, lr=lr)


@partial(jax.jit, static_argnames=("epochs", "minibatches", "objective", "clip_value"))
def run_ppo(params, batch, hp, *, epochs, minibatches, objective="clip", clip_value=False):
    opt_state = optimizer(hp.max_grad_norm).init(params)
    return ppo_update(params, opt_state, batch, jax.random.key(1), hp, MODEL, epochs=epochs,
                      minibatches=minibatches, objective=objective, clip_value=clip_value)


@partial(jax.jit, static_argnames=("line_search", "fisher_subsample"))
def run_trpo(pi, batch, hp, *, line_search=True, fisher_subsample=1):
    return trpo_policy_step(pi, batch, hp, MODEL, cg_iters=10, max_backtracks=10,
                            line_search=line_search, fisher_subsample=fisher_subsample)


def exact_kl(pi_new, batch) -> float:
    """Mean KL(π_old‖π_new) over the batch, from the distributions' parameters."""
    return float(jnp.mean(MODEL.kl(batch.dist_old, MODEL.policy(pi_new, batch.obs))))


def surrogate_at(pi, batch) -> float:
    logp = MODEL.log_prob(MODEL.policy(pi, batch.obs), batch.actions)
    return float(surrogate(logp, batch.logp_old, batch.advantages))


def max_ratio(pi, batch) -> float:
    return float(policy_diagnostics(MODEL, pi, batch, f32(0.2))["max_ratio"])


# ------------------------------------------------------------------------------------------
# PPO
# ------------------------------------------------------------------------------------------


def test_clip_bounds_the_update_where_the_ablation_runs_away():
    """40 epochs of a large Adam step on one batch: with the clip the policy stays near π_old;
    without it (the "many epochs without the clip" mistake) the ratio runs far past 1+ε."""
    eps = 0.2
    hp = ppo_hyper(lr=1e-2, eps=eps)
    clip_ratio, none_ratio, clip_kl, none_kl = [], [], [], []
    for seed in range(4):
        params, batch = make_batch(seed)
        (pi_c, _), _, _ = run_ppo(params, batch, hp, epochs=40, minibatches=2, objective="clip")
        (pi_n, _), _, _ = run_ppo(params, batch, hp, epochs=40, minibatches=2, objective="none")
        clip_ratio.append(max_ratio(pi_c, batch))
        none_ratio.append(max_ratio(pi_n, batch))
        clip_kl.append(exact_kl(pi_c, batch))
        none_kl.append(exact_kl(pi_n, batch))
        # L^CLIP can never exceed (1+ε)·E[A⁺], whatever the update did
        logp = MODEL.log_prob(MODEL.policy(pi_c, batch.obs), batch.actions)
        bound = (1 + eps) * float(jnp.mean(jnp.maximum(batch.advantages, 0.0)))
        assert float(clipped_surrogate(logp, batch.logp_old, batch.advantages, eps)) <= bound + 1e-6
    assert min(none_ratio) > 3.0, none_ratio  # far beyond 1 + ε = 1.2
    assert np.mean(none_ratio) > 2.5 * np.mean(clip_ratio), (none_ratio, clip_ratio)
    assert min(none_kl) > 10 * max(clip_kl), (none_kl, clip_kl)


def test_early_stopping_stops_and_moves_less():
    params, batch = make_batch(0)
    stopped = run_ppo(params, batch, ppo_hyper(target_kl=1e-6), epochs=4, minibatches=2)
    free = run_ppo(params, batch, ppo_hyper(target_kl=math.inf), epochs=4, minibatches=2)
    (pi_s, _), _, diag_s = stopped
    (pi_f, _), _, diag_f = free
    assert float(diag_s["updates_done"]) < 1.0
    assert float(diag_s["updates_done"]) > 0.0  # the first step (KL 0 at π_old) is taken
    assert float(diag_f["updates_done"]) == 1.0
    moved_s = float(jnp.linalg.norm(pi_s - params[0]))
    moved_f = float(jnp.linalg.norm(pi_f - params[0]))
    assert 0.0 < moved_s < moved_f
    assert exact_kl(pi_s, batch) < exact_kl(pi_f, batch)


def test_value_clip_changes_the_loss_only_when_values_move_beyond_eps():
    params, batch = make_batch(0)
    v = params[1]
    values = MODEL.value(v, batch.obs)
    hp = ppo_hyper(eps=0.2)
    loss = jax.jit(ppo_loss, static_argnames=("model", "objective", "clip_value"))

    def both(mb):
        a, _ = loss(params, mb, hp, model=MODEL, objective="clip", clip_value=True)
        b, _ = loss(params, mb, hp, model=MODEL, objective="clip", clip_value=False)
        return float(a), float(b)

    # values moved by 1 > ε from the old values, returns beyond them: the clip bites
    far = batch._replace(values_old=values - 1.0, returns=values + 0.5)
    clipped, plain = both(far)
    assert clipped > plain + 0.1
    # PPO2's value clip is pessimistic: max(unclipped, clipped) squared error
    expected_extra = 0.5 * 0.5 * ((1.3**2) - (0.5**2))
    np.testing.assert_allclose(clipped - plain, expected_extra, rtol=1e-4)
    # values within ε of the old values: identical losses
    near = batch._replace(values_old=values - 0.05, returns=values + 0.5)
    clipped, plain = both(near)
    np.testing.assert_allclose(clipped, plain, rtol=1e-6)


def test_penalty_with_large_beta_moves_less():
    params, batch = make_batch(0)
    kls = {}
    for beta in (0.0, 10.0):
        (pi, _), _, _ = run_ppo(params, batch, ppo_hyper(lr=1e-2, beta=beta), epochs=4,
                                minibatches=2, objective="penalty")
        kls[beta] = exact_kl(pi, batch)
    assert kls[10.0] < 0.5 * kls[0.0], kls


def test_penalty_with_beta_zero_is_the_plain_surrogate():
    params, batch = make_batch(0)
    (pi_p, _), _, _ = run_ppo(params, batch, ppo_hyper(beta=0.0), epochs=4, minibatches=2,
                              objective="penalty")
    (pi_n, _), _, _ = run_ppo(params, batch, ppo_hyper(beta=0.0), epochs=4, minibatches=2,
                              objective="none")
    np.testing.assert_allclose(pi_p, pi_n, rtol=1e-5, atol=1e-6)


def test_ppo_update_at_zero_learning_rate_changes_nothing():
    params, batch = make_batch(0)
    (pi, v), _, diag = run_ppo(params, batch, ppo_hyper(lr=0.0), epochs=4, minibatches=2)
    np.testing.assert_array_equal(pi, params[0])
    np.testing.assert_array_equal(v, params[1])
    assert float(diag["updates_done"]) == 1.0


@pytest.mark.parametrize(
    ("kl", "factor"),
    [(0.001, 0.5), (0.0066, 0.5), (0.0067, 1.0), (0.01, 1.0), (0.0149, 1.0), (0.0151, 2.0),
     (0.1, 2.0)],
)
def test_adapt_beta_direction(kl, factor):
    """PPO paper §4: KL < d_targ/1.5 → β/2; KL > 1.5·d_targ → 2β; else keep (d_targ = 0.01)."""
    beta = adapt_beta(f32(3.0), f32(kl), f32(0.01))
    np.testing.assert_allclose(float(beta), 3.0 * factor, rtol=1e-6)


def test_adapt_beta_vectorised_under_jit():
    kls = jnp.array([0.0, 0.01, 1.0])
    betas = jax.jit(jax.vmap(adapt_beta, in_axes=(None, 0, None)))(f32(1.0), kls, f32(0.01))
    np.testing.assert_allclose(betas, [0.5, 1.0, 2.0])


# ------------------------------------------------------------------------------------------
# TRPO / NPG
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("delta", "damping"), [(0.01, 0.1), (0.5, 1e-3)])
def test_trpo_step_respects_delta_and_improves(delta, damping):
    hp = trpo_hyper(delta=delta, damping=damping)
    for seed in range(5):
        (pi, _), batch = make_batch(seed)
        new, diag = run_trpo(pi, batch, hp)
        assert float(diag["accepted"]) == 1.0
        kl = exact_kl(new, batch)
        assert 0.0 < kl <= delta * (1 + 1e-4) + 1e-7, (seed, kl)
        assert surrogate_at(new, batch) > surrogate_at(pi, batch)
        np.testing.assert_allclose(float(diag["step_norm"]), float(jnp.linalg.norm(new - pi)),
                                   rtol=1e-5)
        assert np.isfinite(float(diag["cg_residual"]))


def test_npg_overshoots_delta_where_trpo_does_not():
    """Large δ, little damping: the quadratic model underestimates the KL of the full step.
    NPG takes the full step and lands outside the trust region; TRPO's line search backtracks."""
    delta = 0.5
    hp = trpo_hyper(delta=delta, damping=1e-3)
    npg_kls, trpo_kls, backtracks = [], [], []
    for seed in range(5):
        (pi, _), batch = make_batch(seed)
        new_npg, diag_npg = run_trpo(pi, batch, hp, line_search=False)
        new_trpo, diag_trpo = run_trpo(pi, batch, hp, line_search=True)
        npg_kls.append(exact_kl(new_npg, batch))
        trpo_kls.append(exact_kl(new_trpo, batch))
        backtracks.append(float(diag_trpo["backtracks"]))
        assert float(diag_npg["accepted"]) == 1.0
        assert float(diag_npg["backtracks"]) == 0.0
    assert max(npg_kls) > delta, npg_kls
    assert max(trpo_kls) <= delta * (1 + 1e-4), trpo_kls
    assert max(backtracks) > 0, backtracks
    # where NPG overshoots, TRPO's accepted step is a strict fraction of NPG's full step
    assert all(t < n for t, n in zip(trpo_kls, npg_kls) if n > delta)


def test_fisher_subsample_still_respects_delta():
    delta = 0.5
    hp = trpo_hyper(delta=delta, damping=1e-3)
    for seed in range(5):
        (pi, _), batch = make_batch(seed)
        new, diag = run_trpo(pi, batch, hp, fisher_subsample=4)
        kl = exact_kl(new, batch)
        assert kl <= delta * (1 + 1e-4), (seed, kl)
        if float(diag["accepted"]):
            assert surrogate_at(new, batch) > surrogate_at(pi, batch)
        else:
            np.testing.assert_array_equal(new, pi)


@pytest.mark.parametrize("line_search", [True, False])
def test_zero_gradient_leaves_params_unchanged(line_search):
    (pi, _), batch = make_batch(0)
    batch = batch._replace(advantages=jnp.zeros(N))
    new, diag = run_trpo(pi, batch, trpo_hyper(delta=0.01), line_search=line_search)
    np.testing.assert_array_equal(new, pi)
    for name, value in diag.items():
        assert np.isfinite(float(value)), name
    assert float(diag["step_norm"]) == 0.0


def test_fit_value_reduces_value_loss():
    (_, v), batch = make_batch(0)
    batch = batch._replace(returns=2.0 * batch.obs[:, 0] - batch.obs[:, 1] + 1.0)

    def value_loss(params):
        return float(0.5 * jnp.mean(jnp.square(MODEL.value(params, batch.obs) - batch.returns)))

    hp = trpo_hyper(lr=1e-2)

    @jax.jit
    def fit(v):
        opt_state = optimizer(hp.max_grad_norm).init(v)
        return fit_value(v, opt_state, batch, jax.random.key(0), hp, MODEL, epochs=10,
                         minibatches=2)

    new_v, _ = fit(v)
    assert value_loss(new_v) < 0.5 * value_loss(v)


# ------------------------------------------------------------------------------------------
# Diagnostics
# ------------------------------------------------------------------------------------------


def test_policy_diagnostics_at_old_params():
    (pi, _), batch = make_batch(0)
    diag = jax.jit(policy_diagnostics, static_argnums=0)(MODEL, pi, batch, f32(0.2))
    np.testing.assert_allclose(float(diag["kl"]), 0.0, atol=1e-6)
    np.testing.assert_allclose(float(diag["max_ratio"]), 1.0, rtol=1e-6)
    np.testing.assert_allclose(float(diag["kl_k1"]), 0.0, atol=1e-6)
    np.testing.assert_allclose(float(diag["kl_k3"]), 0.0, atol=1e-6)
    np.testing.assert_allclose(float(diag["surrogate_gain"]), 0.0, atol=1e-6)
    assert float(diag["clipfrac"]) == 0.0
    assert 0.0 < float(diag["entropy"]) <= math.log(2) + 1e-6


def test_policy_diagnostics_after_a_move():
    params, batch = make_batch(0)
    (pi, _), _, _ = run_ppo(params, batch, ppo_hyper(lr=1e-2), epochs=4, minibatches=2,
                            objective="none")
    diag = policy_diagnostics(MODEL, pi, batch, f32(0.2))
    np.testing.assert_allclose(float(diag["kl"]), exact_kl(pi, batch), rtol=1e-5)
    assert float(diag["kl"]) > 0.0
    assert float(diag["kl_k3"]) >= 0.0
    assert float(diag["max_ratio"]) > 1.0
    assert 0.0 < float(diag["clipfrac"]) <= 1.0
    np.testing.assert_allclose(
        float(diag["surrogate_gain"]), surrogate_at(pi, batch) - surrogate_at(params[0], batch),
        rtol=1e-4, atol=1e-6,
    )


def test_explained_variance():
    returns = jax.random.normal(jax.random.key(0), (N,)) * 3.0 + 1.0
    np.testing.assert_allclose(float(explained_variance(returns, returns)), 1.0, atol=1e-6)
    const = jnp.full((N,), float(jnp.mean(returns)))
    np.testing.assert_allclose(float(explained_variance(const, returns)), 0.0, atol=1e-5)
    np.testing.assert_allclose(float(explained_variance(const + 5.0, returns)), 0.0, atol=1e-5)
    # a critic worse than a constant has negative explained variance
    noisy = returns + jax.random.normal(jax.random.key(1), (N,)) * 100.0
    assert float(explained_variance(noisy, returns)) < 0.0
    # constant returns: defined as 0, never NaN
    assert float(explained_variance(returns, jnp.ones(N))) == 0.0
