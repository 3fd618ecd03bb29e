"""sr_jax.weights.params_io: the .npz round trip and metadata, and damaged
weights files (.pth and .npz, whose CRCs it checks) failing with their name
(issue 22, item 3).

Faults are injected by hand: one bit of a stored float flipped (found by
its bytes, so the zip headers stay valid and only the CRC-32 can tell), or
the file cut in half. Every network is tiny and random; nothing trains.
"""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import errors
from sr_jax import models
from sr_jax import weights
from sr_jax.weights import files
from sr_jax.weights import params_io
from tests.helpers.files import files_under
from tests.helpers.runs import random_variables
from tests.helpers.weights_files import cut_in_half
from tests.helpers.weights_files import flip_a_bit
from tests.helpers.weights_files import MARK
from tests.helpers.weights_files import upscale_error


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


# -------------------------------------------- .npz round trip and metadata --


@pytest.mark.usefixtures('isolated_cache')  # As in tests/weights/test_vgg19.py.
def test_save_load_round_trip(tmp_path):
  variables = {
      'params': {'conv': {'kernel': np.arange(24.0).reshape(2, 3, 4),
                          'bias': jnp.ones(4, jnp.bfloat16)}},
      'batch_stats': {'bn': {'mean': np.zeros(3, np.float32)}},
  }
  path = tmp_path / 'sub' / 'w.npz'
  weights.save_params(path, variables)
  assert files_under(tmp_path) == [path]  # No temporary file left behind.
  loaded = weights.load_params(path)
  assert sorted(loaded) == ['batch_stats', 'params']
  kernel = loaded['params']['conv']['kernel']
  assert kernel.dtype == np.float32
  np.testing.assert_array_equal(kernel, np.arange(24.0).reshape(2, 3, 4))
  np.testing.assert_array_equal(loaded['params']['conv']['bias'], np.ones(4))
  assert loaded['params']['conv']['bias'].dtype == np.float32
  with pytest.raises(ValueError, match='separator'):
    weights.save_params(tmp_path / 'bad.npz', {'a/b': np.zeros(1)})


@pytest.mark.usefixtures('isolated_cache')  # As in tests/weights/test_vgg19.py.
def test_metadata_round_trip(tmp_path):
  path = tmp_path / 'converted.npz'
  meta = {'arch': 'srvgg', 'model_kwargs': {'num_conv': 2, 'act_type': 'relu'}}
  weights.save_params(path, {'params': {'w': np.ones(2)}}, metadata=meta)
  assert weights.load_metadata(path) == meta
  assert list(weights.load_params(path)) == ['params']  # No '__meta__'.
  with pytest.raises(ValueError, match='__meta__'):
    weights.save_params(path, {'__meta__': np.zeros(1)})
  with pytest.raises(ValueError, match='JSON'):
    weights.save_params(tmp_path / 'x.npz', {}, metadata={'a': object()})
  assert files_under(tmp_path) == [path]
  (tmp_path / 'junk.npz').write_bytes(b'not a zip')
  with pytest.raises(ValueError, match='junk.npz.*not a weights file'):
    weights.load_params(tmp_path / 'junk.npz')
