"""python -m sr_jax.data.benchmarks: fetch (from a local archive, no
network), LR by MATLAB bicubic in BasicSR's layout, and the offline how-to."""
import os
import tarfile

import numpy as np
from PIL import Image
from skimage import data as skdata

from sr_jax import degradations
from sr_jax.data import benchmarks


def _archive(tmp_path):
  """A Set5-like .tar.gz: nested folder, 5 PNGs and a stray text file."""
  src = tmp_path / 'src' / 'Set5_HR'
  src.mkdir(parents=True)
  for name in ('astronaut', 'chelsea', 'coffee', 'rocket', 'camera'):
    image = getattr(skdata, name)()
    image = np.stack([image] * 3, -1) if image.ndim == 2 else image
    Image.fromarray(image[:37, :50]).save(src / f'{name}.png')
  (src / 'README.txt').write_text('not an image')
  path = tmp_path / 'Set5_HR.tar.gz'
  with tarfile.open(path, 'w:gz') as t:
    t.add(src, arcname='Set5_HR')
  return path


def test_fetch_extracts_hr_and_makes_matlab_bicubic_lr(tmp_path):
  root = tmp_path / 'data'
  assert benchmarks.main(['fetch', 'set5', '--root', str(root), '--scales',
                          '2,4', '--url', _archive(tmp_path).as_uri()]) == 0
  hr_dir = root / 'Set5' / 'HR'
  assert sorted(os.listdir(hr_dir)) == [
      'astronaut.png', 'camera.png', 'chelsea.png', 'coffee.png',
      'rocket.png']
  hr = np.asarray(Image.open(hr_dir / 'coffee.png'))
  for scale in (2, 4):
    lr = np.asarray(Image.open(root / 'Set5' / 'LR_bicubic' / f'X{scale}' /
                               f'coffeex{scale}.png'))
    h, w = 37 - 37 % scale, 50 - 50 % scale
    assert lr.shape == (h // scale, w // scale, 3)
    # MATLAB imresize of the mod-cropped HR, on the 8-bit grid.
    want = degradations.imresize(hr[None, :h, :w].astype(np.float32) / 255,
                                 1 / scale)[0]
    want = np.round(np.clip(np.asarray(want), 0, 1) * 255).astype(np.uint8)
    np.testing.assert_array_equal(lr, want)


def test_offline_fetch_says_what_to_download_then_prepare(tmp_path, capsys):
  root = tmp_path / 'data'
  missing = (tmp_path / 'nowhere.tar.gz').as_uri()
  assert benchmarks.main(['fetch', 'set14', '--root', str(root), '--url',
                          missing]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: Could not download')
  assert str(root / 'Set14' / 'HR') in err and 'prepare set14' in err
  assert not os.path.exists(root / 'Set14' / 'HR')  # Nothing half-made.
  # Placed by hand, then prepared.
  (root / 'Set14' / 'HR').mkdir(parents=True)
  Image.fromarray(skdata.astronaut()[:30, :30]).save(
      root / 'Set14' / 'HR' / 'a.png')
  assert benchmarks.main(['prepare', 'set14', '--root', str(root),
                          '--scales', '3']) == 0
  lr = Image.open(root / 'Set14' / 'LR_bicubic' / 'X3' / 'ax3.png')
  assert lr.size == (10, 10)


def test_photos10_is_written_offline(tmp_path):
  root = tmp_path / 'data'
  assert benchmarks.main(['fetch', 'photos10', '--root', str(root),
                          '--scales', '4']) == 0
  names = sorted(os.listdir(root / 'Photos10' / 'HR'))
  assert len(names) == 10 and 'moon.png' in names
  moon = np.asarray(Image.open(root / 'Photos10' / 'HR' / 'moon.png'))
  assert moon.shape == (512, 512, 3)  # Grey photos stored as RGB.
  assert len(os.listdir(root / 'Photos10' / 'LR_bicubic' / 'X4')) == 10
