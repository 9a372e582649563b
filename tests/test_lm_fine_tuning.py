"""Lesson 11's toy fine-tuning problem: identities of the exact solver, the per-token KL reward,
GRPO's advantage, and PPO with the KL penalty reaching the closed-form optimum."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib.lessons import l11_lm_fine_tuning as lm

TOY = lm.make_toy()
SMALL = lm.make_toy(n_prompts=2, vocab=3, length=3, seed=1)


def fake_studies(iterations: int = 6, seed: int = 0) -> lm.Studies:
    """Studies of the lesson's shapes filled with random numbers, for the panels' tests (no
    training)."""
    rng = np.random.default_rng(seed)

    def runs(n):
        curves = [rng.uniform(0.0, 1.0, (n, iterations)) for _ in range(5)]
        curves[3] = rng.uniform(1e-3, 0.2, (n, iterations))  # kl_update
        logits = np.zeros((n, 1, 1, 1), np.float32)
        return lm.LMRun(logits, *(jnp.asarray(c, jnp.float32) for c in curves))

    return lm.Studies(np.asarray(lm.BETAS), runs(len(lm.BETAS)), np.asarray(lm.EPS_VALUES),
                      runs(len(lm.EPS_VALUES) + 1), runs(2), runs(2))


def _random_logits(toy, key, scale=1.0):
    return scale * jax.random.normal(jax.random.key(key), toy.ref_logits.shape)


def test_the_toy_enumerates_every_answer_once_with_its_prefix_rows():
    seqs, prefixes = lm.enumerate_sequences(3, 3)
    assert seqs.shape == (27, 3) and len({tuple(s) for s in seqs}) == 27
    # the row of a prefix is its depth's offset plus its base-3 code
    assert prefixes[5].tolist() == [0, 1 + 0, 1 + 3 + 1]  # 5 = (0, 1, 2): prefixes (), (0), (0,1)
    assert lm.prefix_offset(3, 3) == 1 + 3 + 9
    assert TOY.ref_logits.shape == (4, lm.prefix_offset(4, 6), 6)
    assert TOY.sequences.shape == (6 ** 4, 4)


@pytest.mark.parametrize("toy", [TOY, SMALL], ids=["6x4", "3x3"])
def test_enumerated_sequence_probabilities_sum_to_one(toy):
    for logits in (toy.ref_logits, _random_logits(toy, 0, 3.0)):
        total = jnp.sum(jnp.exp(lm.sequence_log_probs(logits, toy)), axis=1)
        np.testing.assert_allclose(total, 1.0, rtol=1e-5)


def test_sampled_answers_have_the_log_probs_of_the_enumeration():
    logits = _random_logits(SMALL, 1)
    prompts, prefixes, tokens, codes = lm.sample(jax.random.key(2), logits, 8, SMALL.length)
    np.testing.assert_array_equal(SMALL.sequences[codes], tokens)
    np.testing.assert_array_equal(SMALL.prefixes[codes], prefixes)
    per_token = lm.token_log_probs(logits, prompts, prefixes, tokens)
    whole = lm.sequence_log_probs(logits, SMALL)[prompts, codes]
    np.testing.assert_allclose(jnp.sum(per_token, axis=1), whole, rtol=1e-5)


def test_sequence_kl_by_prefixes_equals_the_sum_over_answers_and_is_zero_on_itself():
    p, q = _random_logits(TOY, 3), _random_logits(TOY, 4)
    lp, lq = lm.sequence_log_probs(p, TOY), lm.sequence_log_probs(q, TOY)
    direct = jnp.sum(jnp.exp(lp) * (lp - lq), axis=1)
    np.testing.assert_allclose(lm.sequence_kl(p, q, TOY), direct, rtol=1e-4)
    np.testing.assert_allclose(lm.kl_to(lp, lq), direct, rtol=1e-5)
    np.testing.assert_allclose(lm.sequence_kl(p, p, TOY), 0.0, atol=1e-6)


def test_sequence_kl_is_finite_and_exact_with_zero_probability_tokens():
    p = np.array(_random_logits(SMALL, 5))
    p[:, :, 0] = -np.inf  # p never says token 0
    q = _random_logits(SMALL, 6)
    lp, lq = lm.sequence_log_probs(jnp.asarray(p), SMALL), lm.sequence_log_probs(q, SMALL)
    probs = jnp.exp(lp)
    direct = jnp.sum(jnp.where(probs > 0, probs * (lp - lq), 0.0), axis=1)
    kl = lm.sequence_kl(jnp.asarray(p), q, SMALL)
    assert np.isfinite(np.asarray(kl)).all()
    np.testing.assert_allclose(kl, direct, rtol=1e-4)


def test_per_token_k1_and_k3_estimate_the_exact_kl_to_the_reference():
    logits = TOY.ref_logits + _random_logits(TOY, 7, 0.5)
    exact = float(jnp.mean(lm.sequence_kl(logits, TOY.ref_logits, TOY)))
    k1, k3, k1_tok, k3_tok = lm.kl_estimates(logits, TOY, jax.random.key(8), 4096)
    length = TOY.length
    for est, tok in ((k1, k1_tok), (k3, k3_tok)):
        per_seq = length * np.asarray(tok).reshape(-1, length).mean(1)
        se = per_seq.std() / np.sqrt(per_seq.size)
        assert abs(float(est) - exact) < 4 * se, (float(est), exact, se)
    assert (np.asarray(k3_tok) >= 0).all() and (np.asarray(k1_tok) < 0).any()


@pytest.mark.parametrize("beta", [0.05, 0.1, 1.0])
def test_the_closed_form_optimum_beats_every_perturbation(beta):
    ref_lp = lm.sequence_log_probs(TOY.ref_logits, TOY)
    opt = lm.optimal_log_probs(ref_lp, TOY.reward, beta)
    np.testing.assert_allclose(jnp.sum(jnp.exp(opt), axis=1), 1.0, rtol=1e-5)
    best = lm.regularised_objective(opt, ref_lp, TOY.reward, beta)
    log_z = jax.nn.logsumexp(ref_lp + TOY.reward / beta, axis=1)
    np.testing.assert_allclose(best, beta * log_z, rtol=1e-4)  # J_β(π*) = β log Z
    for k in range(5):
        for size in (0.01, 0.3):
            noise = size * jax.random.normal(jax.random.key(k), opt.shape)
            other = jax.nn.log_softmax(opt + noise, axis=1)
            worse = lm.regularised_objective(other, ref_lp, TOY.reward, beta)
            assert (np.asarray(worse) < np.asarray(best) + 1e-6).all()


def test_the_frontier_trades_reward_for_kl_and_the_true_score_peaks_in_between():
    f = lm.frontier(TOY, jnp.array([0.01, 0.05, 0.1, 0.3, 1.0, 10.0]))
    assert (np.diff(np.asarray(f.kl)) < 0).all() and (np.diff(np.asarray(f.reward)) < 0).all()
    true = np.asarray(f.true_score)
    assert true[2] > true[0] and true[2] > true[-1]  # hacked at small β, unmoved at large β
    assert float(f.reward[0]) > 1.45 and true[0] < 0.05  # β → 0: the all-hack answer


def test_kl_penalised_rewards_sum_to_the_sequence_objective_and_carry_no_gradient():
    rng = np.random.default_rng(0)
    reward = jnp.asarray(rng.normal(size=5), jnp.float32)
    logp = jnp.asarray(-rng.uniform(0.1, 3.0, (5, 4)), jnp.float32)
    logp_ref = jnp.asarray(-rng.uniform(0.1, 3.0, (5, 4)), jnp.float32)
    r = lm.kl_penalised_rewards(reward, logp, logp_ref, 0.2)
    np.testing.assert_allclose(r[:, :-1], -0.2 * (logp - logp_ref)[:, :-1], rtol=1e-6)
    np.testing.assert_allclose(jnp.sum(r, 1), reward - 0.2 * jnp.sum(logp - logp_ref, 1),
                               rtol=1e-5)
    g = jax.grad(lambda lp: jnp.sum(lm.kl_penalised_rewards(reward, lp, logp_ref, 0.2)))(logp)
    np.testing.assert_array_equal(g, 0.0)


def test_group_advantages_are_standardised_per_group_and_zero_for_a_tied_group():
    rng = np.random.default_rng(1)
    rewards = jnp.asarray(np.concatenate([rng.normal(size=(3, 8)), np.full((1, 8), 0.7)]),
                          jnp.float32)
    adv = np.asarray(lm.group_advantages(rewards))
    assert np.isfinite(adv).all()
    np.testing.assert_allclose(adv[:3].mean(1), 0.0, atol=1e-6)
    np.testing.assert_allclose(adv[:3].std(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(adv[3], 0.0)
    shifted = np.asarray(lm.group_advantages(3.0 * rewards[:3] + 5.0))
    np.testing.assert_allclose(shifted, adv[:3], atol=1e-5)  # invariant to the reward's scale


@pytest.fixture(scope="module")
def trained():
    return lm.train_lm(TOY, lm.LMHyper(beta=0.1, eps=0.2, lr=0.03), 0)


def test_ppo_with_the_kl_penalty_approaches_the_closed_form_optimum(trained):
    ref_lp = lm.sequence_log_probs(TOY.ref_logits, TOY)
    opt = lm.optimal_log_probs(ref_lp, TOY.reward, 0.1)
    best = float(jnp.mean(lm.regularised_objective(opt, ref_lp, TOY.reward, 0.1)))
    lp = lm.sequence_log_probs(trained.logits, TOY)
    got = float(jnp.mean(lm.regularised_objective(lp, ref_lp, TOY.reward, 0.1)))
    start = float(jnp.mean(lm.regularised_objective(ref_lp, ref_lp, TOY.reward, 0.1)))
    assert best - got < 0.05 * (best - start), (start, got, best)
    assert float(jnp.mean(lm.kl_to(lp, opt))) < 0.1 * float(jnp.mean(lm.kl_to(ref_lp, opt)))
    np.testing.assert_allclose(trained.objective[-1], got, rtol=1e-4)


def test_the_training_record_is_exact_and_finite(trained):
    assert trained.reward.shape == (150,)
    for field in trained[1:]:
        assert np.isfinite(np.asarray(field)).all()
    kl = lm.sequence_kl(trained.logits, TOY.ref_logits, TOY)
    np.testing.assert_allclose(trained.kl_ref[-1], jnp.mean(kl), rtol=1e-5)
    assert (np.asarray(trained.kl_update) >= 0).all()


def test_a_sweep_equals_the_single_runs_it_stacks():
    runs = lm.train_sweep(TOY, lm.LMHyper(jnp.array([0.0, 0.5]), 0.2, 0.03), 3,
                          iterations=5, group_size=8)
    one = lm.train_lm(TOY, lm.LMHyper(0.5, 0.2, 0.03), 3, iterations=5, group_size=8)
    assert runs.reward.shape == (2, 5)
    np.testing.assert_allclose(runs.kl_ref[1], one.kl_ref, rtol=1e-4, atol=1e-6)


def test_a_run_that_goes_non_finite_names_the_quantity_and_the_iteration():
    def nan_after_reward(reward, logp, logp_ref, beta):
        return lm.kl_penalised_rewards(reward, logp, logp_ref, beta) * jnp.nan

    with pytest.raises(FloatingPointError, match="reward is NaN/inf at iteration 0"):
        lm.train_lm(TOY, lm.LMHyper(), 0, iterations=2, group_size=4,
                    token_rewards=nan_after_reward)


@pytest.mark.parametrize(("call", "name"), [
    (lambda: lm.make_toy(vocab=2), "vocab"),
    (lambda: lm.make_toy(hack_bonus=-1.0), "hack_bonus"),
    (lambda: lm.sequence_log_probs(jnp.zeros((4, 5, 6)), TOY), "logits"),
    (lambda: lm.sequence_kl(TOY.ref_logits, jnp.zeros((4, 5, 6)), TOY), "q_logits"),
    (lambda: lm.optimal_log_probs(jnp.zeros((4, 9)), jnp.zeros((4, 9)), 0.0), "beta"),
    (lambda: lm.optimal_log_probs(jnp.zeros((4, 9)), jnp.zeros((4, 8)), 1.0), "reward"),
    (lambda: lm.kl_penalised_rewards(jnp.zeros(3), jnp.zeros((3, 4)), jnp.zeros((3, 5)), 0.1),
     "logp_ref"),
    (lambda: lm.kl_penalised_rewards(jnp.zeros(2), jnp.zeros((3, 4)), jnp.zeros((3, 4)), 0.1),
     "reward"),
    (lambda: lm.kl_penalised_rewards(jnp.zeros(3), jnp.zeros((3, 4)), jnp.zeros((3, 4)), -1.0),
     "beta"),
    (lambda: lm.group_advantages(jnp.zeros(8)), "rewards"),
    (lambda: lm.group_advantages(jnp.zeros((4, 1))), "rewards"),
    (lambda: lm.frontier(TOY, jnp.zeros((2, 2))), "betas"),
    (lambda: lm.sample(jax.random.key(0), jnp.zeros((4, 6)), 2, 4), "logits"),
    (lambda: lm.sample(jax.random.key(0), TOY.ref_logits, 0, 4), "group_size"),
    (lambda: lm.kl_estimates(jnp.zeros((4, 5, 6)), TOY, jax.random.key(0), 4), "logits"),
    (lambda: lm.run_studies(TOY, advantage="group"), "advantage"),
    (lambda: lm.train_lm(TOY, lm.LMHyper(), 0, advantage="critic"), "advantage"),
    (lambda: lm.train_lm(TOY, lm.LMHyper(eps=-0.1), 0), "eps"),
    (lambda: lm.train_lm(TOY, lm.LMHyper(beta=-0.1), 0), "beta"),
    (lambda: lm.train_lm(TOY, lm.LMHyper(lr=0.0), 0), "lr"),
    (lambda: lm.train_lm(TOY, lm.LMHyper(), 0, group_size=1), "group_size"),
    (lambda: lm.train_sweep(TOY, lm.LMHyper(eps=jnp.array([0.1, -0.2])), 0), "eps"),
])
def test_bad_arguments_raise_a_value_error_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


# ------------------------------------------------------------------------------------------
# The studies and the panels over them (short runs: the machinery, not the learning)
# ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def studies():
    return lm.run_studies(TOY, seeds=2, iterations=4, group_size=4)


def test_the_studies_hold_every_swept_run(studies):
    assert studies.beta_runs.reward.shape == (len(lm.BETAS), 4)
    assert studies.eps_runs.kl_update.shape == (len(lm.EPS_VALUES) + 1, 4)
    assert studies.value_runs.objective.shape == studies.group_runs.objective.shape == (2, 4)
    one = lm.train_lm(TOY, lm.LMHyper(lm.STUDY_BETA, 0.2, 0.03), 1, iterations=4, group_size=4)
    np.testing.assert_allclose(studies.value_runs.kl_ref[1], one.kl_ref, rtol=1e-4, atol=1e-6)


def test_the_views_pick_the_nearest_swept_value(studies):
    view = lm.beta_view(TOY, studies, 0.11)
    assert view.beta == 0.1 and view.optimum is not None
    assert lm.beta_view(TOY, studies, 0.0).optimum is None
    assert lm.eps_view(studies, 0.19).eps == 0.2
    assert lm.eps_view(studies, lm.NO_CLIP).index == len(lm.EPS_VALUES)


def test_the_beta_and_eps_panels_redraw_what_their_views_state(studies):
    from course_lib.widgets.l11_lm_fine_tuning import beta_panel, eps_panel

    panel = beta_panel(TOY, studies, beta=0.1)
    assert f"{lm.beta_view(TOY, studies, 0.1).ppo_kl:.2f}" in panel.readout.value
    redraws = panel.redraws
    panel.sliders["beta"].value = 0.0
    assert panel.redraws == redraws + 1 and "β = 0</b>" in panel.readout.value
    assert f"{lm.beta_view(TOY, studies, 0.0).ppo_reward:.2f}" in panel.readout.value
    assert len(panel.figure.axes) == 2

    panel = eps_panel(studies, eps=0.2)
    for eps in (0.05, lm.NO_CLIP):
        panel.sliders["eps"].value = eps
        view = lm.eps_view(studies, eps)
        assert f"{view.median_update:.4f}" in panel.readout.value
    assert "no clip" in panel.readout.value
