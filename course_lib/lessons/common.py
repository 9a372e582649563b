"""What several lessons share: summaries of a grid of training runs over seeds.

A learning curve from :func:`course_lib.train_many` is ``mean_return [..., S, I]`` (seeds ×
iterations). :func:`seed_band` draws the band around it (mean, lowest and highest seed),
:func:`final_return` reads where a run ended, and :func:`nearest_index` picks the row of a
log-spaced grid (δ, ε) nearest to a slider's value.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from course_lib._validate import check_int_at_least

__all__ = ["SeedBand", "final_return", "nearest_index", "seed_band"]


class SeedBand(NamedTuple):
    """Mean and range over the seed axis: ``mean``, ``lo`` (min), ``hi`` (max), same shape."""

    mean: np.ndarray
    lo: np.ndarray
    hi: np.ndarray


def seed_band(values, seed_axis: int = -2) -> SeedBand:
    """Mean ± range of ``values`` over the seed axis (``[..., S, I]`` by default → ``[..., I]``).

    The band of a learning curve: ``mean`` is the average over the S seeds, ``lo``/``hi``
    the lowest and highest seed at each iteration.
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim < 1:
        raise ValueError(f"values must have a seed axis, got shape {x.shape}")
    try:
        n = x.shape[seed_axis]
    except IndexError:
        raise ValueError(f"values has no seed_axis {seed_axis}: shape {x.shape}") from None
    if n < 1:
        raise ValueError(f"values has no seeds along seed_axis {seed_axis}: shape {x.shape}")
    return SeedBand(x.mean(axis=seed_axis), x.min(axis=seed_axis), x.max(axis=seed_axis))


def final_return(mean_return, last: int = 5) -> np.ndarray:
    """Mean return of the last ``last`` iterations, per run: ``[..., I] → [...]``.

    One iteration's mean return is noisy (a handful of episodes); averaging the last five
    (5 × 1024 steps with the course defaults) gives a steadier end point.
    """
    r = np.asarray(mean_return, dtype=np.float64)
    check_int_at_least(last, 1, "last")
    if r.ndim < 1 or r.shape[-1] < last:
        raise ValueError(f"mean_return must have at least last={last} iterations, got {r.shape}")
    return r[..., -last:].mean(axis=-1)


def nearest_index(grid, value: float) -> int:
    """Index of the grid value nearest to ``value`` on a log scale (δ grids are log-spaced)."""
    g = np.asarray(grid, dtype=np.float64)
    if g.ndim != 1 or g.size == 0 or not (g > 0).all():
        raise ValueError(f"grid must be a non-empty 1-D array of values > 0, got {grid}")
    if not float(value) > 0:
        raise ValueError(f"value must be > 0, got {value}")
    return int(np.argmin(np.abs(np.log(g) - np.log(float(value)))))
