"""sr_jax.models.rrdbnet: shapes, parameter counts and names, the upsampling
skip, BasicSR's initialisation."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models
from tests.helpers.models import abstract_variables
from tests.helpers.models import count
from tests.helpers.models import image
from tests.helpers.models import random_variables
from tests.helpers.models import TINY_RRDB


@pytest.mark.parametrize('scale,h,w', [(1, 12, 16), (2, 10, 14), (4, 7, 9),
                                       (8, 7, 9)])
def test_rrdbnet_output_shape(scale, h, w):
  model = models.get_generator('rrdbnet', scale=scale, **TINY_RRDB)
  x = image(2, h, w, 3)
  out = model.apply(random_variables(model, 1, h, w, 3), x, train=False)
  assert out.shape == (2, h * scale, w * scale, 3)
  assert out.dtype == jnp.float32
  assert np.isfinite(np.asarray(out)).all()


def test_rrdbnet_unshuffle_needs_divisible_input():
  model = models.get_generator('rrdbnet', scale=2, **TINY_RRDB)
  with pytest.raises(ValueError, match='divisible by 2'):
    abstract_variables(model, 1, 7, 9, 3)


def test_rrdbnet_default_param_count_and_names():
  variables = abstract_variables(models.get_generator('rrdbnet'), 1, 8, 8, 3)
  params = variables['params']
  assert count(params) == 16_697_987
  assert set(variables) == {'params'}
  assert sorted(params) == sorted(
      ['conv_first', 'conv_body', 'conv_up1', 'conv_up2', 'conv_hr',
       'conv_last'] + [f'body_{i}' for i in range(23)])
  assert sorted(params['body_22']) == ['rdb1', 'rdb2', 'rdb3']
  assert params['body_22']['rdb3']['conv5']['kernel'].shape == (3, 3, 192, 64)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))


def test_rrdbnet_scale_specific_layers():
  x8 = abstract_variables(models.RRDBNet(scale=8, **TINY_RRDB), 1, 4, 4, 3)
  assert 'conv_up3' in x8['params']
  x1 = abstract_variables(models.RRDBNet(scale=1, **TINY_RRDB), 1, 4, 4, 3)
  # Pixel-unshuffle by 4 turns 3 channels into 48 (BasicSR's num_in_ch * 16).
  assert x1['params']['conv_first']['kernel'].shape == (3, 3, 48, 8)
  with pytest.raises(ValueError, match='scale'):
    abstract_variables(models.RRDBNet(scale=3, **TINY_RRDB), 1, 4, 4, 3)


@pytest.mark.parametrize('mode,scale', [('bicubic', 4), ('bilinear', 2),
                                        ('nearest', 4)])
def test_rrdbnet_upsample_skip_adds_torch_interpolation(mode, scale):
  import torch  # pylint: disable=g-import-not-at-top
  plain = models.RRDBNet(scale=scale, **TINY_RRDB)
  skip = models.RRDBNet(scale=scale, upsample_skip=mode, **TINY_RRDB)
  variables = random_variables(plain, 1, 6, 10, 3)
  # The option adds no parameters: the same variables drive both.
  assert jax.tree.structure(variables) == jax.tree.structure(
      abstract_variables(skip, 1, 6, 10, 3))
  x = image(2, 6, 10, 3)
  added = skip.apply(variables, x) - plain.apply(variables, x)
  ref = torch.nn.functional.interpolate(
      torch.from_numpy(np.array(x)).permute(0, 3, 1, 2),
      scale_factor=scale, mode=mode,
      align_corners=None if mode == 'nearest' else False)
  np.testing.assert_allclose(np.asarray(added),
                             ref.permute(0, 2, 3, 1).numpy(), atol=2e-6)


def test_rrdbnet_upsample_skip_rejects_unknown_mode():
  with pytest.raises(ValueError, match="upsample_skip must be .*'lanczos'"):
    abstract_variables(models.RRDBNet(upsample_skip='lanczos', **TINY_RRDB),
                       1, 4, 4, 3)


@pytest.mark.slow
def test_rrdbnet_init_follows_basicsr():
  model = models.RRDBNet(num_feat=16, num_block=1, num_grow_ch=16)
  # The non-partitionable threefry compiles ~10x faster on CPU; the values
  # differ but the distributions under test do not.
  with jax.threefry_partitionable(False):
    params = jax.jit(model.init)(jax.random.key(0),
                                 jnp.zeros((1, 4, 4, 3)))['params']
  rdb = params['body_0']['rdb1']
  for i, fan_in in [(1, 9 * 16), (5, 9 * 80)]:
    kernel = np.asarray(rdb[f'conv{i}']['kernel'])
    # kaiming_normal(fan_in) * 0.1 (BasicSR's default_init_weights).
    np.testing.assert_allclose(kernel.std(), 0.1 * math.sqrt(2 / fan_in),
                               rtol=0.15)
    assert not np.asarray(rdb[f'conv{i}']['bias']).any()
  # Other convs: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  for name, fan_in in [('conv_first', 27), ('conv_body', 144)]:
    bound = 1 / math.sqrt(fan_in)
    kernel = np.asarray(params[name]['kernel'])
    bias = np.asarray(params[name]['bias'])
    assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
    np.testing.assert_allclose(kernel.std(), bound / math.sqrt(3), rtol=0.15)
