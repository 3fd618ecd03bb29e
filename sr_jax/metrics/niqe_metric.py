"""NIQE, the Natural Image Quality Evaluator (no reference; lower is better).

Mittal, Soundararajan and Bovik, "Making a 'Completely Blind' Image Quality
Analyzer", IEEE Signal Processing Letters 2013, computed as the authors'
MATLAB release (`computequality.m`) and BasicSR's `calculate_niqe`
(basicsr/metrics/niqe.py, v1.4.2) do:

  1. RGB -> one channel on the 0-255 scale: BT.601 studio-swing Y like
     BasicSR (`convert_to='y'`, sr_jax.metrics.color.rgb_to_y), or MATLAB's
     `rgb2gray` (`'gray'`); crop `crop_border` pixels per side; round to
     integers (BasicSR rounds both, "for being consistent with MATLAB").
  2. Crop to whole 96x96 blocks (from the top-left corner, no overlap).
  3. At two scales (the image, then MATLAB `imresize(img, 0.5)`, bicubic with
     antialiasing, in double): MSCN coefficients with a 7x7 Gaussian window
     (sigma 7/6, replicated borders, C = 1); per block (96x96, then 48x48)
     18 features: an AGGD fit of the MSCN coefficients (alpha and the mean of
     beta_l and beta_r) and of the products of each coefficient with its
     horizontal, vertical and two diagonal neighbours (alpha, mean, beta_l,
     beta_r; circular shifts within the block). See nss.py.
  4. A multivariate Gaussian of the 36-d block features: the mean over
     blocks ignoring NaN features (numpy `nanmean`), the covariance of the
     blocks with no NaN feature (MATLAB `nancov`); NaNs come from flat blocks
     or blocks with no negative or positive product.
  5. NIQE = sqrt((mu_p - mu)^T pinv((S_p + S) / 2) (mu_p - mu)), with mu_p,
     S_p the MVG of the pristine corpus (the release's `modelparameters.mat`,
     as shipped by BasicSR; data/NOTICE.md).

Differences from BasicSR 1.4.2:

* Everything is float64, like MATLAB (BasicSR rounds the Y image, the
  filtered maps and the resized image to float32).
* I - mu is exactly 0 where it is in exact arithmetic (flat areas; see
  nss.local_mean_deviation). Computed naively it is rounding noise of either
  sign there, which decides whether those pixels count as negative or
  positive AGGD samples, so NIQE of a photo with flat areas depends on how
  an implementation rounds: on scikit-image's astronaut, two float64
  versions that only filter in a different order gave 3.066 and 3.100, and
  BasicSR 3.065 (float32) and 3.092 (on a float64 input). With Y we match
  BasicSR to 6e-4 on scikit-image's astronaut, chelsea, coffee and rocket
  (crop_border 0 and 4), and to 1e-5 where nothing is flat.
* 'gray' uses MATLAB's `rgb2gray` weights (0.298936021293775,
  0.587043074451121, 0.114020904255103), rounded half away from zero, where
  BasicSR uses OpenCV's (0.299, 0.587, 0.114): a few pixels differ by one
  grey level, which moved NIQE by up to 4e-3 on those photos.

Images need at least two 96x96 blocks with finite features (e.g. 96x192
after `crop_border`); smaller or flat ones raise ValueError, because the
covariance of fewer than two blocks is undefined (BasicSR returns NaN or
raises LinAlgError there).

The work per image is a few vectorised numpy passes over the whole image
(MSCN) and over all blocks at once (the fits): about 30 ms for a 512x512
image on one CPU core.
"""
import functools
import os

import numpy as np

from sr_jax.metrics import color
from sr_jax.metrics import nss
from sr_jax.metrics import registry

BLOCK_SIZE = 96
_PARAMS_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                            'data', 'niqe_pris_params.npz')


@functools.lru_cache(maxsize=1)
def pristine_params() -> tuple[np.ndarray, np.ndarray]:
  """(mu [36], cov [36, 36]) float64 of the pristine MVG model."""
  with np.load(_PARAMS_PATH, allow_pickle=False) as data:
    mu = np.asarray(data['mu_pris_param'], np.float64).reshape(-1)
    cov = np.asarray(data['cov_pris_param'], np.float64)
  mu.setflags(write=False)
  cov.setflags(write=False)
  return mu, cov


def _to_channel(img, convert_to: str) -> np.ndarray:
  """The image as one float64 channel on the 0-255 scale (not yet rounded)."""
  if convert_to not in ('y', 'gray'):
    raise ValueError(f"convert_to must be 'y' or 'gray', got {convert_to!r}.")
  img = np.asarray(img)
  if img.ndim == 2:
    return img.astype(np.float64)
  if img.ndim != 3 or img.shape[-1] != 3:
    raise ValueError(f'niqe expects an [H, W, 3] RGB (or [H, W] grey) image, '
                     f'got shape {img.shape}.')
  if convert_to == 'y':
    return color.rgb_to_y(img)
  return nss.to_gray_matlab(img)


def _block_features(m: np.ndarray, block: int) -> np.ndarray:
  """[num_blocks, 18] features of the MSCN map `m` cut into block x block.

  Blocks are listed column by column (MATLAB `blkproc` and BasicSR order;
  the MVG does not depend on the order), and fitted _CHUNK at a time to
  bound the memory of large images.
  """
  nh, nw = m.shape[0] // block, m.shape[1] // block
  blocks = m[:nh * block, :nw * block].reshape(nh, block, nw, block)
  blocks = blocks.transpose(2, 0, 1, 3).reshape(nw * nh, block, block)
  out = []
  for start in range(0, blocks.shape[0], _CHUNK):
    chunk = blocks[start:start + _CHUNK]
    # [5, B, block^2]: the coefficients, then the 4 neighbour products.
    samples = np.concatenate([chunk[None], nss.pair_products(chunk)])
    alpha, left_std, right_std = nss.aggd_fit(
        samples.reshape(5, chunk.shape[0], block * block))
    beta_l = nss.aggd_scale(left_std, alpha)
    beta_r = nss.aggd_scale(right_std, alpha)
    feats = [alpha[0], (beta_l[0] + beta_r[0]) / 2]
    for k in range(1, 5):
      feats += [alpha[k], nss.aggd_mean(alpha[k], beta_l[k], beta_r[k]),
                beta_l[k], beta_r[k]]
    out.append(np.stack(feats, axis=-1))
  return np.concatenate(out)


# Blocks per vectorised fit: 64 96x96 blocks are 24 MB of samples.
_CHUNK = 64


def niqe_features(img: np.ndarray) -> np.ndarray:
  """[num_blocks, 36] NIQE block features of a rounded 0-255 grey image.

  `img` is [H, W] float; it is cropped to whole 96x96 blocks here.
  """
  h, w = img.shape
  nh, nw = h // BLOCK_SIZE, w // BLOCK_SIZE
  if nh == 0 or nw == 0:
    raise ValueError(f'niqe needs an image of at least {BLOCK_SIZE}x'
                     f'{BLOCK_SIZE} (after crop_border), got {h}x{w}.')
  img = np.asarray(img, np.float64)[:nh * BLOCK_SIZE, :nw * BLOCK_SIZE]
  with np.errstate(invalid='ignore', divide='ignore'):
    feats1 = _block_features(nss.mscn(img, 'nearest'), BLOCK_SIZE)
    small = nss.imresize_half(img)
    feats2 = _block_features(nss.mscn(small, 'nearest'), BLOCK_SIZE // 2)
  return np.concatenate([feats1, feats2], axis=1)


def niqe(img, crop_border: int = 0, convert_to: str = 'y') -> float:
  """NIQE of one image, as MATLAB's release and BasicSR's calculate_niqe.

  Args:
    img: [H, W, 3] RGB, uint8 (or float on the 0-255 scale); an [H, W] image
      is taken as already grey / Y.
    crop_border: pixels removed from each side before the metric.
    convert_to: 'y' (BT.601 Y, BasicSR's default) or 'gray' (MATLAB
      `rgb2gray`).

  Returns:
    NIQE as a Python float; lower is better (pristine photos ~2-5).

  Raises:
    ValueError: bad shape or `convert_to`, or fewer than two 96x96 blocks
      with finite features.
  """
  channel = _to_channel(img, convert_to)
  if crop_border:
    if crop_border < 0:
      raise ValueError(f'crop_border must be >= 0, got {crop_border}.')
    channel = channel[crop_border:-crop_border, crop_border:-crop_border]
  # np.round (half to even) like BasicSR's ndarray.round().
  feats = niqe_features(np.round(channel))

  complete = feats[~np.isnan(feats).any(axis=1)]
  if complete.shape[0] < 2:
    raise ValueError(
        f'niqe needs at least two {BLOCK_SIZE}x{BLOCK_SIZE} blocks with '
        f'finite features (not flat), got {complete.shape[0]} of '
        f'{feats.shape[0]} blocks.')
  mu = np.nanmean(feats, axis=0)
  cov = np.cov(complete, rowvar=False)
  mu_p, cov_p = pristine_params()
  d = mu_p - mu
  quality = d @ np.linalg.pinv((cov_p + cov) / 2) @ d
  return float(np.sqrt(quality))


@registry.register('niqe', higher_is_better=False, kind='no_reference')
def niqe_metric(img, crop_border) -> float:
  """NIQE on BT.601 Y after cropping `crop_border` (BasicSR's protocol)."""
  return niqe(img, crop_border=crop_border, convert_to='y')
