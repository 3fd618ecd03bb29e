"""Tests for the extra training sources and the bad-input policies.

Paired LR/HR folders, a TFDS source (a tiny dataset prepared offline in
tmp_path), the sub-image tool, unusable / small / huge files, CMYK and
dataset repetition. Images are a few dozen pixels; references are numpy
written differently, torch's avg_pool2d, Pillow itself, or hand-worked
numbers.
"""
import io
import json
import logging
import os
import pickle
import shutil
import struct
import warnings
import zlib

import numpy as np
from PIL import Image
from PIL import ImageFile
import pytest

from sr_jax import data
from sr_jax.data import bad_inputs
from sr_jax.data import extract_subimages as tiles_lib
from sr_jax.data import folder
from sr_jax.data import image_io
from sr_jax.data import paired
from sr_jax.data import tfds_source
from tests.data.test_pipeline import _config
from tests.data.test_pipeline import _write_png


def _coord_image(height, width, marker=7):
  """uint8 [H, W, 3]: channel 0 = row, 1 = column, 2 = `marker`."""
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  return np.stack([rows, cols, np.full_like(rows, marker)], -1).astype(
      np.uint8)


def _box_down(hr, scale):
  """LR made the way the tests' LR folders are: s x s means, rounded."""
  h, w = hr.shape[0] // scale, hr.shape[1] // scale
  blocks = hr.reshape(h, scale, w, scale, 3).astype(np.float64)
  return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def _take(iterator, n):
  return [next(iterator) for _ in range(n)]


def _avg_pool(hr_batch, scale):
  """torch's box filter, independent of the numpy one that made the LR."""
  import torch
  x = torch.from_numpy(hr_batch.astype(np.float64)).permute(0, 3, 1, 2)
  pooled = torch.nn.functional.avg_pool2d(x, scale)
  return pooled.permute(0, 2, 3, 1).numpy()


# ------------------------------------------------------------ paired folders


@pytest.fixture(scope='module')
def pair_dirs(tmp_path_factory):
  """HR coordinate images (random channel 2) and their x4 box-average LR."""
  root = tmp_path_factory.mktemp('pairs')
  rng = np.random.default_rng(0)
  for name, (h, w) in {'0001': (48, 64), '0002': (40, 56),
                       'sub/0003': (44, 48)}.items():
    hr = _coord_image(h, w)
    hr[..., 2] = rng.integers(0, 256, (h, w))
    _write_png(str(root / 'hr' / f'{name}.png'), hr)
    _write_png(str(root / 'lr' / f'{name}x4.png'), _box_down(hr, 4))
  return root / 'hr', root / 'lr'


def _paired_config(pair_dirs, **overrides):
  hr_dir, lr_dir = pair_dirs
  overrides = dict(dict(gt_size=16), **overrides)
  return _config(hr_dir, train_lr_dir=str(lr_dir), lr_filename_tmpl='{}x4',
                 **overrides)


def test_paired_index_matches_names_with_template(pair_dirs):
  hr_dir, lr_dir = pair_dirs
  pairs, budget = paired.index_pairs(
      str(hr_dir), str(lr_dir), scale=4, lr_filename_tmpl='{}x4')
  assert [(os.path.relpath(p.hr, hr_dir), os.path.relpath(p.lr, lr_dir))
          for p in pairs] == [('0001.png', '0001x4.png'),
                              ('0002.png', '0002x4.png'),
                              (os.path.join('sub', '0003.png'),
                               os.path.join('sub', '0003x4.png'))]
  assert not budget.bad
  # Without the template no LR name matches: every file is reported.
  with pytest.raises(ValueError, match='0001x4.png matches no HR'):
    paired.index_pairs(str(hr_dir), str(lr_dir), scale=4)


@pytest.mark.parametrize('problem', ['missing_lr', 'extra_lr', 'wrong_size'])
def test_paired_index_rejects_mismatches(pair_dirs, tmp_path, problem):
  hr_dir, lr_dir = tmp_path / 'hr', tmp_path / 'lr'
  shutil.copytree(pair_dirs[0], hr_dir)
  shutil.copytree(pair_dirs[1], lr_dir)
  if problem == 'missing_lr':
    os.remove(lr_dir / '0002x4.png')
    expected = r"0002.png has no LR image named '0002x4'"
  elif problem == 'extra_lr':
    _write_png(str(lr_dir / 'sub' / '0009x4.png'), _coord_image(8, 8))
    expected = r'sub/0009x4.png matches no HR'
  else:
    _write_png(str(lr_dir / '0001x4.png'), _coord_image(13, 16))
    expected = (r'0001.png is 48x64 \(HxW\) but LR \S+0001x4.png is 13x16: '
                r'at scale 4 the HR must be 52x64')
  cfg = _paired_config((hr_dir, lr_dir))
  with pytest.raises(ValueError, match=expected):
    data.make_train_dataset(cfg, global_batch_size=2, seed=0, scale=4)


def test_paired_needs_scale_and_divisible_patch(pair_dirs):
  with pytest.raises(ValueError, match='pass scale=config.scale'):
    data.make_train_dataset(_paired_config(pair_dirs), global_batch_size=2,
                            seed=0)
  with pytest.raises(ValueError, match='multiple of the scale'):
    data.make_train_dataset(_paired_config(pair_dirs, gt_size=18),
                            global_batch_size=2, seed=0, scale=4)


def _dihedral_of(hr_patch):
  """(hflip, vflip, transpose) that turned a coordinate crop into this."""
  rows, cols = hr_patch[..., 0].astype(int), hr_patch[..., 1].astype(int)
  transpose = rows[0, 0] == rows[1, 0]
  if transpose:
    rows, cols = rows.T, cols.T
  return cols[0, 1] < cols[0, 0], rows[1, 0] < rows[0, 0], transpose


def test_paired_crops_are_aligned(pair_dirs):
  it = iter(data.make_train_dataset(
      _paired_config(pair_dirs), global_batch_size=24, seed=0, scale=4))
  batches = _take(it, 3)
  hr = np.concatenate([b['hr'] for b in batches])
  lr = np.concatenate([b['lr'] for b in batches])
  assert set(batches[0]) == {'hr', 'lr'}
  assert hr.shape == (72, 16, 16, 3) and lr.shape == (72, 4, 4, 3)
  assert lr.dtype == np.uint8
  # The LR folder holds rounded 4x4 means of the HR: every LR patch pixel
  # is the mean of the HR patch block over it, flips and all.
  np.testing.assert_allclose(_avg_pool(hr, 4), lr, atol=0.5 + 1e-9)
  # HR patches start on the LR grid and really are flipped / transposed.
  assert all(p[0, 0, 0] % 4 in (0, 3) for p in hr)
  assert len({_dihedral_of(p) for p in hr}) == 8


@pytest.mark.slow
@pytest.mark.parametrize('num_workers', [0, 2])
def test_paired_determinism_and_restore(pair_dirs, num_workers):
  cfg = _paired_config(pair_dirs, cache_images=False)
  make = lambda c: data.make_train_dataset(c, global_batch_size=4, seed=3,
                                           scale=4)
  expected = _take(iter(make(cfg)), 6)
  cfg.num_workers = num_workers
  ds = make(cfg)
  it = iter(ds)
  got = _take(it, 3)
  state = json.loads(json.dumps(it.get_state()))
  if num_workers:
    it.close()
  restored = iter(ds)
  restored.set_state(state)
  got += _take(restored, 3)
  if num_workers:
    restored.close()
  for want, have in zip(expected, got):
    np.testing.assert_array_equal(want['hr'], have['hr'])
    np.testing.assert_array_equal(want['lr'], have['lr'])
  assert not np.array_equal(expected[0]['hr'], expected[1]['hr'])


# ---------------------------------------------------------------------- tfds


def _png_bytes(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return io.BytesIO(buffer.getvalue())


def _define_tiny_sr_pairs():
  """A 4-example DIV2K-like TFDS builder ({'hr', 'lr'}, x4), or None.

  Examples are given as PNG bytes, so preparing it needs no TensorFlow.
  HR is the LR upsampled by pixel repetition: paired crops must be exact.
  At module level, as real builders are, so its sources pickle.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None

  class TinySrPairs(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version('1.0.0')
    # No file of checksums: it downloads nothing. (TFDS looks for one next
    # to the builder's module, and for a module of a package, as tests/ is,
    # goes through the importlib_resources backport, absent on Python >= 3.9.)
    code_path = None

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, features=tfds.features.FeaturesDict(
              {'hr': tfds.features.Image(), 'lr': tfds.features.Image()}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples()}

    def _generate_examples(self):
      rng = np.random.default_rng(1)
      for i in range(4):
        lr = rng.integers(0, 256, (6 + i, 8, 3), dtype=np.uint8)
        hr = np.kron(lr, np.ones((4, 4, 1), np.uint8))
        yield i, {'hr': _png_bytes(hr), 'lr': _png_bytes(lr)}

  TinySrPairs.__qualname__ = 'TinySrPairs'
  return TinySrPairs


TinySrPairs = _define_tiny_sr_pairs()


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  """TinySrPairs prepared in array_record, offline, in a tmp folder."""
  if TinySrPairs is None:
    pytest.skip('tensorflow_datasets is not installed')
  root = tmp_path_factory.mktemp('tfds')
  TinySrPairs(data_dir=str(root),
              file_format='array_record').download_and_prepare()
  return root


def _tfds_config(tfds_dir, **overrides):
  return _config(tfds_name='tiny_sr_pairs', tfds_data_dir=str(tfds_dir),
                 **dict(dict(gt_size=16), **overrides))


def test_tfds_source_paired_and_hr_only(tfds_dir):
  it = iter(data.make_train_dataset(_tfds_config(tfds_dir),
                                    global_batch_size=8, seed=0, scale=4))
  for batch in _take(it, 2):
    assert batch['hr'].shape == (8, 16, 16, 3)
    assert batch['lr'].shape == (8, 4, 4, 3)
    np.testing.assert_array_equal(
        batch['hr'], np.kron(batch['lr'], np.ones((1, 4, 4, 1), np.uint8)))
  batch = next(iter(data.make_train_dataset(
      _tfds_config(tfds_dir, cache_images=False), global_batch_size=4,
      seed=0)))
  assert set(batch) == {'hr'} and batch['hr'].shape == (4, 16, 16, 3)
  # grain workers get the source pickled: it must survive the trip.
  heights = []
  for process_index in range(2):
    source = tfds_source.tfds_train_source(
        'tiny_sr_pairs', data_dir=str(tfds_dir), split='train', scale=4,
        min_size=16, cache_images=False, process_index=process_index,
        process_count=2)
    copy = pickle.loads(pickle.dumps(source))
    assert len(copy) == 2
    np.testing.assert_array_equal(copy[1]['lr'], source[1]['lr'])
    heights += [copy[i]['lr'].shape[0] for i in range(2)]
  assert sorted(heights) == [6, 7, 8, 9]  # Disjoint shards, all examples.
  with pytest.raises(ValueError, match='not a x2 pair'):
    data.make_train_dataset(_tfds_config(tfds_dir), global_batch_size=2,
                            seed=0, scale=2)


def test_tfds_errors_say_which_command(tfds_dir, tmp_path):
  empty = tmp_path / 'empty'
  with pytest.raises(
      FileNotFoundError,
      match=(r'not prepared in .*\n  tfds build div2k/bicubic_x4 '
             rf'--data_dir={empty} --file_format=array_record')):
    data.make_train_dataset(
        _config(tfds_name='div2k/bicubic_x4', tfds_data_dir=str(empty)),
        global_batch_size=2, seed=0, scale=4)
  # The same dataset as `tfds build` writes it by default: tfrecord.
  copy = tmp_path / 'tfrecord'
  shutil.copytree(tfds_dir, copy)
  info_path = copy / 'tiny_sr_pairs' / '1.0.0' / 'dataset_info.json'
  info = json.loads(info_path.read_text())
  info['fileFormat'] = 'tfrecord'
  info_path.write_text(json.dumps(info))
  with pytest.raises(ValueError, match=(
      r'prepared as tfrecord(.|\n)*tfds convert_format '
      r'--dataset_version_dir=\S+1.0.0 --out_file_format=array_record'
      r'(.|\n)*tfds build tiny_sr_pairs --data_dir=\S+ '
      r'--file_format=array_record --overwrite')):
    data.make_train_dataset(_tfds_config(copy), global_batch_size=2, seed=0)
  with pytest.raises(ValueError, match='pick one training source'):
    data.make_train_dataset(_tfds_config(tfds_dir, train_dir='/x'),
                            global_batch_size=2, seed=0)


# --------------------------------------------------------------- sub-images


def test_tile_grid_worked_example():
  # 100 rows, crop 48, step 32: 0, 32, and 32 + 48 = 80 leaves 20 rows,
  # more than thresh 8, so one more tile flush with the bottom at 52.
  assert tiles_lib.tile_starts(100, 48, 32, 8) == [0, 32, 52]
  # 130 columns: 0, 32, 64 (ends at 112, 18 left) + 82.
  assert tiles_lib.tile_starts(130, 48, 32, 8) == [0, 32, 64, 82]
  # With thresh 20 neither leftover (20, 18) is worth a tile.
  assert tiles_lib.tile_starts(100, 48, 32, 20) == [0, 32]
  assert tiles_lib.tile_starts(96, 48, 48, 0) == [0, 48]  # Exact fit.
  assert tiles_lib.tile_starts(40, 48, 32, 0) == []


def test_extract_subimages_tiles_and_resume(tmp_path):
  rng = np.random.default_rng(0)
  image = rng.integers(0, 256, (100, 130, 3), dtype=np.uint8)
  _write_png(str(tmp_path / 'in' / 'sub' / '0001.png'), image)
  _write_png(str(tmp_path / 'in' / 'tiny.png'), image[:20, :20])
  out = tmp_path / 'out'
  lines = []
  counts = tiles_lib.extract_subimages(
      str(tmp_path / 'in'), str(out), crop_size=48, step=32, thresh_size=8,
      workers=2, log=lines.append)
  assert counts == dict(images=2, tiles_written=12, tiles_existing=0,
                        skipped=1)
  assert any('tiny: skipped' in line for line in lines)
  names = sorted(os.listdir(out / 'sub'))
  assert names == [f'0001_s{k:03d}.png' for k in range(1, 13)]
  # Row-major: tile 6 is row start 32, column start 32; 12 is (52, 82).
  for k, (top, left) in {1: (0, 0), 4: (0, 82), 6: (32, 32),
                         12: (52, 82)}.items():
    tile = np.asarray(Image.open(out / 'sub' / f'0001_s{k:03d}.png'))
    np.testing.assert_array_equal(tile, image[top:top + 48, left:left + 48])
  # Re-running resumes: only the missing tile is written again.
  os.remove(out / 'sub' / '0001_s006.png')
  counts = tiles_lib.main([
      '--input', str(tmp_path / 'in'), '--output', str(out),
      '--crop-size', '48', '--step', '32', '--thresh-size', '8',
      '--workers', '1'])
  assert counts['tiles_written'] == 1 and counts['tiles_existing'] == 11
  np.testing.assert_array_equal(
      np.asarray(Image.open(out / 'sub' / '0001_s006.png')),
      image[32:80, 32:80])


def test_extract_subimages_paired_tiles_align(tmp_path):
  rng = np.random.default_rng(2)
  hr = rng.integers(0, 256, (72, 88, 3), dtype=np.uint8)
  lr = _box_down(hr, 4)
  _write_png(str(tmp_path / 'hr' / 'a.png'), hr)
  _write_png(str(tmp_path / 'lr' / 'ax4.png'), lr)
  common = dict(crop_size=32, step=16, thresh_size=0, workers=1,
                lr_input_dir=str(tmp_path / 'lr'),
                lr_output_dir=str(tmp_path / 'lr_sub'), scale=4,
                lr_filename_tmpl='{}x4', log=lambda line: None)
  counts = tiles_lib.extract_subimages(
      str(tmp_path / 'hr'), str(tmp_path / 'hr_sub'), **common)
  # Rows 0, 16, 32 + flush 40; columns 0, 16, 32, 48 + flush 56.
  assert counts['tiles_written'] == 4 * 5
  hr_names = sorted(os.listdir(tmp_path / 'hr_sub'))
  assert hr_names == sorted(os.listdir(tmp_path / 'lr_sub'))
  hr_tiles = np.stack([np.asarray(Image.open(tmp_path / 'hr_sub' / n))
                       for n in hr_names])
  lr_tiles = np.stack([np.asarray(Image.open(tmp_path / 'lr_sub' / n))
                       for n in hr_names])
  assert lr_tiles.shape == (20, 8, 8, 3)
  np.testing.assert_allclose(_avg_pool(hr_tiles, 4), lr_tiles,
                             atol=0.5 + 1e-9)
  # The flush tile (row 40, column 56) is tile 20; its LR is at (10, 14).
  np.testing.assert_array_equal(lr_tiles[-1], lr[10:18, 14:22])
  with pytest.raises(ValueError, match='multiples of it'):
    tiles_lib.extract_subimages(str(tmp_path / 'hr'), str(tmp_path / 'x'),
                                **dict(common, crop_size=30))


# ----------------------------------------------------------------- bad files


@pytest.fixture(scope='module')
def bad_dir(tmp_path_factory):
  """6 good one-colour 24x24 images ((40 * i, 9, 9)) and 4 bad files."""
  root = tmp_path_factory.mktemp('bad')
  for i in range(6):
    img = np.empty((24, 24, 3), np.uint8)
    img[...] = (40 * i, 9, 9)
    _write_png(str(root / f'good{i}.png'), img)
  (root / 'empty.png').write_bytes(b'')
  (root / 'text.png').write_text('this is a text file, not a PNG')
  noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)
  for name, fmt in (('trunc.png', 'PNG'), ('trunc.jpg', 'JPEG')):
    buffer = io.BytesIO()
    Image.fromarray(noise).save(buffer, format=fmt)
    # Headers intact, pixel data cut: only decoding can find out.
    (root / name).write_bytes(buffer.getvalue()[:len(buffer.getvalue()) // 2])
  return root


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
    ids = set().union(*(_colour_ids(b['hr']) for b in _take(it, 4)))
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
    _take(it, 4)


# ----------------------------------------------------------------- too small


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


# --------------------------------------------------------------- pixel limit


def _png_claiming(path, width, height):
  """A 1-bit PNG whose header says width x height; it holds one row only."""
  def chunk(kind, payload):
    return (struct.pack('>I', len(payload)) + kind + payload
            + struct.pack('>I', zlib.crc32(kind + payload)))
  ihdr = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)
  row = b'\0' * (1 + (width + 7) // 8)
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
                   + chunk(b'IDAT', zlib.compress(row)) + chunk(b'IEND', b''))


def test_pixel_limit_refuses_before_decoding(tmp_path, monkeypatch):
  bomb = tmp_path / 'bomb.png'
  _png_claiming(bomb, 100_000, 100_000)  # 10^10 pixels in ~100 bytes.
  def no_decoding(self):
    raise AssertionError('pixel data was decoded')
  monkeypatch.setattr(ImageFile.ImageFile, 'load', no_decoding)
  # Pillow's own DecompressionBombError (above 2 * 89 MP) must not win.
  for read in (image_io.read_image, image_io.image_size):
    with pytest.raises(image_io.ImageTooLargeError,
                       match=r'bomb.png.*100000x100000.*max_image_pixels'):
      read(bomb, max_pixels=10_000 * 10_000)
  # 0: no limit at all; None: Pillow's default guard, as before.
  assert image_io.image_size(bomb, max_pixels=0) == (100_000, 100_000)
  with pytest.raises(image_io.ImageTooLargeError,
                     match=r"bomb.png.*Pillow's Image.MAX_IMAGE_PIXELS"):
    image_io.read_image(bomb)
  monkeypatch.undo()
  assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3  # Restored.
  # The training index skips and counts it; the default limit applies.
  for i in range(3):
    _write_png(str(tmp_path / f'ok{i}.png'), _coord_image(20, 20))
  cfg = _config(tmp_path, gt_size=16, max_bad_fraction=0.5)
  assert next(iter(data.make_train_dataset(
      cfg, global_batch_size=4, seed=0)))['hr'].shape == (4, 16, 16, 3)
  cfg.max_bad_fraction = 0.2
  with pytest.raises(bad_inputs.TooManyBadFilesError,
                     match=r'1 of 4(.|\n)*bomb.png: Refusing'):
    data.make_train_dataset(cfg, global_batch_size=4, seed=0)


def test_pixel_limit_is_ours_not_pillows(tmp_path, monkeypatch):
  image = _coord_image(32, 32)
  _write_png(str(tmp_path / 'a.png'), image)
  # Pillow's limit far below the image: it would error (> 2 * 300) or warn.
  for pil_limit in (300, 1000):
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', pil_limit)
    with warnings.catch_warnings(record=True) as caught:
      np.testing.assert_array_equal(
          data.read_image(tmp_path / 'a.png', max_pixels=0), image)
      np.testing.assert_array_equal(
          data.read_image(tmp_path / 'a.png', max_pixels=1024), image)
      with pytest.raises(image_io.ImageTooLargeError, match='a.png'):
        data.read_image(tmp_path / 'a.png', max_pixels=1000)
    assert not [w for w in caught
                if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == pil_limit


# --------------------------------------------------------------------- CMYK


def _cmyk_image(cmyk):
  height, width = cmyk.shape[:2]
  return Image.frombytes('CMYK', (width, height), cmyk.tobytes())


def _cmyk_to_rgb(cmyk):
  """The usual naive conversion: (255 - C) * (255 - K) / 255 per channel."""
  cmyk = cmyk.astype(np.float64)
  return (255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255


def test_read_cmyk_tiff_and_adobe_jpeg(tmp_path):
  cmyk = np.random.default_rng(0).integers(0, 256, (6, 5, 4), np.uint8)
  _cmyk_image(cmyk).save(tmp_path / 'cmyk.tif')
  np.testing.assert_allclose(data.read_image(tmp_path / 'cmyk.tif'),
                             _cmyk_to_rgb(cmyk), atol=1)
  flat = np.zeros((16, 16, 4), np.uint8)
  flat[...] = (30, 200, 90, 40)
  _cmyk_image(flat).save(tmp_path / 'cmyk.jpg', quality=95)
  with Image.open(tmp_path / 'cmyk.jpg') as img:
    # libjpeg writes CMYK the Adobe way (inverted, APP14 marker).
    assert img.mode == 'CMYK' and 'adobe' in img.info
  got = data.read_image(tmp_path / 'cmyk.jpg')
  assert got.shape == (16, 16, 3) and got.dtype == np.uint8
  np.testing.assert_allclose(got, _cmyk_to_rgb(flat), atol=3)
  # Reading the stored (inverted) samples as plain CMYK would be far off.
  assert np.abs(_cmyk_to_rgb(255 - flat) - _cmyk_to_rgb(flat)).max() > 100


# ---------------------------------------------------------------- repetition


def test_dataset_repeat_visits_each_image_k_times(bad_dir, tmp_path):
  for i in range(5):
    shutil.copy(bad_dir / f'good{i}.png', tmp_path)
  cfg = _config(tmp_path, gt_size=16, dataset_repeat=3)
  # Batches of 15 = 3 x 5 images: each batch is exactly one epoch.
  it = iter(data.make_train_dataset(cfg, global_batch_size=15, seed=0))
  orders = []
  for batch in _take(it, 3):
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
