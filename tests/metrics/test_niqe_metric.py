"""Tests for the no-reference metrics NIQE and BRISQUE (and metrics/nss.py).

The references below are written from the authors' MATLAB code
(`computequality.m`, `computefeature.m`, `brisque_feature.m`,
`estimateggdparam.m`, `estimateaggdparam.m`) and BasicSR's
`calculate_niqe`, deliberately unlike the implementation: a 2-D sum over the
49 window offsets for the local mean (grouped by ring, so that an exactly
balanced neighbourhood gives exactly 0, the documented semantics), scipy's
2-D correlation for E[I^2], a loop over blocks, exhaustive searches of the
gamma grid, MATLAB's imresize as a loop over output pixels, and an explicit
kernel sum for the SVR. They are slow but fine on the cropped photos used.
"""
import hashlib
import math
import os

import numpy as np
import pytest
import skimage.data
from scipy import ndimage
from scipy import special

from sr_jax.metrics import brisque_metric as brisque_lib
from sr_jax.metrics import niqe_metric as niqe_lib
from sr_jax.metrics import nss

DATA_DIR = os.path.join(os.path.dirname(niqe_lib.__file__), 'data')
GRID = np.arange(0.2, 10.001, 0.001)  # MATLAB's 0.2:0.001:10.


def _gamma_ratios():
  g1, g2, g3 = (special.gamma(k / GRID) for k in (1.0, 2.0, 3.0))
  return g2 ** 2 / (g1 * g3), g1 * g3 / g2 ** 2


R_AGGD, R_GGD = _gamma_ratios()


# ----------------------------------------------------------------------------
# Independent references.


def _ref_window() -> np.ndarray:
  """MATLAB fspecial('gaussian', 7, 7/6), as a 2-D formula."""
  y, x = np.mgrid[-3:4, -3:4].astype(np.float64)
  w = np.exp(-(x ** 2 + y ** 2) / (2 * (7 / 6) ** 2))
  return w / w.sum()


def _ref_mscn(img: np.ndarray, border: str) -> np.ndarray:
  """(I - mu) / (sigma + 1); border 'replicate' (NIQE) or 'zeros' (BRISQUE)."""
  win = _ref_window()
  h, w = img.shape
  padded = np.pad(img, 3, mode='edge' if border == 'replicate' else 'constant')
  # mu - I = sum_ab w_ab (I[y+a, x+b] - I[y, x]); the weights are equal on
  # each ring a^2 + b^2, so sum the (exact) differences per ring first.
  ring_sums, ring_weight = {}, {}
  for a in range(-3, 4):
    for b in range(-3, 4):
      k = a * a + b * b
      diff = padded[3 + a:3 + a + h, 3 + b:3 + b + w] - img
      ring_sums[k] = ring_sums.get(k, 0.0) + diff
      ring_weight[k] = win[3 + a, 3 + b]
  mu_minus_i = sum(ring_weight[k] * s for k, s in ring_sums.items())
  mu = img + mu_minus_i
  if border == 'replicate':
    e_sq = ndimage.correlate(img * img, win, mode='nearest')
  else:
    e_sq = ndimage.correlate(img * img, win, mode='constant', cval=0.0)
  sigma = np.sqrt(np.abs(e_sq - mu * mu))
  return -mu_minus_i / (sigma + 1)


def _keys(t: float) -> float:
  t = abs(t)
  if t <= 1:
    return 1.5 * t ** 3 - 2.5 * t ** 2 + 1
  if t <= 2:
    return -0.5 * t ** 3 + 2.5 * t ** 2 - 4 * t + 2
  return 0.0


def _ref_imresize_half(img: np.ndarray) -> np.ndarray:
  """MATLAB imresize(img, 0.5) (bicubic, antialiased), one pixel at a time."""
  out = np.asarray(img, np.float64)
  for axis in (0, 1):
    x = np.moveaxis(out, axis, 0)
    n = x.shape[0]
    pad = 16
    xp = np.pad(x, [(pad, pad), (0, 0)], mode='symmetric')
    res = np.zeros((math.ceil(n / 2),) + x.shape[1:])
    for i in range(1, res.shape[0] + 1):  # 1-based, as MATLAB.
      u = 2 * i - 0.5  # i / scale + 0.5 * (1 - 1 / scale).
      left = math.floor(u - 4)  # The kernel is 8 wide at scale 0.5.
      taps = range(left, left + 10)
      wts = np.array([0.5 * _keys(0.5 * (u - j)) for j in taps])
      wts /= wts.sum()
      res[i - 1] = sum(wt * xp[j - 1 + pad] for wt, j in zip(wts, taps))
    out = np.moveaxis(res, 0, axis)
  return out


def _ref_aggd(v: np.ndarray):
  """estimateaggdparam.m: (alpha, leftstd, rightstd)."""
  v = v.ravel()
  left = np.sqrt(np.mean(v[v < 0] ** 2)) if np.any(v < 0) else np.nan
  right = np.sqrt(np.mean(v[v > 0] ** 2)) if np.any(v > 0) else np.nan
  with np.errstate(invalid='ignore', divide='ignore'):
    g = left / right
    rhat = np.mean(np.abs(v)) ** 2 / np.mean(v ** 2)
    rhatnorm = rhat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2
  # MATLAB's min skips NaN: an all-NaN cost gives the first index.
  return GRID[np.argmin((R_AGGD - rhatnorm) ** 2)], left, right


def _ref_ggd(v: np.ndarray):
  """estimateggdparam.m: (alpha, sigma)."""
  v = v.ravel()
  sigma_sq = np.mean(v ** 2)
  with np.errstate(invalid='ignore', divide='ignore'):
    rho = sigma_sq / np.mean(np.abs(v)) ** 2
  return GRID[np.argmin(np.abs(rho - R_GGD))], math.sqrt(sigma_sq)


def _beta_factor(alpha):
  return math.sqrt(math.gamma(1 / alpha) / math.gamma(3 / alpha))


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


def _ref_gray(rgb: np.ndarray) -> np.ndarray:
  """MATLAB rgb2gray of uint8: rounded half away from zero."""
  r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
  v = 0.298936021293775 * r + 0.587043074451121 * g + 0.114020904255103 * b
  return np.floor(v + 0.5)


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


def _ref_brisque_features(gray: np.ndarray) -> list[float]:
  """brisque_feature.m on a double grey image (0-255)."""
  feats = []
  img = gray
  for _ in range(2):
    m = _ref_mscn(img, 'zeros')
    alpha, sigma = _ref_ggd(m)
    feats += [alpha, sigma ** 2]
    for shift in ((0, 1), (1, 0), (1, 1), (-1, 1)):  # MATLAB's circshifts.
      alpha, left, right = _ref_aggd(m * np.roll(m, shift, axis=(0, 1)))
      const = (math.sqrt(math.gamma(1 / alpha)) /
               math.sqrt(math.gamma(3 / alpha)))
      mean = (right - left) * (math.gamma(2 / alpha) / math.gamma(1 / alpha))
      feats += [alpha, mean * const, left ** 2, right ** 2]
    img = _ref_imresize_half(img)
  return feats


def _ref_brisque(img) -> float:
  """brisquescore.m: features printed with %f, svm-scale (printed with %g),
  svm-predict (printed with %g)."""
  gray = _ref_gray(img) if img.ndim == 3 else img.astype(np.float64)
  feats = [float(f'{f:f}') for f in _ref_brisque_features(gray)]
  with np.load(os.path.join(DATA_DIR, 'brisque_model.npz')) as m:
    lo, hi = m['feature_min'], m['feature_max']
    lower, upper = float(m['scale_lower']), float(m['scale_upper'])
    x = [float(f'{lower + (upper - lower) * (f - a) / (b - a):g}')
         for f, a, b in zip(feats, lo, hi)]
    gamma, total = float(m['gamma']), 0.0
    for sv, coef in zip(m['support_vectors'], m['dual_coef']):
      total += coef * math.exp(-gamma * float(np.sum((x - sv) ** 2)))
    return float(f'{total - float(m["rho"]):g}')


# ----------------------------------------------------------------------------
# Test images: scikit-image photos, cropped to keep the references fast.


def _photo(name, rows=slice(None), cols=slice(None)):
  return np.ascontiguousarray(getattr(skimage.data, name)()[rows, cols])


def _noisy(img, sigma, seed=0):
  rng = np.random.default_rng(seed)
  noisy = img + rng.normal(0.0, sigma, img.shape)
  return np.clip(np.round(noisy), 0, 255).astype(np.uint8)


def _blurred(img, sigma):
  spatial = (sigma, sigma) + (0,) * (img.ndim - 2)
  out = ndimage.gaussian_filter(img.astype(np.float64), spatial)
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


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


def test_gaussian_window_is_the_shipped_one():
  with np.load(os.path.join(DATA_DIR, 'niqe_pris_params.npz')) as data:
    shipped = data['gaussian_window']
  w = nss.gaussian_window_1d()
  np.testing.assert_allclose(np.outer(w, w), shipped, rtol=0, atol=1e-16)
  np.testing.assert_allclose(_ref_window(), shipped, rtol=0, atol=1e-16)


# ----------------------------------------------------------------------------
# nss.py building blocks.


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


# ----------------------------------------------------------------------------
# BRISQUE.

BRISQUE_CASES = [
    ('astronaut', slice(256, 512), slice(192, 512)),  # Flat areas.
    ('chelsea', slice(None), slice(None)),
    ('coffee', slice(0, 240), slice(100, 420)),
    ('camera', slice(100, 356), slice(0, 300)),  # A grey [H, W] image.
]


@pytest.mark.parametrize('name,rows,cols', BRISQUE_CASES)
def test_brisque_matches_reference(name, rows, cols):
  img = _photo(name, rows, cols)
  got = brisque_lib.brisque(img)
  assert isinstance(got, float)
  assert got == pytest.approx(_ref_brisque(img), abs=1e-3)
  assert -30.0 < got < 60.0


@pytest.mark.parametrize('name', ['chelsea', 'rocket'])
def test_brisque_rises_with_noise_and_blur(name):
  img = _photo(name, slice(0, 288), slice(0, 384))
  clean = brisque_lib.brisque(img)
  assert brisque_lib.brisque(_noisy(img, 10.0)) > clean + 10.0
  assert brisque_lib.brisque(_blurred(img, 2.0)) > clean + 10.0


def test_brisque_features_layout():
  img = _photo('coffee', slice(0, 128), slice(0, 160))
  feats = brisque_lib.brisque_features(img)
  assert feats.shape == (36,)
  np.testing.assert_allclose(feats, _ref_brisque_features(_ref_gray(img)),
                             rtol=1e-9, atol=1e-12)


def test_brisque_degenerate_input():
  assert math.isnan(brisque_lib.brisque(np.full((64, 64, 3), 9, np.uint8)))
  with pytest.raises(ValueError, match='at least'):
    brisque_lib.brisque(np.zeros((12, 40, 3), np.uint8))
  with pytest.raises(ValueError, match='RGB'):
    brisque_lib.brisque(np.zeros((4, 40, 40, 3), np.uint8))
