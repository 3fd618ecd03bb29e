"""sr_jax.losses.spectral: Durall et al.'s spectral loss is the BCE of the
spectrum metric's profiles."""
import jax
import jax.numpy as jnp
import numpy as np
from skimage import data as skdata

from sr_jax import losses
from sr_jax.losses import spectral
from sr_jax.metrics import spectrum


def _photos():
  return np.stack([skdata.astronaut()[:48, :40], skdata.coffee()[:48, :40],
                   skdata.chelsea()[:48, :40]])


def test_spectral_profiles_are_the_metrics():
  photos = _photos()
  got = spectral.spectral_profiles(jnp.asarray(photos / 255.0, jnp.float32))
  for image, profile in zip(photos, np.asarray(got)):
    np.testing.assert_allclose(profile, spectrum.radial_spectrum(image),
                               atol=2e-4)


def test_spectral_loss_is_the_bce_of_the_metrics_spectra():
  hr = _photos()
  sr = np.round((hr.astype(float) + np.roll(hr, 1, 1) + np.roll(hr, 1, 2))
                / 3).astype(np.uint8)
  eps = 1e-6
  bces = []
  for s, h in zip(sr, hr):
    p = np.clip(spectrum.radial_spectrum(s), eps, 1 - eps)
    t = spectrum.radial_spectrum(h)
    bces.append(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
  got = losses.spectral_loss(jnp.asarray(sr / 255.0, jnp.float32),
                             jnp.asarray(hr / 255.0, jnp.float32))
  np.testing.assert_allclose(got, np.mean(bces), rtol=1e-3)
  # Differentiable, with finite gradients even for a flat image.
  grad_fn = jax.jit(jax.grad(losses.spectral_loss))
  grad = grad_fn(jnp.asarray(sr / 255.0, jnp.float32),
                 jnp.asarray(hr / 255.0, jnp.float32))
  assert np.all(np.isfinite(grad)) and np.any(np.asarray(grad) != 0)
  flat = jnp.full((1, 16, 16, 3), 0.5)
  grad = grad_fn(flat, jnp.asarray(hr[:1, :16, :16] / 255.0, jnp.float32))
  assert np.all(np.isfinite(grad))
