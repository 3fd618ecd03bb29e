"""sr_jax.losses.perceptual: layer weights, a constant target, and SRGAN's
VGG54 content loss scaling."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from sr_jax import models


def test_perceptual_loss_weights_and_constant_target():
  pred = {'a': jnp.ones((1, 2, 2, 1)), 'b': jnp.zeros((1, 1, 1, 2))}
  target = {'a': jnp.zeros((1, 2, 2, 1)), 'b': jnp.full((1, 1, 1, 2), 3.0)}
  weights = {'a': 0.5, 'b': 2.0}
  # 0.5 * L1(1, 0) + 2 * L1(0, 3) = 0.5 + 6.
  np.testing.assert_allclose(losses.perceptual_loss(pred, target, weights),
                             6.5, rtol=1e-6)
  np.testing.assert_allclose(
      losses.perceptual_loss(pred, target, weights, criterion='mse'),
      0.5 + 18.0, rtol=1e-6)
  grad_target = jax.grad(
      lambda t: losses.perceptual_loss(pred, {'a': t, 'b': target['b']},
                                       weights))(target['a'])
  assert not np.any(np.asarray(grad_target))


@pytest.mark.slow
def test_vgg54_content_loss_scales_features():
  term = losses.LOSS_TERMS.get('perceptual')(
      dict(layer_weights={'relu5_4': 1.0}, criterion='mse',
           feature_scale=1 / 12.75), jnp.float32)
  (frozen,) = term.frozen
  # Random VGG weights, scaled so that relu5_4 is not vanishingly small.
  variables = jax.tree.map(lambda v: v * 2.5,
                           frozen.random_init(jax.random.key(0)))
  rng = np.random.default_rng(1)
  sr, hr = (jnp.asarray(rng.random((2, 32, 32, 3)), jnp.float32)
            for _ in range(2))
  vgg = models.VGG19(layers=('relu5_4',))
  f_sr = np.asarray(vgg.apply(variables, sr)['relu5_4'], np.float64)
  f_hr = np.asarray(vgg.apply(variables, hr)['relu5_4'], np.float64)
  expected = np.mean((f_sr / 12.75 - f_hr / 12.75) ** 2)
  ctx = losses.LossContext(sr=sr, target=hr, real=hr, lr=sr,
                           key=jax.random.key(0), aux={'vgg19': variables},
                           apply=lambda n, x: x)
  assert expected > 1e-6
  np.testing.assert_allclose(float(term.fn(ctx)), expected, rtol=1e-4)
  assert np.all(f_sr >= 0)  # relu5_4 is after the activation.
