"""Weights files damaged by hand (one bit flipped, cut in half), `upscale`'s
one error line on them, and tiny DSGAN weights files."""
import numpy as np
from PIL import Image

from sr_jax import models
from sr_jax import upscale
from sr_jax.weights import files
from tests.helpers.runs import random_variables

MARK = 1.2345  # A weight whose bytes the tests find and flip.


def flip_a_bit(path, value=MARK):
  """Flips the lowest mantissa bit of the one stored float32 `value`."""
  raw = bytearray(path.read_bytes())
  pattern = np.float32(value).tobytes()
  assert raw.count(pattern) == 1
  raw[raw.find(pattern)] ^= 1  # Little-endian: the lowest byte first.
  path.write_bytes(bytes(raw))


def cut_in_half(path):
  path.write_bytes(path.read_bytes()[:path.stat().st_size // 2])


def upscale_error(tmp_path, weights, capsys) -> str:
  """`python -m sr_jax.upscale` on one tiny image with `weights`: asserts
  exit code 2 and one `error:` line, and returns it."""
  Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / 'a.png')
  capsys.readouterr()
  code = upscale.main([str(tmp_path / 'a.png'), '-o', str(tmp_path / 'out'),
                       '--weights', str(weights)])
  err = capsys.readouterr().err
  assert code == 2, err
  lines = [line for line in err.splitlines() if line.startswith('error:')]
  assert len(lines) == 1 and 'Traceback' not in err, err
  assert not (tmp_path / 'out' / 'a_out.png').exists()
  return lines[0]


DSGAN_KWARGS = dict(num_feat=4, num_block=1)


def save_tiny_dsgan(path, **kwargs):
  module = models.get_generator('dsgan', **DSGAN_KWARGS, **kwargs)
  files.save_converted(path, 'dsgan', random_variables(module),
                       dict(DSGAN_KWARGS, **kwargs))
  return path
