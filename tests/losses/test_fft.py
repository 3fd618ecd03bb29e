"""sr_jax.losses.fft: the FFT losses against numpy, Parseval and worked
cases."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from tests.helpers.losses import _pair


def test_fft_l1_is_the_mean_of_real_and_imaginary_differences():
  a, b = _pair()
  fa = np.fft.fft2(a.astype(np.float64), axes=(1, 2)) / np.sqrt(8 * 12)
  fb = np.fft.fft2(b.astype(np.float64), axes=(1, 2)) / np.sqrt(8 * 12)
  stacked = np.stack([(fa - fb).real, (fa - fb).imag])
  expected = np.mean(np.abs(stacked))
  np.testing.assert_allclose(losses.fft_loss(a, b, norm='l1'), expected,
                             rtol=1e-5)
  assert float(losses.fft_loss(a, a, norm='l1')) == 0.0


def test_fft_amplitude_phase_against_numpy():
  a, b = _pair(shape=(2, 6, 9, 3), seed=1)
  fa = np.fft.rfft2(a.astype(np.float64), axes=(1, 2), norm='ortho')
  fb = np.fft.rfft2(b.astype(np.float64), axes=(1, 2), norm='ortho')
  amplitude = np.mean(np.abs(np.abs(fa) - np.abs(fb)))
  d = np.angle(fa) - np.angle(fb)
  wrapped = (d + np.pi) % (2 * np.pi) - np.pi
  phase = np.mean(np.abs(wrapped))
  np.testing.assert_allclose(losses.fft_loss(a, b, norm='amplitude_phase'),
                             0.5 * amplitude + 0.5 * phase, rtol=1e-5)
  # -b: same amplitudes, every phase pi apart -> 0.5 pi exactly.
  np.testing.assert_allclose(losses.fft_loss(-b, b, norm='amplitude_phase'),
                             0.5 * np.pi, rtol=1e-5)
  # 2b: same phases -> half the mean amplitude of b.
  np.testing.assert_allclose(losses.fft_loss(2 * b, b, norm='amplitude_phase'),
                             0.5 * np.mean(np.abs(fb)), rtol=1e-5)


@pytest.mark.slow
def test_fft_norms_have_finite_gradients_at_zero_and_refuse_unknown():
  _, b = _pair(seed=2)
  # ('l2' is kept as it was: its norms' gradients are NaN at exactly 0.)
  for norm in ('l1', 'amplitude_phase'):
    g = jax.grad(lambda x, n=norm: losses.fft_loss(x, b, norm=n))(
        np.zeros_like(b))
    assert np.all(np.isfinite(g)), norm
  with pytest.raises(ValueError, match='amplitude_phase'):
    losses.fft_loss(b, b, norm='l3')
  make = losses.LOSS_TERMS.get('fft')
  with pytest.raises(ValueError, match='norm'):
    make({'norm': 'l3'}, jnp.float32)
  with pytest.raises(ValueError, match='unknown option'):
    make({'alpha': 1}, jnp.float32)


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
