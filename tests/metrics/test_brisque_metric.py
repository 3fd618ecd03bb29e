"""sr_jax.metrics.brisque_metric: BRISQUE against a numpy transcription of
the LIVE MATLAB release, and against the references of
tests/helpers/nss_reference.py.

`_release_score` below follows `brisquescore.m`, `brisque_feature.m`,
`estimateggdparam.m`, `estimateaggdparam.m` and the libsvm tools they call
(`svm-scale -r allrange`, `svm-predict -b 1 ... allmodel`) line by line,
sharing no code with sr_jax: its own MATLAB colon grid, rgb2gray (with the
weights as old MATLAB derived them, the first row of inv of the NTSC
matrix), fspecial, filter2 (scipy.signal.correlate2d with zero fill),
circshift (explicit modular indices), imresize (MATLAB's contributions()
weights as a matrix), exhaustive grid fits, printf round trips, svm-scale
and the SVR sum, with the model parsed here from the release's text files
`allmodel` and `allrange` (stored beside the package's .npz).

One convention is fixed here, as in sr_jax: where the exact value of
I - mu is 0 (a flat 7x7 neighbourhood, zero padding included, or a balanced
one) the MSCN coefficient is 0, not MATLAB's summation-order-dependent
rounding noise (`_exactly_centred`). On images with large exactly flat
areas MATLAB's own result depends on that noise (see brisque_metric.py):
the JPEG q10 cases here move by ~2.5 between the two conventions.
"""
import io
import math
import os

import numpy as np
from PIL import Image
import pytest
from scipy import ndimage
from scipy import signal
from scipy import special
import skimage.data

from sr_jax.metrics import brisque_metric as brisque_lib
from tests.helpers.nss_reference import _blurred
from tests.helpers.nss_reference import _noisy
from tests.helpers.nss_reference import _ref_brisque
from tests.helpers.nss_reference import _ref_brisque_features
from tests.helpers.nss_reference import _ref_gray

RELEASE_DIR = os.path.join(os.path.dirname(brisque_lib.__file__), 'data',
                           'brisque_release')


# ----------------------------------------------------------------------------
# The release's model files, parsed independently of make_brisque_model.py.


def _parse_allmodel():
  with open(os.path.join(RELEASE_DIR, 'allmodel'), encoding='ascii') as f:
    text = f.read()
  head, body = text.split('\nSV\n')
  header = {line.split()[0]: line.split()[1:] for line in head.splitlines()}
  svs = []
  for line in body.splitlines():
    if line.strip():
      coef, *pairs = line.split()
      svs.append((float(coef),
                  {int(p.split(':')[0]): float(p.split(':')[1])
                   for p in pairs}))
  return header, svs


def _parse_allrange():
  with open(os.path.join(RELEASE_DIR, 'allrange'), encoding='ascii') as f:
    rows = [line.split() for line in f if line.strip()]
  assert rows[0] == ['x']
  lower, upper = float(rows[1][0]), float(rows[1][1])
  ranges = {int(r[0]): (float(r[1]), float(r[2])) for r in rows[2:]}
  return lower, upper, ranges


HEADER, SVS = _parse_allmodel()
LOWER, UPPER, RANGES = _parse_allrange()


# ----------------------------------------------------------------------------
# MATLAB building blocks.


def _colon(a, d, b):
  """MATLAB's a:d:b: the first half counted up from a, the rest down from
  the end point a + n d (so both ends are exact)."""
  n = int(math.floor((b - a) / d + 1e-10))
  end = a + n * d
  k = np.arange(n + 1)
  return np.where(k <= n // 2, a + k * d, end - (n - k) * d)


GAM = _colon(0.2, 0.001, 10)


def _rgb2gray_uint8(rgb):
  """rgb2gray(uint8): imlincomb in double, rounded half away from zero."""
  ntsc = np.array([[1.0, 0.956, 0.621], [1.0, -0.272, -0.647],
                   [1.0, -1.106, 1.703]])
  c = np.linalg.inv(ntsc)[0]
  r, g, b = (rgb[:, :, i].astype(np.float64) for i in range(3))
  return np.floor(c[0] * r + c[1] * g + c[2] * b + 0.5)


def _fspecial_gaussian(size, sigma):
  half = (size - 1) / 2
  y, x = np.meshgrid(np.arange(-half, half + 1), np.arange(-half, half + 1),
                     indexing='ij')
  h = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
  h[h < np.finfo(float).eps * h.max()] = 0
  return h / h.sum()


def _filter2_same(h, x):
  return signal.correlate2d(x, h, mode='same', boundary='fill', fillvalue=0)


def _circshift(a, shift):
  """B(i + p, j + q) = A(i, j), indices modulo the size."""
  p, q = shift
  rows = (np.arange(a.shape[0]) - p) % a.shape[0]
  cols = (np.arange(a.shape[1]) - q) % a.shape[1]
  return a[rows][:, cols]


def _cubic(x):
  ax = np.abs(x)
  return ((1.5 * ax ** 3 - 2.5 * ax ** 2 + 1) * (ax <= 1) +
          (-0.5 * ax ** 3 + 2.5 * ax ** 2 - 4 * ax + 2) *
          ((1 < ax) & (ax <= 2)))


def _contributions(in_len, scale):
  """imresize's weight matrix [out, in] (bicubic, antialiasing on)."""
  out_len = math.ceil(in_len * scale)
  width = 4.0 / scale
  x = np.arange(1, out_len + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1 - 1 / scale)
  left = np.floor(u - width / 2)
  ind = left[:, None] + np.arange(math.ceil(width) + 2)[None]
  w = scale * _cubic(scale * (u[:, None] - ind))
  w = w / w.sum(axis=1, keepdims=True)
  aux = np.r_[np.arange(1, in_len + 1), np.arange(in_len, 0, -1)]
  ind = aux[(ind.astype(np.int64) - 1) % aux.size]
  mat = np.zeros((out_len, in_len))
  for i in range(out_len):
    for j in range(ind.shape[1]):
      mat[i, ind[i, j] - 1] += w[i, j]
  return mat


def _imresize_half(img):
  return (_contributions(img.shape[0], 0.5) @ img @
          _contributions(img.shape[1], 0.5).T)


def _estimateggdparam(vec):
  r_gam = (special.gamma(1 / GAM) * special.gamma(3 / GAM) /
           special.gamma(2 / GAM) ** 2)
  sigma_sq = np.mean(vec ** 2)
  sigma = math.sqrt(sigma_sq)
  e = np.mean(np.abs(vec))
  rho = sigma_sq / e ** 2
  return GAM[np.argmin(np.abs(rho - r_gam))], sigma


def _estimateaggdparam(vec):
  r_gam = (special.gamma(2 / GAM) ** 2 /
           (special.gamma(1 / GAM) * special.gamma(3 / GAM)))
  with np.errstate(invalid='ignore', divide='ignore'):
    leftstd = math.sqrt(np.mean(vec[vec < 0] ** 2))
    rightstd = math.sqrt(np.mean(vec[vec > 0] ** 2))
    gammahat = leftstd / rightstd
    rhat = np.mean(np.abs(vec)) ** 2 / np.mean(vec ** 2)
    rhatnorm = (rhat * (gammahat ** 3 + 1) * (gammahat + 1) /
                (gammahat ** 2 + 1) ** 2)
  return GAM[np.argmin((r_gam - rhatnorm) ** 2)], leftstd, rightstd


def _exactly_centred(imdist, window):
  """Where I - mu is exactly 0 (taking the weights to sum to 1).

  I - mu = -sum_ab w_ab (I[y+a, x+b] - I[y, x]) (zero padding); the window
  takes ten distinct values exp(-k / (2 sigma^2)) / Z, k = a^2 + b^2, which
  no integer combination cancels (exp of a non-zero rational is
  transcendental), so the sum is 0 iff the differences over each set of
  equal weights sum to 0: a flat neighbourhood, or a balanced one (e.g.
  +1 and -1 at two corners). Those sums are exact in float64 here (integers,
  or multiples of 2^-16 after the half-size resize).
  """
  zero = np.ones(imdist.shape, bool)
  for weight in np.unique(window):
    taps = (window == weight).astype(np.float64)
    diff_sum = _filter2_same(taps, imdist) - taps.sum() * imdist
    zero &= diff_sum == 0
  return zero


def _brisque_feature(imdist):
  window = _fspecial_gaussian(7, 7 / 6)
  window = window / window.sum()
  feat = []
  for _ in range(2):
    mu = _filter2_same(window, imdist)
    sigma = np.sqrt(np.abs(_filter2_same(window, imdist * imdist) - mu * mu))
    structdis = (imdist - mu) / (sigma + 1)
    structdis[_exactly_centred(imdist, window)] = 0.0
    vec = structdis.ravel(order='F')  # structdis(:), column-major.
    alpha, overallstd = _estimateggdparam(vec)
    feat += [alpha, overallstd ** 2]
    for shift in ([0, 1], [1, 0], [1, 1], [-1, 1]):
      shifted = _circshift(structdis, shift)
      pair = vec * shifted.ravel(order='F')
      alpha, leftstd, rightstd = _estimateaggdparam(pair)
      const = (math.sqrt(math.gamma(1 / alpha)) /
               math.sqrt(math.gamma(3 / alpha)))
      meanparam = ((rightstd - leftstd) *
                   (math.gamma(2 / alpha) / math.gamma(1 / alpha)) * const)
      feat += [alpha, meanparam, leftstd ** 2, rightstd ** 2]
    imdist = _imresize_half(imdist)
  return feat


def _svm_scale_line(feat):
  """The test_ind line fprintf writes, through svm-scale: {index: value}."""
  out = {}
  for k, v in enumerate(feat, start=1):
    v = float('%f' % v)  # fprintf(fid, '%d:%f ', kk, feat(jj, kk)).
    fmin, fmax = RANGES[k]
    if fmax == fmin:
      continue
    if v == fmin:
      v = LOWER
    elif v == fmax:
      v = UPPER
    else:
      v = LOWER + (UPPER - LOWER) * (v - fmin) / (fmax - fmin)
    if v != 0:
      out[k] = float('%g' % v)  # printf("%d:%g ", index, value).
  return out


def _svm_predict(x):
  """libsvm svm_predict for epsilon_svr / rbf, sparse vectors."""
  gamma = float(HEADER['gamma'][0])
  total = 0.0
  for coef, sv in SVS:
    dist = sum((x.get(k, 0.0) - sv.get(k, 0.0)) ** 2
               for k in sorted(set(x) | set(sv)))
    total += coef * math.exp(-gamma * dist)
  return float('%g' % (total - float(HEADER['rho'][0])))


def _release_score(rgb):
  imdist = _rgb2gray_uint8(rgb) if rgb.ndim == 3 else rgb
  return _svm_predict(_svm_scale_line(_brisque_feature(imdist.astype(float))))


# ----------------------------------------------------------------------------
# Photos and distortions.


def _photo(name, rows, cols):
  return np.ascontiguousarray(getattr(skimage.data, name)()[rows, cols])


def _jpeg(img, quality):
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, 'JPEG', quality=quality)
  return np.asarray(Image.open(io.BytesIO(buf.getvalue())))


def _blur(img, sigma):
  out = ndimage.gaussian_filter(img.astype(np.float64), (sigma, sigma, 0))
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _noise(img, sigma, seed=0):
  rng = np.random.default_rng(seed)
  out = img + rng.normal(0.0, sigma, img.shape)
  return np.clip(np.round(out), 0, 255).astype(np.uint8)


def _down_up(img, factor):
  h, w = img.shape[:2]
  small = Image.fromarray(img).resize((w // factor, h // factor),
                                      Image.BICUBIC)
  return np.asarray(small.resize((w, h), Image.BICUBIC))


CROP = (slice(0, 256), slice(0, 320))
CASES = {
    # Natural photos (astronaut's lower right has flat black / white areas).
    'astronaut': lambda: _photo('astronaut', slice(256, 512),
                                slice(192, 512)),
    'chelsea': lambda: _photo('chelsea', *CROP),
    # Distorted ones.
    'astronaut_jpeg10': lambda: _jpeg(_photo('astronaut', *CROP), 10),
    'chelsea_blur2': lambda: _blur(_photo('chelsea', *CROP), 2.0),
    'coffee_noise15': lambda: _noise(_photo('coffee', *CROP), 15.0),
    'rocket_down_up4': lambda: _down_up(_photo('rocket', *CROP), 4),
    'coffee_jpeg10': lambda: _jpeg(_photo('coffee', *CROP), 10),
    'camera': lambda: _photo('camera', slice(100, 356), slice(0, 300)),
}


def _last_digit(x):
  """One unit in the sixth significant digit of x (C's %g)."""
  return 10.0 ** (math.floor(math.log10(abs(x))) - 5) if x else 1e-6


@pytest.mark.parametrize('name', sorted(CASES))
def test_brisque_is_the_matlab_release(name):
  img = CASES[name]()
  got = brisque_lib.brisque(img)
  want = _release_score(img)
  assert abs(got - want) < 1.0
  # Both round as svm-predict prints (6 significant digits). Measured: equal
  # on every case; one unit in the last digit is allowed for a rounding tie
  # that float64 summation order could flip. Dropping any of the release's
  # printf round trips breaks this (by up to ~4e-4).
  assert abs(got - want) <= 1.01 * _last_digit(want)


def test_features_are_brisque_feature_m():
  img = CASES['astronaut']()  # Flat areas: the zero convention matters.
  got = brisque_lib.brisque_features(img)
  want = _brisque_feature(_rgb2gray_uint8(img))
  np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_model_data_are_the_release_files():
  m = brisque_lib.model()
  assert HEADER['svm_type'] == ['epsilon_svr']
  assert HEADER['kernel_type'] == ['rbf']
  assert int(HEADER['total_sv'][0]) == len(SVS) == 774
  assert float(m['gamma']) == float(HEADER['gamma'][0]) == 0.05
  assert float(m['rho']) == float(HEADER['rho'][0]) == -153.591
  np.testing.assert_array_equal(m['dual_coef'], [c for c, _ in SVS])
  dense = np.array([[sv.get(k, 0.0) for k in range(1, 37)] for _, sv in SVS])
  np.testing.assert_array_equal(m['support_vectors'], dense)
  assert (float(m['scale_lower']), float(m['scale_upper'])) == (-1.0, 1.0)
  assert sorted(RANGES) == list(range(1, 37))
  np.testing.assert_array_equal(m['feature_min'],
                                [RANGES[k][0] for k in range(1, 37)])
  np.testing.assert_array_equal(m['feature_max'],
                                [RANGES[k][1] for k in range(1, 37)])


def test_float_input_goes_through_uint8_first():
  # brisquescore.m: rgb2gray(uint8(imdist)) rounds each channel first.
  img = CASES['chelsea']()
  rng = np.random.default_rng(0)
  shifted = img + rng.uniform(-0.49, 0.49, img.shape)
  assert brisque_lib.brisque(shifted) == brisque_lib.brisque(img)
  over = img.astype(np.float64)
  over[img == 255] = 300.0  # Saturates to 255.
  assert brisque_lib.brisque(over) == brisque_lib.brisque(img)


def test_score_path_is_svm_scale_and_svm_predict():
  # Feature vectors around and beyond the ranges, some exactly on a range
  # end once printed with %f (svm-scale's v == min / v == max branches),
  # some between two printed values.
  rng = np.random.default_rng(1)
  lo = np.array([RANGES[k][0] for k in range(1, 37)])
  hi = np.array([RANGES[k][1] for k in range(1, 37)])
  for trial in range(20):
    feats = lo + (hi - lo) * rng.uniform(-0.1, 1.1, 36)
    if trial % 4 == 0:
      feats[::3] = lo[::3] + 4e-7  # Prints as min.
      feats[1::3] = hi[1::3] - 4e-7  # Prints as max.
    got = brisque_lib._score(feats)  # pylint: disable=protected-access
    want = _svm_predict(_svm_scale_line(feats))
    assert abs(got - want) <= 1.01 * _last_digit(want)


def test_pinned_release_scores():
  # The transcription's scores when this test was written (svm-predict's
  # 6 significant digits), so that it and sr_jax cannot drift together.
  # Cases without JPEG or random noise: their pixels do not depend on the
  # libjpeg or numpy version.
  assert brisque_lib.brisque(CASES['chelsea']()) == 6.32166
  assert brisque_lib.brisque(CASES['chelsea_blur2']()) == 60.8668


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
