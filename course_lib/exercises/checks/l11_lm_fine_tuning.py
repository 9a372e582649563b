"""Checkers for lesson 11, fine-tuning a language model with a trust region."""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from course_lib.exercises.checks.verdict import Case, Wrong, call, compare, f32, verdict
from course_lib.lessons.l11_lm_fine_tuning import (
    LMHyper,
    group_advantages,
    kl_penalised_rewards,
    make_toy,
    optimal_log_probs,
    regularised_objective,
    sequence_log_probs,
    train_lm,
)

__all__ = ["check_group_advantages", "check_kl_penalised_rewards"]

_TIED_HINT = ("a group whose answers all scored the same has std 0: 0/0 = nan; add a small "
              "constant (1e-8) to the std so that such a group gets advantage 0")


def _group_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = [Case(f"{p} prompts × {g} answers", (f32(rng.normal(0.0, s, (p, g))),))
             for p, g, s in ((4, 8, 1.0), (3, 16, 0.3), (1, 5, 2.0), (6, 2, 1.0))]
    tied = rng.normal(0.0, 1.0, (3, 6))
    tied[1] = 1.0
    cases.append(Case("a group whose 6 answers all scored 1.0", (f32(tied),)))
    cases.append(Case("rewards of 0 and 1 (pass/fail), one group all 0",
                      (f32(np.r_[rng.integers(0, 2, (2, 8)), np.zeros((1, 8))]),)))
    cases.append(Case("rewards around 50 (an offset the advantage must remove)",
                      (f32(50.0 + rng.normal(0.0, 1.0, (2, 8))),)))
    return cases


def check_group_advantages(fn: Callable) -> bool:
    """``my_group_advantages(rewards)``: ``[P, G]`` rewards of G answers to each of P prompts →
    GRPO's advantages (R − group mean) / (group std + 1e-8), ``[P, G]``."""

    def body() -> str:
        cases = _group_cases(1101)
        n = lambda x: np.asarray(x, np.float64)
        compare(fn, cases, lambda r: group_advantages(r), rtol=1e-4, atol=1e-4,
                shape_hint="one advantage per answer, [prompts, answers]",
                nan_hint=_TIED_HINT,
                wrong=[
                    (lambda r: n(r) - n(r).mean(1, keepdims=True),
                     "you centred each group but did not scale it: divide by the group's std"),
                    (lambda r: n(r) / (n(r).std(1, keepdims=True) + 1e-8),
                     ("you did not centre: the advantage is the reward MINUS its group's mean, "
                      "so answers better than their siblings get A > 0")),
                    (lambda r: (n(r) - n(r).mean()) / (n(r).std() + 1e-8),
                     ("you normalised over the whole batch; GRPO compares each answer with the "
                      "other answers to the SAME prompt: mean and std per row (axis=1)")),
                    (lambda r: (n(r) - n(r).mean(0, keepdims=True))
                     / (n(r).std(0, keepdims=True) + 1e-8),
                     ("you normalised over the prompts (axis 0); the group is a row: the "
                      "answers to one prompt (axis=1)")),
                    (lambda r: (n(r) - n(r).mean(1, keepdims=True))
                     / (n(r).std(1, ddof=1, keepdims=True) + 1e-8),
                     ("you used the sample std (ddof=1); take the group's own spread, "
                      "jnp.std with its default ddof=0")),
                ])
        return f"correct on {len(cases)} hidden cases, tied groups included"

    return verdict("group advantages", fn, body)


def _reward_cases(seed: int) -> list[Case]:
    rng = np.random.default_rng(seed)
    cases = []
    for b, t, beta in ((5, 4, 0.1), (8, 3, 0.5), (3, 6, 0.05), (2, 1, 0.2)):
        cases.append(Case(f"{b} answers of {t} tokens, β = {beta}",
                          (f32(rng.normal(0.0, 1.0, b)), f32(-rng.uniform(0.1, 3.0, (b, t))),
                           f32(-rng.uniform(0.1, 3.0, (b, t))), beta)))
    lp = f32(-rng.uniform(0.1, 3.0, (4, 4)))
    cases.append(Case("π = π_ref on every token", (f32(rng.normal(0.0, 1.0, 4)), lp, lp, 0.1)))
    cases.append(Case("β = 0", (f32(rng.normal(0.0, 1.0, 4)), f32(-rng.uniform(0.1, 3.0, (4, 4))),
                                f32(-rng.uniform(0.1, 3.0, (4, 4))), 0.0)))
    return cases


def _variant(f):
    n = lambda x: np.asarray(x, np.float64)
    return lambda r, lp, lr, b: f(n(r), n(lp), n(lr), float(b))


def _first(x):
    out = np.zeros_like(x)
    out[:, 0] = 1.0
    return out


def _last(x):
    out = np.zeros_like(x)
    out[:, -1] = 1.0
    return out


def check_kl_penalised_rewards(fn: Callable) -> bool:
    """``my_kl_rewards(reward, logp, logp_ref, beta)``: per-token rewards ``[B, T]`` of RLHF's
    PPO, −β·(logp − logp_ref) at every token plus the answer's reward at its last token. The
    check then trains the toy of lesson 11 with it and expects PPO to reach the optimum π*."""

    def body() -> str:
        cases = _reward_cases(1102)
        compare(fn, cases, lambda r, lp, lr, b: kl_penalised_rewards(r, lp, lr, b),
                rtol=1e-4, atol=1e-5, shape_hint="one reward per token, [answers, tokens]",
                wrong=[
                    (_variant(lambda r, lp, lr, b: b * (lp - lr) + _last(lp) * r[:, None]),
                     ("your penalty has the wrong sign: it pays the policy for moving away from "
                      "π_ref. Each token costs β·(log π − log π_ref)")),
                    (_variant(lambda r, lp, lr, b: -b * (lp - lr) + r[:, None]),
                     ("you added the answer's reward at every token, so an answer of T tokens "
                      "earns it T times; it arrives once, at the last token")),
                    (_variant(lambda r, lp, lr, b: -b * (lp - lr) + _first(lp) * r[:, None]),
                     "you put the reward at the first token; it arrives at the last token"),
                    (_variant(lambda r, lp, lr, b: _last(lp)
                              * (r - b * np.sum(lp - lr, 1))[:, None]),
                     ("you charged the whole answer's KL at its last token; the penalty is per "
                      "token, −β·(log π − log π_ref) at each one")),
                    (_variant(lambda r, lp, lr, b: -b * (lp - lr)),
                     "you left out the answer's reward r(c, y): add it at the last token"),
                    (_variant(lambda r, lp, lr, b: -(lp - lr) + _last(lp) * r[:, None]),
                     "you forgot β: each token's penalty is β·(log π − log π_ref)"),
                ])
        toy = make_toy()
        try:
            run = train_lm(toy, LMHyper(0.1, 0.2, 0.03), 0, iterations=60, group_size=64,
                           token_rewards=_traceable(fn))
            reached = float(run.objective[-5:].mean())
        except Wrong:
            raise
        except FloatingPointError:
            raise Wrong("PPO trained with your rewards went NaN: your function gives nan or inf "
                        "inside training") from None
        except Exception as err:  # noqa: BLE001 (the learner's code inside jax.jit)
            raise Wrong(f"your function works on arrays but not inside jax.jit training "
                        f"({type(err).__name__}); write it with jax.numpy") from None
        ref_lp = sequence_log_probs(toy.ref_logits, toy)
        best = float(jnp.mean(regularised_objective(
            optimal_log_probs(ref_lp, toy.reward, 0.1), ref_lp, toy.reward, 0.1)))
        start = float(jnp.mean(regularised_objective(ref_lp, ref_lp, toy.reward, 0.1)))
        if not reached >= start + 0.8 * (best - start):
            raise Wrong("your rewards pass the cases but PPO trained with them does not approach "
                        "the KL-regularised optimum π*; check the dtype and the last-token index")
        return (f"correct on {len(cases)} hidden cases; PPO trained with your rewards reaches "
                "the KL-regularised optimum")

    return verdict("KL-penalised rewards", fn, body)


def _traceable(fn: Callable) -> Callable:
    """The learner's function as ``train_lm`` calls it, its errors as fail lines."""

    def token_rewards(reward, logp, logp_ref, beta):
        out = call(fn, reward, logp, logp_ref, beta)
        if out is None:
            raise Wrong("your function returned None: did you forget the `return`?")
        return jnp.asarray(out, jnp.float32).reshape(logp.shape)

    return token_rewards
