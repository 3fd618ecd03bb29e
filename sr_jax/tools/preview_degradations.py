r"""Saves one HR | LR picture per degradation pipeline, for a person to look at.

  python -m sr_jax.preview_degradations --out_dir=/tmp/degradations \
      [--image=PATH] [--size=256] [--scale=4] [--seed=0] [--samples=3]

Each pipeline gets `<out_dir>/<name>.png`: rows of HR target | LR input
(enlarged with nearest neighbour so every LR pixel is visible), one row per
random draw. Without --image, scikit-image's bundled astronaut photo is used.
"""
import os

from absl import app
from absl import flags
import jax
import numpy as np
from PIL import Image

from sr_jax import errors
from sr_jax.data import image_io
from sr_jax.data import sample_images
from sr_jax.degradations import pipelines

_OUT_DIR = flags.DEFINE_string('out_dir', 'degradation_previews',
                               'Where to write <pipeline>.png.')
_IMAGE = flags.DEFINE_string('image', '', 'HR image (default: astronaut).')
_SIZE = flags.DEFINE_integer('size', 256, 'Centre crop of the HR image.')
_SCALE = flags.DEFINE_integer('scale', 4, 'SR scale (denoise always uses 1).')
_SEED = flags.DEFINE_integer('seed', 0, 'Random seed.')
_SAMPLES = flags.DEFINE_integer('samples', 3, 'Random draws per pipeline.')
# Pipelines that need no trained network ('dsgan' needs a checkpoint).
_PIPELINES = flags.DEFINE_list(
    'pipelines', [n for n in pipelines.PIPELINES
                  if 'checkpoint' not in pipelines.PIPELINE_DEFAULTS[n]],
    'Which pipelines to show.')


def _centre_crop(image: np.ndarray, size: int) -> np.ndarray:
  h, w = image.shape[:2]
  if min(h, w) < size:
    raise app.UsageError(f'The image is {h}x{w}; --size={size} needs at '
                         'least that much. Use a larger image or a smaller '
                         '--size.')
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
def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  image = (image_io.read_image(_IMAGE.value) if _IMAGE.value
           else sample_images.load_sample('astronaut'))
  hr = _centre_crop(image, _SIZE.value)
  os.makedirs(_OUT_DIR.value, exist_ok=True)
  for name in _PIPELINES.value:
    picture = preview_rows(name, hr, _SCALE.value, _SEED.value,
                           _SAMPLES.value)
    path = os.path.join(_OUT_DIR.value, f'{name}.png')
    Image.fromarray(picture).save(path)
    print(f'{name}: {path} (HR | LR, {_SAMPLES.value} draws)', flush=True)


if __name__ == '__main__':
  app.run(main)
