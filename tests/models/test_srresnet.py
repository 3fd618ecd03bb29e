"""sr_jax.models.srresnet: shapes, batch statistics, parameter count."""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models
from tests.helpers.models import abstract_variables
from tests.helpers.models import count
from tests.helpers.models import image
from tests.helpers.models import random_variables
from tests.helpers.models import TINY_SRRESNET


@pytest.mark.parametrize('scale', [2, 4])
def test_srresnet_output_shape_and_batch_stats(scale):
  model = models.get_generator('srresnet', scale=scale, **TINY_SRRESNET)
  variables = random_variables(model, 1, 7, 9, 3)
  x = image(2, 7, 9, 3)
  out = model.apply(variables, x, train=False)
  assert out.shape == (2, 7 * scale, 9 * scale, 3)
  assert out.dtype == jnp.float32
  out_train, updates = model.apply(variables, x, train=True,
                                   mutable=['batch_stats'])
  assert out_train.shape == out.shape
  old = variables['batch_stats']['bn_body']['mean']
  new = updates['batch_stats']['bn_body']['mean']
  assert not np.allclose(old, new)  # Running statistics moved.


def test_srresnet_param_count_matches_formula():
  nf, nb, c = 64, 16, 3
  conv = lambda k, cin, cout, bias=True: k * k * cin * cout + bias * cout
  expected = (conv(9, c, nf) + nf                             # head + PReLU
              + nb * (2 * conv(3, nf, nf, False) + 2 * 2 * nf  # convs + BN
                      + nf)                                    # block PReLU
              + conv(3, nf, nf, False) + 2 * nf                # conv_body+BN
              + 2 * (conv(3, nf, 4 * nf) + nf)                 # x4 = 2 ups
              + conv(9, nf, c))                                # tail
  variables = abstract_variables(models.get_generator('srresnet'), 1, 8, 8, 3)
  assert count(variables['params']) == expected
  # BN running mean and var of 2 * nb + 1 BatchNorms.
  assert count(variables['batch_stats']) == (2 * nb + 1) * 2 * nf
  prelu = variables['params']['body_0']['prelu']['negative_slope']
  assert prelu.shape == (nf,)


def test_srresnet_rejects_scale_3():
  with pytest.raises(ValueError, match='scale'):
    abstract_variables(models.SRResNet(scale=3, **TINY_SRRESNET), 1, 4, 4, 3)
