"""Tests of course_lib.core.surrogate: the seed's worked example, numpy oracles, gradients, KL estimators."""

import functools
import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from course_lib.core.distributions import categorical_kl, categorical_log_prob
from course_lib.core.surrogate import (
    clip_fraction,
    clipped_surrogate,
    kl_estimate,
    kl_penalty_objective,
    ratio,
    surrogate,
)

B = 8


def random_batch(seed, spread=0.5):
    rng = np.random.default_rng(seed)
    logp_old = np.log(rng.uniform(0.05, 0.95, size=B)).astype(np.float32)
    logp_new = (logp_old + spread * rng.normal(size=B)).astype(np.float32)
    advantages = rng.normal(size=B).astype(np.float32)
    return jnp.asarray(logp_new), jnp.asarray(logp_old), jnp.asarray(advantages)


def np_ratio(logp_new, logp_old):
    return np.exp(np.asarray(logp_new, np.float64) - np.asarray(logp_old, np.float64))


def one_sample(p_new, p_old, advantage):
    return jnp.log(jnp.array([p_new])), jnp.log(jnp.array([p_old])), jnp.array([advantage])


# --------------------------------------------------------------------------- the seed's example


def test_worked_example_ratio_blow_up_and_its_clip():
    """Old π(a|s) = 0.2, new π(a|s) = 0.8, A = +5: r = 4, r·A = 20; PPO's clip caps it at 6."""
    logp_new, logp_old, adv = one_sample(0.8, 0.2, 5.0)
    np.testing.assert_allclose(ratio(logp_new, logp_old), [4.0], rtol=1e-6)
    np.testing.assert_allclose(surrogate(logp_new, logp_old, adv), 20.0, rtol=1e-6)
    np.testing.assert_allclose(clipped_surrogate(logp_new, logp_old, adv, 0.2), 6.0, rtol=1e-6)
    np.testing.assert_allclose(clip_fraction(logp_new, logp_old, 0.2), 1.0)


# --------------------------------------------------------------------------- values


def test_ratio_matches_numpy():
    logp_new, logp_old, _ = random_batch(0)
    got = ratio(logp_new, logp_old)
    assert got.shape == (B,)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, np_ratio(logp_new, logp_old), rtol=1e-6)


def test_surrogate_matches_numpy():
    logp_new, logp_old, adv = random_batch(1)
    expected = np.mean(np_ratio(logp_new, logp_old) * np.asarray(adv, np.float64))
    got = surrogate(logp_new, logp_old, adv)
    assert got.shape == ()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("eps", [0.0, 0.1, 0.2, 0.3])
def test_clipped_surrogate_matches_numpy(eps):
    logp_new, logp_old, adv = random_batch(2)
    r, a = np_ratio(logp_new, logp_old), np.asarray(adv, np.float64)
    expected = np.mean(np.minimum(r * a, np.clip(r, 1 - eps, 1 + eps) * a))
    got = clipped_surrogate(logp_new, logp_old, adv, eps)
    assert got.shape == ()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)


@settings(max_examples=50, deadline=None)
@given(
    log_r=hnp.arrays(np.float32, (B,), elements=st.floats(-3, 3, width=32)),
    adv=hnp.arrays(np.float32, (B,), elements=st.floats(-10, 10, width=32)),
    eps=st.floats(0.0, 0.5),
)
def test_clipped_surrogate_is_a_lower_bound_of_the_surrogate(log_r, adv, eps):
    logp_old = jnp.full((B,), -1.0)
    logp_new = logp_old + log_r
    clipped = clipped_surrogate(logp_new, logp_old, adv, eps)
    assert clipped <= surrogate(logp_new, logp_old, adv) + 1e-5


def test_clipped_surrogate_equals_surrogate_inside_the_clip_range():
    logp_new, logp_old, adv = random_batch(3, spread=0.05)
    assert jnp.all(jnp.abs(ratio(logp_new, logp_old) - 1) < 0.2)
    np.testing.assert_allclose(
        clipped_surrogate(logp_new, logp_old, adv, 0.2), surrogate(logp_new, logp_old, adv)
    )


def test_kl_penalty_objective_value():
    logp_new, logp_old, adv = random_batch(4)
    kl = jnp.linspace(0.0, 0.1, B)
    got = kl_penalty_objective(logp_new, logp_old, adv, kl, 3.0)
    expected = surrogate(logp_new, logp_old, adv) - 3.0 * jnp.mean(kl)
    np.testing.assert_allclose(got, expected, rtol=1e-6)


def test_kl_penalty_objective_with_exact_kl_of_logits():
    old_logits = jnp.asarray(np.random.default_rng(5).normal(size=(B, 3)), jnp.float32)
    actions = jnp.arange(B) % 3

    def objective(new_logits):
        logp_new = categorical_log_prob(new_logits, actions)
        logp_old = categorical_log_prob(old_logits, actions)
        kl = categorical_kl(old_logits, new_logits)
        return kl_penalty_objective(logp_new, logp_old, jnp.ones(B), kl, 0.5)

    # At π_new = π_old: r = 1 and KL = 0 (with zero gradient), so the objective is mean A = 1
    # and its gradient is the plain policy gradient of the surrogate.
    np.testing.assert_allclose(objective(old_logits), 1.0, rtol=1e-6)
    grad = jax.grad(objective)(old_logits)
    pg = jax.grad(lambda lg: jnp.mean(categorical_log_prob(lg, actions)))(old_logits)
    np.testing.assert_allclose(grad, pg, atol=1e-6)


def test_clip_fraction_matches_numpy():
    logp_new, logp_old, _ = random_batch(6)
    r = np_ratio(logp_new, logp_old)
    for eps in (0.0, 0.1, 0.2, 0.5):
        expected = np.mean(np.abs(r - 1) > eps)
        np.testing.assert_allclose(clip_fraction(logp_new, logp_old, eps), expected)
    # Strict inequality, as CleanRL's clipfrac: identical policies clip nothing, even at ε = 0.
    assert clip_fraction(logp_old, logp_old, 0.0) == 0.0


# --------------------------------------------------------------------------- gradients


def _d_clipped(p_new, p_old, advantage, eps=0.2):
    logp_new, logp_old, adv = one_sample(p_new, p_old, advantage)
    return float(jax.grad(clipped_surrogate)(logp_new, logp_old, adv, eps)[0])


def test_clipped_gradient_vanishes_past_the_clip_on_the_advantage_side():
    assert _d_clipped(0.8, 0.5, +2.0) == 0.0  # A > 0, r = 1.6 > 1 + ε
    assert _d_clipped(0.2, 0.5, -2.0) == 0.0  # A < 0, r = 0.4 < 1 − ε


def test_clipped_gradient_stays_on_the_pessimistic_side():
    # d(r·A)/d log π_new = r·A: the unclipped term is selected by the min.
    np.testing.assert_allclose(_d_clipped(0.8, 0.5, -2.0), 1.6 * -2.0, rtol=1e-5)  # A<0, r>1+ε
    np.testing.assert_allclose(_d_clipped(0.2, 0.5, +2.0), 0.4 * 2.0, rtol=1e-5)  # A>0, r<1−ε


def test_clipped_gradient_inside_the_range_is_the_surrogate_gradient():
    np.testing.assert_allclose(_d_clipped(0.55, 0.5, 3.0), 1.1 * 3.0, rtol=1e-5)
    np.testing.assert_allclose(_d_clipped(0.45, 0.5, -3.0), 0.9 * -3.0, rtol=1e-5)


def test_surrogate_gradient_at_the_old_policy_is_the_policy_gradient():
    _, logp_old, adv = random_batch(7)
    grad = jax.grad(surrogate)(logp_old, logp_old, adv)  # ∇r = ∇log π at θ_old
    np.testing.assert_allclose(grad, adv / B, rtol=1e-6)


def test_old_log_probs_are_stop_gradient_in_objectives_but_not_in_ratio():
    logp_new, logp_old, adv = random_batch(8)
    kl = jnp.zeros(B)
    objectives = [
        lambda old: surrogate(logp_new, old, adv),
        lambda old: clipped_surrogate(logp_new, old, adv, 0.2),
        lambda old: kl_penalty_objective(logp_new, old, adv, kl, 1.0),
        lambda old: kl_estimate(logp_new, old, "k1"),
        lambda old: kl_estimate(logp_new, old, "k2"),
        lambda old: kl_estimate(logp_new, old, "k3"),
    ]
    for objective in objectives:
        np.testing.assert_array_equal(jax.grad(objective)(logp_old), np.zeros(B))
    grad_ratio = jax.grad(lambda old: ratio(logp_new, old).sum())(logp_old)
    np.testing.assert_allclose(grad_ratio, -ratio(logp_new, logp_old), rtol=1e-6)


def test_kl_penalty_gradient_flows_through_kl():
    logp_new, logp_old, adv = random_batch(9)
    grad = jax.grad(kl_penalty_objective, argnums=3)(logp_new, logp_old, adv, jnp.ones(B), 2.0)
    np.testing.assert_allclose(grad, np.full(B, -2.0 / B), rtol=1e-6)


def test_k2_and_k3_have_zero_gradient_at_the_old_policy_like_the_exact_kl():
    _, logp_old, _ = random_batch(10)
    for kind in ("k2", "k3"):
        grad = jax.grad(kl_estimate)(logp_old, logp_old, kind)
        np.testing.assert_array_equal(grad, np.zeros(B))
    np.testing.assert_allclose(jax.grad(kl_estimate)(logp_old, logp_old, "k1"), np.full(B, -1 / B))


# --------------------------------------------------------------------------- KL estimators


@settings(max_examples=50, deadline=None)
@given(log_r=hnp.arrays(np.float32, (B,), elements=st.floats(-20, 20, width=32)))
def test_k2_and_k3_are_never_negative(log_r):
    logp_old = jnp.full((B,), -2.0)
    logp_new = logp_old + log_r
    assert kl_estimate(logp_new, logp_old, "k2") >= 0
    assert kl_estimate(logp_new, logp_old, "k3") >= 0
    for i in range(B):  # also every single-sample estimate
        assert kl_estimate(logp_new[i : i + 1], logp_old[i : i + 1], "k3") >= 0


def test_k3_is_non_negative_for_ratios_close_to_one():
    """Where the naive float32 (r − 1) − log r cancels catastrophically; expm1 keeps k3 >= 0."""
    log_r = jnp.linspace(-1e-3, 1e-3, 4001)
    logp_old = jnp.zeros_like(log_r)
    per_sample = jax.vmap(lambda n, o: kl_estimate(n[None], o[None], "k3"))(log_r, logp_old)
    assert jnp.all(per_sample >= 0)
    x = np.asarray(log_r, np.float64)
    np.testing.assert_allclose(per_sample, np.expm1(x) - x, rtol=1e-3, atol=1e-11)
    naive = (jnp.exp(log_r) - 1.0) - log_r
    assert jnp.any(naive < 0)


def _large_sample(n=200_000, n_states=4, n_actions=4, seed=11):
    """Actions drawn from π_old in a few states, and the exact mean KL(π_old‖π_new)."""
    rng = np.random.default_rng(seed)
    old = jnp.asarray(rng.normal(size=(n_states, n_actions)), jnp.float32)
    new = old + jnp.asarray(0.3 * rng.normal(size=(n_states, n_actions)), jnp.float32)
    exact = float(jnp.mean(categorical_kl(old, new)))
    old_rows = jnp.repeat(old, n // n_states, axis=0)
    new_rows = jnp.repeat(new, n // n_states, axis=0)
    actions = jax.random.categorical(jax.random.key(seed), old_rows)
    logp_old = categorical_log_prob(old_rows, actions)
    logp_new = categorical_log_prob(new_rows, actions)
    return logp_new, logp_old, exact


def test_kl_estimators_approach_the_exact_kl_on_a_large_sample():
    logp_new, logp_old, exact = _large_sample()
    assert 0.005 < exact < 0.05  # a TRPO-sized update
    estimates = {kind: float(kl_estimate(logp_new, logp_old, kind)) for kind in ("k1", "k2", "k3")}
    for kind, value in estimates.items():
        assert abs(value - exact) < 0.05 * exact, (kind, value, exact)
    # k1 and k3 are unbiased: within 4 standard errors of the exact value.
    log_r = logp_new - logp_old
    n = log_r.shape[0]
    for kind, per_sample in (("k1", -log_r), ("k3", jnp.expm1(log_r) - log_r)):
        stderr = float(jnp.std(per_sample)) / math.sqrt(n)
        assert abs(estimates[kind] - exact) < 4 * stderr, (kind, estimates[kind], exact, stderr)


def test_k1_is_unbiased_but_noisy_on_small_batches():
    logp_new, logp_old, exact = _large_sample()
    small = jax.vmap(functools.partial(kl_estimate, kind="k1"))(
        logp_new.reshape(-1, 50), logp_old.reshape(-1, 50)
    )
    assert jnp.any(small < 0)  # single small-batch estimates of a KL can be negative ...
    np.testing.assert_allclose(jnp.mean(small), exact, rtol=0.1)  # ... but average to the KL
    k3_small = jax.vmap(functools.partial(kl_estimate, kind="k3"))(
        logp_new.reshape(-1, 50), logp_old.reshape(-1, 50)
    )
    assert jnp.all(k3_small >= 0)
    assert jnp.std(k3_small) < jnp.std(small)  # and k3 has the lower variance


# --------------------------------------------------------------------------- bad input


def _z(*shape):
    return jnp.zeros(shape)


@pytest.mark.parametrize(
    ("call", "name"),
    [
        (lambda: ratio(_z(B, 1), _z(B)), "logp_new"),
        (lambda: ratio(_z(B), _z(B, 1)), "logp_old"),
        (lambda: ratio(_z(B), _z(B + 1)), "logp_old"),
        (lambda: surrogate(_z(B), _z(B), _z(B, 1)), "advantages"),
        (lambda: surrogate(_z(B), _z(B), _z(B + 1)), "advantages"),
        (lambda: clipped_surrogate(_z(B), _z(B), _z(B), -0.1), "eps"),
        (lambda: clipped_surrogate(_z(B), _z(B), _z(B), float("nan")), "eps"),
        (lambda: clipped_surrogate(_z(B), _z(B), _z(B - 1), 0.2), "advantages"),
        (lambda: kl_penalty_objective(_z(B), _z(B), _z(B), _z(B + 1), 1.0), "kl"),
        (lambda: kl_penalty_objective(_z(B), _z(B), _z(B), _z(B), -1.0), "beta"),
        (lambda: kl_estimate(_z(B), _z(B), "k4"), "kind"),
        (lambda: kl_estimate(_z(B), _z(B, 2), "k1"), "logp_old"),
        (lambda: clip_fraction(_z(B), _z(B), -0.2), "eps"),
        (lambda: clip_fraction(_z(B), _z(B + 1), 0.2), "logp_old"),
    ],
)
def test_bad_input_raises_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_shape_errors_are_raised_at_trace_time_under_jit():
    with pytest.raises(ValueError, match="advantages"):
        jax.jit(surrogate)(_z(B), _z(B), _z(B + 1))


# --------------------------------------------------------------------------- jit and vmap


def _cases():
    logp_new, logp_old, adv = random_batch(12)
    kl = jnp.linspace(0.0, 0.05, B)
    return [
        (ratio, (logp_new, logp_old)),
        (surrogate, (logp_new, logp_old, adv)),
        (clipped_surrogate, (logp_new, logp_old, adv, 0.2)),
        (kl_penalty_objective, (logp_new, logp_old, adv, kl, 0.7)),
        (functools.partial(kl_estimate, kind="k1"), (logp_new, logp_old)),
        (functools.partial(kl_estimate, kind="k2"), (logp_new, logp_old)),
        (functools.partial(kl_estimate, kind="k3"), (logp_new, logp_old)),
        (clip_fraction, (logp_new, logp_old, 0.2)),
    ]


@pytest.mark.parametrize(("fn", "args"), _cases())
def test_jit_matches_eager_with_traced_hyperparameters(fn, args):
    np.testing.assert_allclose(jax.jit(fn)(*args), fn(*args), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(("fn", "args"), _cases())
def test_vmap_over_an_extra_leading_axis(fn, args):
    stacked = [jnp.stack([x, x[::-1]]) if jnp.ndim(x) else x for x in args]
    in_axes = [0 if jnp.ndim(x) else None for x in args]
    got = jax.vmap(fn, in_axes=in_axes)(*stacked)
    flipped = [x[::-1] if jnp.ndim(x) else x for x in args]
    np.testing.assert_allclose(got[0], fn(*args), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got[1], fn(*flipped), rtol=1e-6, atol=1e-7)


def test_vmap_over_eps_sweeps_the_clip_range():
    logp_new, logp_old, adv = random_batch(13)
    eps_grid = jnp.array([0.05, 0.1, 0.2, 0.3])
    swept = jax.jit(jax.vmap(clipped_surrogate, in_axes=(None, None, None, 0)))(
        logp_new, logp_old, adv, eps_grid
    )
    looped = [clipped_surrogate(logp_new, logp_old, adv, float(e)) for e in eps_grid]
    np.testing.assert_allclose(swept, looped, rtol=1e-6)
