"""sr_jax.data.bad_inputs: unreadable files are skipped and counted (headers
when the index is built, pixel data when decoding) until there are too many;
too-small images are skipped or mirror-padded, paired ones kept aligned."""
import logging
import os

import numpy as np
import pytest

from sr_jax import data
from sr_jax.data import bad_inputs
from sr_jax.data import folder
from tests.helpers.data import _config
from tests.helpers.data import _coord_image
from tests.helpers.data import _take_batches
from tests.helpers.data import _write_png


def test_unreadable_headers_are_skipped_and_counted(bad_dir, caplog):
  with caplog.at_level(logging.WARNING):
    index = folder.index_folder(str(bad_dir), 16, max_bad_fraction=0.5)
  assert sorted(os.path.basename(n) for n, _ in index.budget.bad) == [
      'empty.png', 'text.png']
  assert index.budget.total == 10
  assert sorted(os.path.basename(p) for p in index.paths) == sorted(
      [f'good{i}.png' for i in range(6)] + ['trunc.jpg', 'trunc.png'])
  assert 'empty.png' in caplog.text and 'text.png' in caplog.text


def _colour_ids(batch):
  assert (batch == batch[:, :1, :1]).all(), 'patch is not one colour'
  assert (batch[:, 0, 0, 1:] == 9).all()
  return set((batch[:, 0, 0, 0] // 40).tolist())


@pytest.mark.parametrize('cache_images', [True, False])
def test_truncated_files_are_skipped_and_counted(bad_dir, caplog,
                                                 cache_images):
  cfg = _config(bad_dir, gt_size=16, max_bad_fraction=0.5,
                cache_images=cache_images)
  with caplog.at_level(logging.WARNING):
    it = iter(data.make_train_dataset(cfg, global_batch_size=8, seed=0))
    ids = set().union(*(_colour_ids(b['hr']) for b in _take_batches(it, 4)))
  assert ids == set(range(6))  # Only good images, all of them.
  for name in ('empty.png', 'text.png', 'trunc.png', 'trunc.jpg'):
    # Logged once each, however often the shuffle revisits it.
    assert caplog.text.count(f'{name} (') == 1, name


def test_too_many_bad_files_stop_the_run(bad_dir):
  # 2 of 10 headers are bad: above 10%, stopped when the index is built.
  with pytest.raises(bad_inputs.TooManyBadFilesError, match=(
      rf'2 of 10 training files in {bad_dir} are unusable \(20.0%, more than '
      r'data.max_bad_fraction=0.1\):\n  \S+empty.png: (.|\n)*text.png'
      r'(.|\n)*raise data.max_bad_fraction')):
    data.make_train_dataset(_config(bad_dir, gt_size=16, max_bad_fraction=0.1),
                            global_batch_size=2, seed=0)
  # 25% allows the 2 bad headers; the third bad file, found when decoding,
  # stops it: up front with the cache, mid-stream without.
  cfg = _config(bad_dir, gt_size=16, max_bad_fraction=0.25)
  with pytest.raises(bad_inputs.TooManyBadFilesError, match='3 of 10'):
    data.make_train_dataset(cfg, global_batch_size=2, seed=0)
  cfg.cache_images = False
  it = iter(data.make_train_dataset(cfg, global_batch_size=8, seed=0))
  # Reading threads may meet the 4th before the error surfaces.
  with pytest.raises(bad_inputs.TooManyBadFilesError, match='[34] of 10'):
    _take_batches(it, 4)


def test_pad_to_size_mirrors_half_sample():
  column = np.arange(3, dtype=np.uint8).reshape(3, 1, 1)
  # d c b a | a b c d, repeated when the pad is longer than the image.
  np.testing.assert_array_equal(
      bad_inputs.pad_to_size(column, 8, 1)[:, 0, 0], [0, 1, 2, 2, 1, 0, 0, 1])
  assert bad_inputs.pad_to_size(column, 2, 1) is column


def test_small_images_skip_or_pad(tmp_path):
  _write_png(str(tmp_path / 'big.png'), _coord_image(40, 40, marker=7))
  _write_png(str(tmp_path / 'small.png'), _coord_image(20, 24, marker=9))
  flat = dict(gt_size=32, use_hflip=False, use_rot=False)
  batch = next(iter(data.make_train_dataset(
      _config(tmp_path, **flat), global_batch_size=16, seed=0)))['hr']
  assert (batch[..., 2] == 7).all()  # 'skip': only the big image.

  batch = next(iter(data.make_train_dataset(
      _config(tmp_path, small_image_policy='pad', **flat),
      global_batch_size=16, seed=0)))['hr']
  small = batch[batch[:, 0, 0, 2] == 9]
  assert 0 < len(small) < 16
  # 20x24 padded to 32x32 is all there is to crop; mirror indices by hand.
  rows = list(range(20)) + list(range(19, 7, -1))
  cols = list(range(24)) + list(range(23, 15, -1))
  expected = _coord_image(20, 24, marker=9)[np.ix_(rows, cols)]
  for patch in small:
    np.testing.assert_array_equal(patch, expected)
  with pytest.raises(ValueError, match='small_image_policy'):
    data.make_train_dataset(_config(tmp_path, small_image_policy='crop'),
                            global_batch_size=2, seed=0)


def test_paired_padding_stays_aligned(tmp_path):
  lr = np.random.default_rng(3).integers(0, 256, (3, 5, 3), dtype=np.uint8)
  _write_png(str(tmp_path / 'hr' / 'a.png'),
             np.kron(lr, np.ones((4, 4, 1), np.uint8)))
  _write_png(str(tmp_path / 'lr' / 'a.png'), lr)
  cfg = _config(tmp_path / 'hr', train_lr_dir=str(tmp_path / 'lr'),
                gt_size=24, small_image_policy='pad')
  batch = next(iter(data.make_train_dataset(cfg, global_batch_size=8,
                                            seed=0, scale=4)))
  assert batch['hr'].shape == (8, 24, 24, 3)
  np.testing.assert_array_equal(
      batch['hr'], np.kron(batch['lr'], np.ones((1, 4, 4, 1), np.uint8)))
