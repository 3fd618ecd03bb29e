"""Image sets for evaluation: HR images of a folder with their LR input.

The LR is MATLAB bicubic of the HR, mod-cropped to the scale and quantised
to 8 bits (BasicSR's protocol, as the benchmarks' LR files were made), or
read from an LR folder matched by name ('{}x4' for BasicSR's
'<name>x4.png'). Unreadable or unmatched files are skipped and listed,
never fatal: one broken file does not stop an evaluation or a sweep.
"""
import dataclasses
import functools
import os

import jax
import numpy as np

from sr_jax import degradations
from sr_jax.data import folder
from sr_jax.data import image_io
from sr_jax.degradations.pipelines import bicubic_lr_uint8
from sr_jax.data.image_io import hr_to_float


def to_uint8(x) -> np.ndarray:
  """[0, 1] floats to uint8 (clipped, rounded): how SR outputs are scored."""
  return np.asarray(np.round(np.clip(np.asarray(x, np.float32), 0, 1) * 255),
                    np.uint8)


@dataclasses.dataclass
class ImageSet:
  images: list  # (name, hr uint8 [H, W, 3], lr uint8 [H / s, W / s, 3])
  skipped: list  # (path, why)


@functools.partial(jax.jit, static_argnums=1)
def _bicubic_up(lr, scale: int):
  return degradations.imresize(hr_to_float(lr), float(scale))


def bicubic_up(lr: np.ndarray, scale: int) -> np.ndarray:
  """MATLAB bicubic up-sampling of a uint8 LR: the baseline row."""
  return to_uint8(_bicubic_up(lr[None], scale)[0])


def _pair(hr: np.ndarray, lr_path: str | None, scale: int):
  if lr_path is None:
    h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
    if not h or not w:
      raise ValueError(f'smaller than the scale {scale}')
    hr = np.ascontiguousarray(hr[:h, :w])
    return hr, bicubic_lr_uint8(hr, scale)
  lr = image_io.read_image(lr_path)
  h, w = lr.shape[0] * scale, lr.shape[1] * scale
  if not (h <= hr.shape[0] < h + scale and w <= hr.shape[1] < w + scale):
    raise ValueError(f'its LR {lr_path} is {lr.shape[1]}x{lr.shape[0]}, not '
                     f'the HR {hr.shape[1]}x{hr.shape[0]} / {scale}')
  return np.ascontiguousarray(hr[:h, :w]), lr


def load_image_set(hr_dir: str, lr_dir: str | None, scale: int,
                   lr_template: str = '{}', max_images: int = 0) -> ImageSet:
  """The images of `hr_dir` (recursive, sorted by name; the first
  `max_images` if > 0) with their LR. Raises only for a missing or empty
  folder (FileNotFoundError, NotADirectoryError, ValueError: the message
  names the folder, not the flag or setting, which the caller adds); bad
  files are in `skipped`."""
  for what, path in (('HR', hr_dir), ('LR', lr_dir)):
    if path and not os.path.isdir(path):
      if os.path.exists(path):
        raise NotADirectoryError(f'{what} folder {os.fspath(path)!r} is a '
                                 'file, not a folder of images.')
      raise FileNotFoundError(f'{what} folder {os.fspath(path)!r} does not '
                              'exist.')
  paths = sorted(image_io.list_images(hr_dir))[:max_images or None]
  lr_files = ({folder.relative_name(p, lr_dir): p
               for p in image_io.list_images(lr_dir)} if lr_dir else None)
  images, skipped = [], []
  for path in paths:
    name = folder.relative_name(path, hr_dir)
    try:
      lr_path = None
      if lr_files is not None:
        parent, base = os.path.split(name)
        key = os.path.join(parent, lr_template.format(base)).replace(
            os.sep, '/')
        if key not in lr_files:
          raise ValueError(f'no LR file {key}.* in {lr_dir}')
        lr_path = lr_files[key]
      hr, lr = _pair(image_io.read_image(path), lr_path, scale)
    except (OSError, ValueError) as e:
      skipped.append((path, str(e)))
      continue
    images.append((name, hr, lr))
  return ImageSet(images, skipped)
