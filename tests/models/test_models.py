"""sr_jax.models: generators and discriminators by name, the exported
classes, bfloat16 compute, output scales."""
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models
from tests.helpers.models import abstract_variables
from tests.helpers.models import image
from tests.helpers.models import random_variables
from tests.helpers.models import TINY_RRDB
from tests.helpers.models import TINY_SRRESNET

# --------------------------------------------------------- registry, dtype --

def test_registry():
  # Every registered model is checked by tests/test_registries.py; here,
  # that lookups work and that an unknown name lists the known ones.
  assert isinstance(models.get_generator('rrdbnet'), models.RRDBNet)
  with pytest.raises(ValueError, match='Known: ' + re.escape(
      ', '.join(models.GENERATORS.names())) + r'\.'):
    models.get_generator('esrgan')
  with pytest.raises(ValueError, match='Known: ' + re.escape(
      ', '.join(models.DISCRIMINATORS.names())) + r'\.'):
    models.get_discriminator('nlayer')


def test_all_lists_every_exported_class():
  classes = {name for name, value in vars(models).items()
             if isinstance(value, type) and not name.startswith('_')
             and value.__module__.startswith('sr_jax.')}
  assert classes <= set(models.__all__)
  assert all(hasattr(models, name) for name in models.__all__)


@pytest.mark.slow
@pytest.mark.parametrize('name,kwargs,shape', [
    ('rrdbnet', TINY_RRDB, (2, 7, 9, 3)),
    ('srresnet', TINY_SRRESNET, (2, 7, 9, 3)),
    ('vgg_style', dict(num_feat=4, input_size=16), (2, 16, 16, 3)),
])
def test_bfloat16_compute(name, kwargs, shape):
  get = models.get_discriminator if name == 'vgg_style' else \
      models.get_generator
  f32 = get(name, **kwargs)
  bf16 = get(name, dtype='bfloat16', **kwargs)
  assert bf16.dtype == jnp.bfloat16
  variables = random_variables(f32, *shape)
  # Parameters are float32 whatever the compute dtype.
  assert all(x.dtype == jnp.float32 for x in
             jax.tree.leaves(abstract_variables(bf16, *shape)))
  x = image(*shape)
  ref = f32.apply(variables, x, train=False)
  out = bf16.apply(variables, x, train=False)
  assert out.dtype == jnp.float32 and out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=0.1, atol=0.05 * np.abs(ref).max())


def test_generator_scales_are_a_model_notion():
  from fractions import Fraction  # pylint: disable=g-import-not-at-top
  assert models.output_scale(models.RRDBNet(scale=2)) == 2
  assert models.output_scale(models.DSGANGenerator()) == 1
  assert models.output_scale(models.DSGANGenerator(downscale=4)) == (
      Fraction(1, 4))
