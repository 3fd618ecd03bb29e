"""python -m sr_jax.data.make_lr (sr_jax.tools.make_lr): LR images from a
DSGAN weights file."""
import numpy as np
from PIL import Image

from tests.helpers.weights_files import save_tiny_dsgan


def test_make_lr_reads_a_dsgan_weights_file(tmp_path, capsys):
  from sr_jax.tools import make_lr  # pylint: disable=g-import-not-at-top
  weights = save_tiny_dsgan(tmp_path / 'tiny.npz')
  (tmp_path / 'hr').mkdir()
  hr = np.random.default_rng(0).integers(0, 256, (9, 8, 3), np.uint8)
  Image.fromarray(hr).save(tmp_path / 'hr' / 'x.png')
  assert make_lr.main(['--dsgan', str(weights), '--input',
                       str(tmp_path / 'hr'), '--output',
                       str(tmp_path / 'lr'), '--scale', '2']) == 0, (
                           capsys.readouterr().err)
  with Image.open(tmp_path / 'lr' / 'x.png') as lr:
    assert lr.size == (4, 4)  # 8 x 8 after the mod crop, then / 2.
