"""Validation: PSNR/SSIM of the generator and of bicubic on held-out images.

Protocol as BasicSR's: LR = MATLAB bicubic of the HR image (quantised to 8
bits), SR output rounded to uint8, PSNR/SSIM on the Y channel with `scale`
border pixels cropped. Bicubic up-sampling of the same LR is the baseline.
"""
import os
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from PIL import ImageDraw

from sr_jax import degradations
from sr_jax import metrics as sr_metrics
from sr_jax.degradations.pipelines import bicubic_lr
from sr_jax.inference.pre_pad import DEFAULT_PRE_PAD
from sr_jax.inference.pre_pad import apply_pre_padded
from sr_jax.train_step import hr_to_float


def make_super_resolve_fn(generator, pre_pad: int = DEFAULT_PRE_PAD
                          ) -> Callable:
  """Returns jitted fn(variables, hr uint8 [1,H,W,3]) -> (lr, bicubic, sr).

  All three are float32 [1, ., ., 3] in [0, 1]; shapes differ per image, so
  each new size compiles once. The LR is edge-padded by `pre_pad` pixels
  for the generator and its output cropped back (inference.pre_pad): the
  generator's zero padding then leaves no line along the image edges.
  """
  scale = generator.scale

  @jax.jit
  def run(variables, hr_uint8):
    hr = hr_to_float(hr_uint8)
    lr = bicubic_lr(hr, scale)
    sr = apply_pre_padded(
        lambda x: generator.apply(variables, x, train=False), lr, scale,
        pre_pad).astype(jnp.float32)
    bicubic = degradations.imresize(lr, float(scale))
    return lr, jnp.clip(bicubic, 0.0, 1.0), jnp.clip(sr, 0.0, 1.0)

  return run


def to_uint8(x) -> np.ndarray:
  return np.asarray(np.round(np.clip(np.asarray(x, np.float32), 0, 1) * 255),
                    np.uint8)


STRIP_LABELS = ('LR (nearest)', 'bicubic', 'SR', 'HR')
LABEL_HEIGHT = 14


def image_strip(lr: np.ndarray, bicubic: np.ndarray, sr: np.ndarray,
                hr: np.ndarray, labels: bool = True) -> np.ndarray:
  """LR (nearest-upscaled) | bicubic | SR | HR side by side, uint8 HxWx3,
  under a band naming each panel (labels=False: the bare images)."""
  s = hr.shape[0] // lr.shape[0]
  lr_big = np.repeat(np.repeat(lr, s, axis=0), s, axis=1)
  strip = np.concatenate([lr_big, bicubic, sr, hr], axis=1)
  if not labels:
    return strip
  band = Image.new('RGB', (strip.shape[1], LABEL_HEIGHT), (255, 255, 255))
  draw = ImageDraw.Draw(band)
  for k, text in enumerate(STRIP_LABELS):
    draw.text((k * hr.shape[1] + 3, 1), text, fill=(0, 0, 0))
  return np.concatenate([np.asarray(band), strip], axis=0)


DEFAULT_METRICS = ('psnr', 'ssim', 'psnr_rgb')


def evaluate(super_resolve: Callable, variables,
             val_set: Sequence[tuple[str, np.ndarray]], scale: int,
             num_strips: int = 0, metric_names: Sequence[str] = DEFAULT_METRICS
             ) -> tuple[dict, list[tuple[str, np.ndarray]]]:
  """Mean of each registered metric (sr_jax.metrics.METRICS) over the set,
  for the model and as '<name>_bicubic' for bicubic up-sampling, and the
  labelled LR | bicubic | SR | HR strips of the first `num_strips` images.
  Metrics see uint8 images with `scale` border pixels cropped; PSNR / SSIM
  are on Y, their _rgb versions on RGB (which sees colour casts)."""
  found = [(name, sr_metrics.METRICS.get(name)) for name in metric_names]
  per_image = {}
  strips = []
  for i, (name, hr) in enumerate(val_set):
    lr, bicubic, sr = jax.device_get(super_resolve(variables, hr[None]))
    lr, bicubic, sr = to_uint8(lr[0]), to_uint8(bicubic[0]), to_uint8(sr[0])
    for metric_name, metric in found:
      per_image.setdefault(metric_name, []).append(metric.fn(sr, hr, scale))
      per_image.setdefault(f'{metric_name}_bicubic', []).append(
          metric.fn(bicubic, hr, scale))
    if i < num_strips:
      strips.append((name, image_strip(lr, bicubic, sr, hr)))
  return {k: float(np.mean(v)) for k, v in per_image.items()}, strips


def save_strips(directory: str, strips: Sequence[tuple[str, np.ndarray]]):
  os.makedirs(directory, exist_ok=True)
  for name, strip in strips:
    stem = os.path.splitext(os.path.basename(name))[0]
    Image.fromarray(strip).save(os.path.join(directory, f'{stem}.png'))
