"""sr_jax.data.pipeline: grain training batches (shapes, seeds, caching,
epochs, restored states, crops and flips, colour jitter, repetition, real
patches) and validation images.

Images are written into tmp_path with PIL; the only real photos are the
embedded scikit-image ones. No test touches the network.
"""
import json
import shutil

import grain
import numpy as np
import pytest

from sr_jax import data
from tests.helpers.data import _config
from tests.helpers.data import _coord_image
from tests.helpers.data import _take
from tests.helpers.data import _take_batches
from tests.helpers.data import _write_png
from tests.helpers.repo import load_config


@pytest.fixture(scope='module')
def coord_dir(tmp_path_factory):
  """One 96x120 coordinate image."""
  root = tmp_path_factory.mktemp('coord')
  _write_png(str(root / 'coord.png'), _coord_image(96, 120))
  return root


# ------------------------------------------------------------ training batches


def test_batch_shape_and_dtype(colour_dir):
  ds = data.make_train_dataset(
      _config(colour_dir, gt_size=16), global_batch_size=6, seed=0,
      process_index=1, process_count=2)
  assert isinstance(ds, grain.IterDataset)
  batch = next(iter(ds))
  assert set(batch) == {'hr'}
  assert batch['hr'].shape == (3, 16, 16, 3)  # 6 // 2 processes.
  assert batch['hr'].dtype == np.uint8


def test_batch_size_not_divisible_by_processes(colour_dir):
  with pytest.raises(ValueError, match='multiple of the number of processes'):
    data.make_train_dataset(
        _config(colour_dir, gt_size=16), global_batch_size=5, seed=0,
        process_index=0, process_count=2)


def test_same_seed_same_batches_other_seed_differs(coord_dir):
  cfg = _config(coord_dir, gt_size=16)
  make = lambda seed: iter(
      data.make_train_dataset(cfg, global_batch_size=4, seed=seed))
  first, again, other = _take(make(3), 3), _take(make(3), 3), _take(make(4), 3)
  for a, b in zip(first, again):
    np.testing.assert_array_equal(a, b)
  assert any(not np.array_equal(a, b) for a, b in zip(first, other))


def test_cache_does_not_change_batches(coord_dir):
  make = lambda cache: iter(data.make_train_dataset(
      _config(coord_dir, gt_size=16, cache_images=cache),
      global_batch_size=4, seed=5))
  for a, b in zip(_take(make(True), 3), _take(make(False), 3)):
    np.testing.assert_array_equal(a, b)


def test_endless_and_reshuffled_each_epoch(colour_dir):
  # 7 images, batches of 7: each batch is exactly one epoch, so every batch
  # holds all images once and the order must change between epochs.
  it = iter(data.make_train_dataset(
      _config(colour_dir, gt_size=16), global_batch_size=7, seed=0))
  orders = []
  for batch in _take(it, 6):
    ids = (batch[:, 0, 0, 0] // 10).tolist()
    assert sorted(ids) == list(range(7))
    orders.append(tuple(ids))
  assert len(set(orders)) > 1


@pytest.mark.parametrize('cache_images', [True, False])
def test_state_restore_gives_identical_batches(colour_dir, cache_images):
  # Batches of 3 over 7 images: the restore points straddle epoch ends.
  # Without the cache, threads decode batches ahead; the state must still
  # point at the next batch returned, not the next one prefetched.
  ds = data.make_train_dataset(
      _config(colour_dir, gt_size=16, cache_images=cache_images),
      global_batch_size=3, seed=1)
  it = iter(ds)
  _take(it, 5)
  # The trainer stores the state with orbax JsonSave: round-trip it.
  state = json.loads(json.dumps(it.get_state()))
  expected = _take(it, 4)
  restored = iter(ds)
  restored.set_state(state)
  for want, got in zip(expected, _take(restored, 4)):
    np.testing.assert_array_equal(want, got)
  # grain's own checker: restore at every position of the first 8 batches.
  grain.experimental.assert_equal_output_after_checkpoint(
      grain.experimental.LimitIterDataset(ds, 8))


@pytest.mark.slow
def test_state_restore_with_worker_processes_and_a_workers_change(colour_dir):
  """Saved with 2 workers, resumed with 0 and with 3 (and saved with 0,
  resumed with 2): the same batches as one uninterrupted stream."""
  cfg = _config(colour_dir, gt_size=16)
  expected = _take(iter(data.make_train_dataset(
      cfg, global_batch_size=3, seed=2)), 7)

  def resumed(workers_before, workers_after, taken):
    cfg.num_workers = workers_before
    it = iter(data.make_train_dataset(cfg, global_batch_size=3, seed=2))
    got = _take(it, taken)
    state = json.loads(json.dumps(it.get_state()))
    it.close()
    assert state == {'next_index': taken}
    cfg.num_workers = workers_after
    restored = iter(data.make_train_dataset(cfg, global_batch_size=3, seed=2))
    restored.set_state(state)
    got += _take(restored, 7 - taken)
    restored.close()
    return got

  for before, after, taken in ((2, 0, 3), (0, 2, 4), (2, 3, 5)):
    got = resumed(before, after, taken)
    for want, have in zip(expected, got, strict=True):
      np.testing.assert_array_equal(want, have)


def test_grain_worker_states_of_older_checkpoints_are_read():
  # grain's own mp_prefetch state (before ResumableBatches): the per-worker
  # positions sum to the batches returned.
  state = {'next_index_in_cycle': 1, 'next_index_in_datasets': 2,
           'iterators_in_use_indices': [0, 1],
           'iterators_in_use_states': [{'next_index': 3}, {'next_index': 2}],
           'exhausted': [0, 0], 'future_states': {}}
  assert data.pipeline.next_batch_index(state) == 5
  assert data.pipeline.next_batch_index({'next_index': 7}) == 7
  with pytest.raises(ValueError, match='Not a data iterator state'):
    data.pipeline.next_batch_index({'foo': 1})


# --------------------------------------------------------------- augmentation


def _dihedral(patch):
  """(hflip, vflip, transpose) that maps a coordinate crop to `patch`.

  Also checks that `patch` is such a transformed crop: unit steps of the
  row/column channels along the expected axes.
  """
  rows, cols = patch[..., 0].astype(int), patch[..., 1].astype(int)
  transpose = rows[0, 0] == rows[1, 0]  # Rows run along axis 1 instead.
  if transpose:
    rows, cols = rows.T, cols.T
  row_step, col_step = rows[1, 0] - rows[0, 0], cols[0, 1] - cols[0, 0]
  assert abs(row_step) == 1 and abs(col_step) == 1
  ramp = np.arange(patch.shape[0])
  np.testing.assert_array_equal(
      rows, np.broadcast_to(rows[0, 0] + row_step * ramp[:, None], rows.shape))
  np.testing.assert_array_equal(
      cols, np.broadcast_to(cols[0, 0] + col_step * ramp[None, :], cols.shape))
  assert (patch[..., 2] == 7).all()
  return bool(col_step < 0), bool(row_step < 0), bool(transpose)


def _patches(cfg, n_batches=4, batch_size=50, seed=0):
  it = iter(data.make_train_dataset(cfg, global_batch_size=batch_size,
                                    seed=seed))
  return np.concatenate(_take(it, n_batches))


def test_crop_without_augmentation_is_plain_crop(coord_dir):
  patches = _patches(_config(coord_dir, gt_size=16, use_hflip=False,
                             use_rot=False))
  ramp = np.arange(16)
  for patch in patches:
    top, left = int(patch[0, 0, 0]), int(patch[0, 0, 1])
    assert 0 <= top <= 96 - 16 and 0 <= left <= 120 - 16
    np.testing.assert_array_equal(
        patch, _coord_image(96, 120)[top:top + 16, left:left + 16])
    np.testing.assert_array_equal(patch[:, 0, 0], top + ramp)
  # Crop positions are random, not stuck in a corner.
  assert len({(int(p[0, 0, 0]), int(p[0, 0, 1])) for p in patches}) > 100


def test_all_flips_and_transposes_occur(coord_dir):
  patches = _patches(_config(coord_dir, gt_size=16))
  seen = {_dihedral(p) for p in patches}
  assert len(seen) == 8, seen  # 200 draws; missing one has p ~ 1e-11.


def test_hflip_only(coord_dir):
  patches = _patches(_config(coord_dir, gt_size=16, use_rot=False))
  seen = {_dihedral(p) for p in patches}
  assert seen == {(False, False, False), (True, False, False)}


# ----------------------------------------------------------------- validation


def test_validation_mod_crop_center_crop_and_limit(tmp_path):
  _write_png(str(tmp_path / 'b.png'), _coord_image(101, 203))
  _write_png(str(tmp_path / 'a.png'), _coord_image(50, 50))
  _write_png(str(tmp_path / 'sub' / 'c.png'), _coord_image(30, 30))

  val = data.load_validation_set(_config(val_dir=str(tmp_path)), 4)
  assert [name for name, _ in val] == ['a', 'b', 'sub/c']
  shapes = [image.shape for _, image in val]
  assert shapes == [(48, 48, 3), (100, 200, 3), (28, 28, 3)]
  # Mod-crop keeps the top-left corner (BasicSR mod_crop).
  np.testing.assert_array_equal(val[1][1], _coord_image(101, 203)[:100, :200])

  val = data.load_validation_set(
      _config(val_dir=str(tmp_path), val_max_size=64, val_max_images=2), 3)
  assert [name for name, _ in val] == ['a', 'b']
  name, image = val[1]
  # Centre crop of 101x203 to 64x64 starts at (18, 69); mod 3 -> 63x63.
  assert image.shape == (63, 63, 3)
  np.testing.assert_array_equal(
      image, _coord_image(101, 203)[18:18 + 63, 69:69 + 63])
  assert val[0][1].shape == (48, 48, 3)  # 50 < 64: only mod-cropped.


def test_the_pipeline_reads_the_colour_jitter_fields():
  config = data.default_data_config()
  config.gt_size = 16

  def first_batch(**fields):
    c = config.copy_and_resolve_references()
    c.update(fields)
    return next(iter(data.make_train_dataset(c, global_batch_size=4,
                                             seed=0)))['hr']

  plain = first_batch()
  np.testing.assert_array_equal(plain, first_batch(color_jitter_prob=0.0))
  grey = first_batch(color_jitter_prob=1.0,
                     color_jitter_saturation=(0.0, 0.0))
  assert not np.array_equal(grey, plain)
  assert np.abs(grey.astype(int) - grey.mean(-1, keepdims=True)).max() <= 1


def test_dataset_repeat_visits_each_image_k_times(bad_dir, tmp_path):
  for i in range(5):
    shutil.copy(bad_dir / f'good{i}.png', tmp_path)
  cfg = _config(tmp_path, gt_size=16, dataset_repeat=3)
  # Batches of 15 = 3 x 5 images: each batch is exactly one epoch.
  it = iter(data.make_train_dataset(cfg, global_batch_size=15, seed=0))
  orders = []
  for batch in _take_batches(it, 3):
    ids = (batch['hr'][:, 0, 0, 0] // 40).tolist()
    assert sorted(ids) == sorted(list(range(5)) * 3)
    orders.append(tuple(ids))
  assert len(set(orders)) == 3  # Reshuffled per epoch.
  # Repeated before the shuffle (BasicSR shuffles the enlarged index set):
  # the 3 visits are spread over the epoch, so not every run of 5 holds all
  # 5 images (it would if each copy were shuffled on its own; p ~ 1e-6).
  assert any(sorted(order[i:i + 5]) != list(range(5))
             for order in orders for i in (0, 5, 10))
  with pytest.raises(ValueError, match='dataset_repeat'):
    data.make_train_dataset(_config(tmp_path, dataset_repeat=0),
                            global_batch_size=2, seed=0)


def test_real_dir_batches_are_unpaired_real_patches(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top

  from sr_jax import data  # pylint: disable=g-import-not-at-top
  (tmp_path / 'real').mkdir()
  for i, value in enumerate((10, 200)):  # Flat images: known patches.
    Image.fromarray(np.full((20, 24, 3), value, np.uint8)).save(
        tmp_path / 'real' / f'{i}.png')
  config = load_config('dsgan').data
  config.gt_size, config.real_dir = 32, str(tmp_path / 'real')
  it = iter(data.make_train_dataset(config, global_batch_size=4, seed=0,
                                    scale=4))
  batch = next(it)
  assert set(batch) == {'hr', 'real'} == set(data.batch_keys(config))
  assert batch['hr'].shape == (4, 32, 32, 3)
  assert batch['real'].shape == (4, 8, 8, 3)
  assert set(np.unique(batch['real'])) <= {10, 200}
  state = it.get_state()
  after = next(it)
  it2 = iter(data.make_train_dataset(config, global_batch_size=4, seed=0,
                                     scale=4))
  it2.set_state(state)
  again = next(it2)
  for k in after:
    np.testing.assert_array_equal(after[k], again[k])  # Resumes exactly.
