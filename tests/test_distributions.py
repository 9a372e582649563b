"""Tests of course_lib.core.distributions against float64 numpy oracles and KL identities."""

import math

import hypothesis.extra.numpy as hnp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

from course_lib.core.distributions import (
    categorical_entropy,
    categorical_kl,
    categorical_log_prob,
    gaussian_entropy,
    gaussian_kl,
    gaussian_log_prob,
)

B, A, D = 6, 5, 3
NEG_INF = -np.inf


# --------------------------------------------------------------------------- numpy oracles


def np_log_softmax(logits):
    logits = np.asarray(logits, dtype=np.float64)
    top = logits.max(axis=-1, keepdims=True)
    return logits - top - np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))


def np_categorical_kl(p_logits, q_logits):
    """Σ over the support of p only, so that 0·log 0 never appears."""
    log_p, log_q = np_log_softmax(p_logits), np_log_softmax(q_logits)
    out = []
    for lp, lq in zip(log_p, log_q, strict=True):
        support = np.isfinite(lp)
        out.append(np.sum(np.exp(lp[support]) * (lp[support] - lq[support])))
    return np.array(out)


def np_categorical_entropy(logits):
    out = []
    for lp in np_log_softmax(logits):
        support = np.isfinite(lp)
        out.append(-np.sum(np.exp(lp[support]) * lp[support]))
    return np.array(out)


def np_gaussian_log_prob(mean, std, x):
    """Multivariate normal density with a full (diagonal) covariance matrix."""
    out = []
    for m, s, a in zip(mean, std, x, strict=True):
        cov = np.diag(np.asarray(s, np.float64) ** 2)
        diff = np.asarray(a, np.float64) - m
        _, logdet = np.linalg.slogdet(cov)
        maha = diff @ np.linalg.solve(cov, diff)
        out.append(-0.5 * (len(m) * math.log(2 * math.pi) + logdet + maha))
    return np.array(out)


def np_gaussian_entropy(std):
    out = []
    for s in std:
        cov = np.diag(np.asarray(s, np.float64) ** 2)
        _, logdet = np.linalg.slogdet(2 * math.pi * math.e * cov)
        out.append(0.5 * logdet)
    return np.array(out)


def np_gaussian_kl(p_mean, p_std, q_mean, q_std):
    """KL = ½ [tr(Σq⁻¹Σp) + (μq−μp)ᵀΣq⁻¹(μq−μp) − k + ln(det Σq / det Σp)]."""
    out = []
    for pm, ps, qm, qs in zip(p_mean, p_std, q_mean, q_std, strict=True):
        cov_p = np.diag(np.asarray(ps, np.float64) ** 2)
        cov_q = np.diag(np.asarray(qs, np.float64) ** 2)
        inv_q = np.linalg.inv(cov_q)
        diff = np.asarray(qm, np.float64) - pm
        out.append(
            0.5
            * (
                np.trace(inv_q @ cov_p)
                + diff @ inv_q @ diff
                - len(pm)
                + np.linalg.slogdet(cov_q)[1]
                - np.linalg.slogdet(cov_p)[1]
            )
        )
    return np.array(out)


def random_logits(seed, shape=(B, A), scale=2.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype(np.float32)


def logits_with_zeros(seed):
    """Random logits where each row of p has some -inf (zero-probability) actions."""
    logits = random_logits(seed)
    logits[0, 1] = NEG_INF
    logits[2, [0, 3]] = NEG_INF
    logits[4, [0, 1, 2, 3]] = NEG_INF  # a deterministic row
    return logits


def gaussian_params(seed, shape=(B, D)):
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=shape).astype(np.float32)
    log_std = (0.5 * rng.normal(size=shape)).astype(np.float32)
    return mean, log_std


# --------------------------------------------------------------------------- categorical


def test_categorical_log_prob_matches_numpy():
    logits = random_logits(0)
    actions = np.array([0, 1, 2, 3, 4, 2])
    expected = np_log_softmax(logits)[np.arange(B), actions]
    got = categorical_log_prob(jnp.asarray(logits), jnp.asarray(actions))
    assert got.shape == (B,)
    assert got.dtype == jnp.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_categorical_log_prob_is_normalised():
    logits = jnp.asarray(random_logits(1, scale=5.0))
    total = sum(
        jnp.exp(categorical_log_prob(logits, jnp.full((B,), a, dtype=jnp.int32))) for a in range(A)
    )
    np.testing.assert_allclose(total, np.ones(B), rtol=1e-5)


def test_categorical_log_prob_zero_probability_and_out_of_range_actions():
    logits = jnp.array([[0.0, NEG_INF, 0.0]] * 4)
    got = categorical_log_prob(logits, jnp.array([0, 1, 3, -1]))
    np.testing.assert_allclose(got[0], math.log(0.5), rtol=1e-6)
    assert got[1] == -jnp.inf
    assert jnp.isnan(got[2]) and jnp.isnan(got[3])  # never silently another action


def test_categorical_entropy_matches_numpy_including_zero_probabilities():
    for logits in (random_logits(2), logits_with_zeros(3)):
        got = categorical_entropy(jnp.asarray(logits))
        assert got.shape == (B,)
        assert jnp.all(jnp.isfinite(got))
        np.testing.assert_allclose(got, np_categorical_entropy(logits), rtol=1e-5, atol=1e-6)


def test_categorical_entropy_extremes_and_finite_gradient():
    uniform = jnp.zeros((2, A))
    np.testing.assert_allclose(categorical_entropy(uniform), [math.log(A)] * 2, rtol=1e-6)
    deterministic = jnp.array([[3.0, NEG_INF, NEG_INF, NEG_INF, NEG_INF]])
    assert categorical_entropy(deterministic)[0] == 0.0
    grad = jax.grad(lambda x: categorical_entropy(x).sum())(jnp.asarray(logits_with_zeros(4)))
    assert jnp.all(jnp.isfinite(grad))


def test_categorical_kl_of_a_distribution_with_itself_is_zero():
    for logits in (random_logits(5, scale=4.0), logits_with_zeros(6)):
        kl = categorical_kl(jnp.asarray(logits), jnp.asarray(logits))
        np.testing.assert_allclose(kl, np.zeros(B), atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    p=hnp.arrays(np.float32, (4, A), elements=st.floats(-20, 20, width=32)),
    q=hnp.arrays(np.float32, (4, A), elements=st.floats(-20, 20, width=32)),
)
def test_categorical_kl_is_non_negative(p, q):
    kl = categorical_kl(jnp.asarray(p), jnp.asarray(q))
    assert jnp.all(kl >= -1e-6), kl


def test_categorical_kl_matches_numpy():
    for seed in range(3):
        p, q = random_logits(10 + seed), random_logits(20 + seed)
        got = categorical_kl(jnp.asarray(p), jnp.asarray(q))
        assert got.shape == (B,)
        np.testing.assert_allclose(got, np_categorical_kl(p, q), rtol=1e-4, atol=1e-6)


def test_categorical_kl_is_asymmetric():
    p = jnp.log(jnp.array([[0.9, 0.1]]))
    q = jnp.log(jnp.array([[0.5, 0.5]]))
    assert abs(float(categorical_kl(p, q)[0] - categorical_kl(q, p)[0])) > 0.05


def test_categorical_kl_with_zero_probabilities_in_p_is_finite_and_exact():
    p = logits_with_zeros(7)
    q = random_logits(8)
    q[2, 0] = NEG_INF  # q may also be zero where p is zero
    got = categorical_kl(jnp.asarray(p), jnp.asarray(q))
    assert jnp.all(jnp.isfinite(got))
    np.testing.assert_allclose(got, np_categorical_kl(p, q), rtol=1e-4, atol=1e-6)


def test_categorical_kl_gradient_is_finite_and_correct_with_zero_probabilities():
    p = jnp.asarray(logits_with_zeros(9))
    q_np = random_logits(10)
    q_np[2, 3] = NEG_INF
    q = jnp.asarray(q_np)
    grad_p, grad_q = jax.grad(lambda a, b: categorical_kl(a, b).sum(), argnums=(0, 1))(p, q)
    assert jnp.all(jnp.isfinite(grad_p)) and jnp.all(jnp.isfinite(grad_q))
    # Analytic gradients: ∂KL/∂q_logits = softmax(q) − p, ∂KL/∂p_logits = p (log p − log q − KL).
    p_prob, q_prob = jax.nn.softmax(p), jax.nn.softmax(q)
    np.testing.assert_allclose(grad_q, q_prob - p_prob, atol=1e-5)
    log_gap = jnp.where(p_prob > 0, jax.nn.log_softmax(p) - jax.nn.log_softmax(q), 0.0)
    kl = categorical_kl(p, q)[:, None]
    np.testing.assert_allclose(grad_p, p_prob * (log_gap - kl), atol=1e-5)
    jvp_out = jax.jvp(categorical_kl, (p, q), (jnp.ones_like(p), jnp.ones_like(q)))[1]
    assert jnp.all(jnp.isfinite(jvp_out))


def test_naive_kl_from_probabilities_is_nan_where_categorical_kl_is_not():
    p_logits = jnp.array([[0.0, NEG_INF, 1.0]])
    q_logits = jnp.array([[0.5, 0.2, 0.1]])
    p, q = jax.nn.softmax(p_logits), jax.nn.softmax(q_logits)
    naive = (p * (jnp.log(p) - jnp.log(q))).sum(axis=-1)
    assert jnp.isnan(naive[0])
    stable = categorical_kl(p_logits, q_logits)
    assert jnp.isfinite(stable[0])
    np.testing.assert_allclose(stable, np_categorical_kl(p_logits, q_logits), rtol=1e-5)


def test_categorical_kl_is_infinite_when_q_misses_the_support_of_p():
    p = jnp.array([[0.0, 0.0]])
    q = jnp.array([[0.0, NEG_INF]])
    assert categorical_kl(p, q)[0] == jnp.inf
    assert jnp.isfinite(categorical_kl(q, p)[0])  # the other direction is finite: log 2


def test_categorical_kl_check_grads():
    p, q = jnp.asarray(random_logits(11)), jnp.asarray(random_logits(12))
    check_grads(categorical_kl, (p, q), order=2, modes=("fwd", "rev"), rtol=1e-2)


# --------------------------------------------------------------------------- Gaussian


def test_gaussian_log_prob_matches_numpy():
    mean, log_std = gaussian_params(13)
    actions = np.random.default_rng(14).normal(size=(B, D)).astype(np.float32)
    got = gaussian_log_prob(jnp.asarray(mean), jnp.asarray(log_std), jnp.asarray(actions))
    assert got.shape == (B,)
    expected = np_gaussian_log_prob(mean, np.exp(log_std.astype(np.float64)), actions)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_gaussian_shared_log_std_equals_per_row_log_std():
    mean, _ = gaussian_params(15)
    shared = jnp.array([-0.5, 0.0, 0.3])
    rows = jnp.broadcast_to(shared, (B, D))
    actions = jnp.asarray(gaussian_params(16)[0])
    np.testing.assert_allclose(
        gaussian_log_prob(mean, shared, actions), gaussian_log_prob(mean, rows, actions)
    )
    np.testing.assert_allclose(gaussian_entropy(mean, shared), gaussian_entropy(mean, rows))
    np.testing.assert_allclose(
        gaussian_kl(mean, shared, mean + 1.0, rows), gaussian_kl(mean, rows, mean + 1.0, shared)
    )


def test_gaussian_entropy_matches_numpy():
    mean, log_std = gaussian_params(17)
    got = gaussian_entropy(jnp.asarray(mean), jnp.asarray(log_std))
    assert got.shape == (B,)
    expected = np_gaussian_entropy(np.exp(log_std.astype(np.float64)))
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_gaussian_kl_matches_numpy():
    p_mean, p_log_std = gaussian_params(18)
    q_mean, q_log_std = gaussian_params(19)
    got = gaussian_kl(p_mean, p_log_std, q_mean, q_log_std)
    assert got.shape == (B,)
    expected = np_gaussian_kl(
        p_mean, np.exp(p_log_std.astype(np.float64)), q_mean, np.exp(q_log_std.astype(np.float64))
    )
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_gaussian_kl_is_zero_for_equal_and_positive_for_different():
    mean, log_std = gaussian_params(20)
    np.testing.assert_allclose(gaussian_kl(mean, log_std, mean, log_std), np.zeros(B), atol=1e-6)
    q_mean, q_log_std = gaussian_params(21)
    assert jnp.all(gaussian_kl(mean, log_std, q_mean, q_log_std) > 0)


def test_gaussian_kl_equals_monte_carlo_log_ratio():
    """KL(p‖q) = E_{a~p}[log p(a) − log q(a)]: ties gaussian_kl to gaussian_log_prob."""
    n = 100_000
    p_mean, p_log_std = jnp.array([[0.3, -1.0]]), jnp.array([0.1, -0.4])
    q_mean, q_log_std = jnp.array([[0.0, -0.5]]), jnp.array([0.3, 0.0])
    noise = jax.random.normal(jax.random.key(0), (n, 2))
    actions = p_mean + noise * jnp.exp(p_log_std)[None, :]
    rep = lambda m: jnp.broadcast_to(m, (n, 2))
    log_ratio = gaussian_log_prob(rep(p_mean), p_log_std, actions) - gaussian_log_prob(
        rep(q_mean), q_log_std, actions
    )
    exact = gaussian_kl(p_mean, p_log_std, q_mean, q_log_std)[0]
    stderr = float(jnp.std(log_ratio)) / math.sqrt(n)
    assert abs(float(jnp.mean(log_ratio)) - float(exact)) < 4 * stderr


def test_gaussian_kl_check_grads():
    p_mean, p_log_std = map(jnp.asarray, gaussian_params(22))
    q_mean, q_log_std = map(jnp.asarray, gaussian_params(23))
    args = (p_mean, p_log_std, q_mean, q_log_std)
    check_grads(gaussian_kl, args, order=2, modes=("fwd", "rev"), rtol=1e-2)


# --------------------------------------------------------------------------- bad input


def _f(*shape):
    return jnp.zeros(shape)


def _i(*shape):
    return jnp.zeros(shape, dtype=jnp.int32)


@pytest.mark.parametrize(
    ("call", "error", "name"),
    [
        (lambda: categorical_log_prob(_f(A), _i(1)), ValueError, "logits"),
        (lambda: categorical_log_prob(_f(B, A), _i(B, 1)), ValueError, "actions"),
        (lambda: categorical_log_prob(_f(B, A), _i(B + 1)), ValueError, "actions"),
        (lambda: categorical_log_prob(_f(B, A), _f(B)), TypeError, "actions"),
        (lambda: categorical_entropy(_f(2, B, A)), ValueError, "logits"),
        (lambda: categorical_kl(_f(A), _f(A)), ValueError, "p_logits"),
        (lambda: categorical_kl(_f(B, A), _f(A)), ValueError, "q_logits must have rank 2"),
        (lambda: categorical_kl(_f(B, A), _f(B, A + 1)), ValueError, "q_logits"),
        (lambda: gaussian_log_prob(_f(D), _f(D), _f(D)), ValueError, "mean"),
        (lambda: gaussian_log_prob(_f(B, D), _f(D), _f(B, D + 1)), ValueError, "actions"),
        (lambda: gaussian_log_prob(_f(B, D), _f(D + 1), _f(B, D)), ValueError, "log_std"),
        (lambda: gaussian_entropy(_f(B, D), _f(B + 1, D)), ValueError, "log_std"),
        (lambda: gaussian_entropy(_f(B, D), _f(1, B, D)), ValueError, "log_std"),
        (lambda: gaussian_kl(_f(B, D), _f(D), _f(B + 1, D), _f(D)), ValueError, "q_mean"),
        (lambda: gaussian_kl(_f(B, D), _f(D), _f(B, D), _f(2)), ValueError, "q_log_std"),
    ],
)
def test_bad_input_names_the_argument(call, error, name):
    with pytest.raises(error, match=name):
        call()


def test_shape_errors_are_raised_at_trace_time_under_jit():
    with pytest.raises(ValueError, match="q_logits"):
        jax.jit(categorical_kl)(jnp.zeros((B, A)), jnp.zeros((B, A + 1)))


# --------------------------------------------------------------------------- jit and vmap


def _cases():
    logits_p, logits_q = jnp.asarray(logits_with_zeros(24)), jnp.asarray(random_logits(25))
    actions = jnp.array([0, 1, 2, 3, 4, 0])
    mean, log_std = map(jnp.asarray, gaussian_params(26))
    q_mean, q_log_std = map(jnp.asarray, gaussian_params(27))
    return [
        (categorical_log_prob, (logits_q, actions)),
        (categorical_entropy, (logits_p,)),
        (categorical_kl, (logits_p, logits_q)),
        (gaussian_log_prob, (mean, log_std, q_mean)),
        (gaussian_entropy, (mean, log_std)),
        (gaussian_kl, (mean, log_std, q_mean, q_log_std)),
        (gaussian_kl, (mean, log_std[0], q_mean, q_log_std)),
    ]


@pytest.mark.parametrize(("fn", "args"), _cases())
def test_jit_matches_eager(fn, args):
    np.testing.assert_allclose(jax.jit(fn)(*args), fn(*args), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(("fn", "args"), _cases())
def test_vmap_over_an_extra_leading_axis(fn, args):
    stacked = [jnp.stack([x, x[::-1]]) for x in args]
    got = jax.vmap(fn)(*stacked)
    assert got.shape == (2, B)
    np.testing.assert_allclose(got[0], fn(*args), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got[1], fn(*[x[::-1] for x in args]), rtol=1e-6, atol=1e-6)
