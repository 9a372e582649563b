"""Interval estimates over seeds: IQM, its bootstrap interval, the interval of a difference."""

import numpy as np
import pytest

from course_lib.lessons.stats import iqm, iqm_difference, iqm_interval


def test_iqm_drops_the_outer_quarters():
    x = np.array([100.0, 1, 2, 3, 4, 5, 6, 7, -50, 8])
    # sorted: -50 1 2 3 4 5 6 7 8 100 → n//4 = 2 dropped each side → mean(3..7... ) of 6 middle
    assert iqm(x) == pytest.approx(np.mean([2, 3, 4, 5, 6, 7]))
    assert iqm([1.0, 2.0, 9.0]) == pytest.approx(4.0)  # fewer than 4 runs: the plain mean
    np.testing.assert_allclose(iqm(np.tile(x, (3, 1))), [iqm(x)] * 3)


def test_interval_holds_the_estimate_and_narrows_with_more_seeds():
    rng = np.random.default_rng(1)
    few, many = rng.normal(5, 1, 10), rng.normal(5, 1, 200)
    e_few, e_many = iqm_interval(few), iqm_interval(many)
    assert e_few.lo <= e_few.value <= e_few.hi
    assert (e_many.hi - e_many.lo) < 0.5 * (e_few.hi - e_few.lo)
    assert e_many.lo < 5.0 < e_many.hi
    assert iqm_interval(few) == e_few  # fixed resampling seed: the same interval every run


def test_difference_tells_signal_from_noise():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0, 1, 12), rng.normal(0, 1, 12)
    assert iqm_difference(a, b).within_noise
    far = iqm_difference(a + 10, b)
    assert not far.within_noise and far.lo > 5
    assert iqm_difference(b, a + 10).hi < -5


@pytest.mark.parametrize("bad, match", [([1.0], "at least 2"), ([[1.0, 2.0]], "1-D"),
                                        ([1.0, np.nan], "finite")])
def test_bad_runs_are_named(bad, match):
    with pytest.raises(ValueError, match=match):
        iqm_interval(bad)
    with pytest.raises(ValueError, match="level"):
        iqm_interval([1.0, 2.0, 3.0], level=1.5)
