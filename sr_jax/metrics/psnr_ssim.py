"""PSNR and SSIM with BasicSR's evaluation protocol.

The numpy functions `psnr` and `ssim` are the reference for every number we
report: they follow BasicSR's `calculate_psnr` / `calculate_ssim`
(basicsr/metrics/psnr_ssim.py), the protocol most SR papers report with:

  1. Remove `crop_border` pixels from every side (SR models are usually
     evaluated with crop_border = scale, because borders are unreliable).
  2. If `test_y_channel`, convert RGB to BT.601 Y on the 0-255 scale (float,
     not rounded; see color.py) and evaluate Y only.
  3. Compute in float64 on the 0-255 scale.

PSNR = 10 log10(255^2 / MSE), with the MSE over all pixels and channels; `inf`
when the images are identical.

SSIM follows Wang et al. 2004 as implemented in BasicSR (itself a port of the
authors' MATLAB `ssim_index`): an 11x11 Gaussian window with sigma 1.5
normalised to sum 1, only windows fully inside the image ("valid"; BasicSR
filters with cv2.filter2D then crops 5 pixels), C1 = (0.01 * 255)^2,
C2 = (0.03 * 255)^2, variances as E[x^2] - E[x]^2 of the filtered maps
(population, not sample, statistics), the mean of the SSIM map per channel,
then the mean over channels.

`psnr_jax` and `ssim_jax` compute the same quantities on batches inside jitted
code (validation during training). They run in the input's precision (float32
by default in JAX), so they only agree with the numpy reference to about
1e-5 dB and 1e-7 SSIM on random 128x128 images (more on adversarial inputs);
use the numpy functions for numbers that go in a table.
"""
import jax.numpy as jnp
import numpy as np

from sr_jax.metrics import color

SSIM_WINDOW_SIZE = 11
SSIM_SIGMA = 1.5
# Stabilising constants of Wang et al. 2004, eq. (7)-(9), for data range 255.
SSIM_C1 = (0.01 * 255.0) ** 2
SSIM_C2 = (0.03 * 255.0) ** 2


def _gaussian_window_1d() -> np.ndarray:
  """[11] float64 Gaussian taps (sigma 1.5), summing to 1.

  Same numbers as cv2.getGaussianKernel(11, 1.5) that BasicSR uses; the 2-D
  window is np.outer of this with itself, which also sums to 1.
  """
  x = np.arange(SSIM_WINDOW_SIZE, dtype=np.float64) - SSIM_WINDOW_SIZE // 2
  w = np.exp(-(x ** 2) / (2.0 * SSIM_SIGMA ** 2))
  return w / w.sum()


def _valid_filter(x, axes: tuple[int, int]):
  """Correlates `x` with the 11x11 Gaussian window, keeping "valid" outputs.

  Works on numpy and jax arrays alike (only slicing and arithmetic). Because
  the 2-D window is an outer product, filtering along each axis in turn is
  exact (up to rounding) and costs 2 * 11 instead of 121 multiply-adds per
  pixel.

  Args:
    x: array whose `axes` are the two spatial axes (size >= 11 each).
    axes: the (height, width) axes of `x`.

  Returns:
    `x` filtered, with both spatial axes shrunk by 10 (5 on each side).
  """
  # Taps in the input's dtype, so float32 jax inputs stay float32.
  w = _gaussian_window_1d().astype(x.dtype)
  for axis in axes:
    n = x.shape[axis] - SSIM_WINDOW_SIZE + 1
    head = (slice(None),) * axis
    out = w[0] * x[head + (slice(0, n),)]
    for i in range(1, SSIM_WINDOW_SIZE):
      out = out + w[i] * x[head + (slice(i, i + n),)]
    x = out
  return x


def _ssim_map(x, y, axes: tuple[int, int]):
  """Per-pixel SSIM of two images on the 0-255 scale (numpy or jax arrays).

  Args:
    x, y: same-shaped arrays on the 0-255 scale; `axes` are the spatial axes.
    axes: the (height, width) axes.

  Returns:
    SSIM map, the spatial axes shrunk by 10 ("valid" windows only).
  """
  mu_x = _valid_filter(x, axes)
  mu_y = _valid_filter(y, axes)
  # Population (co)variances from filtered moments, as in BasicSR/MATLAB; this
  # is what makes SSIM of two constant images equal the luminance term only.
  var_x = _valid_filter(x * x, axes) - mu_x * mu_x
  var_y = _valid_filter(y * y, axes) - mu_y * mu_y
  cov_xy = _valid_filter(x * y, axes) - mu_x * mu_y
  num = (2 * mu_x * mu_y + SSIM_C1) * (2 * cov_xy + SSIM_C2)
  den = (mu_x * mu_x + mu_y * mu_y + SSIM_C1) * (var_x + var_y + SSIM_C2)
  return num / den


# ---------------------------------------------------------------------------
# numpy reference.
# ---------------------------------------------------------------------------


def _prepare(img, img2, crop_border: int, test_y_channel: bool, metric: str):
  """Validates, crops and (optionally) converts to Y, as BasicSR does.

  Returns:
    Two [H', W', C] float64 arrays on the 0-255 scale (C = 1 for Y or grey).
  """
  img, img2 = np.asarray(img), np.asarray(img2)
  if img.shape != img2.shape:
    raise ValueError(f'{metric}: images have different shapes: {img.shape} vs '
                     f'{img2.shape}.')
  if img.ndim not in (2, 3):
    raise ValueError(f'{metric}: expected [H, W] or [H, W, C] images, got '
                     f'shapes {img.shape} and {img2.shape}.')
  for a in (img, img2):
    if not (np.issubdtype(a.dtype, np.integer)
            or np.issubdtype(a.dtype, np.floating)):
      raise ValueError(f'{metric}: expected uint8 or float images, got dtype '
                       f'{a.dtype}.')
  # The classic silent bug is passing [0, 1] floats, which shifts PSNR by
  # 48 dB; on the 0-255 scale two images both <= 1 everywhere are implausible.
  floats = all(np.issubdtype(a.dtype, np.floating) for a in (img, img2))
  if floats and img.size:
    top = max(np.max(img), np.max(img2))
    if 0 < top <= 1.0:
      raise ValueError(f'{metric}: float images must be on the 0-255 scale, '
                       f'but both are <= 1 (max {top}); multiply by 255.')
  if crop_border < 0:
    raise ValueError(f'{metric}: crop_border must be >= 0, got {crop_border}.')
  h, w = img.shape[:2]
  if h - 2 * crop_border <= 0 or w - 2 * crop_border <= 0:
    raise ValueError(f'{metric}: crop_border={crop_border} leaves nothing of '
                     f'images with shapes {img.shape} and {img2.shape}.')
  if img.ndim == 2:
    img, img2 = img[..., None], img2[..., None]
  # Slice with explicit ends: `img[0:-0]` would be empty.
  img = img[crop_border:h - crop_border, crop_border:w - crop_border]
  img2 = img2[crop_border:h - crop_border, crop_border:w - crop_border]
  img, img2 = img.astype(np.float64), img2.astype(np.float64)
  # Like BasicSR's to_y_channel, only 3-channel images are converted; grey
  # images are evaluated as they are.
  if test_y_channel and img.shape[-1] == 3:
    img, img2 = color.rgb_to_y(img)[..., None], color.rgb_to_y(img2)[..., None]
  return img, img2


def psnr(img, img2, crop_border: int, test_y_channel: bool = False) -> float:
  """Peak signal-to-noise ratio in dB, BasicSR's `calculate_psnr`.

  Args:
    img, img2: [H, W, 3] RGB (or [H, W] / [H, W, C]) images, uint8 or float on
      the 0-255 scale (not [0, 1]).
    crop_border: pixels removed from each side before evaluation (0 = none).
    test_y_channel: evaluate on BT.601 Y (0-255 scale) instead of RGB. Grey
      images are evaluated as they are.

  Returns:
    PSNR in dB; `inf` for identical images.
  """
  a, b = _prepare(img, img2, crop_border, test_y_channel, 'psnr')
  mse = np.mean((a - b) ** 2)
  if mse == 0:
    return float('inf')
  return float(10.0 * np.log10(255.0 ** 2 / mse))


def ssim(img, img2, crop_border: int, test_y_channel: bool = False) -> float:
  """Structural similarity, BasicSR's `calculate_ssim`.

  Args:
    img, img2: [H, W, 3] RGB (or [H, W] / [H, W, C]) images, uint8 or float on
      the 0-255 scale (not [0, 1]); at least 11x11 after cropping.
    crop_border: pixels removed from each side before evaluation (0 = none).
    test_y_channel: evaluate on BT.601 Y (0-255 scale) instead of RGB. Grey
      images are evaluated as they are.

  Returns:
    Mean SSIM, in [-1, 1]; 1 for identical images. With several channels, the
    mean over channels of each channel's mean SSIM.
  """
  a, b = _prepare(img, img2, crop_border, test_y_channel, 'ssim')
  if min(a.shape[:2]) < SSIM_WINDOW_SIZE:
    raise ValueError(
        f'ssim: needs images of at least {SSIM_WINDOW_SIZE}x{SSIM_WINDOW_SIZE} '
        f'after crop_border={crop_border}; got shapes {np.shape(img)} and '
        f'{np.shape(img2)}.')
  per_channel = _ssim_map(a, b, axes=(0, 1)).mean(axis=(0, 1))
  return float(per_channel.mean())


# ---------------------------------------------------------------------------
# Batched JAX versions, for validation inside jitted code.
# ---------------------------------------------------------------------------


def _check_batch(a, b, crop_border: int, test_y_channel: bool, metric: str):
  """Static (trace-time) checks of [N, H, W, C] inputs; returns float arrays."""
  if a.shape != b.shape:
    raise ValueError(f'{metric}: images have different shapes: {a.shape} vs '
                     f'{b.shape}.')
  if a.ndim != 4:
    raise ValueError(f'{metric}: expected [N, H, W, C] batches, got shapes '
                     f'{a.shape} and {b.shape}.')
  if test_y_channel and a.shape[-1] != 3:
    raise ValueError(f'{metric}: test_y_channel needs RGB (C = 3), got shapes '
                     f'{a.shape} and {b.shape}.')
  if crop_border < 0:
    raise ValueError(f'{metric}: crop_border must be >= 0, got {crop_border}.')
  h, w = a.shape[1:3]
  if h - 2 * crop_border <= 0 or w - 2 * crop_border <= 0:
    raise ValueError(f'{metric}: crop_border={crop_border} leaves nothing of '
                     f'images with shapes {a.shape} and {b.shape}.')
  dtype = jnp.promote_types(jnp.result_type(a, b), jnp.float32)
  crop = (slice(None), slice(crop_border, h - crop_border),
          slice(crop_border, w - crop_border))
  return a[crop].astype(dtype), b[crop].astype(dtype)


def psnr_jax(a: jnp.ndarray, b: jnp.ndarray, crop_border: int = 0,
             test_y_channel: bool = False) -> jnp.ndarray:
  """Per-image PSNR of two batches, same protocol as `psnr`.

  `crop_border` and `test_y_channel` must be Python values (static under jit).

  Args:
    a, b: [N, H, W, C] float images in [0, 1] (C = 3 RGB for test_y_channel).
    crop_border: pixels removed from each side before evaluation (0 = none).
    test_y_channel: evaluate on BT.601 Y (0-255 scale) instead of RGB.

  Returns:
    [N] PSNR in dB on the 0-255 scale (`inf` where a pair is identical).
  """
  a, b = _check_batch(a, b, crop_border, test_y_channel, 'psnr_jax')
  # Subtract in [0, 1] before scaling: keeps small differences exact in
  # float32. Y is affine in RGB, so the Y difference is the weighted RGB
  # difference (the +16 offset cancels).
  diff = a - b
  if test_y_channel:
    diff = (diff @ jnp.asarray(color.Y_WEIGHTS, diff.dtype))[..., None]
  else:
    diff = diff * 255.0
  mse = jnp.mean(diff * diff, axis=(1, 2, 3))
  return 10.0 * jnp.log10(255.0 ** 2 / mse)


def ssim_jax(a: jnp.ndarray, b: jnp.ndarray, crop_border: int = 0,
             test_y_channel: bool = False) -> jnp.ndarray:
  """Per-image SSIM of two batches, same protocol as `ssim`.

  `crop_border` and `test_y_channel` must be Python values (static under jit).

  Args:
    a, b: [N, H, W, C] float images in [0, 1] (C = 3 RGB for test_y_channel),
      at least 11x11 after cropping.
    crop_border: pixels removed from each side before evaluation (0 = none).
    test_y_channel: evaluate on BT.601 Y (0-255 scale) instead of RGB.

  Returns:
    [N] mean SSIM (mean over channels of each channel's mean SSIM).
  """
  a, b = _check_batch(a, b, crop_border, test_y_channel, 'ssim_jax')
  if min(a.shape[1:3]) < SSIM_WINDOW_SIZE:
    raise ValueError(
        f'ssim_jax: needs images of at least {SSIM_WINDOW_SIZE}x'
        f'{SSIM_WINDOW_SIZE} after crop_border={crop_border}; got cropped '
        f'shapes {a.shape} and {b.shape}.')
  if test_y_channel:
    a, b = color.rgb_to_y_jax(a)[..., None], color.rgb_to_y_jax(b)[..., None]
  else:
    a, b = a * 255.0, b * 255.0
  ssim_map = _ssim_map(a, b, axes=(1, 2))
  return ssim_map.mean(axis=(1, 2)).mean(axis=-1)
