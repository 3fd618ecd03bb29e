"""Embedded default data: photos shipped inside the scikit-image wheel.

They let `train_dir = ''` / `val_dir = ''` run anywhere (tests, a laptop, a
machine without network) with no download. Ten images are far too few to
train a useful model; they exist so the pipeline always has *something* real
to show. For real training point the config at DIV2K/Flickr2K folders.

Only loaders that read files bundled in the wheel are used; scikit-image's
pooch-backed ones (eagle, lily, skin, kidney, ...) would need the network.
`skimage.data.cat` is the same picture as `chelsea`, so it is not used, and
the right view of the stereo motorcycle pair is left out because it nearly
duplicates the left one (it would leak across a train/validation split).

Sizes (H x W): astronaut 512x512, camera 512x512 (grey), coffee 400x600,
hubble_deep_field 872x1000, immunohistochemistry 512x512, motorcycle 500x741,
grass 512x512 (grey), gravel 512x512 (grey); held out: chelsea 300x451,
rocket 427x640.
"""
import functools
from typing import Callable

import numpy as np
from skimage import data as skdata

from sr_jax import errors

TRAIN_NAMES = (
    'astronaut', 'camera', 'coffee', 'hubble_deep_field',
    'immunohistochemistry', 'motorcycle', 'grass', 'gravel')
VALIDATION_NAMES = ('chelsea', 'rocket')

_LOADERS: dict[str, Callable[[], np.ndarray]] = {
    'astronaut': skdata.astronaut,
    'camera': skdata.camera,
    'coffee': skdata.coffee,
    'hubble_deep_field': skdata.hubble_deep_field,
    'immunohistochemistry': skdata.immunohistochemistry,
    # stereo_motorcycle returns (left, right, disparity); all three are in the
    # wheel, so this needs no network either.
    'motorcycle': lambda: skdata.stereo_motorcycle()[0],
    'grass': skdata.grass,
    'gravel': skdata.gravel,
    'chelsea': skdata.chelsea,
    'rocket': skdata.rocket,
}


@functools.lru_cache(maxsize=None)
def load_sample(name: str) -> np.ndarray:
  """Returns one embedded image as read-only uint8 [H, W, 3] in [0, 255]."""
  if name not in _LOADERS:
    raise errors.ConfigError(
        f'Unknown embedded sample image {name!r}; known: {sorted(_LOADERS)}.')
  try:
    image = np.asarray(_LOADERS[name]())
  except Exception as e:  # pylint: disable=broad-except
    # A trimmed scikit-image install (or a future one that moved the file to
    # its download registry) lands here; say how to avoid the default.
    raise RuntimeError(
        f'Embedded sample image {name!r} is not available offline in this '
        f'scikit-image install ({type(e).__name__}: {e}). Set the data config '
        'train_dir / val_dir to a folder of images instead.') from e
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  image = np.ascontiguousarray(image[..., :3].astype(np.uint8))
  # Cached and shared between callers: make accidental in-place edits fail.
  image.flags.writeable = False
  return image


def train_images() -> list[tuple[str, np.ndarray]]:
  """Embedded training images: list of (name, uint8 [H, W, 3])."""
  return [(name, load_sample(name)) for name in TRAIN_NAMES]


def validation_images() -> list[tuple[str, np.ndarray]]:
  """Held-out embedded images, disjoint from `train_images`, sorted by name."""
  return [(name, load_sample(name)) for name in sorted(VALIDATION_NAMES)]
