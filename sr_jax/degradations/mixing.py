"""Batch-level augmentations: coarse dropout (cutout) and mixup.

Both draw their parameters per sample inside, with static shapes, so they run
under `jax.jit` in the train step:
  * `coarse_dropout` blanks a random number of random rectangles (DeVries &
    Taylor's cutout with several holes, albumentations' CoarseDropout). The
    number of holes is dynamic, so we always build the static maximum and
    switch the surplus off; rectangles are masks from iota comparisons.
  * `mixup` blends each (LR, HR) pair with another pair of the batch, with
    the same weight and partner for both images so the pair stays a valid
    SR example. Yoo et al. 2020 ("Rethinking Data Augmentation for Image
    Super-resolution", the CutBlur paper) found mixup with alpha = 1.2 one
    of the few blending augmentations that help SR.
"""
from typing import Tuple

import jax
import jax.numpy as jnp


def _per_sample(v, ndim: int = 4):
  """[N] -> [N, 1, 1, 1] for broadcasting against NHWC."""
  return v.reshape(v.shape + (1,) * (ndim - 1))


def _check_range(name, lo, hi, low_bound):
  if not low_bound <= lo <= hi:
    raise ValueError(f'{name} must be (lo, hi) with {low_bound} <= lo <= hi; '
                     f'got {(lo, hi)}.')


def coarse_dropout_mask(key, n: int, height: int, width: int, *,
                        prob: float = 0.5, num_holes: Tuple[int, int] = (1, 4),
                        hole_size: Tuple[float, float] = (0.05, 0.25)):
  """The [N, H, W] bool mask of `coarse_dropout` (True = dropped).

  Per sample: with probability `prob`, k ~ U{num_holes[0], ..., num_holes[1]}
  holes; hole j has height round(U(hole_size) * H) and width
  round(U(hole_size) * W), independently, at least 1 pixel, and a uniformly
  random position fully inside the image (as albumentations). Holes may
  overlap.
  """
  lo_n, hi_n = num_holes
  _check_range('num_holes', lo_n, hi_n, 0)
  _check_range('hole_size', *hole_size, 0.0)
  if hole_size[1] > 1:
    raise ValueError(f'hole_size are fractions of the image side, at most 1; '
                     f'got {hole_size}.')
  k_apply, k_count, k_h, k_w, k_y, k_x = jax.random.split(key, 6)
  apply = jax.random.uniform(k_apply, (n,)) < prob
  count = jax.random.randint(k_count, (n,), lo_n, hi_n + 1)
  shape = (n, hi_n)

  def side(k, size):
    frac = jax.random.uniform(k, shape, jnp.float32, *hole_size)
    return jnp.clip(jnp.round(frac * size), 1, size).astype(jnp.int32)

  def start(k, side_len, size):
    # Uniform integer in [0, size - side_len]; the clip guards the u -> 1
    # edge of float rounding.
    u = jax.random.uniform(k, shape)
    pos = jnp.floor(u * (size - side_len + 1)).astype(jnp.int32)
    return jnp.clip(pos, 0, size - side_len)

  hh, ww = side(k_h, height), side(k_w, width)
  y0, x0 = start(k_y, hh, height), start(k_x, ww, width)
  active = (jnp.arange(hi_n)[None, :] < count[:, None]) & apply[:, None]
  iy = jax.lax.broadcasted_iota(jnp.int32, (1, 1, height, 1), 2)
  ix = jax.lax.broadcasted_iota(jnp.int32, (1, 1, 1, width), 3)
  b = lambda v: v[:, :, None, None]  # [N, K] -> [N, K, 1, 1]
  holes = ((iy >= b(y0)) & (iy < b(y0 + hh)) & (ix >= b(x0)) &
           (ix < b(x0 + ww)) & b(active))  # [N, K, H, W]
  return jnp.any(holes, axis=1)


def coarse_dropout(key, x, *, prob: float = 0.5,
                   num_holes: Tuple[int, int] = (1, 4),
                   hole_size: Tuple[float, float] = (0.05, 0.25),
                   fill: float = 0.0):
  """Sets random rectangles of random images to `fill`.

  Args:
    key: jax.random key.
    x: [N, H, W, C] float images.
    prob: probability per image of being touched at all; may be traced.
    num_holes: (lo, hi) inclusive range of the number of holes per touched
      image, static ints (hi sets the static number of masks built).
    hole_size: (lo, hi) range of each hole side as a fraction of the image
      side (height as a fraction of H, width of W, drawn independently).
    fill: value written into the holes.
  Returns:
    [N, H, W, C], dtype of x: fill inside the holes (all channels), x
    elsewhere. See `coarse_dropout_mask` for the distribution.
  """
  n, h, w, _ = x.shape
  mask = coarse_dropout_mask(key, n, h, w, prob=prob, num_holes=num_holes,
                             hole_size=hole_size)
  return jnp.where(mask[..., None], jnp.asarray(fill, x.dtype), x)


def mixup(key, lr, hr, alpha: float = 1.2, prob: float = 1.0):
  """Mixup of (LR, HR) pairs with a permutation of the batch.

  lam ~ Beta(alpha, alpha) per sample and one random permutation perm of the
  batch; out[i] = lam[i] a[i] + (1 - lam[i]) a[perm[i]] for a = lr and a = hr
  with the same lam and perm, so the mixed LR is still the degradation of
  the mixed HR for any linear degradation. perm may have fixed points
  (perm[i] = i), which leave sample i unchanged whatever lam[i].

  Args:
    key: jax.random key.
    lr: [N, h, w, C] float images.
    hr: [N, H, W, C] float images (any spatial size, same N).
    alpha: Beta concentration (Yoo et al. 2020: 1.2); may be traced.
    prob: probability per sample of being mixed; unmixed samples get
      lam = 1. Yoo et al. apply mixup to a whole batch with a probability;
      per-sample choice is the batch-independent version of that.
  Returns:
    (lr_mixed [N, h, w, C] float32, hr_mixed [N, H, W, C] float32,
    lam [N] float32 in [0, 1]).
  """
  n = lr.shape[0]
  if hr.shape[0] != n:
    raise ValueError(f'mixup needs lr and hr with the same batch size; got '
                     f'{lr.shape} and {hr.shape}.')
  k_perm, k_lam, k_apply = jax.random.split(key, 3)
  perm = jax.random.permutation(k_perm, n)
  lam = jax.random.beta(k_lam, alpha, alpha, (n,), jnp.float32)
  lam = jnp.where(jax.random.uniform(k_apply, (n,)) < prob, lam, 1.0)

  def mix(a):
    a = a.astype(jnp.float32)
    l = _per_sample(lam, a.ndim)
    return l * a + (1 - l) * a[perm]

  return mix(lr), mix(hr), lam
