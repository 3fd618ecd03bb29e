"""Folders of tiny images the tests of several sr_jax.data modules read."""
import io

import numpy as np
from PIL import Image
import pytest

from tests.helpers.data import _write_png


@pytest.fixture(scope='module')
def colour_dir(tmp_path_factory):
  """Seven 40x48 images, each one constant colour: (10 * i, 255 - i, 3)."""
  root = tmp_path_factory.mktemp('colours')
  for i in range(7):
    img = np.empty((40, 48, 3), np.uint8)
    img[...] = (10 * i, 255 - i, 3)
    _write_png(str(root / f'{i:04d}.png'), img)
  return root


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
