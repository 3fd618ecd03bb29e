"""Losses against hand-worked values and independent formulas."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from sr_jax.losses import adversarial


def _sigmoid(x):
  return 1.0 / (1.0 + math.exp(-x))


def test_pixel_losses_hand_values():
  pred = jnp.array([0.0, 0.5, 1.0]).reshape(1, 1, 3, 1)
  target = jnp.array([0.25, 0.5, 0.0]).reshape(1, 1, 3, 1)
  # |diffs| = 0.25, 0, 1 -> mean 1.25/3; squares 0.0625, 0, 1 -> 1.0625/3.
  np.testing.assert_allclose(losses.l1_loss(pred, target), 1.25 / 3, rtol=1e-6)
  np.testing.assert_allclose(losses.mse_loss(pred, target), 1.0625 / 3,
                             rtol=1e-6)
  with pytest.raises(ValueError, match='known'):
    losses.get_pixel_loss('l3')


def test_fft_loss_equals_pixel_ratio_by_parseval():
  rng = np.random.default_rng(0)
  a = rng.random((3, 9, 12, 3), np.float32)
  b = rng.random((3, 9, 12, 3), np.float32)
  # ||F(a)-F(b)|| / max(||F(a)||, ||F(b)||) = ||a-b|| / max(||a||, ||b||),
  # per image (the sqrt(HW) factors cancel), then averaged over the batch.
  expected = np.mean([
      np.linalg.norm(a[i] - b[i]) /
      max(np.linalg.norm(a[i]), np.linalg.norm(b[i])) for i in range(3)])
  np.testing.assert_allclose(losses.fft_loss(a, b), expected, rtol=1e-5)


def test_fft_loss_worked_cases():
  x = np.random.default_rng(1).random((2, 8, 8, 3), np.float32)
  np.testing.assert_allclose(losses.fft_loss(x, x), 0.0, atol=1e-6)
  # Prediction all zero: ||0 - F(y)|| / ||F(y)|| = 1.
  np.testing.assert_allclose(losses.fft_loss(np.zeros_like(x), x), 1.0,
                             rtol=1e-6)
  # Opposite signs: ||2y|| / ||y|| = 2, the maximum.
  np.testing.assert_allclose(losses.fft_loss(-x, x), 2.0, rtol=1e-6)
  # Scale-free.
  np.testing.assert_allclose(losses.fft_loss(3 * x, 3 * x[::-1]),
                             losses.fft_loss(x, x[::-1]), rtol=1e-5)


def test_ragan_hand_worked():
  real = jnp.array([[2.0], [0.0]])
  fake = jnp.array([[-1.0], [1.0]])
  mean_real, mean_fake = 1.0, 0.0
  # L_D = 0.5 * (-E log s(C(r) - E C(f)) - E log(1 - s(C(f) - E C(r)))).
  d = 0.5 * (
      -np.mean([math.log(_sigmoid(r - mean_fake)) for r in (2.0, 0.0)]) -
      np.mean([math.log(1 - _sigmoid(f - mean_real)) for f in (-1.0, 1.0)]))
  g = 0.5 * (
      -np.mean([math.log(1 - _sigmoid(r - mean_fake)) for r in (2.0, 0.0)]) -
      np.mean([math.log(_sigmoid(f - mean_real)) for f in (-1.0, 1.0)]))
  np.testing.assert_allclose(adversarial.ragan_d_loss(real, fake), d, rtol=1e-6)
  np.testing.assert_allclose(adversarial.ragan_g_loss(real, fake), g, rtol=1e-6)
  ragp = losses.get_adversarial_loss('ragp')
  assert ragp.gradient_penalty and ragp.d_loss is adversarial.ragan_d_loss


def test_classic_gans_hand_worked():
  real = jnp.array([1.5, -0.5])
  fake = jnp.array([0.25, -2.0])
  vanilla_d = -np.mean([math.log(_sigmoid(r)) for r in (1.5, -0.5)]) - np.mean(
      [math.log(1 - _sigmoid(f)) for f in (0.25, -2.0)])
  np.testing.assert_allclose(adversarial.vanilla_d_loss(real, fake), vanilla_d,
                             rtol=1e-6)
  np.testing.assert_allclose(
      adversarial.vanilla_g_loss(real, fake),
      -np.mean([math.log(_sigmoid(f)) for f in (0.25, -2.0)]), rtol=1e-6)
  # LSGAN: ((0.5^2 + 1.5^2)/2) + ((0.0625 + 4)/2).
  np.testing.assert_allclose(adversarial.lsgan_d_loss(real, fake),
                             1.25 + 2.03125, rtol=1e-6)
  # Hinge: relu(1-r) = (0, 1.5) -> 0.75; relu(1+f) = (1.25, 0) -> 0.625.
  np.testing.assert_allclose(adversarial.hinge_d_loss(real, fake), 1.375,
                             rtol=1e-6)
  np.testing.assert_allclose(adversarial.wgan_d_loss(real, fake),
                             -0.875 - 0.5, rtol=1e-6)
  # RaLSGAN D: mean fake -0.875, mean real 0.5:
  # (r + 0.875 - 1)^2 = (1.375^2, 0.625^2); (f - 0.5 + 1)^2 = (0.75^2, 1.5^2);
  # the two terms averaged, as every two-term loss does.
  np.testing.assert_allclose(
      adversarial.ralsgan_d_loss(real, fake),
      ((1.375**2 + 0.625**2) / 2 + (0.75**2 + 1.5**2) / 2) / 2, rtol=1e-6)
  with pytest.raises(ValueError, match='ragan'):
    losses.get_adversarial_loss('ragan2')


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
