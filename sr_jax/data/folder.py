"""HR image sources for grain: a folder of files, filtered, sharded, cached.

A source is any `Sequence[np.ndarray]` (`len` + integer indexing) of uint8
[H, W, 3] images; `grain.MapDataset.source` accepts it directly. With
`cache_images` the source is a plain list of decoded arrays; otherwise
`ImageFiles` decodes on every access (what DIV2K-sized folders need).
"""
from collections.abc import Sequence
import os
from typing import TypeVar

from absl import logging
import numpy as np

from sr_jax.data import image_io

T = TypeVar('T')


class ImageFiles(Sequence):
  """Random-access view of image files, decoded on each `__getitem__`.

  Picklable (it only holds paths), so grain worker processes can each open
  the files themselves instead of receiving pixel data from the parent.
  """

  def __init__(self, paths: Sequence[str]):
    self._paths = list(paths)

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> np.ndarray:
    """Returns uint8 [H, W, 3] in [0, 255] for file `index`."""
    return image_io.read_image(self._paths[index])

  def __repr__(self) -> str:
    return f'ImageFiles({len(self._paths)} files)'


def keep_large_enough(
    names: Sequence[str],
    sizes: Sequence[tuple[int, int]],
    min_size: int,
    where: str,
) -> list[int]:
  """Indices of images whose shorter side is >= `min_size`.

  Each skipped image is logged with its name, so a user wondering why a file
  never shows up in training finds it in the log. Raises ValueError naming
  `where` when nothing is left, since training could not draw a single crop.
  """
  keep = []
  for i, (name, (height, width)) in enumerate(zip(names, sizes)):
    if min(height, width) >= min_size:
      keep.append(i)
    else:
      logging.warning(
          'Skipping %s: %dx%d is smaller than the minimum size %d '
          '(gt_size / min_image_size).', name, height, width, min_size)
  if not keep:
    raise ValueError(
        f'No training image in {where} is at least {min_size}x{min_size} '
        f'pixels (all {len(names)} were skipped). Lower gt_size / '
        'min_image_size or use larger images.')
  return keep


def shard_for_process(
    items: Sequence[T], process_index: int, process_count: int, where: str
) -> list[T]:
  """The disjoint, strided share of `items` read by one process.

  Strided rather than contiguous, so with sorted names (e.g. DIV2K 0001 ...
  0800) every process sees a spread of the folder rather than one end of it.
  """
  if process_count < 1 or not 0 <= process_index < process_count:
    raise ValueError(
        f'Invalid process_index={process_index} for '
        f'process_count={process_count}.')
  shard = list(items)[process_index::process_count]
  if not shard:
    raise ValueError(
        f'{where} has {len(items)} usable training images, fewer than the '
        f'{process_count} processes; every process needs at least one.')
  return shard


def usable_paths(folder: str, min_size: int) -> list[str]:
  """Sorted image paths under `folder` whose shorter side is >= `min_size`.

  Sizes come from file headers (no decoding), so this is cheap even for
  DIV2K and gives the same list on every process.
  """
  paths = image_io.list_images(folder)
  sizes = [image_io.image_size(p) for p in paths]
  return [paths[i] for i in keep_large_enough(paths, sizes, min_size, folder)]


def folder_train_source(
    folder: str,
    *,
    min_size: int,
    cache_images: bool,
    process_index: int,
    process_count: int,
) -> Sequence[np.ndarray]:
  """This process's training images from `folder` (recursive).

  Args:
    folder: a folder of images, e.g. DIV2K_train_HR.
    min_size: images whose shorter side is below this are skipped (logged).
    cache_images: decode this process's shard once, up front, and keep it in
      memory (~H*W*3 bytes per image: fine for a few hundred small images,
      ~6 GB for all of DIV2K_train_HR, and copied into every grain worker);
      otherwise decode on every access.
    process_index, process_count: which disjoint shard of the files to read.

  Returns:
    Sequence of uint8 [H, W, 3] images.
  """
  # Filter before sharding: every process then agrees on the same usable
  # list, so the shards stay disjoint and cover it exactly.
  paths = usable_paths(folder, min_size)
  shard = shard_for_process(paths, process_index, process_count, folder)
  logging.info(
      'Training data: %d images in %s; process %d of %d reads %d%s.',
      len(paths), folder, process_index, process_count, len(shard),
      ' (cached in memory)' if cache_images else '')
  source = ImageFiles(shard)
  if cache_images:
    return [source[i] for i in range(len(source))]
  return source


def relative_name(path: str, folder: str) -> str:
  """'sub/0801' for folder/sub/0801.png: unique under recursive listing."""
  rel = os.path.relpath(path, folder)
  return os.path.splitext(rel)[0].replace(os.sep, '/')
