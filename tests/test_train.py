"""Tests of the training loop: results, determinism, no recompilation for numeric fields,
``train_many`` grids (and their device sharding), config validation, non-finite detection,
``evaluate``; and (marked ``slow``) that PPO and TRPO solve CartPole-v1 and NPG learns it.

The fast tests use a tiny config (2 envs × 16 steps × 2 iterations, an (8,) network) whose
programs compile in seconds; the slow tests use the default ``TrainConfig``.
"""

from __future__ import annotations

import functools
import importlib
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest
from conftest import TINY_CONFIG
from gym_reference import gymnasium_greedy_return

from course_lib import ActorCritic, TrainConfig, evaluate, train, train_many
from course_lib.rl.config import ALGOS

# ``course_lib.rl.train`` the attribute is the function; the module is this:
train_module = importlib.import_module("course_lib.rl.train")
Params = train_module.Params

ROOT = Path(__file__).resolve().parents[1]
TINY = TINY_CONFIG
COMMON_DIAGNOSTICS = {
    "kl", "kl_k1", "kl_k3", "clipfrac", "max_ratio", "entropy", "explained_variance",
    "episodes", "surrogate_gain", "param_norm",
}
TRPO_DIAGNOSTICS = {"cg_residual", "step_norm", "backtracks", "accepted"}
PPO_DIAGNOSTICS = {"updates_done", "beta"}
NONFINITE = re.compile(r"(\w+) is NaN/inf at iteration (\d+)")


@functools.cache
def tiny(algo: str = "ppo", seed: int = 0, env: str = "CartPole-v1"):
    """One tiny run per (algo, seed, env), shared by the tests that only read it."""
    target_kl = 0.01 if algo == "ppo_penalty" else TINY.target_kl
    return train(TINY.replace(algo=algo, env=env, target_kl=target_kl), seed)


def one(tree, *index):
    """The run at ``index`` of a ``train_many`` result's leading axes."""
    return jax.tree.map(lambda x: x[index], tree)


def assert_results_close(a, b, rtol=1e-4, atol=1e-5):
    np.testing.assert_allclose(a.mean_return, b.mean_return, rtol=rtol, atol=atol)
    np.testing.assert_array_equal(a.env_steps, b.env_steps)
    for x, y in zip(jax.tree.leaves(a.params), jax.tree.leaves(b.params)):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol)
    assert a.diagnostics.keys() == b.diagnostics.keys()
    for k in a.diagnostics:
        np.testing.assert_allclose(a.diagnostics[k], b.diagnostics[k], rtol=rtol, atol=atol,
                                   err_msg=k)


# ------------------------------------------------------------------------------------------
# Results
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("algo", ALGOS)
def test_result_shapes_and_diagnostics(algo):
    result = tiny(algo)
    iters = TINY.iterations
    assert iters == 2
    assert result.mean_return.shape == (iters,)
    np.testing.assert_array_equal(result.env_steps, [32, 64])
    expected = COMMON_DIAGNOSTICS | (TRPO_DIAGNOSTICS if algo in ("trpo", "npg")
                                     else PPO_DIAGNOSTICS)
    assert expected <= set(result.diagnostics), expected - set(result.diagnostics)
    for name, values in result.diagnostics.items():
        assert np.shape(values) == (iters,), name
        assert np.isfinite(values).all(), name
    d = result.diagnostics
    assert (d["kl"] >= -1e-6).all() and (d["kl_k3"] >= -1e-6).all()
    assert ((d["clipfrac"] >= 0) & (d["clipfrac"] <= 1)).all()
    assert (d["max_ratio"] > 0).all()
    assert ((d["entropy"] > 0) & (d["entropy"] <= math.log(2) + 1e-5)).all()
    model = ActorCritic(4, 2, True, TINY.hidden)
    p_size, v_size = (x.shape[0] for x in model.init(jax.random.key(0)))
    assert result.params.policy.shape == (p_size,)
    assert result.params.value.shape == (v_size,)
    if algo == "trpo":
        assert set(np.unique(d["accepted"])) <= {0.0, 1.0}
        # an accepted TRPO step stays in the trust region
        assert (d["kl"][d["accepted"] == 1] <= TINY.delta * (1 + 1e-3)).all()
    if algo == "npg":
        assert (d["accepted"] == 1).all() and (d["backtracks"] == 0).all()
    if algo == "ppo":
        assert ((d["updates_done"] > 0) & (d["updates_done"] <= 1)).all()


def test_same_seed_same_result_other_seed_other_result():
    a = tiny("ppo", 0)
    b = train(TINY, 0)
    np.testing.assert_array_equal(a.mean_return, b.mean_return)
    np.testing.assert_array_equal(a.params.policy, b.params.policy)
    for k in a.diagnostics:
        np.testing.assert_array_equal(a.diagnostics[k], b.diagnostics[k], err_msg=k)
    c = tiny("ppo", 1)
    assert not np.array_equal(a.params.policy, c.params.policy)
    assert not np.array_equal(a.diagnostics["kl"], c.diagnostics["kl"])


def test_numeric_fields_do_not_recompile():
    tiny("ppo", 0)  # compiled
    sizes = lambda: (train_module._init_jit._cache_size(), train_module._chunk_jit._cache_size())
    before = sizes()
    other_seed = train(TINY, 7)
    other_eps = train(TINY.replace(eps=0.05, lr=1e-3, gamma=0.9, target_kl=0.02), 0)
    assert sizes() == before
    # ...and they are not silently ignored
    assert not np.array_equal(other_seed.params.policy, tiny("ppo", 0).params.policy)
    assert not np.array_equal(other_eps.params.policy, tiny("ppo", 0).params.policy)
    # a structural field does compile a new program
    train(TINY.replace(epochs=2), 0)
    assert sizes()[1] == before[1] + 1


def test_trpo_delta_does_not_recompile():
    tiny("trpo", 0)
    before = train_module._chunk_jit._cache_size()
    r = train(TINY.replace(algo="trpo", delta=0.05), 0)
    assert train_module._chunk_jit._cache_size() == before
    assert not np.array_equal(r.params.policy, tiny("trpo", 0).params.policy)


def test_ppo_penalty_beta_grows_after_a_large_kl():
    """PPO-penalty (PPO paper §4): after an update whose KL is far above any sensible d_targ
    (> 0.1, the "too far" row of the KL table) β must not shrink. With the default
    ``target_kl=inf`` the rule ``KL < d_targ/1.5 → β/2`` fires on every update, so β halves
    each iteration whatever the KL and the penalty silently vanishes (the unclipped ablation).
    Either ``validate`` rejects ppo_penalty with an infinite ``target_kl`` (naming it), or a
    finite d_targ is used."""
    config = TINY.replace(algo="ppo_penalty", lr=0.2)
    try:
        config.validate()
        result = train(config, 0)
    except ValueError as err:
        assert "target_kl" in str(err), str(err)
        return
    kl, beta = result.diagnostics["kl"], result.diagnostics["beta"]
    before = np.concatenate([[config.beta], beta[:-1]])
    large = kl > 0.1
    assert large.any(), kl  # the setting does produce a large-KL update
    assert (beta[large] >= before[large]).all(), (kl, beta)


def test_ppo_penalty_beta_follows_the_kl_target():
    config = TINY.replace(algo="ppo_penalty", lr=0.2, target_kl=0.01)
    result = train(config, 0)
    kl, beta = result.diagnostics["kl"], result.diagnostics["beta"]
    before = np.concatenate([[config.beta], beta[:-1]])
    expected = np.where(kl < 0.01 / 1.5, before / 2, np.where(kl > 0.015, before * 2, before))
    np.testing.assert_allclose(beta, expected)


def test_train_many_grid_equals_single_runs():
    seeds, eps = [0, 1], [0.1, 0.3]
    grid = train_many(TINY, seeds=seeds, eps=eps)
    iters = TINY.iterations
    assert grid.mean_return.shape == (2, 2, iters)
    assert grid.env_steps.shape == (2, 2, iters)
    for name, values in grid.diagnostics.items():
        assert values.shape == (2, 2, iters), name
    p_size = tiny("ppo").params.policy.shape[0]
    assert grid.params.policy.shape == (2, 2, p_size)
    for i, e in enumerate(eps):
        for j, s in enumerate(seeds):
            single = train(TINY.replace(eps=e), s)
            assert_results_close(one(grid, i, j), single)


def test_train_many_seeds_only():
    grid = train_many(TINY, seeds=[3, 0, 1, 2])  # a grid of 4, as above: no new compile
    assert grid.mean_return.shape == (4, TINY.iterations)
    assert_results_close(one(grid, 0), train(TINY, 3))
    assert_results_close(one(grid, 1), tiny("ppo", 0))


def test_train_many_rejects_structural_sweep():
    with pytest.raises(ValueError, match="epochs"):
        train_many(TINY, seeds=[0], epochs=[1, 2])
    with pytest.raises(ValueError, match="algo"):
        train_many(TINY, seeds=[0], algo=["ppo", "trpo"])
    with pytest.raises(ValueError, match="delta"):
        train_many(TINY, seeds=[0], delta=[0.01, -1.0])


# ------------------------------------------------------------------------------------------
# Validation
# ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "error", "name"),
    [
        ({"algo": "sac"}, ValueError, "algo"),
        ({"env": "NoSuchEnv-v0"}, ValueError, "NoSuchEnv-v0"),
        ({"delta": -1.0}, ValueError, "delta"),
        ({"delta": 0.0}, ValueError, "delta"),
        ({"eps": -0.1}, ValueError, "eps"),
        ({"lr": float("nan")}, ValueError, "lr"),
        ({"gamma": 1.5}, ValueError, "gamma"),
        ({"minibatches": 3}, ValueError, "minibatches"),
        ({"epochs": 0}, ValueError, "epochs"),
        ({"num_envs": 2.0}, TypeError, "num_envs"),
        ({"total_steps": 16}, ValueError, "total_steps"),
        ({"hidden": ()}, ValueError, "hidden"),
        ({"normalize_advantages": "yes"}, ValueError, "normalize_advantages"),
        ({"backtrack_ratio": 1.0}, ValueError, "backtrack_ratio"),
    ],
)
def test_bad_config_raises_naming_the_field(changes, error, name):
    config = TINY.replace(**changes)
    with pytest.raises(error, match=re.escape(name)):
        train(config, 0)
    with pytest.raises(error, match=re.escape(name)):
        train_many(config, seeds=[0])


def test_hidden_given_as_a_list_works_or_is_rejected_by_name():
    """``hidden=[8]`` (a list, e.g. from JSON or a widget) must either train like ``(8,)`` or be
    rejected by ``validate`` with a message naming ``hidden``; today it passes validation and
    then fails inside ``jax.jit`` with "Non-hashable static arguments ... unhashable type:
    'list'"."""
    config = TINY.replace(hidden=[8])
    try:
        config.validate()
    except (TypeError, ValueError) as err:
        assert str(err).startswith("hidden"), str(err)
        return
    assert_results_close(train(config, 0), tiny("ppo", 0))


def test_train_on_a_gymnasium_only_env():
    """Acrobot-v1 has no JAX-native port: ``train`` steps gymnasium's vector env on the host
    and runs the same jitted update; ``train_many`` (vmapped) cannot and says so."""
    config = TINY.replace(env="Acrobot-v1")
    result = train(config, 0)
    assert result.mean_return.shape == (TINY.iterations,)
    assert COMMON_DIAGNOSTICS | PPO_DIAGNOSTICS <= set(result.diagnostics)
    assert result.params.policy.shape == random_params(TINY, 3, 6).policy.shape
    assert evaluate(result.params, config, episodes=2) == pytest.approx(
        gymnasium_greedy_return(result.params, config, 2, 0), rel=1e-4)
    with pytest.raises(ValueError, match="Acrobot-v1"):
        train_many(config, seeds=[0])


def test_bad_arguments():
    with pytest.raises(TypeError, match="config"):
        train({"algo": "ppo"}, 0)
    with pytest.raises(TypeError, match="seed"):
        train(TINY, "0")
    with pytest.raises(TypeError, match="seed"):
        train(TINY, 0.5)


def test_enable_compilation_cache_choice_survives_train(tmp_path):
    """``enable_compilation_cache(path)`` is public; a later ``train`` must not silently move
    the cache back to the project's ``.cache/jax`` (today ``_prepare`` calls
    ``enable_compilation_cache()`` with no path on every run, so a chosen directory, or
    ``JAX_COMPILATION_CACHE_DIR``, is overridden)."""
    keys = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs",
            "jax_persistent_cache_min_entry_size_bytes")
    saved = {k: getattr(jax.config, k) for k in keys}
    try:
        train_module.enable_compilation_cache(tmp_path)
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)
        train(TINY, 0)
        assert jax.config.jax_compilation_cache_dir == str(tmp_path)
    finally:
        for k, v in saved.items():
            jax.config.update(k, v)


def test_config_is_frozen_and_replace_copies():
    config = TrainConfig()
    with pytest.raises(AttributeError):
        config.eps = 0.3
    other = config.replace(eps=0.3)
    assert config.eps == 0.2 and other.eps == 0.3
    assert "eps" in TrainConfig.numeric_fields() and "delta" in TrainConfig.numeric_fields()
    assert "epochs" not in TrainConfig.numeric_fields()


# ------------------------------------------------------------------------------------------
# Non-finite training
# ------------------------------------------------------------------------------------------


def test_nonfinite_training_raises_naming_quantity_and_iteration():
    # Adam steps of size 1e30: the first update sends the logits to ±inf
    with pytest.raises(FloatingPointError) as info:
        train(TINY.replace(lr=1e30), 0)
    match = NONFINITE.search(str(info.value))
    assert match, str(info.value)
    name, it = match.group(1), int(match.group(2))
    assert name in COMMON_DIAGNOSTICS | PPO_DIAGNOSTICS | {"mean_return"}
    assert it == 0


def test_nonfinite_train_many_raises():
    with pytest.raises(FloatingPointError, match=NONFINITE.pattern):
        train_many(TINY, seeds=[0, 1], lr=[1e-3, 1e30])


def test_check_finite_names_the_first_bad_iteration():
    iters = 6
    diag = {"kl": np.zeros((2, 3, iters)), "entropy": np.ones((2, 3, iters)),
            "max_ratio": np.full((2, 3, iters), np.inf)}  # an inf ratio is legitimate
    diag["entropy"][1, 2, 2] = np.nan
    diag["kl"][0, 1, 4] = np.inf
    mean_return = np.zeros((2, 3, iters))
    with pytest.raises(FloatingPointError, match=r"entropy is NaN/inf at iteration 2"):
        train_module._check_finite(mean_return, diag)
    diag["entropy"][1, 2, 2] = 1.0
    with pytest.raises(FloatingPointError, match=r"kl is NaN/inf at iteration 4"):
        train_module._check_finite(mean_return, diag)
    diag["kl"][0, 1, 4] = 0.0
    train_module._check_finite(mean_return, diag)


# ------------------------------------------------------------------------------------------
# evaluate, Pendulum
# ------------------------------------------------------------------------------------------


def random_params(config: TrainConfig, n_actions=2, obs_dim=4, discrete=True, seed=0):
    model = ActorCritic(obs_dim, n_actions, discrete, config.hidden)
    return Params(*model.init(jax.random.key(seed)))


def test_evaluate_random_policy_on_cartpole():
    params = random_params(TINY)
    value = evaluate(params, TINY, episodes=3, seed=0)
    assert isinstance(value, float)
    assert 5.0 <= value < 100.0  # a fixed (greedy, untrained) policy tips the pole fast
    assert evaluate(params, TINY, episodes=3, seed=0) == value  # seeded


@pytest.mark.slow
def test_evaluate_scores_a_trained_policy_far_above_a_random_one():
    """Six PPO iterations on CartPole (6,144 steps): the greedy policy keeps the pole up for
    hundreds of steps in gymnasium, a random initialisation for a few dozen."""
    config = TrainConfig(total_steps=6 * 1024)
    trained = evaluate(train(config, 0).params, config, episodes=10, seed=0)
    untrained = evaluate(random_params(config), config, episodes=10, seed=0)
    assert trained >= untrained + 200.0, (trained, untrained)


@pytest.mark.parametrize("episodes", [0, -1, 1.5, True])
def test_evaluate_rejects_bad_episodes(episodes):
    with pytest.raises(ValueError, match="episodes"):
        evaluate(random_params(TINY), TINY, episodes=episodes)


@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_pendulum_runs(algo):
    result = tiny(algo, 0, "Pendulum-v1")
    assert result.mean_return.shape == (TINY.iterations,)
    for name, values in result.diagnostics.items():
        assert np.isfinite(values).all(), name
    # a Gaussian policy: the learned log_std is part of the flat parameters
    model = ActorCritic(3, 1, False, TINY.hidden)
    assert result.params.policy.shape == model.init(jax.random.key(0))[0].shape
    assert result.diagnostics["entropy"][0] > 0.5  # log_std starts at 0: entropy ≈ 1.42
    config = TINY.replace(algo=algo, env="Pendulum-v1")
    value = evaluate(result.params, config, episodes=2, seed=0)
    assert value == pytest.approx(gymnasium_greedy_return(result.params, config, 2, 0), rel=1e-4)


# ------------------------------------------------------------------------------------------
# Devices
# ------------------------------------------------------------------------------------------

TWO_DEVICE_SCRIPT = """
import sys, jax, numpy as np
jax.config.update("jax_numpy_rank_promotion", "raise")
from course_lib import TrainConfig, train_many
kwargs = __import__("json").loads(sys.argv[1])
config = TrainConfig(**{**kwargs, "hidden": tuple(kwargs["hidden"])})
r = train_many(config, seeds=[0, 1, 2])
np.savez(sys.argv[2], devices=len(jax.local_devices()), mean_return=r.mean_return,
         policy=np.asarray(r.params.policy), value=np.asarray(r.params.value),
         **{"diag_" + k: v for k, v in r.diagnostics.items()})
"""


def run_train_many_subprocess(out: Path, xla_flags: str | None) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "XLA_FLAGS"}
    env["JAX_PLATFORMS"] = "cpu"
    if xla_flags:
        env["XLA_FLAGS"] = xla_flags
    config = {"total_steps": 64, "num_envs": 2, "num_steps": 16, "minibatches": 2,
              "hidden": [8]}
    proc = subprocess.run(
        [sys.executable, "-c", TWO_DEVICE_SCRIPT, json.dumps(config), str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    with np.load(out) as data:
        return dict(data)


def test_train_many_over_two_devices_matches_one(tmp_path):
    """3 seeds on 2 (forced host) devices: the grid is padded to 4, sharded and unpadded."""
    two = run_train_many_subprocess(
        tmp_path / "two.npz", "--xla_force_host_platform_device_count=2"
    )
    single = run_train_many_subprocess(tmp_path / "one.npz", None)
    assert int(two.pop("devices")) == 2
    assert int(single.pop("devices")) == 1
    assert two.keys() == single.keys()
    assert two["mean_return"].shape == (3, 2)
    for k in two:
        np.testing.assert_allclose(two[k], single[k], rtol=1e-4, atol=1e-5, err_msg=k)


# ------------------------------------------------------------------------------------------
# Learning (slow): the default configs on CartPole-v1
# ------------------------------------------------------------------------------------------


def greedy_returns(result, config: TrainConfig, n: int) -> list[float]:
    return [evaluate(one(result.params, i), config, episodes=10, seed=1000) for i in range(n)]


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["ppo", "trpo"])
def test_default_config_solves_cartpole(algo):
    config = TrainConfig(algo=algo)
    result = train_many(config, seeds=range(10))
    returns = greedy_returns(result, config, 10)
    assert min(returns) >= 475.0, returns


@pytest.mark.slow
def test_npg_default_learns_cartpole():
    """NPG (no line search) learns too at the default δ; measured here: the mean of the last 5
    iterations' mean_return is 447–500 on seeds 0–9."""
    config = TrainConfig(algo="npg")
    result = train_many(config, seeds=range(10))
    late = result.mean_return[:, -5:].mean(axis=1)
    assert (late > 250.0).sum() >= 8, late
    assert late.mean() > 300.0, late


@pytest.mark.parametrize("discrete, obs_dim, n_actions", [(True, 4, 2), (False, 3, 1)])
def test_host_initialisation_matches_the_initialiser(discrete, obs_dim, n_actions):
    """init_numpy draws the same kind of networks as init: shapes, orthogonal weights with gain
    √2 in hidden layers and 0.01 / 1 at the outputs, zero biases, the initial log-std."""
    from course_lib.rl.networks import ActorCritic

    model = ActorCritic(obs_dim, n_actions, discrete, (64, 64), init_log_std=-0.5)
    pi, v = model.init_numpy(3)
    ref_pi, ref_v = model.init(jax.random.key(3))
    assert pi.shape == ref_pi.shape and v.shape == ref_v.shape and pi.dtype == np.float32
    layers = model._unravel(model._policy_module())(pi)["params"]
    mlp = layers if discrete else layers["MLP_0"]
    hidden = np.asarray(mlp["Dense_1"]["kernel"])
    np.testing.assert_allclose(hidden.T @ hidden, 2.0 * np.eye(64), atol=1e-4)
    first = np.asarray(mlp["Dense_0"]["kernel"])  # [obs_dim, 64]: orthonormal rows, times √2
    np.testing.assert_allclose(first @ first.T, 2.0 * np.eye(obs_dim), atol=1e-4)
    out = np.asarray(mlp["Dense_2"]["kernel"])
    np.testing.assert_allclose(out.T @ out, 1e-4 * np.eye(n_actions), atol=1e-7)
    assert all(not np.asarray(mlp[f"Dense_{i}"]["bias"]).any() for i in range(3))
    if not discrete:
        np.testing.assert_allclose(layers["log_std"], [-0.5] * n_actions)
    value_out = np.asarray(model._unravel(model._value_module())(v)["params"]["Dense_2"]["kernel"])
    np.testing.assert_allclose(value_out.T @ value_out, np.eye(1), atol=1e-5)
    assert not np.array_equal(model.init_numpy(4)[0], pi)
    np.testing.assert_array_equal(model.init_numpy(3)[0], pi)
