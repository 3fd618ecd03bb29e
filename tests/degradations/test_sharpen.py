"""sr_jax.degradations.sharpen: BasicSR's USM sharpening, written with scipy."""
import numpy as np
import pytest

from sr_jax import degradations
from tests.helpers.degradations import _hr_batch


@pytest.mark.slow
def test_usm_sharpen_matches_basicsr_formula_with_scipy():
  import scipy.ndimage  # pylint: disable=g-import-not-at-top

  from sr_jax.degradations import sharpen  # pylint: disable=g-import-not-at-top
  # cv2.getGaussianKernel(51, 0) uses sigma = 0.3 * (25 - 1) + 0.8 = 8.
  assert sharpen.opencv_gaussian_sigma(51) == pytest.approx(8.0)
  kernel = sharpen.usm_kernel(50)
  assert kernel.shape == (51, 51)
  np.testing.assert_allclose(kernel.sum(), 1.0, atol=1e-6)
  d = np.arange(51) - 25
  g = np.exp(-d ** 2 / 128.0)
  np.testing.assert_allclose(kernel, np.outer(g, g) / g.sum() ** 2,
                             rtol=1e-5)
  x = _hr_batch(1)[0].astype(np.float64)
  k = np.outer(g, g) / g.sum() ** 2
  blur = lambda im: np.stack([scipy.ndimage.correlate(
      im[..., c], k, mode='mirror') for c in range(im.shape[-1])], -1)
  residual = x - blur(x)
  soft = blur((np.abs(residual) * 255 > 10).astype(np.float64))
  sharp = np.clip(x + 0.5 * residual, 0, 1)
  expected = soft * sharp + (1 - soft) * x
  got = np.asarray(degradations.usm_sharpen(x[None].astype(np.float32)))[0]
  np.testing.assert_allclose(got, expected, atol=2e-5)
  flat = np.full((1, 40, 40, 3), 0.3, np.float32)
  np.testing.assert_allclose(degradations.usm_sharpen(flat), flat, atol=1e-6)
