"""BRISQUE, the Blind/Referenceless Image Spatial Quality Evaluator.

Mittal, Moorthy and Bovik, "No-Reference Image Quality Assessment in the
Spatial Domain", IEEE TIP 2012, computed as the authors' MATLAB release
(BRISQUE_release.zip: `brisquescore.m`, `brisque_feature.m`,
`estimateggdparam.m`, `estimateaggdparam.m`, and the libsvm tools it calls)
computes it, with that release's model files `allmodel` (an epsilon-SVR,
RBF kernel, gamma 0.05, 774 support vectors, trained on the LIVE IQA
database) and `allrange` (the `svm-scale` feature ranges); see
data/NOTICE.md. Lower is better; the scale is the release's, roughly 0
(pristine) to 100 (heavily distorted), not clipped (clean photos can score
below 0).

`brisquescore.m`, step by step:

  1. An RGB image goes through `uint8` (each channel rounded half away from
     zero and saturated to 0-255; a no-op on uint8 input) and MATLAB's
     `rgb2gray`, which on uint8 returns uint8: the weighted sum with
     0.298936021293775, 0.587043074451121, 0.114020904255103, rounded. A
     grey image is used as is. Then `double`, on the 0-255 scale.
  2. `brisque_feature.m`, at two scales (the image, then MATLAB
     `imresize(img, 0.5)`: bicubic, antialiased, on double, not rounded):
     MSCN coefficients (I - mu) / (sigma + 1), mu and sigma^2 + mu^2 the
     7x7 Gaussian (sigma 7/6, normalised) local means of I and I^2 with
     zero padding (`filter2(..., 'same')`), sigma = sqrt(|...|); the GGD fit
     of all MSCN coefficients (alpha, then the returned std squared); AGGD
     fits of their products with `circshift`s by [0 1], [1 0], [1 1],
     [-1 1] (horizontal, vertical, main- and anti-diagonal neighbours,
     wrapping around the image): alpha, mean, left_std^2, right_std^2. 18
     features per scale, in that order; nss.py has the fits.
  3. The 36 features are written to a text file with `fprintf('%f')` (6
     decimals), scaled by `svm-scale -r allrange`, which prints each
     lower + (upper - lower) (v - min) / (max - min) (exactly lower at
     v == min, upper at v == max, not clipped) with `%g` (6 significant
     digits), and scored by `svm-predict -b 1`: for an epsilon-SVR that is
     sum_i coef_i exp(-gamma |x - sv_i|^2) - rho, written with `%g` too (the
     release's libsvm 2.x binaries; no probability model is applied to a
     regression), and read back by MATLAB's `load`.

All three text round trips are reproduced (`_printed`): cheap, and they
make the score the release's to the last printed digit. Without them the
score moves by up to ~6e-4 on scikit-image's photos.

Circular shifts in either direction give the same products (the product of
I with I shifted by s is that with -s, shifted by s), so only wrapping
around matters, not circshift's sign convention; [-1 1] and [1 1] do give
different (anti- / main-diagonal) products.

The C++ BRISQUE code and the `brisque` PyPI package ship a different
(retrained) SVR, 770 support vectors with rho -155.845, and different
feature ranges; with them scores differ from the MATLAB release's by up to
~27 points on distorted photos.

As in nss.py, MSCN coefficients whose exact value is 0 (flat 7x7
neighbourhoods, or balanced ones) are computed as exactly 0, so they count
as neither negative nor positive AGGD samples. MATLAB's `filter2` (which finds
the window separable with `svd` and filters with its two factors) leaves,
on flat areas, either 0 or a rounding residue (~1e-14) whose presence
depends on the pixel value and on the last bits of that SVD and of
`conv2`'s sums: not reproducible
here, and it moves the score on images with large exactly flat areas
(heavy JPEG, posterisation). Against the MATLAB release's scores that
pyiqa publishes for five TID2013 images (ResultsCalibra, 6 digits) this
module gives: I03 -0.0016, I04 0, I06 -0.0017, I08 +0.545 (2% flat pixels),
I19 +2.17 (30% flat); with the per-value pattern of zero / non-zero
residues that fits MATLAB, I06 and I08 match to all six digits.
"""
import functools
import os

import numpy as np
from scipy import special

from sr_jax.metrics import nss
from sr_jax.metrics import registry

_MODEL_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                           'data', 'brisque_model.npz')
# The MSCN window needs 7x7 pixels at the half-size scale.
MIN_SIZE = 13


@functools.lru_cache(maxsize=1)
def model() -> dict[str, np.ndarray]:
  """The release's SVR and ranges, float64 and read-only.

  Keys: support_vectors [774, 36], dual_coef [774], rho, gamma (scalars),
  scale_lower, scale_upper (svm-scale's -1 and 1), feature_min, feature_max
  [36] (data/make_brisque_model.py parses them from `allmodel` and
  `allrange`).
  """
  with np.load(_MODEL_PATH, allow_pickle=False) as data:
    arrays = {k: np.asarray(data[k], np.float64) for k in data.files}
  for v in arrays.values():
    v.setflags(write=False)
  return arrays


def _to_gray(img: np.ndarray) -> np.ndarray:
  """brisquescore.m's `rgb2gray(uint8(img))` as float64 [H, W], 0-255."""
  img = np.asarray(img)
  if img.dtype != np.uint8:
    # MATLAB's uint8(): round half away from zero, saturate, NaN -> 0.
    x = np.asarray(img, np.float64)
    x = np.floor(np.clip(x, 0.0, 255.0) + 0.5)
    img = np.where(np.isnan(x), 0.0, x)
  return nss.to_gray_matlab(img)


def _scale_features(m: np.ndarray) -> list[np.ndarray]:
  """The 18 features of one scale's MSCN map `m` [H, W].

  Each value is formed as brisque_feature.m forms it (estimateggdparam
  returns sqrt(mean(x^2)), which is then squared; the AGGD mean is
  (right - left) Gamma(2/a) / Gamma(1/a) sqrt(Gamma(1/a)) / sqrt(Gamma(3/a))),
  so the float64 results round as MATLAB's do before being printed.
  """
  alpha, sigma_sq = nss.ggd_fit(m.reshape(-1))
  overall_std = np.sqrt(sigma_sq)
  feats = [alpha, overall_std ** 2]
  for shift in nss.PAIR_SHIFTS:  # One at a time: large images.
    product = m * np.roll(m, shift, axis=(0, 1))
    a, left_std, right_std = nss.aggd_fit(product.reshape(-1))
    const = np.sqrt(special.gamma(1.0 / a)) / np.sqrt(special.gamma(3.0 / a))
    mean = (right_std - left_std) * (
        special.gamma(2.0 / a) / special.gamma(1.0 / a)) * const
    feats += [a, mean, left_std ** 2, right_std ** 2]
  return feats


def brisque_features(img) -> np.ndarray:
  """[36] float64 BRISQUE features (unscaled, unrounded) of an image.

  Args:
    img: [H, W, 3] RGB uint8 (other dtypes on the 0-255 scale are rounded
      and saturated per channel first, as MATLAB's `uint8`), or [H, W] grey
      on the 0-255 scale (used as is, not rounded).
  """
  img = np.asarray(img)
  if img.ndim == 3 and img.shape[-1] == 3:
    gray = _to_gray(img)
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


def _printed(values, fmt: str) -> np.ndarray:
  """float64 values after a C printf with `fmt` and a read back (strtod)."""
  return np.array([float(fmt % v) for v in np.ravel(values)], np.float64)


def _svm_scale(feats: np.ndarray, m: dict[str, np.ndarray]) -> np.ndarray:
  """libsvm `svm-scale -r allrange` of [36] features (before printing)."""
  lower, upper = m['scale_lower'], m['scale_upper']
  fmin, fmax = m['feature_min'], m['feature_max']
  with np.errstate(invalid='ignore', divide='ignore'):
    x = lower + (upper - lower) * (feats - fmin) / (fmax - fmin)
  x = np.where(feats == fmin, lower, np.where(feats == fmax, upper, x))
  # svm-scale drops a feature whose range is a single value: it is then
  # absent from the sparse vector, i.e. 0 (none is, in `allrange`).
  return np.where(fmin == fmax, 0.0, x)


def brisque(img) -> float:
  """BRISQUE score of one image (lower is better; ~0-100, not clipped).

  Args:
    img: [H, W, 3] RGB uint8 (or another dtype on the 0-255 scale), or
      [H, W] grey; at least 13x13.

  Returns:
    The release's score as a Python float (6 significant digits, as
    `svm-predict` writes it); NaN for images whose statistics are undefined
    (e.g. a constant image).
  """
  return _score(brisque_features(img))


def _score(feats: np.ndarray) -> float:
  """brisquescore.m's quality score of [36] features: print, svm-scale,
  print, svm-predict, print, as the release's text files carry them."""
  m = model()
  feats = _printed(feats, '%f')  # fprintf(fid, '%d:%f ', kk, feat(kk)).
  x = _printed(_svm_scale(feats, m), '%g')  # svm-scale's printf('%d:%g ').
  sq_dist = np.sum((m['support_vectors'] - x) ** 2, axis=1)
  kernel = np.exp(-m['gamma'] * sq_dist)
  score = m['dual_coef'] @ kernel - m['rho']
  return float(_printed(score, '%g')[0])  # svm-predict's '%g\n'.


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
