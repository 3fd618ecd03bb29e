r"""Saves one HR | LR picture per degradation pipeline, for a person to look at.

  python -m sr_jax.preview_degradations --out_dir=/tmp/degradations \
      [--image=PATH] [--size=256] [--scale=4] [--seed=0] [--samples=3]

Each pipeline gets `<out_dir>/<name>.png`: rows of HR target | LR input
(enlarged with nearest neighbour so every LR pixel is visible), one row per
random draw. Without --image, scikit-image's bundled astronaut photo is used.
"""
import argparse
import os
import sys
from typing import Optional, Sequence

import jax
import numpy as np
from PIL import Image

from sr_jax import errors
from sr_jax.data import image_io
from sr_jax.data import sample_images
from sr_jax.degradations import pipelines

# Pipelines that need no trained network ('dsgan' needs a checkpoint).
DEFAULT_PIPELINES = tuple(
    n for n in pipelines.PIPELINES
    if 'checkpoint' not in pipelines.PIPELINE_DEFAULTS[n])


def _comma_list(text: str) -> list[str]:
  return [name.strip() for name in text.split(',') if name.strip()]


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m sr_jax.preview_degradations',
      description=__doc__.split('\n\n')[0],
      epilog=__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--out_dir', default='degradation_previews',
                 help='Where to write <pipeline>.png (default: '
                      'degradation_previews).')
  p.add_argument('--image', default='',
                 help='HR image (default: astronaut).')
  p.add_argument('--size', type=int, default=256,
                 help='Centre crop of the HR image (default: 256).')
  p.add_argument('--scale', type=int, default=4,
                 help='SR scale (default: 4; denoise always uses 1).')
  p.add_argument('--seed', type=int, default=0,
                 help='Random seed (default: 0).')
  p.add_argument('--samples', type=int, default=3,
                 help='Random draws per pipeline (default: 3).')
  p.add_argument('--pipelines', type=_comma_list,
                 default=list(DEFAULT_PIPELINES), metavar='NAME,...',
                 help='Which pipelines to show (default: '
                      f'{",".join(DEFAULT_PIPELINES)}).')
  return p


def _centre_crop(image: np.ndarray, size: int) -> np.ndarray:
  h, w = image.shape[:2]
  if min(h, w) < size:
    raise errors.UsageError(f'The image is {h}x{w}; --size={size} needs at '
                            'least that much. Use a larger image or a '
                            'smaller --size.')
  top, left = (h - size) // 2, (w - size) // 2
  return image[top:top + size, left:left + size]


def preview_rows(name: str, hr: np.ndarray, scale: int, seed: int,
                 samples: int) -> np.ndarray:
  """uint8 [samples * S, 2 * S, 3]: each row is HR target | enlarged LR."""
  scale = 1 if name == 'denoise' else scale
  fn = jax.jit(pipelines.get_pipeline(name, scale=scale))
  batch = np.repeat(hr[None].astype(np.float32) / 255.0, samples, axis=0)
  lr, target = fn(jax.random.key(seed), batch)
  lr = np.repeat(np.repeat(np.asarray(lr), scale, axis=1), scale, axis=2)
  rows = np.concatenate([np.asarray(target), lr], axis=2)
  rows = rows.reshape(-1, *rows.shape[2:])
  return np.round(np.clip(rows, 0, 1) * 255).astype(np.uint8)


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  try:
    image = (image_io.read_image(args.image) if args.image
             else sample_images.load_sample('astronaut'))
  except (OSError, ValueError) as e:  # A missing or unreadable --image.
    raise errors.UsageError(str(e)) from None
  hr = _centre_crop(image, args.size)
  os.makedirs(args.out_dir, exist_ok=True)
  for name in args.pipelines:
    picture = preview_rows(name, hr, args.scale, args.seed, args.samples)
    path = os.path.join(args.out_dir, f'{name}.png')
    Image.fromarray(picture).save(path)
    print(f'{name}: {path} (HR | LR, {args.samples} draws)', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
