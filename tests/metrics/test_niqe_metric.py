"""sr_jax.metrics.niqe_metric: NIQE against its MATLAB release and BasicSR's
calculate_niqe, and the documented release files of NIQE's and BRISQUE's
data.

The references (tests/helpers/nss_reference.py) are written from the
authors' MATLAB code (`computequality.m`, `computefeature.m`,
`brisque_feature.m`, `estimateggdparam.m`, `estimateaggdparam.m`) and
BasicSR's `calculate_niqe`, deliberately unlike the implementation: a 2-D
sum over the 49 window offsets for the local mean (grouped by ring, so that
an exactly balanced neighbourhood gives exactly 0, the documented
semantics), scipy's 2-D correlation for E[I^2], a loop over blocks,
exhaustive searches of the gamma grid, MATLAB's imresize as a loop over
output pixels, and an explicit kernel sum for the SVR. They are slow but
fine on the cropped photos used.
"""
import hashlib
import math
import os

import numpy as np
import pytest

from sr_jax.metrics import brisque_metric as brisque_lib
from sr_jax.metrics import niqe_metric as niqe_lib
from tests.helpers.nss_reference import _beta_factor
from tests.helpers.nss_reference import _blurred
from tests.helpers.nss_reference import _noisy
from tests.helpers.nss_reference import _photo
from tests.helpers.nss_reference import _ref_aggd
from tests.helpers.nss_reference import _ref_gray
from tests.helpers.nss_reference import _ref_imresize_half
from tests.helpers.nss_reference import _ref_mscn
from tests.helpers.nss_reference import DATA_DIR

# ----------------------------------------------------------------------------
# Independent references.


def _ref_niqe_block(block: np.ndarray) -> list[float]:
  """computefeature.m / BasicSR's compute_feature (18 features)."""
  alpha, left, right = _ref_aggd(block)
  feats = [alpha, (left + right) / 2 * _beta_factor(alpha)]
  for shift in ((0, 1), (1, 0), (1, 1), (1, -1)):  # BasicSR's shifts.
    alpha, left, right = _ref_aggd(block * np.roll(block, shift, axis=(0, 1)))
    beta_l, beta_r = left * _beta_factor(alpha), right * _beta_factor(alpha)
    mean = (beta_r - beta_l) * math.gamma(2 / alpha) / math.gamma(1 / alpha)
    feats += [alpha, mean, beta_l, beta_r]
  return feats


def _ref_y(rgb: np.ndarray) -> np.ndarray:
  r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
  return 16.0 + (65.481 * r + 128.553 * g + 24.966 * b) / 255.0


def _ref_niqe(rgb, crop_border=0, convert_to='y'):
  img = _ref_y(rgb) if convert_to == 'y' else _ref_gray(rgb)
  if crop_border:
    img = img[crop_border:-crop_border, crop_border:-crop_border]
  img = np.round(img)
  nh, nw = img.shape[0] // 96, img.shape[1] // 96
  img = img[:nh * 96, :nw * 96]
  per_scale = []
  for scale in (1, 2):
    m = _ref_mscn(img, 'replicate')
    b = 96 // scale
    per_scale.append([
        _ref_niqe_block(m[i * b:(i + 1) * b, j * b:(j + 1) * b])
        for j in range(nw) for i in range(nh)])
    img = _ref_imresize_half(img)
  feats = np.concatenate([np.array(f) for f in per_scale], axis=1)
  mu = np.nanmean(feats, axis=0)
  cov = np.cov(feats[~np.isnan(feats).any(axis=1)], rowvar=False)
  with np.load(os.path.join(DATA_DIR, 'niqe_pris_params.npz')) as data:
    mu_p = data['mu_pris_param'].ravel()
    cov_p = data['cov_pris_param']
  d = mu_p - mu
  return math.sqrt(d @ np.linalg.pinv((cov_p + cov) / 2) @ d)


# ----------------------------------------------------------------------------
# Data files.


def _content_hash(path):
  h = hashlib.sha256()
  with np.load(path, allow_pickle=False) as data:
    for key in sorted(data.files):
      a = np.ascontiguousarray(data[key])
      h.update(key.encode())
      h.update(str(a.shape).encode())
      h.update(a.astype('<f8').tobytes())
  return h.hexdigest()


def test_data_files_are_the_documented_releases():
  # Hashes of the arrays as documented in data/NOTICE.md.
  assert _content_hash(os.path.join(DATA_DIR, 'niqe_pris_params.npz')) == (
      '0512309d4fe05e419cddd49fc96488374c18b32b95db256538409a2a53336d8b')
  # BRISQUE's arrays are those of the MATLAB release's `allmodel` and
  # `allrange` (stored beside them; tests/test_brisque_matlab.py parses the
  # text files and compares every value).
  assert _content_hash(os.path.join(DATA_DIR, 'brisque_model.npz')) == (
      'f6e001df3f806c3f488a5883fb4e736bf10d9e716d3dd7edf8d440fa7f7260c1')
  m = brisque_lib.model()
  assert m['support_vectors'].shape == (774, 36)
  assert float(m['gamma']) == 0.05 and float(m['rho']) == -153.591
  # The first support vector line of allmodel and the first range entries.
  assert m['dual_coef'][0] == -1024
  np.testing.assert_array_equal(m['support_vectors'][0, :3],
                                [-0.596978, -0.136393, -0.248933])
  assert m['feature_min'][0] == 0.338 and m['feature_max'][0] == 10.0
  assert float(m['scale_lower']) == -1.0 and float(m['scale_upper']) == 1.0
  mu, cov = niqe_lib.pristine_params()
  assert mu.shape == (36,) and cov.shape == (36, 36)
  np.testing.assert_allclose(cov, cov.T, atol=1e-12)


# ----------------------------------------------------------------------------
# NIQE.

NIQE_CASES = [
    # astronaut's lower right has flat black and white areas.
    ('astronaut', slice(224, 512), slice(200, 512), 0, 'y'),
    ('astronaut', slice(224, 512), slice(200, 512), 3, 'gray'),
    ('chelsea', slice(None), slice(0, 400), 0, 'y'),
    ('coffee', slice(100, 400), slice(0, 300), 0, 'gray'),
    ('rocket', slice(0, 300), slice(0, 400), 5, 'y'),
]


@pytest.mark.parametrize('name,rows,cols,crop_border,convert_to', NIQE_CASES)
def test_niqe_matches_reference(name, rows, cols, crop_border, convert_to):
  img = _photo(name, rows, cols)
  got = niqe_lib.niqe(img, crop_border=crop_border, convert_to=convert_to)
  assert isinstance(got, float)
  ref = _ref_niqe(img, crop_border=crop_border, convert_to=convert_to)
  assert got == pytest.approx(ref, abs=1e-3)
  assert 1.0 < got < 15.0


def test_niqe_flat_block_is_handled_like_basicsr():
  # A flat block has NaN features: its alpha (0.2) still enters the mean,
  # the block leaves the covariance (BasicSR's nanmean and NaN-free rows).
  img = _photo('chelsea', slice(0, 288), slice(0, 288)).copy()
  img[90:198, 90:198] = (120, 90, 60)
  y = np.round(_ref_y(img))
  feats = niqe_lib.niqe_features(y)
  assert feats.shape == (9, 36)
  assert np.isnan(feats).any(axis=1).sum() == 1
  got = niqe_lib.niqe(img)
  assert got == pytest.approx(_ref_niqe(img), abs=1e-3)


@pytest.mark.parametrize('name', ['chelsea', 'coffee'])
def test_niqe_rises_with_noise_and_blur(name):
  img = _photo(name, slice(0, 288), slice(0, 384))
  clean = niqe_lib.niqe(img)
  assert niqe_lib.niqe(_noisy(img, 10.0)) > clean + 1.0
  assert niqe_lib.niqe(_blurred(img, 2.0)) > clean + 1.0


def test_niqe_rejects_bad_input():
  img = _photo('chelsea', slice(0, 200), slice(0, 200))
  with pytest.raises(ValueError, match='convert_to'):
    niqe_lib.niqe(img, convert_to='lab')
  with pytest.raises(ValueError, match='at least'):
    niqe_lib.niqe(img[:90])
  with pytest.raises(ValueError, match='two'):
    niqe_lib.niqe(img[:100, :100])  # One block: no covariance.
  with pytest.raises(ValueError, match='two'):
    niqe_lib.niqe(np.full((200, 200, 3), 77, np.uint8))  # All flat.
