"""Tests for the MATLAB-compatible bicubic imresize.

The references here are deliberately written differently from the
implementation (which folds the padding into dense per-axis matrices): a
scalar kernel, an explicitly padded signal and a loop over output pixels.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax.degradations import imresize


def _keys_cubic(t: float) -> float:
  """Keys (1981) cubic convolution kernel, a = -0.5, one scalar at a time."""
  a = -0.5
  t = abs(t)
  if t <= 1:
    return (a + 2) * t**3 - (a + 3) * t**2 + 1
  if t <= 2:
    return a * t**3 - 5 * a * t**2 + 8 * a * t - 4 * a
  return 0.0


def _reference_resize_axis(img: np.ndarray, axis: int, scale: float,
                           antialiasing: bool) -> np.ndarray:
  """MATLAB imresize along one axis, as a loop over output pixels (float64)."""
  img = np.moveaxis(np.asarray(img, np.float64), axis, 0)
  in_len = img.shape[0]
  out_len = math.ceil(in_len * scale)
  stretch = scale < 1 and antialiasing
  width = 4.0 / scale if stretch else 4.0
  num_taps = math.ceil(width) + 2

  # Symmetric ("half-sample") padding, done by numpy itself, wide enough for
  # any tap; numpy reflects repeatedly when the pad exceeds the length.
  pad = num_taps + int(width) + 2
  padded = np.pad(img, [(pad, pad)] + [(0, 0)] * (img.ndim - 1),
                  mode='symmetric')

  out = np.zeros((out_len,) + img.shape[1:], np.float64)
  for x in range(1, out_len + 1):  # 1-based, as in MATLAB.
    u = x / scale + 0.5 * (1 - 1 / scale)
    left = math.floor(u - width / 2)
    acc = np.zeros(img.shape[1:], np.float64)
    total = 0.0
    for j in range(left, left + num_taps):
      if stretch:
        w = scale * _keys_cubic(scale * (u - j))
      else:
        w = _keys_cubic(u - j)
      acc += w * padded[j - 1 + pad]  # 1-based j -> padded 0-based.
      total += w
    out[x - 1] = acc / total
  return np.moveaxis(out, 0, axis)


def _reference_imresize(img, scale, antialiasing=True):
  """[..., H, W, C] -> [..., ceil(H*s), ceil(W*s), C], H first like MATLAB."""
  img = np.asarray(img, np.float64)
  h_axis, w_axis = img.ndim - 3, img.ndim - 2
  out = _reference_resize_axis(img, h_axis, scale, antialiasing)
  return _reference_resize_axis(out, w_axis, scale, antialiasing)


# 1. Parity with the independent loop reference.


# For integer 1/scale the stretched kernel's taps already sum to 1 (partition
# of unity); 0.3 and 0.75 are there so MATLAB's renormalisation is exercised.
@pytest.mark.parametrize('scale', [0.25, 0.5, 1 / 3, 0.3, 0.75, 2, 2.5, 3, 4])
def test_matches_reference_hwc(scale):
  rng = np.random.default_rng(0)
  x = rng.uniform(size=(17, 23, 3)).astype(np.float32)
  got = np.asarray(imresize(x, scale))
  want = _reference_imresize(x, scale)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


@pytest.mark.parametrize('scale', [0.25, 1 / 3, 3])
def test_matches_reference_nhwc(scale):
  rng = np.random.default_rng(1)
  x = rng.uniform(size=(2, 29, 20, 2)).astype(np.float32)
  got = np.asarray(imresize(jnp.asarray(x), scale))
  want = _reference_imresize(x, scale)
  assert got.shape == want.shape
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_matches_reference_without_antialiasing():
  rng = np.random.default_rng(2)
  x = rng.uniform(size=(19, 16, 1)).astype(np.float32)
  got = np.asarray(imresize(x, 0.25, antialiasing=False))
  want = _reference_imresize(x, 0.25, antialiasing=False)
  np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
  # Without antialiasing shrinking is plain cubic interpolation, which must
  # differ from the antialiased result (guards against the flag being ignored).
  assert np.abs(got - np.asarray(imresize(x, 0.25))).max() > 1e-2


def test_matches_reference_tiny_image():
  # A 16-tap kernel on a 3-pixel axis overhangs the image several times over,
  # so the mirroring has to wrap around more than once.
  rng = np.random.default_rng(3)
  x = rng.uniform(size=(3, 5, 1)).astype(np.float32)
  for scale in (0.25, 4):
    np.testing.assert_allclose(
        np.asarray(imresize(x, scale)), _reference_imresize(x, scale),
        rtol=0, atol=1e-5)


# 2. Worked values.


@pytest.mark.parametrize('scale', [0.25, 1 / 3, 2, 4])
def test_constant_image_stays_constant(scale):
  x = np.full((13, 18, 3), 0.37, np.float32)
  np.testing.assert_allclose(np.asarray(imresize(x, scale)), 0.37, atol=1e-6)


@pytest.mark.parametrize('scale', [0.25, 0.5, 1 / 3, 2, 3, 4])
def test_linear_ramp_is_reproduced_in_interior(scale):
  # Keys' a = -0.5 kernel reproduces linear functions exactly (for the
  # stretched kernel too when 1/scale is an integer: taps then sit
  # symmetrically around u). Output pixel x (1-based) samples the input at
  # u = x/scale + 0.5*(1 - 1/scale).
  in_w = 64
  ramp = np.arange(1, in_w + 1, dtype=np.float64) / in_w  # f(i) = i / W.
  x = np.broadcast_to(ramp[None, :, None], (5, in_w, 1)).astype(np.float32)
  got = np.asarray(imresize(x, scale))[0, :, 0]

  out_x = np.arange(1, got.shape[0] + 1)
  u = out_x / scale + 0.5 * (1 - 1 / scale)
  radius = 2 / scale if scale < 1 else 2  # Kernel half-width in input pixels.
  interior = (u - radius >= 1) & (u + radius <= in_w)
  assert interior.sum() >= 4
  np.testing.assert_allclose(got[interior], u[interior] / in_w, atol=1e-6)
  # At the borders the mirroring bends the ramp: proves the interior mask
  # (and the check above) is not vacuous.
  assert abs(got[0] - u[0] / in_w) > 1e-4


def test_hand_worked_enlarge_impulse():
  # Enlarge [0, 0, 1, 0, 0] by 2. Output x = 1..10 samples u = x/2 + 0.25
  # = 0.75, 1.25, ..., 5.25, so y(x) = cubic(u - 3) with
  #   cubic(t) = 1.5|t|^3 - 2.5|t|^2 + 1              for |t| <= 1,
  #   cubic(t) = -0.5|t|^3 + 2.5|t|^2 - 4|t| + 2      for 1 < |t| <= 2:
  #   cubic(0.25) = 0.0234375 - 0.15625 + 1           =  0.8671875
  #   cubic(0.75) = 0.6328125 - 1.40625 + 1           =  0.2265625
  #   cubic(1.25) = -0.9765625 + 3.90625 - 5 + 2      = -0.0703125
  #   cubic(1.75) = -2.6796875 + 7.65625 - 7 + 2      = -0.0234375
  #   cubic(2.25) = 0.
  # The weights at any u sum to 1 (e.g. 0.8671875 + 0.2265625 - 0.0703125
  # - 0.0234375), so normalisation changes nothing, and the mirrored copies of
  # the impulse (at -2 and 8) are >= 2.75 away from every u: no border effect.
  want = [0., -0.0234375, -0.0703125, 0.2265625, 0.8671875,
          0.8671875, 0.2265625, -0.0703125, -0.0234375, 0.]
  x = np.array([0, 0, 1, 0, 0], np.float32)[None, :, None]  # [1, 5, 1]
  got = np.asarray(imresize(x, 2))
  assert got.shape == (2, 10, 1)
  # A single row mirrors onto itself, so both output rows are the same.
  np.testing.assert_allclose(got[0, :, 0], want, atol=1e-7)
  np.testing.assert_allclose(got[1, :, 0], want, atol=1e-7)


def test_hand_worked_shrink_by_two_interior():
  # Shrink by 2: h(t) = 0.5 * cubic(t / 2), output x sits at u = 2x - 0.5,
  # taps at distances +-0.5, +-1.5, +-2.5, +-3.5 with unnormalised weights
  # 0.5 * cubic(0.25, 0.75, 1.25, 1.75) = 0.43359375, 0.11328125,
  # -0.03515625, -0.01171875 (sum of the 8 taps: 1.0, so no renormalising).
  # An impulse at input pixel 8 is seen by outputs x = 3..6 at distances
  # u - 8 = -2.5, -0.5, 1.5, 3.5, i.e. -0.03515625, 0.43359375, 0.11328125,
  # -0.01171875; x = 1, 2, 7, 8 (|u - 8| >= 4.5) see nothing. The image is
  # long enough (16) that no mirrored copy of the impulse comes into reach.
  x = np.zeros((1, 16, 1), np.float32)
  x[0, 7, 0] = 1  # 1-based pixel 8.
  got = np.asarray(imresize(x, 0.5))[0, :, 0]
  want = [0., 0., -0.03515625, 0.43359375, 0.11328125, -0.01171875, 0., 0.]
  np.testing.assert_allclose(got, want, atol=1e-7)


# 3. Agreement with jax.image.resize away from the borders.


@pytest.mark.parametrize('scale', [0.25, 0.5, 2, 4])
def test_matches_jax_image_resize_in_interior(scale):
  rng = np.random.default_rng(4)
  in_h, in_w = 48, 40  # Divisible by 4, so jax sees exactly the same scale.
  x = rng.uniform(size=(2, in_h, in_w, 3)).astype(np.float32)
  got = np.asarray(imresize(x, scale))
  out_h, out_w = got.shape[1:3]
  want = np.asarray(jax.image.resize(
      x, (2, out_h, out_w, 3), method='cubic', antialias=True,
      precision=jax.lax.Precision.HIGHEST))

  def interior(out_len, in_len):
    # Output pixels whose whole kernel support lies inside the image, where
    # MATLAB's mirroring and jax's renormalisation cannot matter.
    u = (np.arange(out_len) + 0.5) / scale - 0.5  # 0-based centres.
    radius = 2 / scale if scale < 1 else 2
    return (u - radius >= 0) & (u + radius <= in_len - 1)

  rows, cols = interior(out_h, in_h), interior(out_w, in_w)
  assert rows.sum() >= 4 and cols.sum() >= 4
  np.testing.assert_allclose(
      got[:, rows][:, :, cols], want[:, rows][:, :, cols], rtol=0, atol=1e-5)
  # The borders do differ (mirror vs. renormalise): this is why we need our
  # own implementation at all.
  assert np.abs(got - want).max() > 1e-4


# 4. Shapes, dtypes, jit and errors.


@pytest.mark.parametrize('shape,scale,want', [
    ((17, 23, 3), 0.25, (5, 6, 3)),
    ((17, 23, 3), 1 / 3, (6, 8, 3)),
    ((17, 23, 3), 3, (51, 69, 3)),
    ((2, 128, 128, 3), 0.25, (2, 32, 32, 3)),
    ((1, 7, 9, 1), 2.5, (1, 18, 23, 1)),
])
def test_output_shape_is_ceil(shape, scale, want):
  assert imresize(np.zeros(shape, np.float32), scale).shape == want


@pytest.mark.parametrize('dtype', [jnp.float32, jnp.bfloat16, jnp.float16])
def test_dtype_is_preserved(dtype):
  rng = np.random.default_rng(5)
  x32 = rng.uniform(size=(12, 12, 3)).astype(np.float32)
  x = jnp.asarray(x32, dtype)
  y = imresize(x, 0.5)
  assert isinstance(y, jax.Array)
  assert y.dtype == dtype
  # Low precision only costs the final rounding, not the whole computation.
  want = _reference_imresize(np.asarray(x, np.float32), 0.5)
  tol = {jnp.float32: 1e-5, jnp.float16: 2e-3, jnp.bfloat16: 1e-2}[dtype]
  np.testing.assert_allclose(np.asarray(y, np.float32), want, atol=tol)


def test_works_under_jit():
  rng = np.random.default_rng(6)
  x = jnp.asarray(rng.uniform(size=(4, 32, 32, 3)).astype(np.float32))
  fn = jax.jit(lambda v: imresize(v, 0.25))
  got = fn(x)
  assert got.shape == (4, 8, 8, 3)
  np.testing.assert_allclose(np.asarray(got), np.asarray(imresize(x, 0.25)),
                             atol=1e-6)
  # Gradients flow (e.g. for degradation-aware losses).
  grad = jax.grad(lambda v: imresize(v, 0.25).sum())(x)
  assert grad.shape == x.shape and bool(jnp.all(jnp.isfinite(grad)))


@pytest.mark.parametrize('scale', [0, -0.5, float('inf'), float('nan')])
def test_rejects_bad_scale(scale):
  with pytest.raises(ValueError, match='scale'):
    imresize(np.zeros((8, 8, 3), np.float32), scale)


def test_rejects_non_static_scale():
  with pytest.raises(TypeError, match='static'):
    jax.jit(lambda s: imresize(np.zeros((8, 8, 3), np.float32), s))(0.5)


@pytest.mark.parametrize('shape', [(8, 8), (8,), (1, 2, 8, 8, 3)])
def test_rejects_bad_rank(shape):
  with pytest.raises(ValueError, match='HWC'):
    imresize(np.zeros(shape, np.float32), 0.5)


def test_rejects_integer_images():
  with pytest.raises(ValueError, match='float'):
    imresize(np.zeros((8, 8, 3), np.uint8), 0.5)
