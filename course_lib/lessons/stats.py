"""Interval estimates over training seeds: the interquartile mean and its bootstrap interval.

A handful of seeds gives a noisy mean and a misleading range. Following Agarwal et al. (2021),
"Deep RL at the edge of the statistical precipice" (the method behind ``rliable``), a lesson
that compares algorithms or settings reports, over ≥ 10 seeds,

* the **interquartile mean** (IQM): the mean of the middle 50 % of the runs, robust to one
  collapsed or lucky seed yet less noisy than the median;
* a **percentile bootstrap confidence interval**: resample the seeds with replacement B times,
  recompute the statistic each time, and take the 2.5 and 97.5 percentiles (95 %);
* for a difference between two settings, the same interval of IQM(a) − IQM(b) with both sets of
  seeds resampled independently (stratified by setting). When it contains 0 the difference is
  within the noise of this many seeds.

The resampling is fixed by ``seed``, so a stored lesson prints the same interval every run.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from course_lib._validate import check_int_at_least, check_seed

__all__ = ["Estimate", "Difference", "iqm", "iqm_interval", "iqm_difference"]


class Estimate(NamedTuple):
    """A point estimate over runs with its bootstrap interval: ``lo ≤ value ≤ hi`` usually."""

    value: float
    lo: float
    hi: float

    def __str__(self) -> str:
        return f"{self.value:.3g} [{self.lo:.3g}, {self.hi:.3g}]"


class Difference(NamedTuple):
    """IQM(a) − IQM(b) and its bootstrap interval; ``within_noise`` when the interval holds 0."""

    value: float
    lo: float
    hi: float

    @property
    def within_noise(self) -> bool:
        return bool(self.lo <= 0.0 <= self.hi)

    def __str__(self) -> str:
        return f"{self.value:+.3g} [{self.lo:+.3g}, {self.hi:+.3g}]"


def _runs(values, name: str) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.size < 2:
        raise ValueError(f"{name} must be a 1-D array of at least 2 runs (one per seed), "
                         f"got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name} must be finite, got {x}")
    return x


def iqm(values, axis: int = -1) -> np.ndarray:
    """Interquartile mean along ``axis``: sort, drop the lowest and highest quarter, average.

    With n runs the middle runs ``n//4 … n − n//4 − 1`` are kept (n = 10: the 6 middle ones;
    n < 4: all of them, the plain mean).
    """
    x = np.sort(np.asarray(values, dtype=np.float64), axis=axis)
    n = x.shape[axis]
    k = n // 4
    return np.take(x, np.arange(k, n - k), axis=axis).mean(axis=axis)


def _boot_indices(n: int, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, n, size=(n_boot, n))


def _interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    tail = 50.0 * (1.0 - level)
    lo, hi = np.percentile(samples, [tail, 100.0 - tail])
    return float(lo), float(hi)


def _check_level(level: float, n_boot: int, seed) -> None:
    if not 0.0 < float(level) < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    check_int_at_least(n_boot, 100, "n_boot")
    check_seed(seed)


def iqm_interval(values, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Estimate:
    """IQM of ``values [S]`` (one number per seed) and its percentile bootstrap interval."""
    x = _runs(values, "values")
    _check_level(level, n_boot, seed)
    rng = np.random.default_rng(seed)
    boot = iqm(x[_boot_indices(x.size, n_boot, rng)])
    return Estimate(float(iqm(x)), *_interval(boot, level))


def iqm_difference(a, b, level: float = 0.95, n_boot: int = 2000, seed: int = 0) -> Difference:
    """IQM(a) − IQM(b) over two independent sets of runs, each resampled on its own."""
    xa, xb = _runs(a, "a"), _runs(b, "b")
    _check_level(level, n_boot, seed)
    rng = np.random.default_rng(seed)
    boot = iqm(xa[_boot_indices(xa.size, n_boot, rng)]) - iqm(xb[_boot_indices(xb.size, n_boot, rng)])
    return Difference(float(iqm(xa) - iqm(xb)), *_interval(boot, level))
