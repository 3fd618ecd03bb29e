"""sr_jax.metrics.nss, NIQE's and BRISQUE's natural-scene statistics,
against the MATLAB releases transcribed in numpy
(tests/helpers/nss_reference.py): the window, the GGD / AGGD fits,
MATLAB's imresize and rgb2gray, the MSCN coefficients."""
import os

import numpy as np
import pytest

from sr_jax.metrics import nss
from tests.helpers.nss_reference import _ref_aggd
from tests.helpers.nss_reference import _ref_ggd
from tests.helpers.nss_reference import _ref_gray
from tests.helpers.nss_reference import _ref_imresize_half
from tests.helpers.nss_reference import _ref_mscn
from tests.helpers.nss_reference import _ref_window
from tests.helpers.nss_reference import DATA_DIR


def test_gaussian_window_is_the_shipped_one():
  with np.load(os.path.join(DATA_DIR, 'niqe_pris_params.npz')) as data:
    shipped = data['gaussian_window']
  w = nss.gaussian_window_1d()
  np.testing.assert_allclose(np.outer(w, w), shipped, rtol=0, atol=1e-16)
  np.testing.assert_allclose(_ref_window(), shipped, rtol=0, atol=1e-16)


def test_grid_search_is_the_exhaustive_argmin():
  assert np.all(np.diff(nss.AGGD_RATIO) > 0)
  assert np.all(np.diff(nss.GGD_RATIO) < 0)
  rng = np.random.default_rng(1)
  for table, squared in ((nss.AGGD_RATIO, True), (nss.GGD_RATIO, False)):
    lo, hi = table.min(), table.max()
    mids = (table[1:] + table[:-1]) / 2
    targets = np.concatenate([
        rng.uniform(lo - 0.1, hi + 0.5, 2000), table[::97], mids[::89],
        [lo - 1, hi + 1, -np.inf, np.inf, np.nan, 0.0]])
    got = nss._nearest_on_grid(table, targets, squared)  # pylint: disable=protected-access
    with np.errstate(invalid='ignore'):
      costs = (table[None] - targets[:, None])
      costs = costs ** 2 if squared else np.abs(costs)
    want = np.argmin(costs, axis=1)  # NaN rows -> 0, like MATLAB's min.
    np.testing.assert_array_equal(got, want)


def test_fits_match_the_matlab_estimators():
  rng = np.random.default_rng(2)
  samples = [rng.laplace(size=500), rng.normal(size=(300,)) ** 3,
             np.abs(rng.normal(size=200)), np.zeros(50),
             np.r_[np.zeros(20), rng.normal(size=80)]]
  for v in samples:
    alpha, left, right = nss.aggd_fit(v)
    ref_alpha, ref_left, ref_right = _ref_aggd(v)
    assert alpha == ref_alpha
    np.testing.assert_allclose([left, right], [ref_left, ref_right],
                               rtol=1e-12)
    alpha, sigma_sq = nss.ggd_fit(v)
    ref_alpha, ref_sigma = _ref_ggd(v)
    assert alpha == ref_alpha
    np.testing.assert_allclose(sigma_sq, ref_sigma ** 2, rtol=1e-12)
  # Batched over leading axes, as NIQE fits all blocks at once.
  batch = rng.normal(size=(3, 4, 100)) * rng.uniform(0.5, 2, (3, 4, 1))
  alpha, _, _ = nss.aggd_fit(batch)
  assert alpha.shape == (3, 4)
  assert alpha[2, 1] == _ref_aggd(batch[2, 1])[0]


def test_imresize_half_is_matlab():
  rng = np.random.default_rng(3)
  img = rng.integers(0, 256, (37, 50)).astype(np.float64)
  got = nss.imresize_half(img)
  assert got.shape == (19, 25)
  np.testing.assert_allclose(got, _ref_imresize_half(img), rtol=0,
                             atol=1e-10)


@pytest.mark.parametrize('mode,border', [('nearest', 'replicate'),
                                         ('constant', 'zeros')])
def test_mscn_is_exactly_zero_where_the_neighbourhood_balances(mode, border):
  rng = np.random.default_rng(4)
  img = rng.integers(0, 256, (40, 48)).astype(np.float64)
  img[5:25, 5:30] = 117.0  # Flat.
  # Point-symmetric about (32, 20): differences cancel ring by ring.
  patch = rng.integers(-3, 4, (7, 7)).astype(np.float64)
  img[29:36, 17:24] = 60.0 + patch - patch[::-1, ::-1]
  got = nss.mscn(img, mode)
  ref = _ref_mscn(img, border)
  np.testing.assert_array_equal(got == 0, ref == 0)
  assert np.all(got[8:22, 8:27] == 0) and got[32, 20] == 0
  np.testing.assert_allclose(got, ref, rtol=0, atol=1e-12)


def test_gray_conversion_is_matlab_rgb2gray():
  rng = np.random.default_rng(5)
  rgb = rng.integers(0, 256, (64, 64, 3)).astype(np.uint8)
  np.testing.assert_array_equal(nss.to_gray_matlab(rgb), _ref_gray(rgb))
