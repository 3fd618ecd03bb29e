"""What training does with bad inputs: unreadable files and too-small images.

A real folder of a few thousand photos scraped or copied together holds a
few 0-byte, truncated or mis-named files. One of them must not stop a week-long
run, and many of them must not go unnoticed either, so:

- a file that cannot be read is skipped, logged by name and counted: at index
  time when its header is unreadable (0-byte, not an image, above the pixel
  limit), at decode time when only its pixel data is broken (truncated);
- once the bad files are more than `max_bad_fraction` of the files listed,
  the run stops with an error naming the folder, the count and the first few
  files;
- an image smaller than the crop is skipped (`small_image_policy='skip'`) or
  mirror-padded up to the crop size (`'pad'`).
"""
from collections.abc import Sequence
import dataclasses
import threading
from typing import Any, Protocol

from absl import logging
import numpy as np

from sr_jax import errors

SMALL_IMAGE_POLICIES = ('skip', 'pad')
# Errors that mean "this record is unusable", as opposed to bugs: Pillow's
# decode errors are OSErrors, ours (and size mismatches) ValueErrors.
RECORD_ERRORS = (ValueError, OSError)
_NAMES_IN_MESSAGE = 5


class TooManyBadFilesError(errors.SrJaxError, ValueError):
  """More than data.max_bad_fraction of the training files are unusable."""


@dataclasses.dataclass
class BadFileBudget:
  """Counts unusable training files and stops the run when too many are.

  Attributes:
    where: the folder (or dataset) named in messages.
    total: number of files listed there, bad ones included.
    max_fraction: the largest allowed bad / total (data.max_bad_fraction).
    bad: (name, reason) of every bad file seen so far.
  """
  where: str
  total: int
  max_fraction: float
  bad: list[tuple[str, str]] = dataclasses.field(default_factory=list)

  def add(self, name: str, reason: str, check: bool = True) -> None:
    """Logs and counts one bad file; raises once there are too many.

    `check=False` only counts: index building checks once at the end, so its
    error reports the full count.
    """
    self.bad.append((name, reason))
    logging.warning('Skipping unusable training file %s (%d bad of %d in %s): '
                    '%s', name, len(self.bad), self.total, self.where, reason)
    if check:
      self.check()

  def check(self) -> None:
    """Raises TooManyBadFilesError if bad / total > max_fraction."""
    count = len(self.bad)
    if count <= self.max_fraction * self.total:
      return
    listed = '\n'.join(
        f'  {name}: {reason}' for name, reason in self.bad[:_NAMES_IN_MESSAGE])
    more = (f'\n  ... and {count - _NAMES_IN_MESSAGE} more (all are in the '
            'log)' if count > _NAMES_IN_MESSAGE else '')
    raise TooManyBadFilesError(
        f'{count} of {self.total} training files in {self.where} are unusable '
        f'({count / max(self.total, 1):.1%}, more than data.max_bad_fraction='
        f'{self.max_fraction:g}):\n{listed}{more}\nRemove or re-export these '
        'files, or raise data.max_bad_fraction to train without them.')


class RecordLoader(Protocol):
  """Random access to training records that may fail to load."""

  def __len__(self) -> int:
    ...

  def load(self, index: int) -> Any:
    """The record; raises one of RECORD_ERRORS if it is unusable."""

  def name(self, index: int) -> str:
    """Names the record in logs and errors (a file path)."""


class TolerantSource(Sequence):
  """A grain source that stands in a good record for an unusable one.

  A bad record (found at decode time, e.g. a truncated PNG) is logged once,
  counted in `budget`, and replaced by the next readable record in index
  order: deterministic, so batches stay a pure function of the step and
  restoring an iterator state still reproduces them. Each grain worker holds
  its own copy, so each logs and counts what it meets itself.
  """

  def __init__(self, loader: RecordLoader, budget: BadFileBudget):
    self._loader = loader
    self._budget = budget
    self._bad: set[int] = set()
    self._lock = threading.Lock()  # grain reads with several threads.

  def __len__(self) -> int:
    return len(self._loader)

  def __getitem__(self, index: int) -> Any:
    size = len(self._loader)
    for step in range(size):
      i = (int(index) + step) % size
      if i not in self._bad:
        try:
          return self._loader.load(i)
        except RECORD_ERRORS as e:
          self._record_bad(i, e)
      # Every read that meets a bad record re-checks the budget, so once it
      # is exceeded all of them fail, not only the one that counted last:
      # with grain's reading threads that one may belong to a prefetched
      # batch the trainer never asks for.
      self._budget.check()
    raise TooManyBadFilesError(
        f'None of the {size} training records in {self._budget.where} '
        'could be read; see the log for why.')

  def _record_bad(self, index: int, error: Exception) -> None:
    with self._lock:
      if index in self._bad:
        return
      self._bad.add(index)
      self._budget.add(self._loader.name(index), str(error), check=False)

  def __getstate__(self) -> dict:
    state = self.__dict__.copy()
    del state['_lock']
    return state

  def __setstate__(self, state: dict) -> None:
    self.__dict__.update(state)
    self._lock = threading.Lock()

  def __repr__(self) -> str:
    return f'TolerantSource({self._loader!r})'


def load_all(loader: RecordLoader, budget: BadFileBudget) -> list[Any]:
  """Every usable record, loaded now (`cache_images`); bad ones are counted."""
  records = []
  for i in range(len(loader)):
    try:
      records.append(loader.load(i))
    except RECORD_ERRORS as e:
      budget.add(loader.name(i), str(e))
  if not records:
    raise TooManyBadFilesError(
        f'None of the training files in {budget.where} could be read; see '
        'the log for why.')
  return records


def check_small_image_policy(policy: str) -> str:
  if policy not in SMALL_IMAGE_POLICIES:
    raise errors.ConfigError(
        f'data.small_image_policy must be one of {SMALL_IMAGE_POLICIES}, '
        f'got {policy!r}.')
  return policy


def pad_to_size(image: np.ndarray, min_height: int, min_width: int
                ) -> np.ndarray:
  """Mirror-pads uint8 [H, W, C] at the bottom and right to >= the minimum.

  Half-sample symmetric mirroring (edge pixel repeated: d c b a | a b c d,
  cv2's BORDER_REFLECT), not Real-ESRGAN's BORDER_REFLECT_101: symmetric
  padding commutes with s x s box downscaling, so padding an HR image and
  its LR (HR downscaled by s) keeps every LR pixel the average of its HR
  block, and paired crops stay aligned inside the padding too. Pads larger
  than the image mirror repeatedly. Returns `image` itself when no side is
  short.
  """
  height, width = image.shape[:2]
  pad_h, pad_w = max(0, min_height - height), max(0, min_width - width)
  if not pad_h and not pad_w:
    return image
  return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode='symmetric')
