"""Unsharp masking of HR targets, as Real-ESRGAN trains (BasicSR `USMSharp`).

Real-ESRGAN sharpens its ground truth before degrading it and uses the
sharpened image as the target of the pixel and perceptual losses (its
`l1_gt_usm` / `percep_gt_usm`), while the discriminator sees the plain one:
the network learns to output slightly sharpened images, which the paper found
visually better (Wang et al. 2021, sec. 4.4).

  blur      = x * G           (G: 51 x 51 Gaussian, sigma from OpenCV's rule)
  residual  = x - blur
  mask      = |residual| * 255 > threshold, then softened: soft = mask * G
  sharp     = clip(x + weight * residual, 0, 1)
  out       = soft * sharp + (1 - soft) * x
"""
import jax.numpy as jnp
import numpy as np

from sr_jax.degradations import blur


def opencv_gaussian_sigma(ksize: int) -> float:
  """cv2.getGaussianKernel's sigma for sigma <= 0:
  0.3 ((k - 1) / 2 - 1) + 0.8."""
  return 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8


def usm_kernel(radius: int = 50) -> np.ndarray:
  """[k, k] float32 Gaussian, k = radius rounded up to odd (BasicSR's rule)."""
  ksize = radius + 1 if radius % 2 == 0 else radius
  sigma = opencv_gaussian_sigma(ksize)
  d = np.arange(ksize) - ksize // 2
  g = np.exp(-d.astype(np.float64) ** 2 / (2 * sigma ** 2))
  g /= g.sum()
  return np.outer(g, g).astype(np.float32)


def usm_sharpen(x, weight: float = 0.5, threshold: float = 10.0,
                radius: int = 50):
  """BasicSR's USMSharp on a batch.

  Args:
    x: [N, H, W, C] float in [0, 1]; H and W must exceed the blur's
      reflect padding k // 2 (25 for radius 50).
    weight: how much of the residual is added back.
    threshold: residuals below this (on the 0-255 scale) are left alone.
    radius: Gaussian size (50 -> 51 x 51, sigma 8).
  Returns:
    [N, H, W, C] float32 in [0, 1].
  """
  x = jnp.asarray(x, jnp.float32)
  single = usm_kernel(radius)
  kernel = jnp.broadcast_to(single, (x.shape[0],) + single.shape)
  blurred = blur.apply_kernels(x, kernel)
  residual = x - blurred
  mask = (jnp.abs(residual) * 255.0 > threshold).astype(jnp.float32)
  soft = blur.apply_kernels(mask, kernel)
  sharp = jnp.clip(x + weight * residual, 0.0, 1.0)
  return soft * sharp + (1.0 - soft) * x
