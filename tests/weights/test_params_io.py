"""Damaged weights files fail with their name, and DSGAN weights files load
wherever a DSGAN workdir does (issue 22, items 3 and 7).

Faults are injected by hand: one bit of a stored float flipped (found by
its bytes, so the zip headers stay valid and only the CRC-32 can tell), or
the file cut in half. Every network is tiny and random; nothing trains.
"""
import numpy as np
from PIL import Image
import pytest

from tests.helpers.repo import load_config
from tests.helpers.runs import random_variables

from sr_jax import errors
from sr_jax import inference
from sr_jax import models
from sr_jax import upscale
from sr_jax.weights import files
from sr_jax.weights import frozen
from sr_jax.weights import params_io

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


@pytest.fixture(name='tiny_pth')
def _tiny_pth(tmp_path):
  """A tiny BasicSR RRDBNet x4 state dict (num_feat = num_grow_ch = 4, one
  RRDB) holding MARK, saved by torch."""
  import torch
  torch.manual_seed(0)
  convs = dict(conv_first=(4, 3), conv_body=(4, 4), conv_up1=(4, 4),
               conv_up2=(4, 4), conv_hr=(4, 4), conv_last=(3, 4))
  for rdb in (1, 2, 3):
    for i in range(1, 6):
      convs[f'body.0.rdb{rdb}.conv{i}'] = (4, 4 * i)
  sd = {}
  for name, (out, inp) in convs.items():
    sd[f'{name}.weight'] = torch.randn(out, inp, 3, 3) / 6
    sd[f'{name}.bias'] = torch.randn(out) / 10
  sd['conv_first.weight'][0, 0, 0, 0] = MARK
  path = tmp_path / 'tiny.pth'
  torch.save({'params_ema': sd}, path)
  return path


@pytest.fixture(name='tiny_npz')
def _tiny_npz(tmp_path):
  """A tiny converted RRDBNet x4 .npz holding MARK."""
  module = models.RRDBNet(scale=4, num_feat=4, num_block=0, num_grow_ch=4)
  variables = random_variables(module)
  variables['params']['conv_first']['kernel'][0, 0, 0, 0] = MARK
  path = tmp_path / 'tiny.npz'
  files.save_converted(path, 'rrdbnet', variables,
                       dict(scale=4, num_feat=4, num_block=0, num_grow_ch=4))
  return path


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


# ------------------------------------------------ item 3: damaged files --


def test_intact_files_still_load(tiny_pth, tiny_npz):
  from sr_jax.inference import generator_loading  # pylint: disable=g-import-not-at-top
  module, variables, scale = generator_loading.load_generator_for_inference(
      weights=tiny_pth)
  assert (type(module), scale) == (models.RRDBNet, 4)
  assert variables['params']['conv_first']['kernel'][0, 0, 0, 0] == (
      np.float32(MARK))
  assert files.load_converted(tiny_npz)[0] == 'rrdbnet'


# Each weights format and the reader that loads it (torch's, sr_jax's).
READERS = {'pth': files.load_torch_file, 'npz': params_io.load_params}


@pytest.mark.parametrize('suffix', sorted(READERS))
def test_a_bit_flip_is_found(suffix, request, tmp_path, capsys):
  path = request.getfixturevalue(f'tiny_{suffix}')
  flip_a_bit(path)
  with pytest.raises(errors.CorruptFileError,
                     match=rf'tiny\.{suffix} is damaged: member .* fails its '
                     'CRC'):
    READERS[suffix](path)
  line = upscale_error(tmp_path, path, capsys)
  assert str(path) in line and 'CRC' in line


def test_a_truncated_pth_is_named(tiny_pth, tmp_path, capsys):
  cut_in_half(tiny_pth)
  with pytest.raises(errors.CorruptFileError, match=r'tiny\.pth is damaged'):
    files.load_torch_file(tiny_pth)
  line = upscale_error(tmp_path, tiny_pth, capsys)
  assert str(tiny_pth) in line and 'Errno' not in line


def test_reading_an_npz_lazily_checks_crcs_too(tiny_npz, monkeypatch):
  """Without the up-front check, np.load's lazy member reads raise
  zipfile.BadZipFile on access: converted to CorruptFileError too."""
  flip_a_bit(tiny_npz)
  monkeypatch.setattr(params_io, 'check_zip', lambda path: None)
  with pytest.raises(errors.CorruptFileError,
                     match=r'tiny\.npz is damaged.*BadZipFile.*CRC'):
    params_io.load_params(tiny_npz)


def test_a_truncated_npz_is_named(tiny_npz, tmp_path, capsys):
  cut_in_half(tiny_npz)
  with pytest.raises(errors.CorruptFileError, match=r'tiny\.npz is damaged'):
    params_io.load_params(tiny_npz)
  assert str(tiny_npz) in upscale_error(tmp_path, tiny_npz, capsys)


def test_a_damaged_frozen_vgg19_is_named(tmp_path):
  from sr_jax.models import vgg19 as vgg19_lib  # pylint: disable=g-import-not-at-top
  params = {name: {'kernel': np.zeros((1, 1, 1, 1), np.float32),
                   'bias': np.zeros(1, np.float32)}
            for name in vgg19_lib.CONV_NAMES}
  params['conv1_1']['kernel'][...] = MARK
  path = tmp_path / 'vgg19.npz'
  params_io.save_params(path, {'params': params})
  assert frozen.load_frozen('vgg19', str(path))['params'].keys() == (
      params.keys())
  flip_a_bit(path)
  with pytest.raises(errors.CorruptFileError,
                     match=r'vgg19\.npz is damaged: member .* CRC'):
    frozen.load_frozen('vgg19', str(path))
  cut_in_half(path)
  with pytest.raises(errors.CorruptFileError, match=r'vgg19\.npz is damaged'):
    frozen.load_frozen('vgg19', str(path))


# ------------------------------------ item 7: DSGAN weights files load --

DSGAN_KWARGS = dict(num_feat=4, num_block=1)


def save_tiny_dsgan(path, **kwargs):
  module = models.get_generator('dsgan', **DSGAN_KWARGS, **kwargs)
  files.save_converted(path, 'dsgan', random_variables(module),
                       dict(DSGAN_KWARGS, **kwargs))
  return path


def test_generator_scales_are_a_model_notion():
  from fractions import Fraction  # pylint: disable=g-import-not-at-top
  assert models.output_scale(models.RRDBNet(scale=2)) == 2
  assert models.output_scale(models.DSGANGenerator()) == 1
  assert models.output_scale(models.DSGANGenerator(downscale=4)) == (
      Fraction(1, 4))


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


def test_the_dsgan_degradation_reads_a_weights_file(tmp_path):
  from sr_jax.train import recipe as recipe_lib  # pylint: disable=g-import-not-at-top
  from sr_jax.train import warm_start  # pylint: disable=g-import-not-at-top
  from sr_jax.train import pairs as training_pairs  # pylint: disable=g-import-not-at-top
  weights = save_tiny_dsgan(tmp_path / 'tiny.npz')
  config = load_config('srrescycgan')
  config.degradation.name = 'dsgan'
  config.degradation.dsgan.checkpoint = str(weights)
  pairs = training_pairs.make_training_pairs(config)
  recipe = recipe_lib.Recipe(networks={}, phases=(),
                             frozen={f.name: f for f in pairs.frozen})
  aux, missing = warm_start.load_aux(recipe, config)
  assert not missing and list(aux) == ['degradation_dsgan']
  assert aux['degradation_dsgan']['params'].keys() == (
      params_io.load_params(weights)['params'].keys())
  # One saved with its bicubic step (downscale=4) loads as well.
  module = inference.load_generator_of(
      str(save_tiny_dsgan(tmp_path / 'x4.npz', downscale=4)), 'dsgan',
      'test').module
  assert module.downscale == 4


def test_upscale_refuses_a_down_sampling_generator(tmp_path, capsys):
  weights = save_tiny_dsgan(tmp_path / 'x4.npz', downscale=4)
  line = upscale_error(tmp_path, weights, capsys)
  assert 'down-sampling' in line and 'sr_jax.data.make_lr' in line


class _Hostile:
  """Unpickling it would run code (writes the file `marker`)."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, 'w'))


def test_a_hostile_pickle_runs_nothing_and_is_named(tmp_path, capsys):
  import torch
  marker = tmp_path / 'pwned'
  path = tmp_path / 'hostile.pth'
  torch.save({'params_ema': {'conv_first.weight': torch.zeros(1)},
              'payload': _Hostile(marker)}, path)
  with pytest.raises(ValueError, match='hostile.pth'):
    files.load_torch_file(path)
  image = tmp_path / 'a.png'
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
  assert upscale.main([str(image), '-o', str(tmp_path / 'out'),
                       '--weights', str(path)]) == 2
  assert 'hostile.pth' in capsys.readouterr().err
  assert not marker.exists()
