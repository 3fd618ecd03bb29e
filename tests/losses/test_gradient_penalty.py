"""sr_jax.losses.gradient_penalty: against a linear critic, the interpolation
between real and fake, and per-image gradients."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from sr_jax import models
from tests.helpers.losses import _images


@pytest.mark.slow
def test_gradient_penalty_linear_critic():
  # For C(x) = <w, x> the input gradient is w for every sample, so the
  # penalty is (||w|| - 1)^2 whatever the interpolation weights.
  w = jax.random.normal(jax.random.key(0), (4, 4, 3)) * 0.3
  real = jax.random.uniform(jax.random.key(1), (5, 4, 4, 3))
  fake = jax.random.uniform(jax.random.key(2), (5, 4, 4, 3))

  def penalty(w):
    critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3))[:, None]
    return losses.gradient_penalty(critic, real, fake, jax.random.key(3))

  norm = float(jnp.linalg.norm(w))
  np.testing.assert_allclose(penalty(w), (norm - 1.0) ** 2, rtol=1e-5)
  # Differentiable in the critic's parameters (double backprop):
  # d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||.
  np.testing.assert_allclose(jax.grad(penalty)(w),
                             2 * (norm - 1.0) * w / norm, rtol=1e-4, atol=1e-6)


def test_gradient_penalty_interpolates_between_real_and_fake():
  # C(x) = sum(x^2) / 2 has input gradient x, so the penalty reveals x_hat.
  real = jnp.ones((3, 2, 2, 1))
  fake = jnp.zeros((3, 2, 2, 1))
  key = jax.random.key(7)
  eps = jax.random.uniform(key, (3, 1, 1, 1))
  critic = lambda x: 0.5 * jnp.sum(x**2, axis=(1, 2, 3))
  # x_hat = eps (all 4 pixels) -> ||grad|| = 2 eps.
  expected = jnp.mean((2 * eps.reshape(-1) - 1.0) ** 2)
  np.testing.assert_allclose(
      losses.gradient_penalty(critic, real, fake, key), expected, rtol=1e-5)


def _critic(use_bn):
  module = models.get_discriminator('vgg_style', num_feat=4, input_size=16,
                                    use_bn=use_bn)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  variables = jax.tree.map(  # Non-trivial BN scales, not all ones.
      lambda v: v + 0.3 * jax.random.normal(jax.random.key(1), v.shape),
      variables)

  def critic(x):
    if use_bn:
      return module.apply(variables, x, train=True,
                          mutable=['batch_stats'])[0]
    return module.apply(variables, x, train=True)
  return critic


def _per_image_penalty(critic, real, fake, key):
  """The penalty from each image's own gradient, one image at a time."""
  eps = jax.random.uniform(key, (real.shape[0], 1, 1, 1))
  x_hat = eps * real + (1 - eps) * fake
  total = 0.0
  for i in range(real.shape[0]):
    g = jax.grad(lambda x: critic(x).sum())(x_hat[i:i + 1])
    total += (float(jnp.sqrt(jnp.sum(g * g))) - 1.0) ** 2
  return total / real.shape[0]


@pytest.mark.slow
def test_gradient_penalty_equals_per_image_gradients():
  real, fake = _images()
  key = jax.random.key(5)
  critic = _critic(use_bn=False)
  batched = float(losses.gradient_penalty(critic, real, fake, key))
  np.testing.assert_allclose(batched,
                             _per_image_penalty(critic, real, fake, key),
                             rtol=1e-5, atol=1e-6)
  # With BatchNorm in train mode the batched form is not the per-image
  # penalty: why the config check refuses the combination.
  critic_bn = _critic(use_bn=True)
  batched_bn = float(losses.gradient_penalty(critic_bn, real, fake, key))
  one_at_a_time = _per_image_penalty(
      lambda x: critic_bn(jnp.concatenate([x, real[1:]]))[:1], real, fake,
      key)
  assert abs(batched_bn - one_at_a_time) > 1e-3 * abs(one_at_a_time)
