"""Tests for sr_jax.data: image reading, folders, grain training batches, evals.

Images are written into tmp_path with PIL; the only real photos are the
embedded scikit-image ones. No test touches the network.
"""
import json
import logging
import os

import grain
import numpy as np
from PIL import Image
import pytest

from sr_jax import data
from sr_jax.data import folder
from sr_jax.data import sample_images


def _coord_image(height: int, width: int) -> np.ndarray:
  """uint8 [H, W, 3]: channel 0 = row, channel 1 = column, channel 2 = 7.

  H, W <= 256 so coordinates fit in uint8; a crop then tells where it came
  from and which flips/transposes were applied.
  """
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  return np.stack([rows, cols, np.full_like(rows, 7)], -1).astype(np.uint8)


def _write_png(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)


def _config(train_dir='', **overrides):
  cfg = data.default_data_config()
  cfg.train_dir = str(train_dir)
  cfg.update(overrides)
  return cfg


def _take(iterator, n):
  return [next(iterator)['hr'] for _ in range(n)]


@pytest.fixture(scope='module')
def coord_dir(tmp_path_factory):
  """One 96x120 coordinate image."""
  root = tmp_path_factory.mktemp('coord')
  _write_png(str(root / 'coord.png'), _coord_image(96, 120))
  return root


@pytest.fixture(scope='module')
def colour_dir(tmp_path_factory):
  """Seven 40x48 images, each one constant colour: (10 * i, 255 - i, 3)."""
  root = tmp_path_factory.mktemp('colours')
  for i in range(7):
    img = np.empty((40, 48, 3), np.uint8)
    img[...] = (10 * i, 255 - i, 3)
    _write_png(str(root / f'{i:04d}.png'), img)
  return root


def _image_ids(batch):
  """Which colour_dir image each patch came from (its constant red / 10)."""
  assert (batch == batch[:, :1, :1]).all(), 'patch is not one colour'
  return set((batch[:, 0, 0, 0] // 10).tolist())


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


# ------------------------------------------------------------ folders, sharding


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


def test_list_images_recursive_case_insensitive_sorted(tmp_path):
  img = _coord_image(8, 8)
  _write_png(str(tmp_path / 'b.PNG'), img)
  _write_png(str(tmp_path / 'sub' / 'a.png'), img)
  Image.fromarray(img).save(tmp_path / 'c.JpEg', format='JPEG')
  (tmp_path / 'notes.txt').write_text('not an image')
  assert data.list_images(tmp_path) == sorted(
      str(tmp_path / n) for n in ('b.PNG', 'sub/a.png', 'c.JpEg'))


def test_missing_and_empty_folders_name_the_folder(tmp_path):
  missing = tmp_path / 'no_such_dir'
  with pytest.raises(FileNotFoundError, match='no_such_dir'):
    data.list_images(missing)
  with pytest.raises(FileNotFoundError, match='no_such_dir'):
    data.make_train_dataset(_config(missing), global_batch_size=2, seed=0)
  empty = tmp_path / 'empty_dir'
  empty.mkdir()
  (empty / 'readme.txt').write_text('no images here')
  with pytest.raises(ValueError, match='empty_dir'):
    data.list_images(empty)
  with pytest.raises(ValueError, match='empty_dir'):
    data.load_validation_set(_config(val_dir=str(empty)), 4)


# ---------------------------------------------------------------- image modes


def test_read_image_modes(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
  Image.fromarray(rgb).save(tmp_path / 'rgb.png')
  np.testing.assert_array_equal(data.read_image(tmp_path / 'rgb.png'), rgb)

  flat = np.zeros((16, 24, 3), np.uint8)
  flat[...] = (200, 100, 50)
  Image.fromarray(flat).save(tmp_path / 'flat.jpg', quality=95)
  jpg = data.read_image(tmp_path / 'flat.jpg')
  assert jpg.shape == (16, 24, 3) and jpg.dtype == np.uint8
  np.testing.assert_allclose(jpg, flat, atol=3)

  grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
  Image.fromarray(grey).save(tmp_path / 'grey.png')
  np.testing.assert_array_equal(
      data.read_image(tmp_path / 'grey.png'), np.stack([grey] * 3, -1))

  rgba = np.concatenate([rgb, np.zeros((6, 5, 1), np.uint8)], -1)
  Image.fromarray(rgba).save(tmp_path / 'rgba.png')
  # Alpha is dropped, not composited: fully transparent pixels keep colour.
  np.testing.assert_array_equal(data.read_image(tmp_path / 'rgba.png'), rgb)

  palette = Image.fromarray(flat).convert('P', palette=Image.Palette.ADAPTIVE)
  palette.save(tmp_path / 'palette.png')
  np.testing.assert_array_equal(data.read_image(tmp_path / 'palette.png'),
                                flat)

  deep = np.array([[0, 32768, 65535], [257, 1000, 65280]], np.uint16)
  Image.fromarray(deep).save(tmp_path / 'deep16.png')
  assert Image.open(tmp_path / 'deep16.png').mode.startswith('I')
  got = data.read_image(tmp_path / 'deep16.png')
  assert got.shape == (2, 3, 3) and got.dtype == np.uint8
  # Scaled by the uint16 range, not the image max (65535 -> 255, 32768 ->
  # 128) and rounded: keeping the high byte would give 3 for 1000 and 255
  # for 65280.
  np.testing.assert_array_equal(got[..., 0], [[0, 128, 255], [1, 4, 254]])
  assert (got == got[..., :1]).all()
  # A dark 16-bit image stays dark (normalising by its max would not).
  Image.fromarray(deep // 2).save(tmp_path / 'dark16.png')
  np.testing.assert_array_equal(
      data.read_image(tmp_path / 'dark16.png')[..., 1],
      [[0, 64, 127], [0, 2, 127]])

  for name in os.listdir(tmp_path):
    image = data.read_image(tmp_path / name)
    assert image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8


def test_read_image_applies_exif_orientation(tmp_path):
  stored = np.zeros((32, 64, 3), np.uint8)  # Landscape as stored.
  stored[:, :] = (0, 0, 255)
  stored[:16, :16] = (255, 0, 0)  # Red block at the stored top-left.
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: display rotated 90 degrees clockwise.
  Image.fromarray(stored).save(tmp_path / 'rotated.jpg', exif=exif,
                               quality=95, subsampling=0)
  got = data.read_image(tmp_path / 'rotated.jpg').astype(int)
  assert got.shape == (64, 32, 3)  # Portrait as displayed.
  # Away from JPEG's blurred edges it is the stored image turned clockwise:
  # the red block is now top-right and the top-left is blue.
  expected = np.rot90(stored, k=-1).astype(int)
  np.testing.assert_allclose(got[2:14, 18:30], expected[2:14, 18:30], atol=8)
  np.testing.assert_allclose(got[2:14, 2:14], expected[2:14, 2:14], atol=8)
  np.testing.assert_allclose(got[20:60, :], expected[20:60, :], atol=8)
  assert got[8, 24, 0] > 200 and got[8, 8, 2] > 200


def test_read_image_error_names_file(tmp_path):
  bad = tmp_path / 'broken.png'
  bad.write_bytes(b'definitely not a png')
  with pytest.raises(ValueError, match='broken.png'):
    data.read_image(bad)
  with pytest.raises(FileNotFoundError, match='gone.png'):
    data.read_image(tmp_path / 'gone.png')


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


# --------------------------------------------------------- embedded default


def test_embedded_default_train_and_validation_are_disjoint():
  cfg = data.default_data_config()
  assert cfg.train_dir == '' and cfg.val_dir == ''
  assert not set(sample_images.TRAIN_NAMES) & set(
      sample_images.VALIDATION_NAMES)

  cfg.gt_size = 64
  batch = next(iter(data.make_train_dataset(cfg, global_batch_size=4,
                                            seed=0)))
  assert batch['hr'].shape == (4, 64, 64, 3) and batch['hr'].dtype == np.uint8
  assert batch['hr'].std() > 5  # Real photo content, not a blank array.

  val = data.load_validation_set(cfg, 4)
  assert [name for name, _ in val] == sorted(sample_images.VALIDATION_NAMES)
  train = sample_images.train_images()
  for _, image in val + train:
    assert image.dtype == np.uint8 and image.ndim == 3
    assert image.shape[-1] == 3
  for _, image in val:
    assert image.shape[0] % 4 == 0 and image.shape[1] % 4 == 0
    # Held out for real: no training image holds the same pixels.
    for _, train_image in train:
      assert not (image.shape == train_image.shape
                  and np.array_equal(image, train_image))
