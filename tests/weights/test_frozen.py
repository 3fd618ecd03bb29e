"""sr_jax.weights.frozen: a damaged frozen network's file is named."""
import numpy as np
import pytest

from sr_jax import errors
from sr_jax.weights import frozen
from sr_jax.weights import params_io
from tests.helpers.weights_files import cut_in_half
from tests.helpers.weights_files import flip_a_bit
from tests.helpers.weights_files import MARK


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
