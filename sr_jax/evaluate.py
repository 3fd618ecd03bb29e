"""Validation: PSNR/SSIM of the generator and of bicubic on held-out images.

Protocol as BasicSR's: LR = MATLAB bicubic of the HR image (quantised to 8
bits), SR output rounded to uint8, PSNR/SSIM on the Y channel with `scale`
border pixels cropped. Bicubic up-sampling of the same LR is the baseline.
"""
import functools
import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image

from sr_jax import degradations
from sr_jax import metrics as sr_metrics
from sr_jax.degradations.pipelines import bicubic_lr
from sr_jax.train_step import hr_to_float


def make_super_resolve_fn(generator) -> Callable:
  """Returns jitted fn(variables, hr uint8 [1,H,W,3]) -> (lr, bicubic, sr).

  All three are float32 [1, ., ., 3] in [0, 1]; shapes differ per image, so
  each new size compiles once.
  """
  scale = generator.scale

  @jax.jit
  def run(variables, hr_uint8):
    hr = hr_to_float(hr_uint8)
    lr = bicubic_lr(hr, scale)
    sr = generator.apply(variables, lr, train=False).astype(jnp.float32)
    bicubic = degradations.imresize(lr, float(scale))
    return lr, jnp.clip(bicubic, 0.0, 1.0), jnp.clip(sr, 0.0, 1.0)

  return run


def to_uint8(x) -> np.ndarray:
  return np.asarray(np.round(np.clip(np.asarray(x, np.float32), 0, 1) * 255),
                    np.uint8)


def image_strip(lr: np.ndarray, bicubic: np.ndarray, sr: np.ndarray,
                hr: np.ndarray) -> np.ndarray:
  """LR (nearest-upscaled) | bicubic | SR | HR side by side, uint8 HxWx3."""
  s = hr.shape[0] // lr.shape[0]
  lr_big = np.repeat(np.repeat(lr, s, axis=0), s, axis=1)
  return np.concatenate([lr_big, bicubic, sr, hr], axis=1)


def evaluate(super_resolve: Callable, variables,
             val_set: Sequence[tuple[str, np.ndarray]], scale: int,
             num_strips: int = 0) -> tuple[dict, list[tuple[str, np.ndarray]]]:
  """Returns ({'psnr', 'ssim', 'psnr_rgb', and '<name>_bicubic' of each},
  strips). PSNR / SSIM on Y, and PSNR on RGB, which sees colour casts that
  Y hides; `scale` border pixels cropped."""
  measure = functools.partial(dict, crop_border=scale, test_y_channel=True)
  rgb = dict(crop_border=scale, test_y_channel=False)
  per_image = {k: [] for k in ('psnr', 'ssim', 'psnr_rgb', 'psnr_bicubic',
                               'ssim_bicubic', 'psnr_rgb_bicubic')}
  strips = []
  for i, (name, hr) in enumerate(val_set):
    lr, bicubic, sr = jax.device_get(super_resolve(variables, hr[None]))
    lr, bicubic, sr = to_uint8(lr[0]), to_uint8(bicubic[0]), to_uint8(sr[0])
    per_image['psnr'].append(sr_metrics.psnr(sr, hr, **measure()))
    per_image['ssim'].append(sr_metrics.ssim(sr, hr, **measure()))
    per_image['psnr_bicubic'].append(sr_metrics.psnr(bicubic, hr, **measure()))
    per_image['ssim_bicubic'].append(sr_metrics.ssim(bicubic, hr, **measure()))
    per_image['psnr_rgb'].append(sr_metrics.psnr(sr, hr, **rgb))
    per_image['psnr_rgb_bicubic'].append(sr_metrics.psnr(bicubic, hr, **rgb))
    if i < num_strips:
      strips.append((name, image_strip(lr, bicubic, sr, hr)))
  return {k: float(np.mean(v)) for k, v in per_image.items()}, strips


def save_strips(directory: str, strips: Sequence[tuple[str, np.ndarray]]):
  os.makedirs(directory, exist_ok=True)
  for name, strip in strips:
    stem = os.path.splitext(os.path.basename(name))[0]
    Image.fromarray(strip).save(os.path.join(directory, f'{stem}.png'))
