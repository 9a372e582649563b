"""What several lessons share: seed bands, final returns, the nearest grid row."""

import numpy as np
import pytest

from course_lib.lessons.common import final_return, nearest_index, seed_band


def test_seed_band_is_mean_and_range_over_seeds():
    x = np.arange(24.0).reshape(2, 3, 4) ** 1.5
    band = seed_band(x)
    np.testing.assert_allclose(band.mean, x.mean(axis=1))
    np.testing.assert_allclose(band.lo, x.min(axis=1))
    np.testing.assert_allclose(band.hi, x.max(axis=1))
    assert seed_band(x, seed_axis=0).mean.shape == (3, 4)
    with pytest.raises(ValueError, match="seed_axis"):
        seed_band(x, seed_axis=5)
    with pytest.raises(ValueError, match="values"):
        seed_band(3.0)


def test_seed_band_rejects_a_single_curve():
    with pytest.raises(ValueError, match="values"):
        seed_band(np.arange(5.0))


def test_final_return_averages_the_last_iterations():
    r = np.array([[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]])
    np.testing.assert_allclose(final_return(r), [5.0])
    np.testing.assert_allclose(final_return(r, last=2), [6.5])
    with pytest.raises(ValueError, match="last"):
        final_return(r, last=8)
    with pytest.raises(ValueError, match="last"):
        final_return(r, last=0)


def test_nearest_index_is_nearest_on_a_log_scale():
    grid = [0.001, 0.003, 0.01, 0.03, 0.1]
    assert nearest_index(grid, 0.01) == 2
    assert nearest_index(grid, 0.006) == 2       # log-nearer to 0.01; linearly nearer to 0.003
    assert nearest_index(grid, 0.005) == 1
    assert nearest_index(grid, 1.0) == 4 and nearest_index(grid, 1e-6) == 0
    with pytest.raises(ValueError, match="value"):
        nearest_index(grid, 0.0)
    with pytest.raises(ValueError, match="grid"):
        nearest_index([0.0, 0.1], 0.1)
