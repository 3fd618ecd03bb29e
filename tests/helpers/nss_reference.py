"""NIQE's and BRISQUE's MATLAB releases (and BasicSR's NIQE) transcribed in
numpy, one pixel / one block at a time, and the scikit-image photos and
distortions their tests use."""
import math
import os

import numpy as np
from scipy import ndimage
from scipy import special
import skimage.data

from sr_jax.metrics import niqe_metric as niqe_lib

DATA_DIR = os.path.join(os.path.dirname(niqe_lib.__file__), 'data')


GRID = np.arange(0.2, 10.001, 0.001)  # MATLAB's 0.2:0.001:10.


def _gamma_ratios():
  g1, g2, g3 = (special.gamma(k / GRID) for k in (1.0, 2.0, 3.0))
  return g2 ** 2 / (g1 * g3), g1 * g3 / g2 ** 2


R_AGGD, R_GGD = _gamma_ratios()


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


def _ref_gray(rgb: np.ndarray) -> np.ndarray:
  """MATLAB rgb2gray of uint8: rounded half away from zero."""
  r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
  v = 0.298936021293775 * r + 0.587043074451121 * g + 0.114020904255103 * b
  return np.floor(v + 0.5)


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
