"""Lesson 10's computations (course_lib.lessons.l10_rest_of_ppo) and its ablation panel.

Most tests train nothing: a fake ``train_many`` returns curves that encode which config and
which sweep cell produced them, so the tests can check that every variant is trained by exactly
one call and that the grid, the tables and the panel read the right run. One slow test checks
the sweep's cells against separate real ``train_many`` calls.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import numpy as np
import pytest
from conftest import CARTPOLE_MODEL, TINY_CONFIG

from course_lib import TrainConfig, train_many
from course_lib.lessons import l10_rest_of_ppo as L
from course_lib.rl.ppo import PPOHyper, ppo_loss
from course_lib.rl.train import TrainResult
from course_lib.widgets.l10_rest_of_ppo import ablation_panel, detail_states, plot_ablation_summary

SEEDS = list(range(10))
ITERS = 6


def _code(config: TrainConfig) -> float:
    """A number that differs between the settings a test trains (which detail is switched)."""
    return (100.0 * (not config.clip) + 200.0 * config.clip_value + 10_000.0 * config.ent_coef
            + 400.0 * (config.normalize_advantages == "none") + 800.0 * (not config.anneal_lr)
            + 1600.0 * math.isinf(config.max_grad_norm) + 3200.0 * config.normalize_obs
            + 6400.0 * config.scale_rewards + 12_800.0 * (not config.bootstrap_truncation)
            + 25_600.0 * (not config.ortho_init) + 51_200.0 * (config.adam_eps < 1e-6))


class FakeTrain:
    """``train_many`` stand-in: records its calls; every run's mean return is _code(config of
    the cell) + seed, its KL per update 0.001 · (1 + _code/100)."""

    def __init__(self):
        self.calls = []

    def __call__(self, config, seeds, **sweep):
        self.calls.append((config, list(seeds), {k: list(v) for k, v in sweep.items()}))
        axes = [np.asarray(v, np.float64) for v in sweep.values()]
        shape = tuple(len(a) for a in axes) + (len(seeds), ITERS)
        ret = np.zeros(shape)
        kl = np.zeros(shape)
        for index in np.ndindex(*shape[:-2]):
            cell = config.replace(**{k: float(a[i]) for (k, a), i in zip(zip(sweep, axes), index)})
            code = _code(cell)
            ret[index] = code + np.asarray(seeds, np.float64)[:, None]
            kl[index] = 0.001 * (1 + code / 100) * (1 + 0.01 * np.arange(len(seeds)))[:, None]
        diag = {"kl": kl, "clipfrac": np.full(shape, 0.1), "max_ratio": np.full(shape, 1.2)}
        steps = np.broadcast_to(np.arange(1, ITERS + 1) * 1024, shape)
        return TrainResult(None, steps, ret, diag)


@pytest.fixture(scope="module")
def fake_grid():
    train = FakeTrain()
    grid = L.ablation_grid("CartPole-v1", SEEDS, train=train)
    return grid, train


# ---------------------------------------------------------------------- the table of details


def test_the_table_has_one_entry_per_switch_with_distinct_on_and_off():
    keys = [d.key for d in L.DETAILS]
    assert len(set(keys)) == len(keys)
    for d in L.DETAILS:
        assert d.on != d.off, d.key
        assert set(d.envs) <= set(L.ENVS), d.key
        assert d.envs or d.note, f"{d.key} applies nowhere and does not say why"
        assert d.what and d.name and d.source
    assert {d.key for d in L.DETAILS if "CartPole-v1" not in d.envs} == {"clip_actions"}


def test_every_detail_names_the_line_that_implements_it():
    for d in L.DETAILS:
        impl = L.implementation(d)
        module, _, function = impl.ref.partition(":")
        assert module.startswith("course_lib.") and function and d.marker in impl.line, d.key
    with pytest.raises(ValueError, match="clip_value"):
        L.implementation(L.DETAILS[1]._replace(marker="no such text anywhere"))


def test_a_detail_that_does_not_apply_is_skipped_with_its_reason():
    action = L.Detail("clip_value", "x", "y", "clip_value", True, False, ("Pendulum-v1",),
                      "course_lib.rl.ppo:ppo_loss", "clip", "z")
    run, skipped = L.split_details([action], env="CartPole-v1")
    assert run == [] and skipped == [(action, "does not apply to CartPole-v1")]


@pytest.mark.parametrize("env", L.ENVS)
def test_ablation_change_switches_away_from_the_recipe(env):
    base = L.recipe_config(env)
    run, _ = L.split_details(L.DETAILS, env)
    for d in run:
        change = L.ablation_change(d, base)
        assert list(change) == [d.field]
        new = change[d.field]
        assert new in (d.on, d.off) and not L._same(new, getattr(base, d.field)), d.key
        assert L.switched(d, base) == ("off" if L._same(new, d.off) else "on")
        base.replace(**change).validate()  # every ablation is a valid config


def test_ablation_change_names_the_bad_argument():
    d = L.DETAILS[0]
    with pytest.raises(ValueError, match="base has"):
        L.ablation_change(d._replace(on="a", off="b"), TrainConfig())
    with pytest.raises(ValueError, match="no field"):
        L.ablation_change(d._replace(field="not_a_field"), TrainConfig())
    with pytest.raises(TypeError, match="base"):
        L.ablation_change(d, {"clip": True})


def test_recipes_are_the_course_defaults_and_lesson_08s_pendulum():
    assert L.recipe_config("CartPole-v1") == TrainConfig()
    pendulum = L.recipe_config("Pendulum-v1")
    assert pendulum.iterations == L.PENDULUM_ITERATIONS
    assert pendulum == TrainConfig.for_env("Pendulum-v1", total_steps=8 * 256 * 50)
    assert L.trust_region("CartPole-v1") == TrainConfig(algo="trpo").delta
    with pytest.raises(ValueError, match="env"):
        L.recipe_config("Acrobot-v1")


def test_detail_table_quotes_the_line_of_every_detail():
    text = L.detail_table()
    assert "course_lib.rl.ppo:ppo_loss" in text and "clipped_surrogate(" in text
    assert all(d.name in text and L.implementation(d).ref in text for d in L.DETAILS)


# ---------------------------------------------------------------------- the plan


def _structure_diff(a: TrainConfig, b: TrainConfig) -> set[str]:
    return {f.name for f in dataclasses.fields(TrainConfig) if getattr(a, f.name) != getattr(b, f.name)}


@pytest.mark.parametrize("max_grid", [1, 2, 4, 8])
def test_every_variant_is_trained_by_exactly_one_call(max_grid):
    base = TrainConfig()
    run, _ = L.split_details(L.DETAILS, "CartPole-v1")
    calls = L.plan_calls(run, base, max_grid)
    keys = [k for c in calls for k in c.cells]
    assert len(keys) == len(set(keys))
    assert L.run_key() in keys
    assert {L.run_key([d.key]) for d in run} <= set(keys)
    numeric = set(TrainConfig.numeric_fields())
    for c in calls:
        grid_points = int(np.prod([len(v) for v in c.sweep.values()])) if c.sweep else 1
        assert grid_points <= max_grid and len(c.cells) == grid_points
        changed = _structure_diff(c.config, base)
        assert len(changed) <= 1
        if changed:  # a call of its own: one detail, switched in the config itself
            (field,) = changed
            (key,) = c.cells
            assert L.run_key([d.key for d in run if d.field == field]) == key
        assert set(c.sweep) <= numeric
    structural = [d for d in run if d.field not in numeric]
    assert sum(1 for c in calls if _structure_diff(c.config, base) - numeric) == len(structural)


def test_numeric_details_share_one_sweep_with_the_recipe():
    run, _ = L.split_details(L.DETAILS, "CartPole-v1")
    calls = L.plan_calls(run, TrainConfig(), max_grid=4)
    sweep = calls[0]
    assert sweep.sweep == {"ent_coef": [0.0, 0.01], "max_grad_norm": [0.5, math.inf]}
    assert sweep.cells[L.run_key()] == (0, 0)
    assert sweep.cells[L.run_key(["ent_coef"])] == (1, 0)
    assert sweep.cells[L.run_key(["ent_coef", "max_grad_norm"])] == (1, 1)


def test_plan_calls_rejects_duplicate_keys_and_bad_grid():
    d = L.DETAILS[0]
    with pytest.raises(ValueError, match="distinct keys"):
        L.plan_calls([d, d], TrainConfig())
    with pytest.raises(ValueError, match="max_grid"):
        L.plan_calls([d], TrainConfig(), max_grid=0)


def test_the_grid_reads_each_run_from_its_own_call_and_cell(fake_grid):
    grid, train = fake_grid
    assert len(train.calls) == len(L.plan_calls(grid.details, grid.base))
    assert all(seeds == SEEDS for _, seeds, _ in train.calls)
    seed_offsets = np.asarray(SEEDS, np.float64)[:, None]
    assert np.array_equal(grid.runs[L.run_key()].mean_return, np.zeros((10, ITERS)) + seed_offsets)
    for d in grid.details:
        expected = _code(grid.base.replace(**grid.changes[d.key]))
        assert expected > 0
        np.testing.assert_array_equal(grid.runs[L.run_key([d.key])].mean_return,
                                      expected + seed_offsets + np.zeros(ITERS))
    pair = grid.runs[L.run_key(["ent_coef", "max_grad_norm"])]
    assert pair.mean_return[0, 0] == 100 + 1600
    assert grid.delta == 0.01 and len(grid.seconds) == len(train.calls)


def test_stored_grids_round_trip(fake_grid, tmp_path):
    grid, _ = fake_grid
    path = tmp_path / "grids.npz"
    L.save_grids({"CartPole-v1": grid}, path)
    (loaded,) = L.load_grids(path).values()
    assert (loaded.env, loaded.base, loaded.seeds, loaded.details) == (
        grid.env, grid.base, grid.seeds, grid.details)
    assert loaded.changes == grid.changes and loaded.skipped == grid.skipped
    assert set(loaded.runs) == set(grid.runs)
    for key, curves in grid.runs.items():
        for a, b in zip(loaded.runs[key], curves):
            np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="grids"):
        L.save_grids({"Pendulum-v1": grid}, path)


def test_the_stored_grids_are_those_the_lesson_would_train_today():
    """The stored grids (``scripts/make_ablations.py``) were trained with today's recipe, seeds,
    details and call plan: change any of them and this fails until the script is rerun."""
    grids = L.load_grids()
    assert tuple(grids) == L.ENVS
    for env, g in grids.items():
        run, skipped = L.split_details(L.DETAILS, env)
        assert g.base == L.recipe_config(env) and g.seeds == L.SEEDS
        assert g.details == tuple(run) and [d for d, _ in g.skipped] == [d for d, _ in skipped]
        assert g.changes == {d.key: L.ablation_change(d, g.base) for d in run}
        planned = {k for c in L.plan_calls(run, g.base, L.MAX_GRID[env]) for k in c.cells}
        assert set(g.runs) == planned and g.delta == L.trust_region(env)
        iterations = g.base.iterations
        for curves in g.runs.values():
            assert curves.env_steps.shape == (iterations,)
            assert all(np.shape(x) == (len(L.SEEDS), iterations) for x in curves[1:])
            assert all(np.isfinite(x).all() for x in curves)


def test_ablation_grid_needs_ten_distinct_seeds_and_a_matching_base():
    train = FakeTrain()
    with pytest.raises(ValueError, match="at least 10 seeds"):
        L.ablation_grid("CartPole-v1", range(3), train=train)
    with pytest.raises(ValueError, match="distinct"):
        L.ablation_grid("CartPole-v1", [0] * 10, train=train)
    with pytest.raises(ValueError, match="env"):
        L.ablation_grid("Pendulum-v1", SEEDS, base=TrainConfig(), train=train)
    assert train.calls == []


# ---------------------------------------------------------------------- the numbers


def _curves(ret, kl):
    ret, kl = np.asarray(ret, np.float64), np.asarray(kl, np.float64)
    return L.RunCurves(np.arange(ret.shape[1]), ret, kl, np.full(ret.shape, 0.2), np.ones(ret.shape))


def test_summarize_run_reports_iqm_difference_and_kl():
    rng = np.random.default_rng(0)
    base = _curves(100 + rng.normal(0, 1, (10, 8)), np.full((10, 8), 0.005))
    same = _curves(100 + rng.normal(0, 1, (10, 8)), np.full((10, 8), 0.005))
    worse_kl = np.full((10, 8), 0.005)
    worse_kl[:, 3] = 0.05
    worse = _curves(50 + rng.normal(0, 1, (10, 8)), worse_kl)
    s0 = L.summarize_run(base, None, delta=0.01)
    assert s0.diff is None and s0.kl_max_diff is None
    assert s0.max_kl == pytest.approx(0.005) and s0.above_delta == 0.0
    assert s0.clipfrac == pytest.approx(0.2)
    s1 = L.summarize_run(same, base, delta=0.01)
    assert s1.diff.within_noise and s1.training_diff.within_noise
    assert s0.training.value == pytest.approx(100, abs=1)
    s2 = L.summarize_run(worse, base, delta=0.01)
    assert not s2.diff.within_noise and s2.diff.value == pytest.approx(-50, abs=2)
    assert s2.max_kl == pytest.approx(0.05) and s2.above_delta == pytest.approx(1 / 8)
    assert not s2.kl_max_diff.within_noise and s2.kl_max_diff.value > 0
    with pytest.raises(ValueError, match="delta"):
        L.summarize_run(base, None, delta=0.0)


def test_rows_table_and_kl_effects(fake_grid):
    grid, _ = fake_grid
    rows = L.ablation_rows(grid)
    assert rows[0].detail is None and [r.detail for r in rows[1:]] == list(grid.details)
    text = L.format_returns(rows)
    assert text.splitlines()[2].startswith("full recipe")
    assert all(r.detail.name in text for r in rows[1:])
    # the fake's returns grow with the switch's code: every difference is beyond the noise
    assert text.count("beyond") == 2 * len(grid.details) and "within" not in text
    kl_text = L.format_kl(rows, grid.delta)
    assert "KL > 0.01" in kl_text and kl_text.count("higher") == 2 * len(grid.details)
    effects = {e.detail.key: e for e in L.kl_effects(rows)}
    # the fake's KL grows with the switch's code: every switch raises it beyond the noise
    assert all(e.mean_kl == "higher" and e.final_return == "higher" == e.training_return
               for e in effects.values())
    assert effects["clip"].holds_kl and effects["clip"].direction == "off"
    assert effects["clip"].verdict == "holds the KL"
    # turning a detail on cannot "hold" the recipe's KL: it was not holding it before
    assert not effects["clip_value"].holds_kl and effects["clip_value"].direction == "on"
    assert effects["clip_value"].moves_kl and effects["clip_value"].moves_return
    assert effects["clip_value"].verdict == "changes the return and the KL"
    table = L.format_effects(list(effects.values()))
    assert all(e.detail.name in table and e.verdict in table for e in effects.values())


@pytest.mark.parametrize(("direction", "mean_kl", "max_kl", "ret", "training", "verdict"), [
    ("off", "higher", "same", "same", "same", "holds the KL"),
    ("off", "same", "higher", "lower", "lower", "holds the KL"),
    ("on", "lower", "lower", "lower", "same", "changes the return and the KL"),
    ("on", "same", "same", "same", "higher", "changes the return only"),
    ("off", "same", "same", "lower", "same", "changes the return only"),
    ("off", "lower", "same", "same", "same", "moves the KL only"),
    ("on", "higher", "same", "same", "same", "moves the KL only"),
    ("off", "same", "same", "same", "same", "no effect beyond the noise"),
])
def test_verdicts(direction, mean_kl, max_kl, ret, training, verdict):
    effect = L.KLEffect(L.DETAILS[0], direction, mean_kl, max_kl, ret, training)
    assert effect.verdict == verdict and verdict in L.VERDICTS


def _diff(x):
    """A difference beyond the noise when x != 0, within it when x == 0."""
    return L.Difference(x, x - 1.0, x + 1.0) if x else L.Difference(0.0, -1.0, 1.0)


def _row(direction, final, training, kl):
    summary = L.RunSummary(None, None, _diff(final), _diff(training), 0.02, 0.1, 0.0, 0.1,
                           _diff(kl), _diff(0))
    return L.AblationRow(L.DETAILS[1], {}, direction, summary)


@pytest.mark.parametrize(("direction", "final", "training", "kl", "setting", "because"), [
    ("on", -10.0, 20.0, -1.0, "off", "final return"),     # the final return decides first
    ("on", 0.0, 20.0, 5.0, "on", "return over training"),
    ("off", 0.0, 0.0, 5.0, "on", "smaller KL"),            # off raised the KL: keep it on
    ("off", 0.0, 0.0, -5.0, "off", "smaller KL"),
    ("on", 0.0, 0.0, 0.0, "off", "no difference"),         # nothing measured: the recipe's
])
def test_recommend_follows_the_measurements(direction, final, training, kl, setting, because):
    rec = L.recommend(_row(direction, final, training, kl))
    assert (rec.setting, rec.because) == (setting, because)


def test_summary_table_prints_each_detail_with_its_numbers(fake_grid):
    grid, _ = fake_grid
    rows = L.ablation_rows(grid)
    text = L.format_summary(rows)
    for r in rows[1:]:
        rec = L.recommend(r)
        line = next(x for x in text.splitlines() if x.startswith(r.detail.name + " "))
        ratio = r.summary.mean_kl / rows[0].summary.mean_kl
        assert (f"×{ratio:.0f}" if ratio >= 10 else f"×{ratio:.1f}") in line
        assert f" {rec.setting}  " in line and line.endswith(rec.because)
    with pytest.raises(ValueError, match="row"):
        L.recommend(rows[0])


def test_format_plan_names_every_call_and_counts_the_agents():
    run, _ = L.split_details(L.DETAILS, "CartPole-v1")
    calls = L.plan_calls(run, TrainConfig(), max_grid=2)
    text = L.format_plan(calls, run, seeds=10).splitlines()
    assert len(text) == len(calls) + 1
    assert text[0].startswith("call 1: ent_coef in [0, 0.01] -> 20 agents: full recipe; entropy bonus on")
    assert "max_grad_norm=inf -> 10 agents: global gradient clipping off" in text[1]
    assert text[-1] == f"{len(calls)} train_many calls, {10 * (len(run) + 1)} agents in all"


def test_combination_view_trained_untrained_and_unknown(fake_grid):
    grid, _ = fake_grid
    view = L.combination_view(grid, [])
    assert view.trained and view.shown == () and view.message == "the full recipe"
    pair = L.combination_view(grid, ["max_grad_norm", "ent_coef"])
    assert pair.trained and pair.shown == (L.run_key(["ent_coef", "max_grad_norm"]),)
    untrained = L.combination_view(grid, ["clip", "anneal_lr"])
    assert not untrained.trained and "was not trained" in untrained.message
    assert untrained.shown == (L.run_key(["clip"]), L.run_key(["anneal_lr"]))
    assert set(untrained.summaries) == {L.run_key(), *untrained.shown}
    with pytest.raises(ValueError, match="ablated"):
        L.combination_view(grid, ["adam_eps_not_here"])


def test_clip_actions_changes_nothing_on_pendulum():
    check = L.clip_actions_check("Pendulum-v1", num_envs=4, num_steps=50)
    assert check.outside > 0, "some sampled torques lie outside the bounds"
    assert check.reward_diff == 0.0 and check.obs_diff == 0.0
    clip_actions = L.DETAILS[[d.key for d in L.DETAILS].index("clip_actions")]
    _, skipped = L.split_details([clip_actions], "Pendulum-v1")
    assert skipped == [(clip_actions, clip_actions.note)]
    with pytest.raises(ValueError, match="env"):
        L.clip_actions_check("CartPole-v1")


# ---------------------------------------------------------------------- the objective


@pytest.mark.parametrize("clip_value", [False, True])
def test_loss_terms_add_up_to_the_training_loss(cartpole_params, cartpole_batch, clip_value):
    config = TrainConfig(ent_coef=0.01, vf_coef=0.5)
    hp = PPOHyper.from_config(config)
    params = (cartpole_params.policy + 0.05, cartpole_params.value)  # r ≠ 1 somewhere
    terms = L.loss_terms(params, cartpole_batch, CARTPOLE_MODEL, eps=0.2, vf_coef=0.5,
                         ent_coef=0.01, clip_value=clip_value)
    loss, _ = ppo_loss(params, cartpole_batch, hp, CARTPOLE_MODEL, "clip", clip_value)
    np.testing.assert_allclose(float(terms.loss), float(loss), rtol=1e-5)
    assert float(terms.entropy) > 0 and float(terms.value_loss) > 0
    jitted = jax.jit(lambda p: L.loss_terms(p, cartpole_batch, CARTPOLE_MODEL, eps=0.2,
                                            vf_coef=0.5, ent_coef=0.01, clip_value=clip_value))
    np.testing.assert_allclose(float(jitted(params).loss), float(loss), rtol=1e-5)


def test_loss_terms_rejects_negative_coefficients(cartpole_params, cartpole_batch):
    with pytest.raises(ValueError, match="ent_coef"):
        L.loss_terms(cartpole_params, cartpole_batch, CARTPOLE_MODEL, eps=0.2, vf_coef=0.5,
                     ent_coef=-0.1)


# ---------------------------------------------------------------------- the panel


def test_panel_starts_at_the_recipe_and_reads_the_clicked_run(fake_grid):
    grid, _ = fake_grid
    panel = ablation_panel(grid)
    assert {k: b.value for k, b in panel.sliders.items()} == detail_states(grid)
    assert panel.sliders["clip"].value is True and panel.sliders["clip_value"].value is False
    assert "the full recipe" in panel.readout.value
    assert len(panel.figure.axes[0].lines) == 1
    before_png, before_text = panel.png(), panel.readout.value

    panel.sliders["clip"].value = False  # switch the clip off
    ax_ret = panel.figure.axes[0]
    mean = ax_ret.lines[1].get_ydata()
    np.testing.assert_allclose(mean, grid.runs[L.run_key(["clip"])].mean_return.mean(axis=0))
    assert "the clip itself" in panel.readout.value and "trained" in panel.readout.value
    assert panel.readout.value != before_text and panel.png() != before_png

    panel.sliders["ent_coef"].value = True  # clip off + entropy on: not trained together
    assert "was not trained" in panel.readout.value
    assert len(panel.figure.axes[0].lines) == 3  # the recipe and each switch alone

    panel.sliders["clip"].value = True  # entropy on, clip on again: a trained run
    np.testing.assert_allclose(panel.figure.axes[0].lines[1].get_ydata(),
                               grid.runs[L.run_key(["ent_coef"])].mean_return.mean(axis=0))


def test_panel_can_start_from_a_trained_pair_and_rejects_unknown_boxes(fake_grid):
    grid, _ = fake_grid
    panel = ablation_panel(grid, ent_coef=True, max_grad_norm=False)
    np.testing.assert_allclose(
        panel.figure.axes[0].lines[1].get_ydata(),
        grid.runs[L.run_key(["ent_coef", "max_grad_norm"])].mean_return.mean(axis=0))
    assert "was not trained" not in panel.readout.value
    with pytest.raises(ValueError, match="checked"):
        ablation_panel(grid, no_such_detail=False)
    with pytest.raises(TypeError, match="checked"):
        ablation_panel(grid, clip=1)


def test_summary_figure_has_one_row_per_variant(fake_grid):
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    grid, _ = fake_grid
    fig = Figure()
    ax_ret, ax_kl = fig.subplots(1, 2)
    plot_ablation_summary(ax_ret, ax_kl, grid)
    assert len(ax_ret.get_yticklabels()) == len(grid.details) + 1
    assert ax_ret.get_yticklabels()[-1].get_text() == "full recipe"
    offsets = ax_ret.collections[1].get_offsets()  # the first detail, one dot per seed
    np.testing.assert_allclose(np.sort(offsets[:, 0]),
                               np.sort(grid.runs[L.run_key([grid.details[0].key])]
                                       .mean_return[:, -5:].mean(axis=1)))


# ---------------------------------------------------------------------- real training


@pytest.mark.slow
def test_the_sweep_cells_match_separate_training_runs():
    """The outer-product sweep of the numeric switches trains what separate calls train."""
    base = TINY_CONFIG
    numeric = [d for d in L.DETAILS if d.key in ("ent_coef", "max_grad_norm")]
    calls = L.plan_calls(numeric, base)
    assert len(calls) == 1
    runs, _ = L.run_plan(calls, [0, 1])
    for key, change in ((L.run_key(["ent_coef"]), {"ent_coef": 0.01}),
                        (L.run_key(["max_grad_norm"]), {"max_grad_norm": math.inf})):
        alone = train_many(base.replace(**change), [0, 1])
        np.testing.assert_allclose(runs[key].kl, alone.diagnostics["kl"], rtol=1e-3, atol=1e-7)
