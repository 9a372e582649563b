"""One name, one update (course_lib.rl.algos), and hyper-parameters built by name."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from course_lib import TrainConfig
from course_lib.rl.algos import get_algo, init_opt_state
from course_lib.rl.config import ALGOS
from course_lib.rl.networks import ActorCritic, Params
from course_lib.rl.ppo import PPOHyper, ppo_loss
from course_lib.rl.rollout import Batch
from course_lib.rl.trpo import TRPOHyper, trpo_policy_step

MODEL = ActorCritic(obs_dim=4, n_actions=2, discrete=True, hidden=(8,))


def _batch(n: int = 64) -> tuple[Params, Batch]:
    k_init, k_obs, k_act, k_adv = jax.random.split(jax.random.key(0), 4)
    params = Params(*MODEL.init(k_init))
    obs = jax.random.normal(k_obs, (n, 4))
    dist = MODEL.policy(params.policy, obs)
    actions = MODEL.sample(dist, k_act)
    values = MODEL.value(params.value, obs)
    adv = jax.random.normal(k_adv, (n,))
    return params, Batch(obs, actions, MODEL.log_prob(dist, actions), dist, values, adv,
                         values + adv)


def test_every_config_algo_has_one_update():
    assert tuple(get_algo(name).name for name in ALGOS) == ALGOS
    with pytest.raises(ValueError, match="algo"):
        get_algo("ppo-clip")


@pytest.mark.parametrize("algo", ALGOS)
def test_an_update_moves_the_policy_and_keeps_shapes(algo):
    config = TrainConfig(algo=algo, epochs=2, minibatches=2, target_kl=0.01)
    params, batch = _batch()
    opt_state = init_opt_state(algo, params, config.max_grad_norm)
    new, _, diag = get_algo(algo).update(config, config, params, opt_state, batch,
                                         jax.random.key(1), MODEL, config.lr, config.beta)
    assert new.policy.shape == params.policy.shape and new.value.shape == params.value.shape
    assert float(jnp.linalg.norm(new.policy - params.policy)) > 0
    assert float(jnp.linalg.norm(new.value - params.value)) > 0
    if algo in ("trpo", "npg"):
        assert set(diag) >= {"cg_residual", "step_norm", "backtracks", "accepted"}
    else:
        assert "updates_done" in diag


def test_trpo_and_npg_differ_only_by_the_line_search():
    config = TrainConfig(delta=0.5)
    params, batch = _batch()
    args = (config, config, params, init_opt_state("trpo", params, 0.5), batch,
            jax.random.key(1), MODEL, config.lr, config.beta)
    trpo_new, _, trpo_diag = get_algo("trpo").update(*args)
    npg_new, _, npg_diag = get_algo("npg").update(*args)
    hp = TRPOHyper.from_config(config)
    full, _ = trpo_policy_step(params.policy, batch, hp, MODEL, line_search=False)
    np.testing.assert_allclose(npg_new.policy, full, rtol=1e-6, atol=1e-7)
    assert float(npg_diag["backtracks"]) == 0.0
    if float(trpo_diag["backtracks"]) > 0:
        assert not np.allclose(trpo_new.policy, npg_new.policy)


def test_only_ppo_penalty_adapts_beta():
    beta, target = jnp.float32(1.0), {"target_kl": jnp.float32(0.01)}
    assert float(get_algo("ppo_penalty").next_beta(beta, jnp.float32(0.1), target)) == 2.0
    assert float(get_algo("ppo_penalty").next_beta(beta, jnp.float32(0.001), target)) == 0.5
    for name in ("ppo", "trpo", "npg"):
        assert float(get_algo(name).next_beta(beta, jnp.float32(0.1), target)) == 1.0


def test_adam_covers_the_policy_only_for_ppo():
    params, _ = _batch()
    ppo_state = init_opt_state("ppo", params, 0.5)
    trpo_state = init_opt_state("trpo", params, 0.5)
    sizes = lambda s: sum(x.size for x in jax.tree.leaves(s))
    assert sizes(ppo_state) > sizes(trpo_state)


def test_hyper_parameters_are_built_by_name_from_a_config_or_its_numbers():
    config = TrainConfig(lr=1e-3, eps=0.3, target_kl=0.02, delta=0.05)
    hp = PPOHyper.from_config(config)
    assert float(hp.eps) == pytest.approx(0.3) and float(hp.lr) == pytest.approx(1e-3)
    assert hp.eps.dtype == jnp.float32
    numbers = {name: jnp.float32(getattr(config, name)) for name in TrainConfig.numeric_fields()}
    assert PPOHyper.from_config(numbers) == PPOHyper.from_config(config)
    over = PPOHyper.from_config(config, target_kl=math.inf, lr=0.5)
    assert math.isinf(float(over.target_kl)) and float(over.lr) == 0.5
    assert float(TRPOHyper.from_config(config).delta) == pytest.approx(0.05)
    with pytest.raises(TypeError, match="detla"):
        TRPOHyper.from_config(config, detla=0.1)


def test_ppo_loss_rejects_an_unknown_objective():
    params, batch = _batch()
    hp = PPOHyper.from_config(TrainConfig())
    with pytest.raises(ValueError, match="objective"):
        ppo_loss(tuple(params), batch, hp, MODEL, "clipped", False)
