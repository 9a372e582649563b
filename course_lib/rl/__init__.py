"""The reinforcement-learning layer: the training config, the JAX environments, the actor-critic,
the one rollout → GAE → batch path, the PPO and TRPO updates, and the jitted training loop.

Imports only :mod:`course_lib.core` (and :mod:`course_lib._validate`).
"""
