"""Tests of lesson 08's computations (course_lib.lessons.l08_trpo_vs_ppo) and its panel (widgets.compare).

Curves and results are small hand-made arrays with known answers; the references are plain
Python loops. One slow test trains a tiny config to exercise ``evaluate_seeds`` and
``time_per_update`` end to end.
"""

from __future__ import annotations

import importlib
import math
import sys
import textwrap

import jax
import numpy as np
import pytest
from conftest import TINY_CONFIG

from course_lib import ActorCritic, TrainConfig, TrainResult, evaluate, train_many
from course_lib.lessons.l08_trpo_vs_ppo import (
    KL_BINS,
    SEED_TABLE,
    SOLVE_THRESHOLD,
    compare_seeds,
    compare_view,
    count_code_lines,
    evaluate_seeds,
    format_table,
    kl_bins,
    kl_histogram,
    matched_delta,
    measured_rows,
    median_steps,
    reached_or_cap,
    seed_medians,
    select_run,
    smooth,
    solve_rate,
    steps_to_threshold,
    summarize,
    synthetic_batch,
    time_per_update,
    update_code_lines,
    update_functions,
    worst_after_reaching,
)
from course_lib.lessons.stats import iqm_difference, iqm_interval
from course_lib.rl.envs import env_spec
from course_lib.widgets.l08_trpo_vs_ppo import compare_panel

STEPS = np.array([100, 200, 300, 400, 500])
RET_A = np.array([[10.0, 200.0, 480.0, 500.0, 500.0],
                  [20.0, 100.0, 300.0, 476.0, 490.0],
                  [30.0, 60.0, 90.0, 120.0, 150.0]])
RET_B = np.array([[50.0, 100.0, 150.0, 200.0, 250.0],
                  [40.0, 80.0, 475.0, 500.0, 500.0],
                  [30.0, 470.0, 480.0, 490.0, 500.0]])
KL_A = np.array([[1e-3, 2e-3, 5e-3, 8e-3, 9e-3],
                 [1e-3, 3e-3, 6e-3, 9e-3, 1e-2],
                 [2e-3, 4e-3, 7e-3, 8e-3, 9e-3]])
KL_B = np.array([[1e-4, 1e-3, 1e-2, 2e-2, 5e-3],
                 [2e-4, 3e-3, 4e-3, 3e-2, 6e-3],
                 [3e-4, 2e-3, 5e-3, 7e-3, 8e-3]])


def fake_result(ret, kl) -> TrainResult:
    env_steps = np.broadcast_to(STEPS, ret.shape)
    return TrainResult(None, env_steps, ret, {"kl": kl})


RESULTS = {"trpo": fake_result(RET_A, KL_A), "ppo": fake_result(RET_B, KL_B)}


def trailing_mean_loop(x, w):
    return np.array([np.mean(x[max(0, i - w + 1): i + 1]) for i in range(len(x))])


# ------------------------------------------------------------------------------------------
# Curves over seeds
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("window", [1, 2, 3, 7])
def test_smooth_matches_a_loop(window):
    got = smooth(RET_B, window)
    for s in range(RET_B.shape[0]):
        np.testing.assert_allclose(got[s], trailing_mean_loop(RET_B[s], window))
    if window == 1:
        np.testing.assert_array_equal(got, RET_B)


def test_smooth_rejects_bad_window():
    with pytest.raises(ValueError, match="window"):
        smooth(RET_B, 0)
    with pytest.raises(TypeError, match="window"):
        smooth(RET_B, 2.5)


def test_steps_to_threshold_first_crossing_or_nan():
    got = steps_to_threshold(RET_A, STEPS, 475.0)
    np.testing.assert_array_equal(got[:2], [300.0, 400.0])
    assert math.isnan(got[2])
    # equality counts as reaching; one curve works too
    assert steps_to_threshold(RET_B[1], STEPS, 475.0) == 300.0
    assert steps_to_threshold(RET_B[1], STEPS, 475.01) == 400.0


def test_steps_to_threshold_shape_errors():
    with pytest.raises(ValueError, match="mean_return"):
        steps_to_threshold(RET_A[:, :4], STEPS, 475.0)
    with pytest.raises(ValueError, match="env_steps"):
        steps_to_threshold(RET_A, STEPS[None], 475.0)


def test_median_steps_counts_never_as_infinite():
    assert median_steps([100.0, 300.0, np.nan]) == 300.0
    assert median_steps([100.0, np.nan]) == math.inf
    assert median_steps([100.0, np.nan, np.nan]) == math.inf
    assert median_steps([400.0, 100.0, 200.0, 300.0]) == 250.0
    with pytest.raises(ValueError, match="steps"):
        median_steps([])


def test_solve_rate():
    assert solve_rate([475.0, 474.9, 500.0], 475.0) == pytest.approx(2 / 3)
    assert solve_rate([-240.0, -260.0], SOLVE_THRESHOLD["Pendulum-v1"]) == 0.5
    with pytest.raises(ValueError, match="scores"):
        solve_rate([], 475.0)


def test_summarize_collects_the_numbers():
    config = TrainConfig(algo="trpo")
    s = summarize(RESULTS["trpo"], config, [500.0, 470.0, 480.0])
    assert (s.algo, s.env, s.threshold, s.solved, s.seeds) == ("trpo", "CartPole-v1", 475.0, 2, 3)
    np.testing.assert_array_equal(s.env_steps, STEPS)
    np.testing.assert_allclose(s.returns.mean, RET_A.mean(axis=0))
    np.testing.assert_allclose(s.kl.hi, KL_A.max(axis=0))
    assert s.max_kl == pytest.approx(1e-2)
    assert s.median_steps == 400.0
    with pytest.raises(ValueError, match="scores"):
        summarize(RESULTS["trpo"], config, [500.0, 470.0])
    with pytest.raises(ValueError, match="threshold"):
        summarize(RESULTS["trpo"], config.replace(env="Acrobot-v1"), [0.0, 0.0, 0.0])


def test_summarize_per_seed_kl_and_capped_steps():
    s = summarize(RESULTS["ppo"], TrainConfig(), [500.0, 500.0, 500.0])
    np.testing.assert_allclose(s.kl_seed, [np.median(k) for k in KL_B])
    np.testing.assert_array_equal(s.steps_capped, [500.0, 300.0, 300.0])


def test_seed_medians():
    np.testing.assert_allclose(seed_medians(KL_A), [5e-3, 6e-3, 7e-3])
    np.testing.assert_allclose(seed_medians(np.stack([KL_A, KL_B])),
                               [[np.median(k) for k in KL_A], [np.median(k) for k in KL_B]])
    with pytest.raises(ValueError, match="values"):
        seed_medians(KL_A[0])


def test_reached_or_cap():
    np.testing.assert_array_equal(reached_or_cap([300.0, np.nan, 100.0], 500.0), [300.0, 500.0, 100.0])
    with pytest.raises(ValueError, match="cap"):
        reached_or_cap([600.0], 500.0)
    with pytest.raises(ValueError, match="cap"):
        reached_or_cap([100.0], np.inf)


def test_worst_after_reaching_matches_a_loop():
    ret = np.array([[10.0, 480.0, 200.0, 490.0, 500.0],
                    [10.0, 20.0, 30.0, 40.0, 50.0],
                    [500.0, 500.0, 500.0, 470.0, 500.0]])
    got = worst_after_reaching(ret, 475.0)
    for s, curve in enumerate(ret):
        hits = np.nonzero(curve >= 475.0)[0]
        if hits.size:
            assert got[s] == curve[hits[0]:].min()
        else:
            assert math.isnan(got[s])
    np.testing.assert_array_equal(got[[0, 2]], [200.0, 470.0])
    assert worst_after_reaching(ret[0], 475.0) == 200.0


def test_matched_delta_scales_by_trpos_kl_fraction():
    kl = np.array([0.03, 0.04, 0.05])      # median 0.04 at delta 0.05: updates end at 0.8 delta
    assert matched_delta(0.0072, kl, 0.05) == pytest.approx(0.009)
    assert matched_delta(0.0072, kl, 0.05, digits=2) == pytest.approx(0.009)
    assert matched_delta(0.0076, kl, 0.05, digits=2) == pytest.approx(0.0095)
    assert matched_delta(0.04, kl, 0.05) == pytest.approx(0.05)
    with pytest.raises(ValueError, match="target_kl"):
        matched_delta(0.0, kl, 0.05)
    with pytest.raises(ValueError, match="delta"):
        matched_delta(0.01, kl, -1.0)
    with pytest.raises(ValueError, match="kl"):
        matched_delta(0.01, [0.0, 0.0], 0.05)


def test_compare_seeds_uses_the_stats_module():
    a = np.array([500.0, 480.0, 490.0, 300.0, 500.0, 495.0])
    b = np.array([200.0, 250.0, 210.0, 230.0, 220.0, 240.0])
    c = compare_seeds(a, b)
    assert c.a == iqm_interval(a) and c.b == iqm_interval(b)
    assert c.diff == iqm_difference(a, b)
    assert c.seeds == (6, 6) and not c.within_noise
    text = str(c)
    assert text.startswith("TRPO ") and "beyond the noise of 6 seeds" in text
    assert "TRPO − PPO +" in text
    same = compare_seeds(a, a[::-1], names=("x", "y"), fmt=".0f")
    assert same.within_noise and str(same).endswith("within the noise of 6 seeds")
    assert "x − y +0 [" in str(same)
    assert "3 and 6 seeds" in str(compare_seeds(a[:3], b))


def test_select_run_takes_one_setting():
    ret = np.stack([RET_A, RET_B])
    swept = TrainResult({"w": np.arange(6.0).reshape(2, 3)}, np.broadcast_to(STEPS, ret.shape),
                        ret, {"kl": np.stack([KL_A, KL_B])})
    one = select_run(swept, 1)
    np.testing.assert_array_equal(one.mean_return, RET_B)
    np.testing.assert_array_equal(one.diagnostics["kl"], KL_B)
    np.testing.assert_array_equal(one.params["w"], [3.0, 4.0, 5.0])
    np.testing.assert_array_equal(one.env_steps[0], STEPS)
    with pytest.raises(ValueError, match="index"):
        select_run(swept, 2)
    with pytest.raises(ValueError, match="result"):
        select_run(RESULTS["trpo"], 0)


def test_evaluate_seeds_needs_a_seed_axis():
    swept = TrainResult(None, STEPS, RET_A[None], {"kl": KL_A[None]})
    with pytest.raises(ValueError, match="result"):
        evaluate_seeds(swept, TrainConfig())


# ------------------------------------------------------------------------------------------
# Lines of code
# ------------------------------------------------------------------------------------------


def sample_function(x):
    """A docstring

    over three lines.
    """
    # a comment line

    y = x + 1  # code with a trailing comment counts
    text = """a string that is
    assigned, so code"""
    "a bare string statement"
    return y, text


class SampleClass:
    """Docstring."""

    size: int = 3
    """Attribute docstring."""

    def method(self):
        return self.size


def test_count_code_lines_on_a_function():
    # def, y = ..., text = """..., its second line, return
    assert count_code_lines(sample_function) == 5


def test_count_code_lines_on_a_class():
    # class, size, def, return
    assert count_code_lines(SampleClass) == 4


def test_count_code_lines_on_a_module(tmp_path, monkeypatch):
    (tmp_path / "loc_sample_mod.py").write_text(textwrap.dedent('''\
        """Module docstring."""

        import math  # one

        # comment


        def f():
            """Doc."""
            return math.pi  # two, three
    '''))
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("loc_sample_mod")
    try:
        assert count_code_lines(module) == 3
    finally:
        sys.modules.pop("loc_sample_mod", None)


def test_count_code_lines_rejects_non_code():
    with pytest.raises(TypeError, match="obj"):
        count_code_lines(3)


def test_update_functions_follow_calls_within_the_modules():
    from course_lib.core.solvers import backtracking_line_search, conjugate_gradient
    from course_lib.core.surrogate import surrogate
    from course_lib.rl.ppo import optimizer, ppo_loss, ppo_update
    from course_lib.rl.trpo import fit_value, trpo_policy_step

    trpo = update_functions(trpo_policy_step, ("course_lib.rl.trpo", "course_lib.core.solvers",
                                               "course_lib.core.curvature"))
    assert trpo[0] is trpo_policy_step
    assert conjugate_gradient in trpo and backtracking_line_search in trpo
    assert surrogate not in trpo and fit_value not in trpo
    ppo = update_functions(ppo_update, ("course_lib.rl.ppo",))
    assert ppo[0] is ppo_update and ppo_loss in ppo and optimizer in ppo
    assert len(ppo) == len(set(ppo))


def test_update_code_lines_sums_the_functions():
    trpo, ppo = update_code_lines("trpo"), update_code_lines("ppo")
    from course_lib.rl.ppo import ppo_loss, ppo_update
    from course_lib.rl.trpo import trpo_policy_step

    assert trpo["trpo_policy_step"] == count_code_lines(trpo_policy_step)
    assert ppo["ppo_update"] == count_code_lines(ppo_update)
    assert ppo["ppo_loss"] == count_code_lines(ppo_loss)
    assert sum(trpo.values()) > sum(ppo.values())
    with pytest.raises(ValueError, match="algo"):
        update_code_lines("sac")


# ------------------------------------------------------------------------------------------
# The table
# ------------------------------------------------------------------------------------------


def test_format_table_aligns_columns():
    text = format_table([("a", "bb", "c"), ("dddd", "e", "ffff")], header=("X", "Y", "Z"))
    lines = text.splitlines()
    assert lines[0] == "X    | Y  | Z"
    assert lines[1] == "-----+----+-----"
    assert lines[2] == "a    | bb | c"
    assert lines[3] == "dddd | e  | ffff"
    with pytest.raises(ValueError, match="rows"):
        format_table([("a", "b")])


def test_measured_rows_and_seed_table():
    config = TrainConfig(algo="trpo")
    summaries = {"CartPole-v1": {
        "trpo": summarize(RESULTS["trpo"], config, [500.0, 500.0, 400.0]),
        "ppo": summarize(RESULTS["ppo"], config.replace(algo="ppo"), [500.0, 500.0, 500.0]),
    }}
    rows = measured_rows(summaries, {"CartPole-v1": {"trpo": 0.0504, "ppo": 0.0316}},
                         {"trpo": 176, "ppo": 60})
    trpo_steps = iqm_interval([300.0, 400.0, 500.0])   # the third seed never: the run's 500
    ppo_steps = iqm_interval([500.0, 300.0, 300.0])
    text = lambda e, note="": f"{e.value:,.0f} [{e.lo:,.0f}, {e.hi:,.0f}]{note}"
    assert rows == [
        ("CartPole-v1: solved (greedy ≥ 475)", "2/3 seeds", "3/3 seeds"),
        ("CartPole-v1: steps to mean return ≥ 475 (IQM)", text(trpo_steps, ", 1 never"),
         text(ppo_steps, ", 1 never")),
        ("CartPole-v1: time per update", "50 ms", "32 ms"),
        ("Lines of update code", "176", "60"),
    ]
    only_solved = measured_rows(summaries, steps=False)
    assert [r[0] for r in only_solved] == ["CartPole-v1: solved (greedy ≥ 475)"]
    table = format_table([*SEED_TABLE, *rows])
    assert "CG + line search" in table and "3/3 seeds" in table
    assert len(table.splitlines()) == 2 + len(SEED_TABLE) + len(rows)


# ------------------------------------------------------------------------------------------
# The panel's view and the panel
# ------------------------------------------------------------------------------------------


def test_kl_histogram_counts_fractions():
    frac = kl_histogram(KL_B, 2)
    assert frac.shape == (len(KL_BINS) - 1,)
    assert frac.sum() == pytest.approx(1.0)
    expected = np.zeros(len(KL_BINS) - 1)
    for v in KL_B[:, :2].ravel():
        expected[np.searchsorted(KL_BINS, v, side="right") - 1] += 1 / 6
    np.testing.assert_allclose(frac, expected)
    clipped = kl_histogram([[1e-9, 5.0]], 2)
    assert clipped[0] == 0.5 and clipped[-1] == 0.5
    with pytest.raises(ValueError, match="upto"):
        kl_histogram(KL_B, 6)


@pytest.mark.parametrize("anchor", [0.01, 0.05, 0.003])
def test_kl_bins_are_log_spaced_around_the_anchor(anchor):
    edges = kl_bins(anchor)
    assert np.any(np.isclose(edges, anchor, rtol=1e-12))
    np.testing.assert_allclose(np.diff(np.log10(edges)), 0.2, rtol=1e-9)
    assert edges[0] <= 1e-4 < edges[1] and edges[-2] < 1.0 <= edges[-1]
    np.testing.assert_allclose(kl_bins(0.01), KL_BINS, rtol=1e-12)
    with pytest.raises(ValueError, match="anchor"):
        kl_bins(0.0)
    with pytest.raises(ValueError, match="lo"):
        kl_bins(0.01, lo=1.0, hi=0.1)


def test_compare_view_cuts_and_smooths():
    view = compare_view(RESULTS, ("trpo", "ppo"), 3, smoothing=2)
    assert view.iteration == 3
    np.testing.assert_array_equal(view.env_steps, STEPS[:3])
    smoothed = np.array([trailing_mean_loop(r, 2) for r in RET_B])
    np.testing.assert_allclose(view.returns["ppo"].mean, smoothed.mean(axis=0)[:3])
    np.testing.assert_allclose(view.returns["ppo"].hi, smoothed.max(axis=0)[:3])
    assert view.return_now["trpo"] == pytest.approx(np.mean([(200 + 480) / 2, 200, 75]))
    assert view.kl_median["ppo"] == pytest.approx(np.median(KL_B[:, :3]))
    with pytest.raises(ValueError, match="algos"):
        compare_view(RESULTS, ("trpo", "npg"), 3)
    with pytest.raises(ValueError, match="iteration"):
        compare_view(RESULTS, ("trpo", "ppo"), 6)


def test_panel_redraws_from_its_sliders():
    panel = compare_panel(RESULTS, delta=0.01, smoothing=1)
    assert set(panel.sliders) == {"iteration", "smoothing"}
    ax_ret, ax_kl = panel.figure.axes
    np.testing.assert_allclose(ax_ret.lines[0].get_ydata(), RET_A.mean(axis=0))
    np.testing.assert_allclose(ax_ret.lines[1].get_ydata(), RET_B.mean(axis=0))
    assert "after update 5" in panel.readout.value

    panel.sliders["iteration"].value = 2
    ax_ret, ax_kl = panel.figure.axes
    np.testing.assert_allclose(ax_ret.lines[0].get_xdata(), STEPS[:2])
    np.testing.assert_allclose(ax_ret.lines[1].get_ydata(), RET_B[:, :2].mean(axis=0))
    np.testing.assert_allclose(ax_kl.patches[1].get_data().values,
                               kl_histogram(KL_B, 2, kl_bins(0.01)))
    np.testing.assert_allclose(ax_kl.patches[1].get_data().edges, kl_bins(0.01))
    assert "after update 2" in panel.readout.value
    assert f"return {RET_B[:, 1].mean():.0f}" in panel.readout.value

    panel.sliders["smoothing"].value = 3
    panel.sliders["iteration"].value = 5
    ax_ret = panel.figure.axes[0]
    smoothed = np.array([trailing_mean_loop(r, 3) for r in RET_A]).mean(axis=0)
    np.testing.assert_allclose(ax_ret.lines[0].get_ydata(), smoothed)
    assert f"return {smoothed[-1]:.0f}" in panel.readout.value


def test_panel_rejects_bad_arguments():
    with pytest.raises(ValueError, match="iteration"):
        compare_panel(RESULTS, iteration=0)
    with pytest.raises(ValueError, match="smoothing"):
        compare_panel(RESULTS, smoothing=11)
    with pytest.raises(ValueError, match="algos"):
        compare_panel(RESULTS, algo_b="npg")


# ------------------------------------------------------------------------------------------
# End to end on a tiny config
# ------------------------------------------------------------------------------------------


TINY = TINY_CONFIG


@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_synthetic_batch_is_consistent(env):
    spec = env_spec(env)
    model = ActorCritic(spec.obs_dim, spec.n_actions, spec.discrete, (8,))
    batch = synthetic_batch(model, jax.random.key(0), 12)
    assert batch.obs.shape == (12, model.obs_dim) and batch.advantages.shape == (12,)
    np.testing.assert_allclose(batch.logp_old, model.log_prob(batch.dist_old, batch.actions),
                               rtol=1e-6)
    np.testing.assert_allclose(batch.returns, batch.values_old + batch.advantages, rtol=1e-6)
    with pytest.raises(ValueError, match="size"):
        synthetic_batch(model, jax.random.key(0), 0)


def test_time_per_update_rejects_bad_arguments():
    with pytest.raises(ValueError, match="algo"):
        time_per_update(TINY.replace(algo="sac"))
    with pytest.raises(ValueError, match="repeats"):
        time_per_update(TINY, repeats=0)


@pytest.mark.slow
@pytest.mark.parametrize("env", ["CartPole-v1", "Pendulum-v1"])
def test_evaluate_seeds_matches_evaluate_and_update_timing_runs(env):
    config = TINY.replace(env=env)
    result = train_many(config, [0, 1])
    scores = evaluate_seeds(result, config, episodes=3, seed=7)
    assert scores.shape == (2,)
    for s in range(2):
        params = jax.tree.map(lambda x, s=s: x[s], result.params)
        assert scores[s] == pytest.approx(evaluate(params, config, 3, 7), rel=1e-4)
    assert summarize(result, config, scores).env_steps.tolist() == [32, 64]
    for algo in ("ppo", "ppo_penalty", "trpo", "npg"):
        assert time_per_update(config.replace(algo=algo, target_kl=0.01), repeats=1) > 0.0


def test_evaluate_seeds_and_select_run_carry_the_observation_statistics():
    """A ``normalize_obs`` grid: ``select_run`` keeps each setting's statistics and
    ``evaluate_seeds`` normalises each seed's observations by its own, as ``evaluate`` does."""
    config = TINY.replace(normalize_obs=True)
    result = train_many(config, [0, 1], lr=[TINY.lr, 1e-3])
    run = select_run(result, 1)
    assert run.obs_stats.mean.shape == (2, 4)
    scores = evaluate_seeds(run, config, episodes=2, seed=7)
    for s in range(2):
        one = jax.tree.map(lambda x, s=s: x[s], (run.params, run.obs_stats))
        assert scores[s] == pytest.approx(evaluate(one[0], config, 2, 7, obs_stats=one[1]),
                                          rel=1e-4)
    with pytest.raises(ValueError, match="obs_stats"):
        evaluate_seeds(run._replace(obs_stats=None), config, episodes=2)
