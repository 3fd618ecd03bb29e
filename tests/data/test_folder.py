"""sr_jax.data.folder: the training files are sharded over processes, each
file once, and images too small for a patch are skipped with a warning."""
import logging

import pytest

from sr_jax import data
from sr_jax.data import folder
from tests.helpers.data import _config
from tests.helpers.data import _coord_image
from tests.helpers.data import _image_ids
from tests.helpers.data import _take
from tests.helpers.data import _write_png


def test_process_shards_are_disjoint_and_cover_all_files(colour_dir):
  paths = folder.usable_paths(str(colour_dir), 16)
  shards = [folder.shard_for_process(paths, i, 3, 'x') for i in range(3)]
  assert sorted(sum(shards, [])) == sorted(paths) == data.list_images(
      colour_dir)
  assert sum(len(s) for s in shards) == len(set(sum(shards, [])))
  # End to end: the images each process's batches come from.
  seen = []
  for i in range(3):
    it = iter(data.make_train_dataset(
        _config(colour_dir, gt_size=16), global_batch_size=6, seed=0,
        process_index=i, process_count=3))
    seen.append(set().union(*(_image_ids(b) for b in _take(it, 4))))
  assert [len(s) for s in seen] == [3, 2, 2]
  assert set().union(*seen) == set(range(7))
  assert sum(len(s) for s in seen) == 7


def test_small_images_are_skipped_with_warning(tmp_path, caplog):
  _write_png(str(tmp_path / 'big.png'), _coord_image(40, 40))
  _write_png(str(tmp_path / 'tiny.png'), _coord_image(20, 40))
  with caplog.at_level(logging.WARNING):
    batch = next(iter(data.make_train_dataset(
        _config(tmp_path, gt_size=32), global_batch_size=2, seed=0)))
  assert batch['hr'].shape == (2, 32, 32, 3)
  assert 'tiny.png' in caplog.text and 'big.png' not in caplog.text
  with pytest.raises(ValueError, match='min_image_size'):
    data.make_train_dataset(_config(tmp_path, gt_size=16, min_image_size=64),
                            global_batch_size=2, seed=0)
