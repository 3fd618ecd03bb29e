"""Low / high frequency split of images: DSGAN's filters (Fritsche et al.
2019, Sec. 3.2).

DSGAN trains its down-sampling generator with an L1 loss on the low
frequencies of its output (against its bicubic input) and a GAN loss on the
high frequencies (against real LR-domain images). The low-pass is a box
(average) filter of `kernel_size`, or a Gaussian one (sigma = size / 6):

  low_pass(x, pad=False)   'valid' filtering, the colour loss's form (the
                           released loss uses no padding);
  low_pass(x, pad=True)    'same' size, averaging only the pixels inside the
                           image at the borders (PyTorch's AvgPool2d with
                           count_include_pad=False, the discriminator's
                           filter);
  high_pass(x)             x - low_pass(x, pad=True), mapped to 0.5 + 0.5 r
                           as the released code normalises it.

x: [N, H, W, C] float, any range; the filters are per channel.
"""
import jax
import jax.numpy as jnp
import numpy as np


def _kernel(kernel_size: int, gaussian: bool) -> np.ndarray:
  if kernel_size < 1 or kernel_size % 2 == 0:
    raise ValueError(f'kernel_size must be odd and >= 1; got {kernel_size}.')
  if not gaussian:
    return np.full((kernel_size, kernel_size), 1.0 / kernel_size**2,
                   np.float32)
  # DSGAN's GaussianFilter: variance (size / 6)^2 about the centre.
  d = np.arange(kernel_size) - (kernel_size - 1) / 2.0
  g = np.exp(-(d[:, None]**2 + d[None, :]**2) / (2 * (kernel_size / 6.0)**2))
  return (g / g.sum()).astype(np.float32)


def _filter(x: jax.Array, kernel: np.ndarray, padding: int) -> jax.Array:
  channels = x.shape[-1]
  k = jnp.asarray(np.tile(kernel[:, :, None, None], (1, 1, 1, channels)),
                  x.dtype)
  return jax.lax.conv_general_dilated(
      x, k, (1, 1), [(padding, padding)] * 2,
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=channels)


def low_pass(x: jax.Array, kernel_size: int = 5, gaussian: bool = False,
             pad: bool = True) -> jax.Array:
  """Box (or Gaussian) low-pass per channel; see the module docstring."""
  kernel = _kernel(kernel_size, gaussian)
  if not pad:
    return _filter(x, kernel, 0)
  r = kernel_size // 2
  total = _filter(x, kernel, r)
  if gaussian:
    # GaussianFilter pads with zeros and does not renormalise.
    return total
  # Average over the pixels inside the image only (count_include_pad=False).
  ones = jnp.ones((1,) + x.shape[1:3] + (1,), x.dtype)
  return total / _filter(ones, kernel, r)


def high_pass(x: jax.Array, kernel_size: int = 5, gaussian: bool = False,
              normalize: bool = True) -> jax.Array:
  """x - low_pass(x) ('same' size), as 0.5 + 0.5 (x - low) if normalize."""
  residual = x - low_pass(x, kernel_size, gaussian, pad=True)
  return 0.5 + 0.5 * residual if normalize else residual
