"""Argument checks shared by every module: they run at trace time and name the argument.

A check that needs a concrete value (``delta > 0``) is skipped when the value is a tracer,
so the functions still work with traced hyper-parameters inside ``jax.jit``/``jax.vmap``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np


def concrete_float(value: Any) -> float | None:
    """``float(value)`` when it is known at trace time, else ``None`` (a tracer)."""
    if isinstance(value, jax.core.Tracer):
        return None
    try:
        return float(value)
    except (TypeError, jax.errors.ConcretizationTypeError):
        return None


def check_rank(x: Any, rank: int, name: str) -> None:
    """Raise ``ValueError`` unless ``x`` has exactly ``rank`` axes."""
    ndim = jnp.ndim(x)
    if ndim != rank:
        raise ValueError(f"{name} must have rank {rank}, got shape {jnp.shape(x)}")


def check_same_shape(a: Any, b: Any, name_a: str, name_b: str) -> None:
    """Raise ``ValueError`` unless ``a`` and ``b`` have the same shape."""
    if jnp.shape(a) != jnp.shape(b):
        raise ValueError(
            f"{name_a} and {name_b} must have the same shape, "
            f"got {jnp.shape(a)} and {jnp.shape(b)}"
        )


def check_leading(x: Any, size: int, name: str, other: str) -> None:
    """Raise ``ValueError`` unless ``x.shape[0] == size`` (the batch of ``other``)."""
    if jnp.shape(x)[0] != size:
        raise ValueError(
            f"{name} must have the batch size {size} of {other}, got shape {jnp.shape(x)}"
        )


def check_positive(value: Any, name: str) -> None:
    """Raise ``ValueError`` if a concrete ``value`` is not > 0 (or not finite)."""
    v = concrete_float(value)
    if v is not None and not (v > 0 and v < float("inf")):
        raise ValueError(f"{name} must be a finite number > 0, got {v}")


def check_non_negative(value: Any, name: str) -> None:
    """Raise ``ValueError`` if a concrete ``value`` is < 0 (or not finite)."""
    v = concrete_float(value)
    if v is not None and not (v >= 0 and v < float("inf")):
        raise ValueError(f"{name} must be a finite number >= 0, got {v}")


def check_unit_interval(value: Any, name: str) -> None:
    """``0 <= value <= 1`` for a concrete ``value`` (a discount, a GAE λ, a mixing weight)."""
    v = concrete_float(value)
    if v is not None and not 0.0 <= v <= 1.0:
        raise ValueError(f"{name} must lie in [0, 1], got {value}")


def check_int_at_least(value: Any, minimum: int, name: str) -> None:
    """Raise ``TypeError`` for a non-integer and ``ValueError`` below ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a Python int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")


def check_choice(value: Any, choices: tuple[str, ...], name: str) -> None:
    """Raise ``ValueError`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


def check_seed(seed, name: str = "seed") -> int:
    """``seed`` as a Python int; a ``TypeError`` naming ``name`` for anything but an integer."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"{name} must be an int, got {type(seed).__name__}")
    return int(seed)
