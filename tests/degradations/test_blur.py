"""sr_jax.degradations.blur: per-sample kernels applied as scipy's mirror
correlation."""
import jax
import numpy as np
import pytest
import scipy.ndimage
import scipy.special

from sr_jax.degradations import blur


# Blur.
@pytest.mark.parametrize('method', ['conv', 'fft'])
def test_apply_kernels_matches_scipy_mirror_correlation(method):
  rng = np.random.default_rng(0)
  x = rng.random((3, 12, 17, 3), np.float32)
  ks = rng.random((3, 7, 7), np.float32)  # asymmetric: checks orientation
  ks /= ks.sum((1, 2), keepdims=True)
  y = np.asarray(jax.jit(blur.apply_kernels, static_argnums=2)(x, ks, method))
  assert y.shape == x.shape
  for n in range(3):
    for c in range(3):
      # scipy 'mirror' is d c b | a b c d (edge not repeated), which is
      # torch's / numpy's 'reflect' and cv2's BORDER_REFLECT_101.
      ref = scipy.ndimage.correlate(x[n, :, :, c].astype(np.float64), ks[n],
                                    mode='mirror')
      np.testing.assert_allclose(y[n, :, :, c], ref, atol=1e-5)
  # Convolution with the flipped kernel is the same thing.
  ref = scipy.ndimage.convolve(x[1, :, :, 2], ks[1, ::-1, ::-1], mode='mirror')
  np.testing.assert_allclose(y[1, :, :, 2], ref, atol=1e-5)


def test_apply_kernels_with_delta_is_identity_and_checks_shapes():
  x = np.random.default_rng(1).random((2, 9, 8, 1), np.float32)
  delta = np.zeros((2, 5, 5), np.float32)
  delta[:, 2, 2] = 1
  np.testing.assert_allclose(blur.apply_kernels(x, delta, 'conv'), x,
                             atol=1e-7)
  np.testing.assert_allclose(blur.apply_kernels(x, delta, 'fft'), x,
                             atol=1e-6)
  with pytest.raises(ValueError, match="'auto', 'conv' or 'fft'"):
    blur.apply_kernels(x, delta, 'direct')
  with pytest.raises(ValueError, match='one per image'):
    blur.apply_kernels(x, delta[:1])
  with pytest.raises(ValueError, match='too large'):
    blur.apply_kernels(x, np.ones((2, 19, 19), np.float32) / 361)
