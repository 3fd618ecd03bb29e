"""sr_jax.data.paired: paired LR/HR folders, their names matched with a
template, mismatches refused, crops aligned (checked with torch's
avg_pool2d), batches restored exactly."""
import json
import os
import shutil

import numpy as np
import pytest

from sr_jax import data
from sr_jax.data import paired
from tests.helpers.data import _avg_pool
from tests.helpers.data import _box_down
from tests.helpers.data import _config
from tests.helpers.data import _coord_image
from tests.helpers.data import _take_batches
from tests.helpers.data import _write_png

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
  batches = _take_batches(it, 3)
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
  expected = _take_batches(iter(make(cfg)), 6)
  cfg.num_workers = num_workers
  ds = make(cfg)
  it = iter(ds)
  got = _take_batches(it, 3)
  state = json.loads(json.dumps(it.get_state()))
  if num_workers:
    it.close()
  restored = iter(ds)
  restored.set_state(state)
  got += _take_batches(restored, 3)
  if num_workers:
    restored.close()
  for want, have in zip(expected, got):
    np.testing.assert_array_equal(want['hr'], have['hr'])
    np.testing.assert_array_equal(want['lr'], have['lr'])
  assert not np.array_equal(expected[0]['hr'], expected[1]['hr'])
