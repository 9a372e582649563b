"""Predict, then measure: the learner writes a prediction before the measurement runs.

A lesson's answer cell sets a number (``kl_prediction = ...``); its check cell calls
:func:`check_prediction`, which measures the quantity itself (hidden: nothing of the
measurement is in the learner's notebook), and passes when the prediction is within the
question's factor of the measurement. The pass line names no value (the exercise notebook
stores it); the fail line gives the measurement and the reason for the difference. The cell
after the check (tagged ``exercise-discussion`` and ``nbval-ignore-output``, so the exercise
notebook hides it and any accepted prediction passes the check) calls
:func:`explain_prediction`: the prediction, the measurement, their ratio and why, whether the
prediction was close or not.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from course_lib.exercises.checks.verdict import Wrong, describe_value, verdict

__all__ = ["PREDICTIONS", "Question", "check_prediction", "explain_prediction"]


class Question(NamedTuple):
    """A predict-then-measure question.

    Attributes:
      title: the exercise's name in the verdict line.
      what: the quantity, in words ("the mean KL of the step α = 7").
      measure: computes the measurement (cached: it runs once per kernel).
      factor: the prediction passes within this factor of the measurement.
      why: why the measurement is what it is, printed whether or not the prediction was close.
    """

    title: str
    what: str
    measure: Callable[[], float]
    factor: float
    why: str


@functools.cache
def _cliff_kl(alpha: float) -> float:
    """Lesson 01's measurement: the mean KL of θ_old + α·g on the lesson's batch."""
    import jax

    from course_lib.lessons.l01_cliff import (
        BATCH_SEED,
        CLIFF_CONFIG,
        load_cliff_run,
        policy_change,
        policy_gradient_step,
    )
    from course_lib.rl.envs import make_env
    from course_lib.rl.networks import model_from_config
    from course_lib.rl.rollout import collect_batch

    result = load_cliff_run()
    env, model = make_env(CLIFF_CONFIG.env), model_from_config(CLIFF_CONFIG)
    batch = collect_batch(result.params, model, env, jax.random.key(BATCH_SEED), num_envs=8,
                          num_steps=256)
    theta = result.params.policy
    step = policy_gradient_step(theta, batch, model, alpha)
    return float(policy_change(theta, step, batch.obs, model).kl)


@functools.cache
def _trpo_full_step_kl(delta: float) -> float:
    """Lesson 06's measurement: the exact KL of TRPO's full step (before the line search) on
    the lesson's batch (section 1's policy after 30 updates at δ = 0.001, batch key 0)."""
    import jax

    from course_lib.lessons.l06_trpo import dissect_trpo_update
    from course_lib.rl.config import TrainConfig
    from course_lib.rl.envs import make_env
    from course_lib.rl.networks import model_from_config
    from course_lib.rl.rollout import collect_batch
    from course_lib.rl.train import train

    config = TrainConfig(algo="trpo", delta=0.001)
    warmup = train(config, seed=0)
    model, env = model_from_config(config), make_env(config.env)
    batch = collect_batch(warmup.params, model, env, jax.random.key(0), num_envs=8,
                          num_steps=128)
    return float(dissect_trpo_update(warmup.params.policy, batch, model, delta).full_step_kl)


def _meadow_gains(t: float) -> tuple[float, float]:
    """Lesson 03's measurement: the true and the surrogate gain at θ_old + t·∇L on the meadow
    and cliff edge MDP (old policy runs 20 % of the time)."""
    from course_lib.lessons.l03_ratio import (
        cliff_edge_mdp,
        cliff_edge_old_params,
        surrogate_gain,
        surrogate_gradient,
        true_gain,
    )

    mdp = cliff_edge_mdp()
    theta_old = cliff_edge_old_params(p_run=0.2)
    theta = theta_old + t * surrogate_gradient(mdp, theta_old)
    return float(true_gain(mdp, theta_old, theta)), float(surrogate_gain(mdp, theta_old, theta))


PREDICTIONS: dict[str, Question] = {
    "cliff_kl_at_7": Question(
        title="KL prediction",
        what="the mean KL(π_old‖π_new) of the step α = 7",
        measure=lambda: _cliff_kl(7.0),
        factor=2.0,
        why=("the α² law of small steps, KL(α) ≈ KL(α₀)·(α/α₀)², is accurate when α₀ is small "
             "(from α₀ = 1, section 5's table, it lands within a few percent at α = 7); "
             "extrapolated down from a large step such as α = 20 it underestimates, because "
             "there many states' probabilities are already near 0 or 1 and the KL has grown "
             "more slowly than α² (section 5's log-log slope falls below 2 for large steps)"),
    ),
    "trpo_full_step_kl": Question(
        title="full-step KL prediction",
        what="the exact mean KL of TRPO's full step at δ = 0.05, before the line search",
        measure=lambda: _trpo_full_step_kl(0.05),
        factor=1.5,
        why=("the step is scaled so that the damped quadratic model ½·sᵀ(F + μI)s equals δ; "
             "the exact KL differs from it by the damping term ½μ‖s‖², which the KL does not "
             "have (the step is a little short), and by the higher-order terms the quadratic "
             "model drops, small this close to θ_old: the full step's KL is close to δ but not "
             "equal, which is why the line search still checks it"),
    ),
    "meadow_true_gain": Question(
        title="true-gain prediction",
        what="the true gain J(θ) − J(θ_old) at t = 1.5 on the meadow and cliff edge",
        measure=lambda: _meadow_gains(1.5)[0],
        factor=1.5,
        why=("the surrogate, which keeps the old state occupancy ρ_old, promises more than "
             "twice as much there; the true gain is smaller because the new policy reaches the edge "
             "more often and runs there (ρ_θ ≠ ρ_old), and beyond t ≈ 2.5 it turns negative "
             "(section 5)"),
    ),
}
"""The questions by name; a lesson may add its own."""

_ASKED: dict[str, float] = {}


def _number(value: Any) -> float:
    if value is Ellipsis or value is None:
        raise Wrong(f"no prediction yet: write a number, {describe_value(value)} is not one")
    if callable(value):
        from course_lib.exercises.checks.verdict import call

        value = call(value)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise Wrong(f"write your prediction as a number, not {describe_value(value)}") from None
    if not math.isfinite(number):
        raise Wrong(f"write a finite number; your prediction is {number:g}")
    return number


def check_prediction(prediction: Any, question: str = "cliff_kl_at_7") -> bool:
    """Compare a prediction with the hidden measurement of ``PREDICTIONS[question]``."""
    q = PREDICTIONS.get(question)

    def body() -> int:
        if q is None:
            raise Wrong(f"no prediction question named {question!r}")
        guess = _number(prediction)
        _ASKED[question] = guess
        measured = q.measure()
        ratio = measured / guess if guess else math.inf
        if not 1.0 / q.factor <= ratio <= q.factor:
            raise Wrong(f"you predicted {guess:.3g} for {q.what}; the measurement is "
                        f"{measured:.3g}, {ratio:.2g} × yours (within × {q.factor:g} passes): "
                        f"{q.why}")
        return 1

    return verdict(q.title if q else "prediction", prediction, body, callable_fn=False)


def explain_prediction(question: str = "cliff_kl_at_7") -> None:
    """Print the last prediction checked for ``question``, the measurement and why."""
    q = PREDICTIONS[question]
    measured = q.measure()
    guess = _ASKED.get(question)
    head = (f"you predicted {guess:.3g}; " if guess else "no prediction checked yet; ")
    ratio = f" ({measured / guess:.2g} × your prediction)" if guess else ""
    print(f"{head}{q.what} measures {measured:.3g}{ratio}. Why: {q.why}.")
