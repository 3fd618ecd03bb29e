"""Training scalars as CSV beside TensorBoard's event files.

`W/scalars.csv` has one row per scalar written: step, tag (e.g.
'train/l_g_total', 'val/psnr'), value. Notebooks and scripts read it with
any CSV reader (pandas, csv), no TensorBoard reader needed. Rows are
appended and flushed as they are written (in a remote workdir, gs:// and
the like, the file is rewritten whole), so a resumed run continues the
same file (a step logged twice, before and after a crash, appears twice:
keep the last).
"""
import csv
import io
import os
from typing import Any, Mapping

from etils import epath
import numpy as np

FILENAME = 'scalars.csv'


class CsvScalarWriter:
  """A writer with clu's MetricWriter methods (clu.metric_writers.
  MultiWriter takes it) that keeps only scalars, in W/scalars.csv (a local
  or remote workdir: an object store has no append, so there the file is
  rewritten whole at each write). Not a subclass: clu.metric_writers
  imports TensorFlow (seconds), which reading or writing a CSV does not
  need."""

  def __init__(self, workdir: str):
    self.path = os.path.join(workdir, FILENAME)
    self._remote = '://' in self.path
    if self._remote:
      target = epath.Path(self.path)
      self._file = io.StringIO(newline='')
      self._file.write(target.read_text() if target.exists() else '')
      new = not self._file.tell()
    else:
      new = not os.path.exists(self.path)
      self._file = open(self.path, 'a', newline='')  # pylint: disable=consider-using-with
    self._csv = csv.writer(self._file)
    if new:
      self._csv.writerow(['step', 'tag', 'value'])
      self.flush()

  def write_scalars(self, step: int, scalars: Mapping[str, Any]) -> None:
    for tag, value in scalars.items():
      self._csv.writerow([int(step), tag, repr(float(np.asarray(value)))])
    self.flush()

  # Images, texts and the rest go to TensorBoard only.
  def write_images(self, step, images):
    del step, images

  def write_videos(self, step, videos):
    del step, videos

  def write_audios(self, step, audios, *, sample_rate):
    del step, audios, sample_rate

  def write_texts(self, step, texts):
    del step, texts

  def write_histograms(self, step, arrays, num_buckets=None):
    del step, arrays, num_buckets

  def write_hparams(self, hparams):
    del hparams

  def write_summaries(self, step, values, metadata=None):
    del step, values, metadata

  def flush(self) -> None:
    if self._remote:
      epath.Path(self.path).write_text(self._file.getvalue())
    else:
      self._file.flush()

  def close(self) -> None:
    if not self._file.closed:
      self.flush()
      self._file.close()


def read_scalars(workdir: str) -> dict[str, list[tuple[int, float]]]:
  """{tag: [(step, value), ...]} of W/scalars.csv, in step order, the last
  value kept where a resumed run logged a step again."""
  out: dict[str, dict[int, float]] = {}
  text = epath.Path(os.path.join(workdir, FILENAME)).read_text()
  for row in csv.DictReader(io.StringIO(text, newline='')):
    out.setdefault(row['tag'], {})[int(row['step'])] = float(row['value'])
  return {tag: sorted(values.items()) for tag, values in out.items()}
