"""Lesson 11: the trust region in language-model fine-tuning, on a toy solved exactly.

The toy (:func:`make_toy`) is a "language model" that answers each of ``P`` prompts with a
sequence of ``T`` tokens from a vocabulary of ``V``; every one of the Vᵀ answers can be
enumerated, so every expectation below is an exact sum, not a sample mean.

* The policy is autoregressive and tabular: one row of logits per (prompt, prefix),
  ``logits [P, S, V]`` with S = 1 + V + … + V^(T−1) prefixes. The prefix of depth t with
  base-V code c is row ``prefix_offset(t) + c``; an answer's own code (first token most
  significant) is its index among the N = Vᵀ answers.
* The reference policy π_ref (the "pretrained" model) is a fixed random table that rarely
  says the last token, ``V − 1``.
* The learned reward r(c, y) (the "reward model") is the true score plus a bonus for every
  ``V − 1`` token: it likes that token too much. The true score says what was wanted: the
  fraction of positions that hold the prompt's wanted token.

What the lesson computes with it:

* the KL-regularised objective J_β(π) = E_π[r] − β·KL(π‖π_ref) and its closed-form optimum
  π*(y|c) ∝ π_ref(y|c)·exp(r(c, y)/β) (Ziegler et al. 2019; Rafailov et al. 2023, eq. 4),
  by enumeration (:func:`optimal_log_probs`, :func:`frontier`);
* the exact sequence KL of two autoregressive policies as the occupancy-weighted sum of
  per-prefix KLs, each from logits (:func:`sequence_kl`);
* PPO at the token level with the per-token KL penalty in the reward (Ouyang et al. 2022,
  eq. 2; Stiennon et al. 2020): :func:`kl_penalised_rewards`, :func:`train_lm`;
* GRPO's group-relative advantage (Shao et al. 2024, "DeepSeekMath", §4.1):
  :func:`group_advantages`, the alternative to a learned value baseline in :func:`train_lm`.

All numeric hyper-parameters of :func:`train_lm` (β, ε, the learning rate) are traced, so a
sweep over them is one ``vmap`` (:func:`train_sweep`) and one compilation.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from course_lib._validate import (
    check_choice,
    check_int_at_least,
    check_non_negative,
    check_positive,
    check_rank,
    check_same_shape,
    check_seed,
)
from course_lib.core.advantages import gae, normalize_advantages
from course_lib.core.distributions import categorical_kl
from course_lib.core.surrogate import clipped_surrogate, kl_estimate
from course_lib.rl.train import check_finite as train_check_finite
from course_lib.rl.train import enable_compilation_cache

__all__ = [
    "ADVANTAGES",
    "BETAS",
    "EPS_STUDY_LR",
    "EPS_VALUES",
    "NO_CLIP",
    "STUDY_BETA",
    "BetaView",
    "EpsView",
    "Frontier",
    "LMHyper",
    "LMRun",
    "Studies",
    "Toy",
    "beta_view",
    "check_finite",
    "enumerate_sequences",
    "eps_view",
    "expected",
    "frontier",
    "group_advantages",
    "kl_estimates",
    "kl_penalised_rewards",
    "kl_to",
    "make_toy",
    "optimal_log_probs",
    "prefix_offset",
    "regularised_objective",
    "run_studies",
    "sample",
    "sequence_kl",
    "sequence_log_probs",
    "token_log_probs",
    "train_lm",
    "train_sweep",
]

ADVANTAGES = ("value", "group")
"""The two baselines :func:`train_lm` knows: a learned value table (PPO) or the group (GRPO)."""


class Toy(NamedTuple):
    """The enumerable fine-tuning problem (built by :func:`make_toy`).

    Attributes:
      ref_logits: ``[P, S, V]`` π_ref's logits per prompt and prefix.
      reward: ``[P, N]`` the learned reward r(c, y) of every answer y (N = Vᵀ).
      true_score: ``[P, N]`` what was wanted: the fraction of positions holding the prompt's
        wanted token.
      sequences: ``[N, T]`` int32, every answer, in base-V order.
      prefixes: ``[N, T]`` int32, the prefix row each token of each answer is drawn from.
    """

    ref_logits: jax.Array
    reward: jax.Array
    true_score: jax.Array
    sequences: jax.Array
    prefixes: jax.Array

    @property
    def n_prompts(self) -> int:
        return self.ref_logits.shape[0]

    @property
    def vocab(self) -> int:
        return self.ref_logits.shape[2]

    @property
    def length(self) -> int:
        return self.sequences.shape[1]


def prefix_offset(depth: int, vocab: int) -> int:
    """Row of the first prefix of ``depth`` tokens: 1 + V + … + V^(depth−1)."""
    return sum(vocab ** k for k in range(depth))


def enumerate_sequences(vocab: int, length: int) -> tuple[np.ndarray, np.ndarray]:
    """All Vᵀ answers ``[N, T]`` (base-V order, first token most significant) and the prefix
    row ``[N, T]`` each of their tokens is drawn from."""
    check_int_at_least(vocab, 2, "vocab")
    check_int_at_least(length, 1, "length")
    codes = np.arange(vocab ** length)
    digits = np.stack([(codes // vocab ** (length - 1 - t)) % vocab for t in range(length)], 1)
    prefixes = np.stack([prefix_offset(t, vocab) + codes // vocab ** (length - t)
                         for t in range(length)], 1)
    return digits.astype(np.int32), prefixes.astype(np.int32)


def make_toy(n_prompts: int = 4, vocab: int = 6, length: int = 4, hack_bonus: float = 1.5,
             seed: int = 0) -> Toy:
    """The toy fine-tuning problem: π_ref, a learned reward that can be exploited, a true score.

    * π_ref: logits ~ N(0, 0.5²) per (prompt, prefix), with the last token ``V − 1`` pushed
      down by 2 nats (the pretrained model rarely says it).
    * Prompt c wants token ``c mod (V − 1)`` at every position: true(c, y) = mean_t 1[y_t =
      wanted(c)], in [0, 1].
    * The learned reward adds ``hack_bonus`` / T for every token ``V − 1``:
      r(c, y) = true(c, y) + hack_bonus · mean_t 1[y_t = V − 1]. With ``hack_bonus`` > 1 the
      reward's maximiser is the all-``V − 1`` answer, whose true score is 0.
    """
    check_int_at_least(n_prompts, 1, "n_prompts")
    check_int_at_least(vocab, 3, "vocab")
    check_int_at_least(length, 1, "length")
    check_non_negative(hack_bonus, "hack_bonus")
    rng = np.random.default_rng(check_seed(seed))
    n_prefix = prefix_offset(length, vocab)
    ref = rng.normal(0.0, 0.5, (n_prompts, n_prefix, vocab))
    ref[:, :, vocab - 1] -= 2.0
    sequences, prefixes = enumerate_sequences(vocab, length)
    wanted = np.arange(n_prompts) % (vocab - 1)
    true = np.mean(sequences[None, :, :] == wanted[:, None, None], axis=2)
    hack = np.mean(sequences == vocab - 1, axis=1)
    reward = true + hack_bonus * hack[None, :]
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    return Toy(f32(ref), f32(reward), f32(true), jnp.asarray(sequences), jnp.asarray(prefixes))


def _check_logits(logits: jax.Array, toy: Toy, name: str = "logits") -> None:
    if jnp.shape(logits) != toy.ref_logits.shape:
        raise ValueError(f"{name} must have the shape {toy.ref_logits.shape} of the toy's "
                         f"[prompts, prefixes, vocab] table, got {jnp.shape(logits)}")


@jax.jit
def sequence_log_probs(logits: jax.Array, toy: Toy) -> jax.Array:
    """log π(y|c) = Σ_t log softmax(logits[c, prefix_t(y)])[y_t] of every answer, ``[P, N]``.

    From ``log_softmax``, so an answer of probability e⁻²⁰⁰ keeps a finite log-probability.
    """
    _check_logits(logits, toy)
    logp = jax.nn.log_softmax(logits, axis=-1)            # [P, S, V]
    per_token = logp[:, toy.prefixes, toy.sequences]      # [P, N, T]
    return jnp.sum(per_token, axis=-1)


def _prefix_log_probs(logits: jax.Array, toy: Toy) -> jax.Array:
    """log-probability ``[P, S]`` that π writes each prefix (the occupancy of its row)."""
    v, t_len = toy.vocab, toy.length
    logp = jax.nn.log_softmax(logits, axis=-1)
    depth = jnp.zeros((toy.n_prompts, 1), logits.dtype)
    rows = [depth]
    for t in range(t_len - 1):
        lo = prefix_offset(t, v)
        step = logp[:, lo:lo + v ** t, :]                 # [P, V^t, V]
        depth = (depth[:, :, None] + step).reshape(toy.n_prompts, v ** (t + 1))
        rows.append(depth)
    return jnp.concatenate(rows, axis=1)


@jax.jit
def sequence_kl(p_logits: jax.Array, q_logits: jax.Array, toy: Toy) -> jax.Array:
    """Exact KL(p‖q) between two autoregressive policies, per prompt ``[P]``.

    KL(p‖q)(c) = Σ_y p(y|c) log p(y|c)/q(y|c) = Σ_prefixes p(prefix|c) · KL(p(·|prefix) ‖
    q(·|prefix)) by the chain rule: each per-prefix term is ``categorical_kl`` of two logit
    rows, weighted by the probability that p writes that prefix. No log of a probability is
    taken, so a row with −inf logits (probability 0) is handled exactly.
    """
    _check_logits(p_logits, toy, "p_logits")
    _check_logits(q_logits, toy, "q_logits")
    s, v = toy.ref_logits.shape[1:]
    per_row = categorical_kl(p_logits.reshape(-1, v), q_logits.reshape(-1, v))
    occupancy = jnp.exp(_prefix_log_probs(p_logits, toy))
    return jnp.sum(occupancy * per_row.reshape(toy.n_prompts, s), axis=1)


def expected(values: jax.Array, log_probs: jax.Array) -> jax.Array:
    """E_π[values] per prompt ``[P]``: Σ_y π(y|c)·values(c, y), from ``log_probs [P, N]``."""
    check_rank(values, 2, "values")
    check_same_shape(values, log_probs, "values", "log_probs")
    return jnp.sum(jnp.exp(log_probs) * values, axis=1)


def regularised_objective(log_probs: jax.Array, ref_log_probs: jax.Array, reward: jax.Array,
                          beta: float | jax.Array) -> jax.Array:
    """J_β(π) = E_π[r] − β·KL(π‖π_ref) per prompt ``[P]``, exactly, from log-probs ``[P, N]``."""
    check_non_negative(beta, "beta")
    check_same_shape(ref_log_probs, log_probs, "ref_log_probs", "log_probs")
    kl = expected(log_probs - ref_log_probs, log_probs)
    return expected(reward, log_probs) - beta * kl


def optimal_log_probs(ref_log_probs: jax.Array, reward: jax.Array,
                      beta: float | jax.Array) -> jax.Array:
    """The maximiser of J_β: log π*(y|c) = log π_ref(y|c) + r(c, y)/β − log Z_β(c), ``[P, N]``.

    Z_β(c) = Σ_y π_ref(y|c)·exp(r(c, y)/β), and J_β(π*) = β·log Z_β(c) (Ziegler et al. 2019;
    Rafailov et al. 2023, "Direct Preference Optimization", eq. 4). Computed with
    ``logsumexp`` so that a small β does not overflow.
    """
    check_positive(beta, "beta")
    check_rank(reward, 2, "reward")
    check_same_shape(reward, ref_log_probs, "reward", "ref_log_probs")
    unnormalised = ref_log_probs + reward / beta
    return unnormalised - jax.nn.logsumexp(unnormalised, axis=1, keepdims=True)


class Frontier(NamedTuple):
    """The optimum π*_β for each β, averaged over prompts (each field ``[len(betas)]``)."""

    beta: jax.Array
    reward: jax.Array
    true_score: jax.Array
    kl: jax.Array
    objective: jax.Array


@jax.jit
def frontier(toy: Toy, betas: jax.Array) -> Frontier:
    """Exact reward, true score, KL(π*‖π_ref) and J_β(π*) of π*_β for every β, one ``vmap``."""
    betas = jnp.asarray(betas, jnp.float32)
    check_rank(betas, 1, "betas")
    ref_lp = sequence_log_probs(toy.ref_logits, toy)

    def one(beta):
        lp = optimal_log_probs(ref_lp, toy.reward, beta)
        kl = expected(lp - ref_lp, lp)
        reward = expected(toy.reward, lp)
        return (jnp.mean(reward), jnp.mean(expected(toy.true_score, lp)), jnp.mean(kl),
                jnp.mean(reward - beta * kl))

    return Frontier(betas, *jax.vmap(one)(betas))


def kl_penalised_rewards(reward: jax.Array, logp: jax.Array, logp_ref: jax.Array,
                         beta: float | jax.Array) -> jax.Array:
    """Per-token rewards of RLHF's PPO: r_t = −β·(log π(y_t|·) − log π_ref(y_t|·)), plus the
    sequence's reward r(c, y) at its last token (Ouyang et al. 2022, eq. 2; Stiennon et al.
    2020; Ziegler et al. 2019).

    Summed over the answer, Σ_t r_t = r(c, y) − β·log π(y|c)/π_ref(y|c), whose expectation
    under π is J_β(π): a sampled answer's return is an unbiased estimate of the regularised
    objective. ``logp`` is the sampling policy's (π_old's) and is data: no gradient flows.

    Args:
      reward: ``[B]`` r(c, y) of each sampled answer.
      logp, logp_ref: ``[B, T]`` log-probabilities of its tokens under π and π_ref.
      beta: the KL coefficient β >= 0.

    Returns:
      ``[B, T]`` rewards, one per token.
    """
    check_rank(reward, 1, "reward")
    check_rank(logp, 2, "logp")
    check_same_shape(logp_ref, logp, "logp_ref", "logp")
    if jnp.shape(logp)[0] != jnp.shape(reward)[0]:
        raise ValueError(f"reward must have one entry per row of logp ({jnp.shape(logp)[0]}), "
                         f"got shape {jnp.shape(reward)}")
    check_non_negative(beta, "beta")
    penalty = -beta * jax.lax.stop_gradient(logp - logp_ref)
    last = jnp.zeros_like(penalty).at[:, -1].set(1.0)
    return penalty + last * reward[:, None]


def group_advantages(rewards: jax.Array, eps: float = 1e-8) -> jax.Array:
    """GRPO's group-relative advantage (Shao et al. 2024, §4.1.2, outcome supervision).

    Â_i = (R_i − mean_group R) / (std_group R + eps) for the G answers to one prompt,
    ``rewards [P, G] → [P, G]``; std is the group's population standard deviation. A group
    whose answers all scored the same has no signal: its advantages are 0, not NaN (nor the
    ±1 that float rounding in its mean would give).
    """
    check_rank(rewards, 2, "rewards")
    check_positive(eps, "eps")
    if jnp.shape(rewards)[1] < 2:
        raise ValueError(f"rewards needs groups of at least 2 answers, got shape "
                         f"{jnp.shape(rewards)}")
    centred = rewards - jnp.mean(rewards, axis=1, keepdims=True)
    std = jnp.std(rewards, axis=1, keepdims=True)
    # A tied group's float mean can miss its value by an ulp, leaving a std of rounding
    # error that would blow up to ±1; call a group tied below a millionth of its scale.
    scale = jnp.max(jnp.abs(rewards), axis=1, keepdims=True)
    tied = std <= 1e-6 * scale
    return jnp.where(tied, 0.0, centred / (std + eps))


@jax.jit
def token_log_probs(logits: jax.Array, prompts: jax.Array, prefixes: jax.Array,
                    tokens: jax.Array) -> jax.Array:
    """log π(y_t | c, y_<t) ``[B, T]`` of sampled answers, from ``log_softmax`` of their rows."""
    check_rank(logits, 3, "logits")
    check_rank(tokens, 2, "tokens")
    check_same_shape(prefixes, tokens, "prefixes", "tokens")
    logp = jax.nn.log_softmax(logits, axis=-1)
    return logp[prompts[:, None], prefixes, tokens]


@partial(jax.jit, static_argnames=("group_size", "length"))
def sample(key: jax.Array, logits: jax.Array, group_size: int, length: int):
    """``group_size`` answers to every prompt from π, autoregressively.

    Returns ``(prompts [B], prefixes [B, T], tokens [B, T], codes [B])`` with B = P·G, prompts
    grouped (rows p·G … p·G + G − 1 answer prompt p) and ``codes`` each answer's index in
    :func:`enumerate_sequences`.
    """
    check_rank(logits, 3, "logits")
    check_int_at_least(group_size, 1, "group_size")
    check_int_at_least(length, 1, "length")
    n_prompts, _, vocab = logits.shape
    prompts = jnp.repeat(jnp.arange(n_prompts), group_size)
    code = jnp.zeros_like(prompts)
    prefixes, tokens = [], []
    for t, k in enumerate(jax.random.split(key, length)):
        row = prefix_offset(t, vocab) + code
        token = jax.random.categorical(k, logits[prompts, row])
        prefixes.append(row)
        tokens.append(token)
        code = code * vocab + token
    return prompts, jnp.stack(prefixes, 1), jnp.stack(tokens, 1), code


@partial(jax.jit, static_argnames=("group_size",))
def kl_estimates(logits: jax.Array, toy: Toy, key: jax.Array, group_size: int):
    """Per-token k1 and k3 estimates of the sequence KL(π‖π_ref), from answers sampled from π.

    As the fine-tuning libraries do: each token gives log π(y_t|·) − log π_ref(y_t|·) (k1) or
    ρ_t − 1 − log ρ_t with ρ_t = π_ref/π (k3; Schulman 2020); the sequence estimate is T times
    their mean (:func:`course_lib.core.surrogate.kl_estimate` with π in the role of the
    sampling policy). Returns ``(k1, k3, per-token k1 [B·T], per-token k3 [B·T])``.
    """
    _check_logits(logits, toy)
    prompts, prefixes, tokens, _ = sample(key, logits, group_size, toy.length)
    logp = token_log_probs(logits, prompts, prefixes, tokens).reshape(-1)
    logp_ref = token_log_probs(toy.ref_logits, prompts, prefixes, tokens).reshape(-1)
    log_rho = logp_ref - logp
    k1_tok, k3_tok = -log_rho, jnp.expm1(log_rho) - log_rho
    t = toy.length
    return (t * kl_estimate(logp_ref, logp, "k1"), t * kl_estimate(logp_ref, logp, "k3"),
            k1_tok, k3_tok)


class LMHyper(NamedTuple):
    """Traced hyper-parameters of :func:`train_lm` (scalars, or arrays in a sweep).

    ``beta``: the KL coefficient β (whole run, to π_ref); ``eps``: the clip range ε (per
    update, to π_old); ``lr``: Adam's step size α.
    """

    beta: jax.Array | float = 0.1
    eps: jax.Array | float = 0.2
    lr: jax.Array | float = 0.03


class LMRun(NamedTuple):
    """What :func:`train_lm` returns. Per-iteration fields are ``[I]`` means over prompts,
    computed exactly by enumeration after each update."""

    logits: jax.Array       # [P, S, V] the final policy
    reward: jax.Array       # E_π[r]
    true_score: jax.Array   # E_π[true score]
    kl_ref: jax.Array       # KL(π‖π_ref), the whole run's drift
    kl_update: jax.Array    # KL(π_old‖π_new) of the update: one step's size
    objective: jax.Array    # J_β(π) = E_π[r] − β·KL(π‖π_ref)


TokenRewardFn = Callable[[jax.Array, jax.Array, jax.Array, jax.Array], jax.Array]


def _value_advantages(values, prompts, prefixes, token_rewards, lam):
    v = values[prompts[:, None], prefixes]                          # [B, T]
    dones = jnp.zeros_like(token_rewards).at[:, -1].set(1.0)
    adv, returns = gae(token_rewards.T, jax.lax.stop_gradient(v).T, dones.T,
                       jnp.zeros(token_rewards.shape[0], token_rewards.dtype), 1.0, lam)
    return normalize_advantages(adv.T), returns.T


def train_lm(toy: Toy, hyper: LMHyper, seed: jax.Array | int, *, iterations: int = 150,
             group_size: int = 128, epochs: int = 4, advantage: str = "value",
             token_rewards: TokenRewardFn = kl_penalised_rewards) -> LMRun:
    """Token-level PPO on the toy, from π = π_ref, with the KL to π_ref in the per-token reward.

    Each iteration samples ``group_size`` answers to every prompt from π_old, turns each into
    per-token rewards (``token_rewards(reward, logp_old, logp_ref, β)``, by default
    :func:`kl_penalised_rewards`), forms advantages and takes ``epochs`` full-batch Adam steps
    on PPO's clipped surrogate (:func:`course_lib.core.surrogate.clipped_surrogate`, π_old
    under ``stop_gradient``) over all B·T tokens.

    * ``advantage="value"``: GAE (γ = 1, λ = 0.95) with a learned value table V(c, prefix),
      fitted by squared error in the same steps, normalised over the batch (PPO as in RLHF).
    * ``advantage="group"``: GRPO (:func:`group_advantages`) on each answer's summed per-token
      reward, the same for all its tokens; no value table.

    After each update the exact E_π[r], true score, KL(π‖π_ref), KL(π_old‖π_new) and J_β are
    recorded. ``hyper`` and ``seed`` are traced: a sweep over them reuses one program.
    Raises ``FloatingPointError`` naming the quantity and iteration where the run went
    non-finite (a NaN in ``token_rewards``, say).
    """
    check_non_negative(hyper.beta, "beta")
    check_non_negative(hyper.eps, "eps")
    check_positive(hyper.lr, "lr")
    enable_compilation_cache()
    run = _train_lm(toy, LMHyper(*hyper), seed, iterations=iterations, group_size=group_size,
                    epochs=epochs, advantage=advantage, token_rewards=token_rewards)
    check_finite(run)
    return run


def check_finite(run: LMRun) -> None:
    """Raise ``FloatingPointError`` naming the first recorded quantity of ``run`` (any leading
    sweep axes) that went NaN/inf, and the iteration where it first did
    (:func:`course_lib.rl.train.check_finite`)."""
    train_check_finite({name: getattr(run, name) for name in LMRun._fields[1:]})


@partial(jax.jit, static_argnames=("iterations", "group_size", "epochs", "advantage",
                                   "token_rewards"))
def _train_lm(toy, hyper, seed, *, iterations, group_size, epochs, advantage, token_rewards):
    check_choice(advantage, ADVANTAGES, "advantage")
    if not callable(token_rewards):
        raise TypeError(f"token_rewards must be a function, got {type(token_rewards).__name__}")
    check_int_at_least(iterations, 1, "iterations")
    check_int_at_least(group_size, 2, "group_size")
    check_int_at_least(epochs, 1, "epochs")
    check_non_negative(hyper.beta, "beta")
    check_non_negative(hyper.eps, "eps")
    check_positive(hyper.lr, "lr")
    tx = optax.scale_by_adam()
    params = (toy.ref_logits, jnp.zeros(toy.ref_logits.shape[:2], jnp.float32))
    state = tx.init(params)
    n_prompts, length = toy.n_prompts, toy.length

    def loss_fn(params, batch):
        logits, values = params
        prompts, prefixes, tokens, logp_old, adv, returns = batch
        logp = token_log_probs(logits, prompts, prefixes, tokens).reshape(-1)
        policy = clipped_surrogate(logp, logp_old.reshape(-1), adv.reshape(-1), hyper.eps)
        v = values[prompts[:, None], prefixes]
        value_loss = jnp.mean(jnp.square(v - returns)) if advantage == "value" else 0.0
        return -policy + 0.5 * value_loss

    def iteration(carry, key):
        params, state = carry
        logits, values = params
        prompts, prefixes, tokens, codes = sample(key, logits, group_size, length)
        logp_old = token_log_probs(logits, prompts, prefixes, tokens)
        logp_ref = token_log_probs(toy.ref_logits, prompts, prefixes, tokens)
        r_tok = token_rewards(toy.reward[prompts, codes], logp_old, logp_ref, hyper.beta)
        if advantage == "value":
            adv, returns = _value_advantages(values, prompts, prefixes, r_tok, 0.95)
        else:
            total = jnp.sum(r_tok, axis=1).reshape(n_prompts, group_size)
            adv = jnp.broadcast_to(group_advantages(total).reshape(-1, 1), r_tok.shape)
            returns = jnp.zeros_like(r_tok)
        batch = (prompts, prefixes, tokens, jax.lax.stop_gradient(logp_old), adv, returns)

        def epoch(carry, _):
            params, state = carry
            grads = jax.grad(loss_fn)(params, batch)
            updates, state = tx.update(grads, state, params)
            params = jax.tree.map(lambda p, u: p - hyper.lr * u, params, updates)
            return (params, state), None

        (new_params, state), _ = jax.lax.scan(epoch, (params, state), None, length=epochs)
        new_logits = new_params[0]
        lp = sequence_log_probs(new_logits, toy)
        kl_ref = sequence_kl(new_logits, toy.ref_logits, toy)
        reward = expected(toy.reward, lp)
        stats = (jnp.mean(reward), jnp.mean(expected(toy.true_score, lp)), jnp.mean(kl_ref),
                 jnp.mean(sequence_kl(logits, new_logits, toy)),
                 jnp.mean(reward - hyper.beta * kl_ref))
        return (new_params, state), stats

    keys = jax.random.split(jax.random.key(seed), iterations)
    (params, _), stats = jax.lax.scan(iteration, (params, state), keys)
    return LMRun(params[0], *stats)


def train_sweep(toy: Toy, hyper: LMHyper, seeds, **static) -> LMRun:
    """:func:`train_lm` over a grid: ``hyper``'s fields and ``seeds`` broadcast against each
    other; one ``vmap``, one compilation. Results gain the broadcast shape as leading axes."""
    enable_compilation_cache()
    seeds = jnp.asarray(seeds, jnp.int32)
    fields = [jnp.asarray(f, jnp.float32) for f in LMHyper(*hyper)]
    for name, f in zip(LMHyper._fields, fields, strict=True):
        if not isinstance(f, jax.core.Tracer) and (not np.isfinite(np.asarray(f)).all() or
                                                  (np.asarray(f) < 0).any()):
            raise ValueError(f"{name} must hold finite numbers >= 0, got {np.asarray(f)}")
    shape = jnp.broadcast_shapes(seeds.shape, *(f.shape for f in fields))
    flat = [jnp.broadcast_to(x, shape).reshape(-1) for x in (seeds, *fields)]
    out = _sweep(toy, *flat, **{**_DEFAULTS, **static})
    check_finite(out)
    return jax.tree.map(lambda x: x.reshape(shape + x.shape[1:]), out)


_DEFAULTS = {"iterations": 150, "group_size": 128, "epochs": 4, "advantage": "value",
             "token_rewards": kl_penalised_rewards}


@partial(jax.jit, static_argnames=tuple(_DEFAULTS))
def _sweep(toy, seeds, beta, eps, lr, **static):
    return jax.vmap(lambda s, b, e, a: _train_lm(toy, LMHyper(b, e, a), s, **static))(
        seeds, beta, eps, lr)


# ------------------------------------------------------------------------------------------
# The lesson's studies: every training run of the notebook, in two compiled calls
# ------------------------------------------------------------------------------------------

BETAS = (0.0, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
"""The β of the β study (ε = 0.2, α = 0.03); β = 0 is PPO with no KL to π_ref."""
EPS_VALUES = (0.05, 0.1, 0.2, 0.3, 0.5)
"""The ε of the ε study (β = 0.1, α = 0.1: a step large enough for the clip to bind)."""
NO_CLIP = 1e3
"""An ε no ratio reaches: the clip switched off."""
STUDY_BETA = 0.1
"""The β of the ε study and of the baseline comparison."""
EPS_STUDY_LR = 0.1
"""Adam's step size α in the ε study."""


class Studies(NamedTuple):
    """The lesson's runs (each an :class:`LMRun` with leading axes).

    ``beta_runs [len(BETAS)]`` (ε = 0.2, α = 0.03, seed 0); ``eps_runs [len(EPS_VALUES) + 1]``
    (β = 0.1, α = 0.1, seed 0; the last without the clip); ``value_runs [S]`` and
    ``group_runs [S]`` (β = 0.1, ε = 0.2, α = 0.03, seeds 0 … S − 1): the learned value
    baseline against GRPO's group baseline.
    """

    betas: np.ndarray
    beta_runs: LMRun
    eps_values: np.ndarray
    eps_runs: LMRun
    value_runs: LMRun
    group_runs: LMRun


def run_studies(toy: Toy, seeds: int = 5, **static) -> Studies:
    """Train every run of the lesson: one ``vmap`` of value-baseline PPO over the β study, the
    ε study and ``seeds`` seeds, and one of GRPO over the same seeds. ``static``: structural
    arguments of :func:`train_lm` (``iterations``, ``group_size``, ``epochs``), for tests."""
    if "advantage" in static:
        raise ValueError("advantage is not an argument of run_studies: it trains both")
    check_int_at_least(seeds, 1, "seeds")
    nb, ne = len(BETAS), len(EPS_VALUES) + 1
    beta = [*BETAS, *[STUDY_BETA] * ne, *[STUDY_BETA] * (seeds - 1)]
    eps = [*[0.2] * nb, *EPS_VALUES, NO_CLIP, *[0.2] * (seeds - 1)]
    lr = [*[0.03] * nb, *[EPS_STUDY_LR] * ne, *[0.03] * (seeds - 1)]
    seed = [*[0] * (nb + ne), *range(1, seeds)]
    runs = train_sweep(toy, LMHyper(jnp.array(beta), jnp.array(eps), jnp.array(lr)),
                       jnp.array(seed), **static)
    part = lambda lo, hi: jax.tree.map(lambda x: x[lo:hi], runs)
    study = BETAS.index(STUDY_BETA)
    value = jax.tree.map(lambda a, b: jnp.concatenate([a, b]), part(study, study + 1),
                         part(nb + ne, nb + ne + seeds - 1))
    group = train_sweep(toy, LMHyper(STUDY_BETA, 0.2, 0.03), jnp.arange(seeds),
                        advantage="group", **static)
    return Studies(np.asarray(BETAS), part(0, nb), np.asarray(EPS_VALUES), part(nb, nb + ne),
                   value, group)


def kl_to(log_probs: jax.Array, target_log_probs: jax.Array) -> jax.Array:
    """Exact KL(π‖π_target) per prompt ``[P]`` from sequence log-probs ``[P, N]``."""
    return expected(log_probs - target_log_probs, log_probs)


class BetaView(NamedTuple):
    """One β of the β study (what the β panel states). ``optimum`` is π*_β's
    :class:`Frontier` row (``None`` at β = 0, where no π* short of the reward's maximiser
    exists); the ``ppo_*`` fields are the trained run's last iteration; curves are ``[I]``."""

    index: int
    beta: float
    optimum: Frontier | None
    ppo_reward: float
    ppo_true: float
    ppo_kl: float
    reward_curve: np.ndarray
    true_curve: np.ndarray
    kl_curve: np.ndarray


def beta_view(toy: Toy, studies: Studies, beta: float) -> BetaView:
    """The swept β nearest to ``beta`` (exactly, on the β grid) and its numbers."""
    i = int(np.argmin(np.abs(studies.betas - float(beta))))
    b = float(studies.betas[i])
    optimum = None if b == 0.0 else jax.tree.map(
        lambda x: float(x[0]), frontier(toy, jnp.array([b])))
    run = jax.tree.map(lambda x: np.asarray(x[i]), studies.beta_runs)
    return BetaView(i, b, optimum, float(run.reward[-1]), float(run.true_score[-1]),
                    float(run.kl_ref[-1]), run.reward, run.true_score, run.kl_ref)


class EpsView(NamedTuple):
    """One ε of the ε study (what the ε panel states): the exact KL of each update and the
    KL to π_ref after each, ``[I]``, with their summaries."""

    index: int
    eps: float
    kl_update: np.ndarray
    kl_ref: np.ndarray
    median_update: float
    max_update: float
    final_kl_ref: float
    objective: float


def eps_view(studies: Studies, eps: float) -> EpsView:
    """The swept ε nearest to ``eps`` (``NO_CLIP`` for the run without the clip)."""
    grid = np.append(studies.eps_values, NO_CLIP)
    i = int(np.argmin(np.abs(np.log(grid) - np.log(float(eps)))))
    run = jax.tree.map(lambda x: np.asarray(x[i]), studies.eps_runs)
    return EpsView(i, float(grid[i]), run.kl_update, run.kl_ref, float(np.median(run.kl_update)),
                   float(np.max(run.kl_update)), float(run.kl_ref[-1]),
                   float(np.mean(run.objective[-10:])))
