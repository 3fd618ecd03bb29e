"""HR image sources for grain: a folder of files, filtered, sharded, cached.

A source is any `Sequence[np.ndarray]` (`len` + integer indexing) of uint8
[H, W, 3] images; `grain.MapDataset.source` accepts it directly. With
`cache_images` the source is a plain list of decoded arrays; otherwise
`ImageFiles` decodes on every access (what DIV2K-sized folders need),
wrapped in a `bad_inputs.TolerantSource` that steps over truncated files.
"""
from collections.abc import Sequence
import dataclasses
import os
from typing import TypeVar

from absl import logging
import numpy as np

from sr_jax import errors
from sr_jax.data import bad_inputs
from sr_jax.data import image_io

T = TypeVar('T')


class ImageFiles(Sequence):
  """Random-access view of image files, decoded on each `__getitem__`.

  Picklable (it only holds paths), so grain worker processes can each open
  the files themselves instead of receiving pixel data from the parent.
  """

  def __init__(self, paths: Sequence[str], max_pixels: int | None = None):
    self._paths = list(paths)
    self._max_pixels = max_pixels

  def __len__(self) -> int:
    return len(self._paths)

  def __getitem__(self, index: int) -> np.ndarray:
    """Returns uint8 [H, W, 3] in [0, 255] for file `index`."""
    return image_io.read_image(self._paths[index], self._max_pixels)

  load = __getitem__  # bad_inputs.RecordLoader

  def name(self, index: int) -> str:
    return self._paths[index]

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
    raise errors.ConfigError(
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
    raise errors.ConfigError(
        f'{where} has {len(items)} usable training images, fewer than the '
        f'{process_count} processes; every process needs at least one.')
  return shard


def read_sizes(
    paths: Sequence[str],
    max_pixels: int | None,
    budget: bad_inputs.BadFileBudget,
) -> dict[str, tuple[int, int]]:
  """{path: (height, width)} from headers; unreadable ones go to `budget`.

  0-byte files, non-images and files above `max_pixels` fail here, before
  any decoding; they are logged and counted but not checked against the
  budget yet (the caller does, once, with the full count).
  """
  sizes = {}
  for path in paths:
    try:
      sizes[path] = image_io.image_size(path, max_pixels)
    except ValueError as e:
      budget.add(path, str(e), check=False)
  return sizes


@dataclasses.dataclass
class FolderIndex:
  """Usable files of a training folder, and the bad ones met on the way."""
  paths: list[str]
  budget: bad_inputs.BadFileBudget


def index_folder(
    folder: str,
    min_size: int,
    *,
    max_pixels: int | None = None,
    max_bad_fraction: float = 0.0,
) -> FolderIndex:
  """Lists `folder`, reads every header, drops bad and small files.

  Sizes come from file headers (no decoding), so this is cheap even for
  DIV2K and gives the same list on every process. Raises
  TooManyBadFilesError when unreadable headers are more than
  `max_bad_fraction` of the files; images below `min_size` are skipped with
  a warning but are not "bad".
  """
  paths = image_io.list_images(folder)
  budget = bad_inputs.BadFileBudget(folder, len(paths), max_bad_fraction)
  sizes = read_sizes(paths, max_pixels, budget)
  budget.check()
  readable = [p for p in paths if p in sizes]
  keep = keep_large_enough(
      readable, [sizes[p] for p in readable], min_size, folder)
  return FolderIndex([readable[i] for i in keep], budget)


def usable_paths(folder: str, min_size: int, **kwargs) -> list[str]:
  """Sorted image paths under `folder` whose shorter side is >= `min_size`.

  Keyword arguments as for `index_folder`.
  """
  return index_folder(folder, min_size, **kwargs).paths


def folder_train_source(
    folder: str,
    *,
    min_size: int,
    cache_images: bool,
    process_index: int,
    process_count: int,
    max_pixels: int | None = None,
    max_bad_fraction: float = 0.0,
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
    max_pixels: files whose header claims more pixels are skipped (counted
      as bad) without being decoded; None: Pillow's limit, 0: no limit.
    max_bad_fraction: stop with an error once unusable files (unreadable
      header, or a decode failure met by this process) are more than this
      fraction of the files in `folder`.

  Returns:
    Sequence of uint8 [H, W, 3] images.
  """
  # Filter before sharding: every process then agrees on the same usable
  # list, so the shards stay disjoint and cover it exactly.
  index = index_folder(folder, min_size, max_pixels=max_pixels,
                       max_bad_fraction=max_bad_fraction)
  shard = shard_for_process(index.paths, process_index, process_count, folder)
  logging.info(
      'Training data: %d images in %s; process %d of %d reads %d%s.',
      len(index.paths), folder, process_index, process_count, len(shard),
      ' (cached in memory)' if cache_images else '')
  files = ImageFiles(shard, max_pixels)
  if cache_images:
    # Truncated files fail here, in the up-front decode, and are dropped.
    return bad_inputs.load_all(files, index.budget)
  return bad_inputs.TolerantSource(files, index.budget)


def relative_name(path: str, folder: str) -> str:
  """'sub/0801' for folder/sub/0801.png: unique under recursive listing."""
  rel = os.path.relpath(path, folder)
  return os.path.splitext(rel)[0].replace(os.sep, '/')
