"""sr_jax.models.vgg19_feature_discriminator: the WDRN SRGAN's critic, a
VGG19 trunk and a head."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models


def _shapes(tree):
  return jax.tree.map(lambda a: tuple(a.shape), tree)


@pytest.mark.slow
def test_vgg19_feature_discriminator():
  cls = models.DISCRIMINATORS.get('vgg19_feature')
  assert cls is models.VGG19FeatureDiscriminator
  assert cls.FROZEN_SUBMODULES == {'trunk': 'vgg19'}
  tiny = cls.TINY_KWARGS
  discriminator = models.get_discriminator('vgg19_feature', **tiny)
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (2, 8, 12, 3)),
                  jnp.float32)
  variables = discriminator.init(jax.random.key(0), x)
  assert set(variables) == {'params'}  # No BatchNorm statistics.
  params = variables['params']
  assert set(params) == {'trunk', 'head'}
  vgg = models.VGG19(layers=(tiny['feature_layer'],)).init(
      jax.random.key(0), x)['params']
  assert _shapes(params['trunk']) == _shapes(vgg)
  assert _shapes(params['head']) == {
      'conv': {'kernel': (3, 3, 128, 8), 'bias': (8,)},
      'dense': {'kernel': (8, 1), 'bias': (1,)}}

  out = discriminator.apply(variables, x, train=True)
  assert out.shape == (2, 1) and out.dtype == jnp.float32
  # The trunk is VGG19 itself: its features, through the head, give `out`.
  features = models.VGG19(layers=(tiny['feature_layer'],)).apply(
      {'params': params['trunk']}, x)[tiny['feature_layer']]
  head = models.vgg19_feature_discriminator.FeatureHead(8)
  np.testing.assert_allclose(
      head.apply({'params': params['head']}, features), out, rtol=1e-5,
      atol=1e-6)

  grad = jax.grad(lambda x: jnp.sum(discriminator.apply(variables, x)))(x)
  assert grad.shape == x.shape
  assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0


def test_vgg19_feature_discriminator_default_layer_and_checks():
  discriminator = models.get_discriminator('vgg19_feature')
  assert discriminator.feature_layer == 'relu5_4'
  x = jnp.zeros((1, 16, 16, 3))
  params = jax.eval_shape(
      lambda: discriminator.init(jax.random.key(0), x))['params']
  vgg = jax.eval_shape(lambda: models.VGG19(layers=('relu5_4',)).init(
      jax.random.key(0), x))['params']
  assert _shapes(params['trunk']) == _shapes(vgg)
  assert len(params['trunk']) == 16
  assert params['head']['conv']['kernel'].shape == (3, 3, 512, 64)
  with pytest.raises(ValueError, match='H and W >= 16'):
    discriminator.init(jax.random.key(0), jnp.zeros((1, 8, 16, 3)))
  with pytest.raises(ValueError, match='Unknown VGG19 feature_layer'):
    models.get_discriminator('vgg19_feature', feature_layer='relu6_1')
