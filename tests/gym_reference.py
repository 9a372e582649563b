"""Reference greedy returns in plain gymnasium, for checking ``course_lib.rl.evaluate``."""

from __future__ import annotations

import numpy as np

from course_lib.rl.networks import model_from_config


def gymnasium_greedy_return(params, config, episodes, seed, observe=lambda obs: obs):
    """Mean greedy return over ``episodes`` plain gymnasium envs, episode i seeded ``seed + i``;
    the policy sees ``observe(obs)`` (e.g. observations normalised by hand)."""
    import gymnasium

    model = model_from_config(config)
    totals = []
    for i in range(episodes):
        env = gymnasium.make(config.env)
        obs, _ = env.reset(seed=seed + i)
        total, done = 0.0, False
        while not done:
            seen = np.asarray(observe(np.asarray(obs, np.float32)), np.float32)
            action = np.asarray(model.greedy(model.policy(params.policy, seen[None])))[0]
            obs, reward, term, trunc, _ = env.step(action)
            total, done = total + float(reward), term or trunc
        env.close()
        totals.append(total)
    return float(np.mean(totals))
