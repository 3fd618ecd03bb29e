"""Training images from a prepared TensorFlow Datasets dataset (e.g. DIV2K).

`tfds.data_source` gives random access, which grain needs, only for datasets
prepared in a random-access file format (array_record). This module never
downloads or prepares anything: a dataset that is missing or prepared as
tfrecord (the `tfds build` default) is refused with the exact command that
fixes it, since preparing DIV2K means fetching ~4 GB.

Records are dicts of decoded arrays; DIV2K's are {'hr': uint8 [H, W, 3],
'lr': uint8 [H/s, W/s, 3]}. Given a scale the source yields both, as a
paired source; without one it yields the HR image only.
"""
from collections.abc import Sequence
import shlex
from typing import Any

from absl import logging
import numpy as np

from sr_jax import errors
from sr_jax.data import bad_inputs
from sr_jax.data import folder as folder_lib
from sr_jax.utils import tensorflow_cpu

HR_KEY, LR_KEY = 'hr', 'lr'


def _build_command(name: str, data_dir: str, extra: str = '') -> str:
  data_flag = f' --data_dir={shlex.quote(data_dir)}' if data_dir else ''
  return f'tfds build {name}{data_flag} --file_format=array_record{extra}'


def open_data_source(name: str, data_dir: str, split: str) -> Sequence[Any]:
  """`tfds` random-access source for `split`, or an error saying what to run.

  Args:
    name: 'dataset[/config][:version]', e.g. 'div2k/bicubic_x4'.
    data_dir: where the dataset was prepared; '' for TFDS's default
      (~/tensorflow_datasets or $TFDS_DATA_DIR).
    split: e.g. 'train' or 'train[:90%]'.

  Raises:
    FileNotFoundError: the dataset is not prepared in `data_dir`.
    ValueError: unknown name, or prepared without a random-access format.
  """
  tensorflow_cpu.tensorflow()  # TFDS imports it: GPUs hidden first.
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top

  try:
    builder = tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise errors.ConfigError(
        f'data.tfds_name={name!r} is not a TFDS dataset known to this '
        f'install ({str(e).splitlines()[0]}).') from None
  where = builder.data_dir
  if not builder.is_prepared():
    raise FileNotFoundError(
        f'TFDS dataset {name!r} is not prepared in {where}. Prepare it once '
        f'(this downloads it) with:\n  {_build_command(name, data_dir)}\n'
        'then train with the same data.tfds_data_dir.')
  formats = {f.value for f in builder.info.available_file_formats()}
  if 'array_record' not in formats:
    raise errors.ConfigError(
        f'TFDS dataset {name!r} in {where} is prepared as '
        f'{", ".join(sorted(formats)) or "an unknown format"}, which has no '
        'random access; grain needs array_record. Convert it in place with:\n'
        f'  tfds convert_format --dataset_version_dir={shlex.quote(where)} '
        '--out_file_format=array_record\nor rebuild it with:\n'
        f'  {_build_command(name, data_dir, " --overwrite")}')
  if split not in builder.info.splits:
    # Slices such as 'train[:90%]' are not listed; let tfds judge those.
    if '[' not in split:
      raise errors.ConfigError(
          f'data.tfds_split={split!r} is not a split of {name!r}; it has '
          f'{sorted(builder.info.splits)}.')
  return builder.as_data_source(split=split, file_format='array_record')


class TfdsRecords(Sequence):
  """Picked records of a tfds data source, as HR images or LR/HR pairs.

  Picklable when the tfds source is (array_record sources are), so grain
  workers open the files themselves.
  """

  def __init__(self, source: Sequence[Any], indices: Sequence[int], *,
               label: str, scale: int | None, min_size: int):
    self._source = source
    self._indices = list(indices)
    self._label = label
    self._scale = scale
    self._min_size = min_size

  def __len__(self) -> int:
    return len(self._indices)

  def load(self, index: int) -> np.ndarray | dict[str, np.ndarray]:
    """HR uint8 [H, W, 3], or {'hr', 'lr'} when a scale was given."""
    record = self._source[self._indices[index]]
    hr = np.asarray(record[HR_KEY], np.uint8)
    if hr.ndim != 3 or hr.shape[-1] != 3:
      raise ValueError(f'{self.name(index)}: HR has shape {hr.shape}, '
                       'not [H, W, 3].')
    if min(hr.shape[:2]) < self._min_size:
      raise ValueError(
          f'{self.name(index)}: HR {hr.shape[0]}x{hr.shape[1]} is smaller '
          f'than {self._min_size} (gt_size / min_image_size); set '
          "data.small_image_policy='pad' to pad such images.")
    if self._scale is None:
      return hr
    lr = np.asarray(record[LR_KEY], np.uint8)
    if hr.shape[:2] != (lr.shape[0] * self._scale, lr.shape[1] * self._scale):
      raise ValueError(
          f'{self.name(index)}: HR {hr.shape[0]}x{hr.shape[1]} is not '
          f'{self._scale} x LR {lr.shape[0]}x{lr.shape[1]}.')
    return {'hr': hr, 'lr': lr}

  __getitem__ = load

  def name(self, index: int) -> str:
    return f'{self._label} example {self._indices[index]}'

  def __repr__(self) -> str:
    return f'TfdsRecords({self._label}, {len(self._indices)} examples)'


def tfds_train_source(
    name: str,
    *,
    data_dir: str,
    split: str,
    scale: int | None,
    min_size: int,
    cache_images: bool,
    process_index: int,
    process_count: int,
    max_bad_fraction: float = 0.0,
) -> Sequence[np.ndarray | dict[str, np.ndarray]]:
  """This process's strided share of a tfds split, decoded on access.

  Images have no header to read before decoding, so too-small images (under
  'skip') and HR/LR size mismatches are found at decode time and count as
  bad records (see bad_inputs).

  Returns:
    Sequence of HR uint8 [H, W, 3] (scale None) or of
    {'hr': uint8 [s*h, s*w, 3], 'lr': uint8 [h, w, 3]}.
  """
  source = open_data_source(name, data_dir, split)
  label = f'{name}[{split}]'
  if scale is not None:
    missing = {HR_KEY, LR_KEY} - set(source[0])
    if missing:
      raise errors.ConfigError(
          f'{label} has no {sorted(missing)} feature(s) (it has '
          f'{sorted(source[0])}), so it cannot be a paired LR/HR source.')
    hr, lr = source[0][HR_KEY], source[0][LR_KEY]
    if hr.shape[0] != lr.shape[0] * scale:
      # One wrong dataset (div2k/bicubic_x2 for a x4 model) is a setup
      # mistake, not a few bad records: say so before training starts.
      raise errors.ConfigError(
          f'{label}: example 0 has HR {hr.shape[0]}x{hr.shape[1]} and LR '
          f'{lr.shape[0]}x{lr.shape[1]}, not a x{scale} pair; pick the '
          f'dataset config of scale {scale} (e.g. div2k/bicubic_x{scale}).')
  indices = folder_lib.shard_for_process(
      range(len(source)), process_index, process_count, label)
  budget = bad_inputs.BadFileBudget(label, len(source), max_bad_fraction)
  records = TfdsRecords(source, indices, label=label, scale=scale,
                        min_size=min_size)
  logging.info(
      'Training data: %d examples of %s%s; process %d of %d reads %d%s.',
      len(source), label, f' as x{scale} LR/HR pairs' if scale else '',
      process_index, process_count, len(indices),
      ' (cached in memory)' if cache_images else '')
  if cache_images:
    return bad_inputs.load_all(records, budget)
  return bad_inputs.TolerantSource(records, budget)
