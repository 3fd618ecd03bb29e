"""sr_jax.degradations.noise: Gaussian and Poisson noise per sample against
their sample statistics, and per-sample application."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax.degradations import noise

# Ranges and probabilities may be traced, so one compilation per shape serves
# every parametrisation below (eager Poisson sampling is slow to dispatch).
_gaussian_noise = jax.jit(noise.gaussian_noise, static_argnames='clip')


_poisson_noise = jax.jit(noise.poisson_noise, static_argnames='clip')


# Noise.
def test_gaussian_noise_std_matches_sigma_per_sample():
  x = jnp.full((4, 64, 64, 3), 0.5, jnp.float32)
  for sigma in (2.0, 10.0, 25.0):
    y = _gaussian_noise(jax.random.key(int(sigma)), x, (sigma, sigma),
                        gray_prob=0.0, clip=False)
    std = np.asarray(jnp.std(y - x, axis=(1, 2, 3)))
    np.testing.assert_allclose(std, sigma / 255, rtol=0.03)
  # A range: every per-sample std lies in it, and they differ.
  y = _gaussian_noise(jax.random.key(5), x, (1.0, 30.0), gray_prob=0.0,
                      clip=False)
  std = np.asarray(jnp.std(y - x, axis=(1, 2, 3))) * 255
  assert np.all(std > 0.97) and np.all(std < 30.9) and np.ptp(std) > 1


@pytest.mark.slow
def test_gaussian_gray_noise_is_shared_across_channels_and_clip_works():
  x = jnp.full((4, 64, 64, 3), 0.5, jnp.float32)  # same shape: no recompile
  y = _gaussian_noise(jax.random.key(0), x, (20, 20), gray_prob=1.0,
                      clip=False)
  # Up to one ulp: XLA may fuse the add differently per vector lane.
  np.testing.assert_allclose(y[..., 0], y[..., 1], atol=1e-7, rtol=0)
  np.testing.assert_allclose(y[..., 0], y[..., 2], atol=1e-7, rtol=0)
  y = _gaussian_noise(jax.random.key(0), x, (20, 20), gray_prob=0.0,
                      clip=False)
  assert np.abs(np.asarray(y[..., 0] - y[..., 1])).max() > 1e-3
  y = _gaussian_noise(jax.random.key(0), x, (300, 300), gray_prob=0.0,
                      clip=True)
  assert float(y.min()) == 0.0 and float(y.max()) == 1.0


@pytest.mark.parametrize('level, scale', [(0.2, 1.0), (0.6, 2.5)])
def test_poisson_noise_mean_and_variance(level, scale):
  x = jnp.full((2, 64, 64, 3), level, jnp.float32)
  y = _poisson_noise(jax.random.key(0), x, (scale, scale), gray_prob=0.0,
                     clip=False,
                          vals=255.0)
  q = round(level * 255) / 255
  d = np.asarray(y - x, np.float64)
  var = scale**2 * q / 255
  assert abs(d.mean() - (q - level) * scale) < 4 * math.sqrt(var / d.size)
  np.testing.assert_allclose(d.var(axis=(1, 2, 3)), var, rtol=0.05)


@pytest.mark.slow
def test_poisson_gray_noise_and_basicsr_vals():
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.random((2, 64, 64, 3)), jnp.float32)
  y = _poisson_noise(jax.random.key(1), x, (1.0, 1.0), gray_prob=1.0,
                     clip=False)
  d = np.asarray(y - x)
  np.testing.assert_allclose(d[..., 0], d[..., 1], atol=1e-6)
  # BasicSR's vals: 2 ** ceil(log2(#distinct 8-bit levels)).
  ramp = (jnp.arange(256, dtype=jnp.float32) / 255).reshape(1, 16, 16, 1)
  few = jnp.round(ramp * 4) / 4  # 5 levels -> 8
  flat = jnp.full_like(ramp, 0.5)  # 1 level -> 1
  vals = noise.basicsr_poisson_vals(jnp.concatenate([ramp, few, flat]))
  np.testing.assert_array_equal(vals, [256.0, 8.0, 1.0])
  # With vals = None a photo-like image gets vals = 256.
  big = jnp.full((2, 64, 64, 3), 0.5, jnp.float32).at[:, 0, :, :].set(
      jnp.linspace(0, 1, 192).reshape(64, 3))
  y = _poisson_noise(jax.random.key(2), big, (1.0, 1.0), gray_prob=0.0,
                     clip=False)
  d = np.asarray(y - big)[:, 1:]
  np.testing.assert_allclose(d.var(), 0.5 / 256, rtol=0.05)


def test_apply_with_prob_selects_per_sample():
  x = jnp.zeros((64, 4, 4, 3), jnp.float32)
  fn = lambda key, x: x + 1.0
  y = jax.jit(lambda k, x: noise.apply_with_prob(k, 0.5, fn, x))(
      jax.random.key(0), x)
  applied = np.asarray(y[:, 0, 0, 0])
  assert set(np.unique(applied)) == {0.0, 1.0}
  assert np.all(np.asarray(y) == applied[:, None, None, None])
  assert 16 <= applied.sum() <= 48
  np.testing.assert_array_equal(
      noise.apply_with_prob(jax.random.key(0), 0.0, fn, x), x)
  np.testing.assert_array_equal(
      noise.apply_with_prob(jax.random.key(0), 1.0, fn, x), x + 1)
