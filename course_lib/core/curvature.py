"""Curvature of the KL trust region: Fisher-vector products and the dense Fisher.

The natural gradient (Amari, 1998; Kakade, 2001) preconditions the policy gradient ``g``
with the inverse Fisher information matrix ``F``. Near ``θ_old`` the mean KL divergence is
quadratic with Hessian ``F``::

    KL(π_old ‖ π_θ) ≈ ½ (θ − θ_old)ᵀ F (θ − θ_old),    F = ∇²_θ KL(π_old ‖ π_θ) |_{θ_old}

TRPO (Schulman et al., 2015, Appendix C) never forms ``F``: conjugate gradient only needs
products ``F v``. This module gives three ways to get them:

* :func:`fisher_vector_product` — the Hessian-vector product of any scalar ``kl_fn`` by
  forward-over-reverse differentiation (``jvp`` of ``grad``), the JAX autodiff cookbook's
  ``hvp``. Exact for any ``params``.
* :func:`gauss_newton_fvp` — ``Jᵀ H_out J v`` (Schraudolph, 2002; Martens, 2014): one
  Jacobian-vector product of the network ``params → outputs``, the Hessian of the KL on the
  small output space (logits, or mean and log-std), one vector-Jacobian product back. It
  drops the term ``Σ ∂KL/∂z · ∇²z``, which vanishes at ``θ_old`` because ``∂KL/∂z = 0``
  there, so it equals the Fisher at ``θ_old``. It is positive semi-definite wherever
  ``H_out`` is: at every point for the categorical KL in logits (``H_out = diag(π) − ππᵀ``),
  near ``θ_old`` for the Gaussian KL in ``(mean, log_std)``.
* :func:`dense_fisher` — the full ``[P, P]`` matrix for small models (teaching, tests).

:func:`subsample` keeps a fraction of the batch for the curvature estimate: TRPO computed
the Fisher-vector products on 10 % of the samples (Schulman et al., 2015, Appendix C) —
the Fisher is only a metric — while the gradient and the line search use the full batch.

Every ``fvp`` returned here is linear in ``v`` and may be called many times (inside
``lax.fori_loop`` too): the expensive, ``v``-independent part is linearized once, when the
``fvp`` is built.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from course_lib._validate import check_int_at_least, check_non_negative, concrete_float

PyTree = Any

__all__ = [
    "dense_fisher",
    "fisher_vector_product",
    "gauss_newton_fvp",
    "subsample",
]


def _add_damping(hv: PyTree, v: PyTree, damping: Any) -> PyTree:
    return jax.tree_util.tree_map(lambda h, x: h + jnp.asarray(damping, h.dtype) * x, hv, v)


def fisher_vector_product(
    kl_fn: Callable[[PyTree], jax.Array], params: PyTree, damping: float | jax.Array
) -> Callable[[PyTree], PyTree]:
    """Return ``fvp(v) = F v + damping · v`` with ``F = ∇²kl_fn(params)`` (forward-over-reverse).

    ``F v = ∂/∂ε ∇kl_fn(params + ε v)|_{ε=0}``, computed as ``jax.jvp(jax.grad(kl_fn))``
    (Pearlmutter, 1994): one forward and one reverse pass with tangents, about the cost of
    two to three gradients and no ``[P, P]`` matrix. The ``jvp`` is linearized once here
    (``jax.linearize``), so each later call of ``fvp`` runs only the tangent part.

    Args:
      kl_fn: ``params → scalar``, the mean KL(π_old ‖ π_params) over a batch with π_old held
        fixed (``jax.lax.stop_gradient``). Any twice-differentiable scalar function works;
        at ``θ_old`` its Hessian is the Fisher matrix (Schulman et al., 2015, Appendix C).
      params: the point where the Hessian is taken, any pytree (a flat vector is fine).
      damping: ``μ ≥ 0`` added as ``μ v`` (Tikhonov damping: 0.1 in sb3-contrib, 1e-2 in
        OpenAI baselines). Keeps conjugate gradient well posed when ``F`` is singular.

    Returns:
      ``fvp``, a linear function from a pytree shaped like ``params`` to one shaped like
      ``params``.

    Raises:
      ValueError: ``damping`` is a concrete number < 0.

    >>> import jax.numpy as jnp
    >>> fvp = fisher_vector_product(lambda x: 0.5 * jnp.sum(jnp.array([1., 2.]) * x**2),
    ...                             jnp.zeros(2), damping=0.1)
    >>> fvp(jnp.ones(2))
    Array([1.1, 2.1], dtype=float32)
    """
    check_non_negative(damping, "damping")
    _, hvp = jax.linearize(jax.grad(kl_fn), params)

    def fvp(v: PyTree) -> PyTree:
        return _add_damping(hvp(v), v, damping)

    return fvp


def gauss_newton_fvp(
    output_fn: Callable[[PyTree], Any],
    kl_of_outputs: Callable[[Any], jax.Array],
    params: PyTree,
    damping: float | jax.Array,
) -> Callable[[PyTree], PyTree]:
    """Return ``fvp(v) = Jᵀ H_out J v + damping · v``, the Gauss–Newton form of the Fisher.

    With ``z = output_fn(θ)`` the network outputs (logits ``[B, A]``, or a tuple
    ``(mean, log_std)``) and ``kl_of_outputs(z)`` the mean KL(π_old ‖ π(z)), the chain rule
    gives ``∇²_θ KL = Jᵀ H_out J + Σ_i (∂KL/∂z_i) ∇²_θ z_i`` with ``J = ∂z/∂θ`` and
    ``H_out = ∇²_z KL``. At ``θ_old`` the KL is minimal in ``z`` so ``∂KL/∂z = 0`` and the
    second term vanishes: ``Jᵀ H_out J`` *is* the Fisher there (Schraudolph, 2002;
    Martens, 2014, §9). Away from ``θ_old`` it is PSD wherever ``H_out`` is (always for the
    categorical KL in logits).

    Cost: the network is linearized once when ``fvp`` is built (one forward pass, its
    residuals kept); each call is then one ``jvp`` (``J v``), a Hessian-vector product on
    the small output space (``jvp`` of ``grad`` of ``kl_of_outputs``, also linearized once),
    and one ``vjp`` (``Jᵀ u``, the transpose of the same linearization). No second-order
    pass through the network is needed, unlike :func:`fisher_vector_product`.

    Args:
      output_fn: ``params → outputs``, any pytree of arrays.
      kl_of_outputs: ``outputs → scalar`` mean KL(π_old ‖ π(outputs)), π_old held fixed.
      params: where to take the product (θ_old for the Fisher), any pytree.
      damping: ``μ ≥ 0`` added as ``μ v``.

    Returns:
      ``fvp``, linear, pytree shaped like ``params`` in and out.

    Raises:
      ValueError: ``damping`` is a concrete number < 0.
    """
    check_non_negative(damping, "damping")
    outputs, jvp_fn = jax.linearize(output_fn, params)
    vjp_fn = jax.linear_transpose(jvp_fn, params)
    _, out_hvp = jax.linearize(jax.grad(kl_of_outputs), outputs)

    def fvp(v: PyTree) -> PyTree:
        (jt_h_jv,) = vjp_fn(out_hvp(jvp_fn(v)))
        return _add_damping(jt_h_jv, v, damping)

    return fvp


def dense_fisher(kl_fn: Callable[[PyTree], jax.Array], params: PyTree) -> jax.Array:
    """The ``[P, P]`` Hessian of ``kl_fn`` at ``params``, w.r.t. the flattened parameters.

    The flattening order is that of ``jax.flatten_util.ravel_pytree(params)``, so
    ``dense_fisher(kl_fn, params) @ ravel_pytree(v)[0]`` equals the flattened
    ``fisher_vector_product(kl_fn, params, 0.0)(v)``. Memory is ``P²``: for teaching and
    tests on small models only.
    """
    flat, unravel = ravel_pytree(params)
    return jax.hessian(lambda f: kl_fn(unravel(f)))(flat)


def subsample(batch: PyTree, fraction: float, key: jax.Array | None = None) -> PyTree:
    """Keep a ``fraction`` of the rows (leading axis) of every array in ``batch``.

    TRPO estimated the Fisher-vector products on 10 % of the batch (Schulman et al., 2015,
    Appendix C) — the curvature needs far fewer samples than the gradient. Build the KL
    for the Fisher from ``subsample(...)`` and keep the full batch for the gradient and
    the line search::

        obs_f, old_logits_f = subsample((obs, old_logits), 0.1)
        fvp = gauss_newton_fvp(lambda p: policy(p, obs_f),
                               lambda z: categorical_kl(old_logits_f, z).mean(), params, 0.1)

    Args:
      batch: a pytree of arrays sharing the leading (batch) axis ``B``.
      fraction: a Python float in ``(0, 1]`` (static: it sets the output shape). The result
        has ``n = ceil(fraction · B)`` rows.
      key: ``None`` keeps ``n`` evenly spaced rows, ``⌊i · B / n⌋`` for ``i = 0 … n−1``
        (every ``k``-th row when ``k = B / n`` is an integer), deterministic and cheap. A
        PRNG key keeps ``n`` rows drawn uniformly without replacement.

    Returns:
      ``batch`` with every leaf cut to ``n`` rows, the same rows for every leaf.

    Raises:
      ValueError: ``fraction`` not in ``(0, 1]``, or leaves with different batch sizes.
    """
    f = concrete_float(fraction)
    if f is None or not (0.0 < f <= 1.0):
        raise ValueError(f"fraction must be a Python float in (0, 1], got {fraction!r}")
    leaves = jax.tree_util.tree_leaves(batch)
    if not leaves:
        return batch
    sizes = {jnp.shape(x)[0] if jnp.ndim(x) else None for x in leaves}
    if len(sizes) != 1 or None in sizes:
        raise ValueError(f"batch leaves must share one leading axis, got sizes {sizes}")
    (size,) = sizes
    check_int_at_least(int(size), 1, "batch size")
    n = max(1, min(size, -(-round(f * size * 1e6) // 1_000_000)))
    if n == size:
        return batch
    if key is None:
        if size % n == 0:
            stride = size // n
            return jax.tree_util.tree_map(lambda x: x[::stride], batch)
        idx = (np.arange(n) * size) // n
        return jax.tree_util.tree_map(lambda x: jnp.take(x, idx, axis=0), batch)
    idx = jax.random.choice(key, size, (n,), replace=False)
    return jax.tree_util.tree_map(lambda x: jnp.take(x, idx, axis=0), batch)
