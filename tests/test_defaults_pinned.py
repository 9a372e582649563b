"""Every switch of issue 15 at its default trains bit for bit as the code before the switches.

Stored lesson outputs (and their asserted claims) depend on the exact random streams and
numbers of ``train``/``train_many``, so adding ``normalize_obs``, ``scale_rewards``,
``bootstrap_truncation``, ``clip_actions``, ``ortho_init`` and ``adam_eps`` must not change a
single bit at their defaults. ``PINNED`` holds float32 results computed with the code of commit
9e8efc0 (before these fields existed), on this project's 2-core x86-64 CPU class, jax as pinned
in pyproject.toml; each value is the exact float32 written as the shortest decimal that reads
back to it. XLA's CPU kernels can differ in the last bits on another instruction set (DESIGN §6),
so a failure on a different machine class first needs the values recomputed there from that
commit; on this one, any difference is a change of the default training.
"""

from __future__ import annotations

import numpy as np
import pytest

from course_lib import TrainConfig, train, train_many

PINNED = {
    "cartpole_ppo": {
        "mean_return": [
            21.439023971557617, 31.576923370361328, 53.578948974609375, 62.38888931274414, 83.875,
            117.625, 137.1666717529297, 167.60000610351562, 221.8000030517578, 207.75, 301.0,
            342.6666564941406, 331.0, 419.0, 463.0, 500.0, 443.0, 500.0, 500.0, 500.0, 500.0,
            500.0, 500.0, 500.0, 500.0, 500.0, 500.0, 500.0, 500.0, 500.0,
        ],
        "kl": [
            0.015041062608361244, 0.013332689180970192, 0.008664671331644058,
            0.011294037103652954, 0.009316529147326946, 0.013475200161337852,
            0.006471345201134682, 0.01438934076577425, 0.004521312192082405, 0.006144669838249683,
            0.01002279669046402, 0.008844704367220402, 0.013798147439956665, 0.003923061303794384,
            0.0026862570084631443, 0.012114285491406918, 0.0015052238013595343,
            0.002292419085279107, 0.007530399598181248, 0.007436822634190321, 0.0020032306201756,
            0.004861617460846901, 0.0016707333270460367, 0.005496459547430277,
            0.00628692889586091, 0.006553183309733868, 0.0052911764942109585,
            0.0030827706214040518, 0.0011427238350734115, 0.005080947186797857,
        ],
        "policy_head": [
            0.012437434867024422, -0.010924332775175571, -0.0004358773003332317,
            -0.0027311905287206173,
        ],
        "value_head": [
            -1.553236484527588, 1.6088060140609741, 1.4879300594329834, -1.5316716432571411,
        ],
    },
    "pendulum_ppo": {
        "mean_return": [
            -1277.1375732421875, -1276.002685546875, -1177.397705078125, -1257.740234375,
            -1282.5230712890625, -1235.488037109375,
        ],
        "kl": [
            0.0031474637798964977, 0.0018403741996735334, 0.0027753952890634537,
            0.0023866784758865833, 0.00258793868124485, 0.0019651628099381924,
        ],
        "policy_head": [
            0.001422843080945313, -0.06036848947405815, 0.012909759767353535, -0.0874757319688797,
        ],
        "value_head": [
            -0.6904594302177429, -0.6299374103546143, 0.8932409882545471, 0.6087887287139893,
        ],
    },
    "cartpole_trpo": {
        "mean_return": [
            19.688888549804688, 34.290321350097656, 37.869564056396484, 60.0, 66.13333129882812,
            91.83333587646484,
        ],
        "kl": [
            0.008892637677490711, 0.008544371463358402, 0.008210436441004276,
            0.006931897718459368, 0.00820110086351633, 0.009618829935789108,
        ],
        "policy_head": [
            -0.17255304753780365, 0.1719709038734436, 0.1471003144979477, -0.14549097418785095,
        ],
        "value_head": [
            0.6349964141845703, 0.5846896171569824, 0.5046660900115967, 0.5362249612808228,
        ],
    },
    "cartpole_many": {
        "mean_return": [
            21.439023971557617, 26.230770111083984, 30.85714340209961, 36.95833206176758,
            19.688888549804688, 29.86111068725586, 26.763158798217773, 33.66666793823242,
            21.439023971557617, 35.30769348144531, 53.4375, 111.25, 19.688888549804688,
            44.105262756347656, 48.0, 70.6875,
        ],
    },
}
"""``mean_return``, ``diagnostics["kl"]`` and the last 4 entries of the flat policy and value
parameters of: ``train(TrainConfig(), 0)`` (CartPole-v1 PPO, the default config, 30
iterations); ``train(TrainConfig.for_env("Pendulum-v1", total_steps=8 * 256 * 6), 0)``;
``train(TrainConfig(algo="trpo", total_steps=1024 * 6), 1)``; and the ``mean_return [2, 2, 4]``
(flattened) of ``train_many(TrainConfig(total_steps=1024 * 4), seeds=[0, 1], eps=[0.1, 0.3])``."""

RUNS = {
    "cartpole_ppo": (lambda: TrainConfig(), 0),
    "pendulum_ppo": (lambda: TrainConfig.for_env("Pendulum-v1", total_steps=8 * 256 * 6), 0),
    "cartpole_trpo": (lambda: TrainConfig(algo="trpo", total_steps=1024 * 6), 1),
}


def as_f32(values) -> np.ndarray:
    return np.asarray(values, np.float64).astype(np.float32)


@pytest.mark.parametrize("name", list(RUNS))
def test_defaults_train_bit_for_bit_as_before_the_switches(name):
    make, seed = RUNS[name]
    config = make()
    assert (config.normalize_obs, config.scale_rewards, config.bootstrap_truncation,
            config.clip_actions, config.ortho_init, config.adam_eps) == (
        False, False, True, True, True, 1e-5)
    result = train(config, seed)
    assert result.obs_stats is None
    want = PINNED[name]
    np.testing.assert_array_equal(result.mean_return, as_f32(want["mean_return"]))
    np.testing.assert_array_equal(result.diagnostics["kl"], as_f32(want["kl"]))
    np.testing.assert_array_equal(np.asarray(result.params.policy)[-4:],
                                  as_f32(want["policy_head"]))
    np.testing.assert_array_equal(np.asarray(result.params.value)[-4:],
                                  as_f32(want["value_head"]))


def test_train_many_defaults_bit_for_bit_as_before_the_switches():
    result = train_many(TrainConfig(total_steps=1024 * 4), seeds=[0, 1], eps=[0.1, 0.3])
    np.testing.assert_array_equal(
        result.mean_return, as_f32(PINNED["cartpole_many"]["mean_return"]).reshape(2, 2, 4))
