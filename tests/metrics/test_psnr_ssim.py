"""Tests for sr_jax.metrics: PSNR/SSIM with BasicSR's protocol.

Expected values are worked out by hand from the definitions (in comments) or
come from independent implementations (scipy's 2-D correlation, skimage),
never from running sr_jax itself.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import metrics
from tests.helpers.metrics import _random_pair

C1 = (0.01 * 255) ** 2  # 6.5025
C2 = (0.03 * 255) ** 2  # 58.5225


def _const(value, shape=(16, 16, 3)):
  return np.full(shape, value, dtype=np.uint8)


# ---------------------------------------------------------------------------
# PSNR.
# ---------------------------------------------------------------------------


@pytest.mark.parametrize('d', [1, 5, 40])
def test_psnr_constant_difference(d):
  # MSE = d^2 everywhere, so PSNR = 10 log10(255^2 / d^2); e.g. d = 1 gives
  # 20 log10(255) = 48.1308 dB.
  got = metrics.psnr(_const(100), _const(100 + d), crop_border=0)
  assert got == pytest.approx(10 * math.log10(255**2 / d**2), abs=1e-12)


def test_psnr_identical_is_inf():
  a, _ = _random_pair(1)
  assert metrics.psnr(a, a.copy(), crop_border=0) == float('inf')
  assert metrics.psnr(a, a.copy(), crop_border=4, test_y_channel=True) == (
      float('inf'))


def test_crop_border_removes_the_border():
  a = _const(50, (20, 24, 3))
  b = a.copy()
  # All the error lies in the outer 3 pixels: rows 0-2, 17-19 and columns
  # 0-2, 21-23.
  b[:3] = 200
  b[-3:] = 200
  b[:, :3] = 200
  b[:, -3:] = 200
  assert metrics.psnr(a, b, crop_border=3) == float('inf')
  assert metrics.psnr(a, b, crop_border=3, test_y_channel=True) == (
      float('inf'))
  assert math.isfinite(metrics.psnr(a, b, crop_border=2))
  # Still 14x18 left after crop_border=3: big enough for one SSIM window.
  assert metrics.ssim(a, b, crop_border=3) == pytest.approx(1.0, abs=1e-12)
  assert metrics.ssim(a, b, crop_border=2) < 0.99


def test_psnr_rgb_vs_y_red_against_black():
  red = np.zeros((8, 8, 3), np.uint8)
  red[..., 0] = 255
  black = np.zeros((8, 8, 3), np.uint8)
  # RGB: per pixel the squared errors are (255^2, 0, 0), so the MSE over
  # pixels and channels is 255^2 / 3 and PSNR = 10 log10(3) = 4.7712 dB.
  assert metrics.psnr(red, black, 0) == pytest.approx(
      10 * math.log10(3), abs=1e-12)
  # Y: 16 + 65.481 * 1.0 = 81.481 against 16 + 0 = 16, a difference of
  # 65.481 everywhere, so PSNR = 20 log10(255 / 65.481) = 11.8085 dB.
  assert metrics.psnr(red, black, 0, test_y_channel=True) == pytest.approx(
      20 * math.log10(255 / 65.481), abs=1e-12)
  assert metrics.psnr(red, black, 0, test_y_channel=True) == pytest.approx(
      11.8085, abs=1e-4)


def test_float_0_255_inputs_match_uint8():
  a, b = _random_pair(2)
  for fn in (metrics.psnr, metrics.ssim):
    assert fn(a.astype(np.float32), b.astype(np.float64), 2, True) == (
        pytest.approx(fn(a, b, 2, True), abs=1e-12))


def test_grey_images():
  a, b = _random_pair(3, shape=(30, 30))
  # [H, W] and [H, W, 1] are the same image; as in BasicSR, test_y_channel
  # leaves single-channel images as they are.
  for fn in (metrics.psnr, metrics.ssim):
    ref = fn(a[..., None], b[..., None], 1)
    assert fn(a, b, 1) == pytest.approx(ref, abs=1e-12)
    assert fn(a, b, 1, test_y_channel=True) == pytest.approx(ref, abs=1e-12)


# ---------------------------------------------------------------------------
# SSIM.
# ---------------------------------------------------------------------------


def test_ssim_identical_is_one():
  a, _ = _random_pair(4)
  assert metrics.ssim(a, a.copy(), 0) == pytest.approx(1.0, abs=1e-12)
  assert metrics.ssim(a, a.copy(), 3, test_y_channel=True) == pytest.approx(
      1.0, abs=1e-12)


@pytest.mark.parametrize('x, y', [(100, 110), (0, 255), (30, 31)])
def test_ssim_constant_images(x, y):
  # On constant images every window has mean x (resp. y) and zero variance and
  # covariance, so the contrast-structure term is (0 + C2) / (0 + C2) = 1 and
  # SSIM = (2xy + C1) / (x^2 + y^2 + C1). E.g. (100, 110):
  # 22006.5025 / 22106.5025 = 0.995476.
  expected = (2 * x * y + C1) / (x**2 + y**2 + C1)
  got = metrics.ssim(_const(x), _const(y), crop_border=0)
  assert got == pytest.approx(expected, abs=1e-12)


def test_ssim_constant_red_vs_black_on_y():
  red = np.zeros((12, 12, 3), np.uint8)
  red[..., 0] = 255
  black = np.zeros((12, 12, 3), np.uint8)
  # Y = 81.481 against 16, constant, so SSIM is the luminance term alone:
  # (2 * 81.481 * 16 + C1) / (81.481^2 + 16^2 + C1)
  # = (2607.392 + 6.5025) / (6639.153361 + 256 + 6.5025)
  # = 2613.8945 / 6901.655861 = 0.378734.
  yr, yb = 16 + 65.481, 16.0
  expected = (2 * yr * yb + C1) / (yr**2 + yb**2 + C1)
  got = metrics.ssim(red, black, 0, test_y_channel=True)
  assert got == pytest.approx(expected, abs=1e-12)
  assert got == pytest.approx(0.378734, abs=1e-6)


def test_ssim_symmetric():
  a, b = _random_pair(5)
  assert metrics.ssim(a, b, 2) == pytest.approx(
      metrics.ssim(b, a, 2), abs=1e-14)
  assert metrics.ssim(a, b, 0, True) == pytest.approx(
      metrics.ssim(b, a, 0, True), abs=1e-14)


def _direct_ssim(img, img2, crop_border, test_y_channel):
  """Straight from the definition: full 2-D window, scipy correlate2d."""
  from scipy import signal  # pylint: disable=g-import-not-at-top
  x = np.asarray(img, np.float64)
  y = np.asarray(img2, np.float64)
  if crop_border:
    x = x[crop_border:-crop_border, crop_border:-crop_border]
    y = y[crop_border:-crop_border, crop_border:-crop_border]
  if test_y_channel:
    coeffs = np.array([65.481, 128.553, 24.966])
    x = (16 + x @ coeffs / 255)[..., None]
    y = (16 + y @ coeffs / 255)[..., None]
  t = np.arange(-5, 6)
  g = np.exp(-t**2 / (2 * 1.5**2))
  window = np.outer(g, g) / np.outer(g, g).sum()
  filt = lambda z: signal.correlate2d(z, window, mode='valid')
  scores = []
  for c in range(x.shape[-1]):
    u, v = x[..., c], y[..., c]
    mu_u, mu_v = filt(u), filt(v)
    var_u = filt(u * u) - mu_u**2
    var_v = filt(v * v) - mu_v**2
    cov = filt(u * v) - mu_u * mu_v
    ssim_map = ((2 * mu_u * mu_v + C1) * (2 * cov + C2)
                / ((mu_u**2 + mu_v**2 + C1) * (var_u + var_v + C2)))
    scores.append(ssim_map.mean())
  return float(np.mean(scores))


@pytest.mark.parametrize('seed, crop_border, test_y_channel', [
    (6, 0, False), (7, 4, False), (8, 0, True), (9, 3, True)])
def test_ssim_matches_direct_2d_implementation(seed, crop_border,
                                               test_y_channel):
  a, b = _random_pair(seed)
  expected = _direct_ssim(a, b, crop_border, test_y_channel)
  got = metrics.ssim(a, b, crop_border, test_y_channel)
  assert got == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize('crop_border', [0, 4])
def test_ssim_matches_skimage(crop_border):
  # skimage's structural_similarity with these options uses the same formula:
  # gaussian_filter(sigma=1.5, truncate=3.5) is the same 11-tap kernel
  # (radius int(3.5 * 1.5 + 0.5) = 5), use_sample_covariance=False gives
  # E[x^2] - E[x]^2, data_range=255 gives our C1 and C2, and with
  # channel_axis it averages the per-channel means. It filters the full image
  # with reflect padding but then drops 5 pixels per side before the mean,
  # which leaves exactly our "valid" windows. It has no crop_border, so we
  # pass it the cropped images.
  from skimage import metrics as skm  # pylint: disable=g-import-not-at-top
  a, b = _random_pair(10, shape=(48, 40, 3))
  c = crop_border
  h, w = a.shape[:2]
  expected = skm.structural_similarity(
      a[c:h - c, c:w - c], b[c:h - c, c:w - c], gaussian_weights=True,
      sigma=1.5, use_sample_covariance=False, data_range=255, channel_axis=-1)
  assert metrics.ssim(a, b, crop_border) == pytest.approx(expected, abs=1e-10)


# ---------------------------------------------------------------------------
# Batched JAX versions.
# ---------------------------------------------------------------------------


def _batch(seeds, shape=(40, 36, 3)):
  pairs = [_random_pair(s, shape) for s in seeds]
  a = np.stack([p[0] for p in pairs])
  b = np.stack([p[1] for p in pairs])
  return a, b


@pytest.mark.parametrize('crop_border, test_y_channel', [
    (0, False), (4, False), (0, True), (4, True)])
def test_psnr_jax_matches_numpy(crop_border, test_y_channel):
  a, b = _batch([11, 12, 13])
  # One pair of nearly identical images (a single pixel off by 1), where
  # float32 precision matters most.
  b[2] = a[2]
  b[2, 10, 10, 1] ^= 1
  fn = jax.jit(functools.partial(metrics.psnr_jax, crop_border=crop_border,
                                 test_y_channel=test_y_channel))
  got = np.asarray(fn(jnp.asarray(a / 255.0, jnp.float32),
                      jnp.asarray(b / 255.0, jnp.float32)))
  expected = [metrics.psnr(x, y, crop_border, test_y_channel)
              for x, y in zip(a, b)]
  assert got.shape == (3,)
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-3)


def test_psnr_jax_identical_is_inf():
  a, _ = _batch([14, 15])
  x = jnp.asarray(a / 255.0, jnp.float32)
  assert np.all(np.isinf(np.asarray(metrics.psnr_jax(x, x))))


@pytest.mark.parametrize('crop_border, test_y_channel', [(0, False), (4, True)])
def test_ssim_jax_matches_numpy(crop_border, test_y_channel):
  a, b = _batch([16, 17])
  fn = jax.jit(functools.partial(metrics.ssim_jax, crop_border=crop_border,
                                 test_y_channel=test_y_channel))
  got = np.asarray(fn(jnp.asarray(a / 255.0, jnp.float32),
                      jnp.asarray(b / 255.0, jnp.float32)))
  expected = [metrics.ssim(x, y, crop_border, test_y_channel)
              for x, y in zip(a, b)]
  assert got.shape == (2,)
  np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


# ---------------------------------------------------------------------------
# Errors.
# ---------------------------------------------------------------------------


def test_shape_mismatch_names_both_shapes():
  for fn in (metrics.psnr, metrics.ssim):
    with pytest.raises(ValueError, match=r'\(16, 16, 3\).*\(16, 15, 3\)'):
      fn(_const(0), _const(0, (16, 15, 3)), 0)
  x = jnp.zeros((2, 16, 16, 3))
  for fn in (metrics.psnr_jax, metrics.ssim_jax):
    with pytest.raises(ValueError, match=r'\(2, 16, 16, 3\).*\(1, 16, 16, 3\)'):
      fn(x, x[:1])


def test_crop_border_leaving_nothing_raises():
  for fn in (metrics.psnr, metrics.ssim):
    with pytest.raises(ValueError, match='leaves nothing'):
      fn(_const(0, (10, 30, 3)), _const(1, (10, 30, 3)), 5)
  with pytest.raises(ValueError, match='leaves nothing'):
    metrics.psnr_jax(jnp.zeros((1, 8, 8, 3)), jnp.zeros((1, 8, 8, 3)), 4)


def test_ssim_too_small_raises():
  # 16 - 2 * 3 = 10 < 11 rows left.
  with pytest.raises(ValueError, match='at least 11x11'):
    metrics.ssim(_const(0), _const(1), 3)
  with pytest.raises(ValueError, match='at least 11x11'):
    metrics.ssim(_const(0, (10, 30)), _const(1, (10, 30)), 0)
  with pytest.raises(ValueError, match='at least 11x11'):
    metrics.ssim_jax(jnp.zeros((1, 10, 30, 3)), jnp.zeros((1, 10, 30, 3)))
  # PSNR has no such limit.
  assert math.isfinite(metrics.psnr(_const(0, (3, 3)), _const(1, (3, 3)), 0))


def test_float_images_on_0_1_scale_are_rejected():
  a = np.full((16, 16, 3), 0.5)
  with pytest.raises(ValueError, match='0-255 scale'):
    metrics.psnr(a, a * 0.9, 0)
