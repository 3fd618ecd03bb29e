"""sr_jax.losses.ssim_loss: 1 - SSIM with dm-pix, equal to the ssim metrics
(sr_jax.metrics.psnr_ssim, float64 numpy, BasicSR's calculate_ssim)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data as skdata

from sr_jax import errors
from sr_jax import losses
from sr_jax.losses import terms
from sr_jax.metrics import psnr_ssim


def _pairs():
  """Two natural 64x48 crops (uint8 values / 255) and a blurred, noisy copy
  of each: [2, 64, 48, 3] float32 in [0, 1], twice."""
  rng = np.random.default_rng(0)
  hr = np.stack([skdata.astronaut()[100:164, 200:248],
                 skdata.coffee()[150:214, 300:348]]).astype(np.float64)
  blurred = (hr + np.roll(hr, 1, axis=1) + np.roll(hr, 1, axis=2)) / 3
  sr = np.clip(np.round(blurred + rng.normal(0, 6, hr.shape)), 0, 255)
  return (jnp.asarray(sr / 255, jnp.float32),
          jnp.asarray(hr / 255, jnp.float32), sr, hr)


@pytest.mark.parametrize('on_y', [False, True])
def test_ssim_loss_is_one_minus_the_metric(on_y):
  sr, hr, sr_255, hr_255 = _pairs()
  metric = np.mean([psnr_ssim.ssim(s, h, crop_border=0, test_y_channel=on_y)
                    for s, h in zip(sr_255, hr_255)])
  assert 0.3 < metric < 0.95  # A real difference, not a trivial value.
  # The same formula: equal in float64.
  with jax.enable_x64(True):
    loss64 = float(losses.ssim_loss(jnp.asarray(sr_255 / 255),
                                    jnp.asarray(hr_255 / 255), on_y))
  assert abs(1.0 - loss64 - metric) < 1e-12
  # In float32 (training), the variances E[x^2] - E[x]^2 of 11x11 windows
  # lose about 1e-7 / 1e-3 of their value to cancellation (values ~0.5,
  # variances ~1e-3): a few 1e-6 of SSIM.
  loss = float(jax.jit(losses.ssim_loss, static_argnums=2)(sr, hr, on_y))
  assert abs(1.0 - loss - metric) < 1e-5


def test_ssim_gradient_is_finite_and_a_step_along_it_helps():
  sr, hr, _, _ = _pairs()
  flat = jnp.full_like(hr, 0.5)  # Flat patches: the variance clip.
  for start in (sr, flat):
    loss, grad = jax.value_and_grad(losses.ssim_loss)(start, hr)
    assert np.all(np.isfinite(np.asarray(grad)))
    assert float(jnp.abs(grad).max()) > 0
    stepped = losses.ssim_loss(start - 1e-3 * grad / jnp.abs(grad).max(), hr)
    assert float(stepped) < float(loss)
  assert float(losses.ssim_loss(hr, hr)) == pytest.approx(0.0, abs=1e-6)


def test_ssim_term_from_config_and_its_options():
  sr, hr, _, _ = _pairs()
  (weighted,) = terms.build_terms(
      {'ssim_y': {'term': 'ssim', 'weight': 0.5, 'test_y_channel': True}},
      jnp.float32)
  assert weighted.weight == 0.5 and weighted.term.log_name == 'ssim'
  ctx = terms.LossContext(sr=sr, target=hr, real=hr, lr=hr[:, ::4, ::4],
                          key=jax.random.key(0), aux={}, apply=None)
  np.testing.assert_allclose(weighted.term.fn(ctx),
                             losses.ssim_loss(sr, hr, True), rtol=1e-6)
  with pytest.raises(errors.ConfigError, match=r"losses.ssim \(ssim\).*"
                     r"unknown option\(s\) \['window'\]"):
    terms.build_terms({'ssim': {'weight': 1.0, 'window': 7}}, jnp.float32)
