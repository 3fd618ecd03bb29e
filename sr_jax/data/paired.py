"""Paired LR/HR training folders (BasicSR's `PairedImageDataset`).

For datasets that ship their own LR images (DIV2K_train_LR_bicubic/X4,
RealSR, a degradation made offline): every HR file has an LR file with the
same relative name, after `lr_filename_tmpl` is applied to its base name
('{}x4': 'sub/0001.png' pairs with 'sub/0001x4.png'; extensions may differ).

The index is built from file headers alone and refuses a folder pair that
does not match (an HR without LR, an LR without HR, an HR that is not
exactly `scale` times its LR), naming the offending files: such a mismatch
is a setup mistake, and training on misaligned pairs fails silently.
"""
from collections.abc import Sequence
import dataclasses
import os
import posixpath

from absl import logging
import numpy as np

from sr_jax import errors
from sr_jax.data import bad_inputs
from sr_jax.data import folder as folder_lib
from sr_jax.data import image_io

_PROBLEMS_IN_MESSAGE = 10


@dataclasses.dataclass(frozen=True)
class Pair:
  hr: str
  lr: str


def _names(root: str, kind: str, problems: list[str]) -> dict[str, str]:
  """{relative name without extension: path}; duplicates are problems."""
  named = {}
  for path in image_io.list_images(root):
    key = folder_lib.relative_name(path, root)
    if key in named:
      problems.append(
          f'two {kind} files share the name {key!r}: {named[key]} and {path}')
    else:
      named[key] = path
  return named


def lr_name(hr_name: str, lr_filename_tmpl: str) -> str:
  """'sub/0001' -> 'sub/0001x4' for the template '{}x4'."""
  head, base = posixpath.split(hr_name)
  return posixpath.join(head, lr_filename_tmpl.format(base))


def _mismatch_error(hr_dir, lr_dir, scale, tmpl, problems
                    ) -> errors.ConfigError:
  listed = '\n'.join(f'  {p}' for p in problems[:_PROBLEMS_IN_MESSAGE])
  more = (f'\n  ... and {len(problems) - _PROBLEMS_IN_MESSAGE} more'
          if len(problems) > _PROBLEMS_IN_MESSAGE else '')
  return errors.ConfigError(
      f'The paired training folders do not match: HR {hr_dir}, LR {lr_dir} '
      f'(data.lr_filename_tmpl={tmpl!r}, scale={scale}). '
      f'{len(problems)} problem(s):\n{listed}{more}\nEvery HR image needs '
      'exactly one LR image with its name, and HR height and width must be '
      'exactly scale times the LR ones. Fix or remove these files, or check '
      'data.train_lr_dir, data.lr_filename_tmpl and the scale.')


def index_pairs(
    hr_dir: str,
    lr_dir: str,
    *,
    scale: int,
    lr_filename_tmpl: str = '{}',
    min_size: int = 0,
    max_pixels: int | None = None,
    max_bad_fraction: float = 0.0,
) -> tuple[list[Pair], bad_inputs.BadFileBudget]:
  """Matches HR and LR files by name and checks their sizes (headers only).

  Args:
    hr_dir, lr_dir: folders of HR and LR images (recursive).
    scale: HR size / LR size, exactly, per side.
    lr_filename_tmpl: LR base name from the HR base name, e.g. '{}x4'.
    min_size: pairs whose HR shorter side is below this are skipped (logged).
    max_pixels: files whose header claims more pixels are bad (skipped).
    max_bad_fraction: as for `folder.index_folder`; a pair is bad when either
      file's header cannot be read.

  Returns:
    (pairs sorted by HR name, budget holding the bad pairs met).

  Raises:
    ValueError: names or sizes do not match; the message lists the first
      few offending files and what is wrong with each.
    TooManyBadFilesError: too many unreadable files.
  """
  if '{}' not in lr_filename_tmpl:
    raise errors.ConfigError(
        f"data.lr_filename_tmpl={lr_filename_tmpl!r} must contain '{{}}', "
        "where the HR base name goes (e.g. '{}x4').")
  problems = []
  hr_named = _names(hr_dir, 'HR', problems)
  lr_named = _names(lr_dir, 'LR', problems)
  wanted = {lr_name(name, lr_filename_tmpl): name for name in hr_named}
  for name, path in hr_named.items():
    if lr_name(name, lr_filename_tmpl) not in lr_named:
      problems.append(
          f'HR {path} has no LR image named '
          f'{lr_name(name, lr_filename_tmpl)!r}.* in {lr_dir}')
  for name, path in lr_named.items():
    if name not in wanted:
      problems.append(f'LR {path} matches no HR image in {hr_dir}')
  if problems:
    raise _mismatch_error(hr_dir, lr_dir, scale, lr_filename_tmpl, problems)

  budget = bad_inputs.BadFileBudget(
      f'{hr_dir} + {lr_dir}', len(hr_named), max_bad_fraction)
  pairs, hr_sizes = [], []
  for name in sorted(hr_named):
    pair = Pair(hr_named[name], lr_named[lr_name(name, lr_filename_tmpl)])
    try:
      hr_size = image_io.image_size(pair.hr, max_pixels)
      lr_size = image_io.image_size(pair.lr, max_pixels)
    except ValueError as e:
      budget.add(pair.hr, str(e), check=False)
      continue
    if hr_size != (lr_size[0] * scale, lr_size[1] * scale):
      problems.append(
          f'HR {pair.hr} is {hr_size[0]}x{hr_size[1]} (HxW) but LR {pair.lr} '
          f'is {lr_size[0]}x{lr_size[1]}: at scale {scale} the HR must be '
          f'{lr_size[0] * scale}x{lr_size[1] * scale}')
      continue
    pairs.append(pair)
    hr_sizes.append(hr_size)
  if problems:
    raise _mismatch_error(hr_dir, lr_dir, scale, lr_filename_tmpl, problems)
  budget.check()
  keep = folder_lib.keep_large_enough(
      [p.hr for p in pairs], hr_sizes, min_size, hr_dir)
  return [pairs[i] for i in keep], budget


class PairedFiles(Sequence):
  """Random-access LR/HR pairs, decoded on each access; picklable."""

  def __init__(self, pairs: Sequence[Pair], scale: int,
               max_pixels: int | None = None):
    self._pairs = list(pairs)
    self._scale = scale
    self._max_pixels = max_pixels

  def __len__(self) -> int:
    return len(self._pairs)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    """{'hr': uint8 [s*h, s*w, 3], 'lr': uint8 [h, w, 3]} in [0, 255]."""
    pair = self._pairs[index]
    hr = image_io.read_image(pair.hr, self._max_pixels)
    lr = image_io.read_image(pair.lr, self._max_pixels)
    # Headers matched at index time; an EXIF rotation on one file only would
    # still misalign the decoded pair.
    if hr.shape[:2] != (lr.shape[0] * self._scale, lr.shape[1] * self._scale):
      raise ValueError(
          f'Decoded HR {pair.hr} ({hr.shape[0]}x{hr.shape[1]}) is not '
          f'{self._scale} x its LR {pair.lr} ({lr.shape[0]}x{lr.shape[1]}); '
          'check their EXIF orientation tags.')
    return {'hr': hr, 'lr': lr}

  load = __getitem__  # bad_inputs.RecordLoader

  def name(self, index: int) -> str:
    return f'{self._pairs[index].hr} (LR {self._pairs[index].lr})'

  def __repr__(self) -> str:
    return f'PairedFiles({len(self._pairs)} pairs, scale {self._scale})'


def paired_train_source(
    hr_dir: str,
    lr_dir: str,
    *,
    scale: int,
    lr_filename_tmpl: str,
    min_size: int,
    cache_images: bool,
    process_index: int,
    process_count: int,
    max_pixels: int | None = None,
    max_bad_fraction: float = 0.0,
) -> Sequence[dict[str, np.ndarray]]:
  """This process's share of the pairs, as for `folder.folder_train_source`.

  Returns:
    Sequence of {'hr': uint8 [s*h, s*w, 3], 'lr': uint8 [h, w, 3]}.
  """
  pairs, budget = index_pairs(
      hr_dir, lr_dir, scale=scale, lr_filename_tmpl=lr_filename_tmpl,
      min_size=min_size, max_pixels=max_pixels,
      max_bad_fraction=max_bad_fraction)
  shard = folder_lib.shard_for_process(
      pairs, process_index, process_count, hr_dir)
  logging.info(
      'Training data: %d LR/HR pairs (x%d) in %s and %s; process %d of %d '
      'reads %d%s.', len(pairs), scale, hr_dir, os.fspath(lr_dir),
      process_index, process_count, len(shard),
      ' (cached in memory)' if cache_images else '')
  files = PairedFiles(shard, scale, max_pixels)
  if cache_images:
    return bad_inputs.load_all(files, budget)
  return bad_inputs.TolerantSource(files, budget)
