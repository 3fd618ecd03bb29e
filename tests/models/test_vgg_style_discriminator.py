"""sr_jax.models.vgg_style_discriminator: shapes and BasicSR's channels,
with and without BatchNorm."""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models
from tests.helpers.models import abstract_variables
from tests.helpers.models import image
from tests.helpers.models import random_variables


@pytest.mark.slow
@pytest.mark.parametrize('size,stages', [(32, 3), (128, 5)])
def test_vgg_style_shapes(size, stages):
  model = models.get_discriminator('vgg_style', num_feat=4, input_size=size)
  variables = random_variables(model, 1, size, size, 3)
  params = variables['params']
  expected_convs = {f'conv{i}_{j}' for i in range(stages) for j in (0, 1)}
  assert {k for k in params if k.startswith('conv')} == expected_convs
  assert 'bn0_0' not in variables['batch_stats']  # conv0_0 has no BN...
  assert 'bias' in params['conv0_0'] and 'bias' not in params['conv0_1']
  last_ch = 4 * min(2**(stages - 1), 8)
  assert params['linear1']['kernel'].shape == (last_ch * 4 * 4, 100)
  logits = model.apply(variables, image(2, size, size, 3), train=False)
  assert logits.shape == (2, 1) and logits.dtype == jnp.float32


def test_vgg_style_128_matches_basicsr_channels():
  params = abstract_variables(models.VGGStyleDiscriminator(), 1, 128, 128, 3)
  kernels = {k: v['kernel'].shape for k, v in params['params'].items()
             if not k.startswith('bn')}
  assert sorted(params['batch_stats']) == sorted(
      ['bn0_1'] + [f'bn{i}_{j}' for i in range(1, 5) for j in (0, 1)])
  assert kernels['conv0_0'] == (3, 3, 3, 64)
  assert kernels['conv1_0'] == (3, 3, 64, 128)
  assert kernels['conv3_1'] == (4, 4, 512, 512)
  assert kernels['conv4_1'] == (4, 4, 512, 512)
  assert kernels['linear1'] == (512 * 16, 100)
  assert kernels['linear2'] == (100, 1)


def test_vgg_style_errors():
  model = models.get_discriminator('vgg_style', num_feat=4, input_size=32)
  with pytest.raises(ValueError, match='input_size'):
    abstract_variables(model, 1, 64, 64, 3)
  for bad in (100, 4, 0):
    with pytest.raises(ValueError, match='4 \\* 2\\^k'):
      models.get_discriminator('vgg_style', input_size=bad)


def test_vgg_style_without_bn():
  model = models.VGGStyleDiscriminator(num_feat=4, input_size=16, use_bn=False)
  variables = random_variables(model, 1, 16, 16, 3)
  assert 'batch_stats' not in variables
  assert all('bias' in v for v in variables['params'].values())
  x = image(3, 16, 16, 3)
  # Without BN each sample's logit depends on that sample only.
  np.testing.assert_allclose(model.apply(variables, x, train=True)[:1],
                             model.apply(variables, x[:1], train=True),
                             rtol=1e-5, atol=1e-6)
