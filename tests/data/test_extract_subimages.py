"""sr_jax.data.extract_subimages: BasicSR's tile grid worked by hand, tiles
written (and resumed) as crops of the image, paired LR tiles aligned with
their HR (checked with torch's avg_pool2d)."""
import os

import numpy as np
from PIL import Image
import pytest

from sr_jax.data import extract_subimages as tiles_lib
from tests.helpers.data import _avg_pool
from tests.helpers.data import _box_down
from tests.helpers.data import _write_png


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
