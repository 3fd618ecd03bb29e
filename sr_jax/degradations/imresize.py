"""MATLAB-compatible bicubic `imresize` in JAX.

SR papers build their low-resolution inputs with MATLAB's
`imresize(img, 1/s, 'bicubic')` (and BasicSR reproduces it), so published
PSNR numbers are only comparable if our LR images come from the same filter.
`jax.image.resize(..., 'cubic', antialias=True)` uses the same Keys kernel but
handles borders differently (it drops out-of-image taps and renormalises,
MATLAB mirrors the image), so the outermost pixels differ.

The resize is separable and linear, so for each axis we build a dense
[out_len, in_len] matrix once in numpy (static shapes, cached), fold MATLAB's
symmetric padding into it, and apply it with one einsum per axis. That keeps
the op a pair of matmuls under `jax.jit` on CPU, GPU and TPU, with no gathers.
"""
import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np

# MATLAB's bicubic kernel is Keys' cubic convolution with a = -0.5 and
# support [-2, 2].
_KERNEL_WIDTH = 4.0


def _cubic(t: np.ndarray) -> np.ndarray:
  """Keys cubic kernel with a = -0.5, evaluated elementwise in float64."""
  a = np.abs(t)
  a2 = a * a
  a3 = a2 * a
  inner = (1.5 * a3 - 2.5 * a2 + 1.0) * (a <= 1.0)
  outer = (-0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0) * ((a > 1.0) & (a <= 2.0))
  return inner + outer


def _output_len(in_len: int, scale: float) -> int:
  # MATLAB: ceil(scale * input_size), evaluated in double precision, so e.g.
  # 17 * (1/3) -> 6 and 33 * (1/3) -> 11.
  return math.ceil(in_len * scale)


@functools.lru_cache(maxsize=256)
def _resize_matrix(in_len: int, scale: float, antialiasing: bool) -> np.ndarray:
  """Returns the [out_len, in_len] float64 matrix resizing one axis.

  Follows MATLAB's `contributions()` (imresize.m) step by step; the row for
  output pixel x holds the normalised kernel weights of every input pixel,
  with the taps that fall outside the image mirrored back in.
  """
  out_len = _output_len(in_len, scale)
  kernel_width = _KERNEL_WIDTH
  if scale < 1 and antialiasing:
    # Stretch the kernel by 1/scale to low-pass before decimating; the factor
    # `scale` in front is cancelled by the normalisation below anyway.
    kernel = lambda t: scale * _cubic(scale * t)
    kernel_width /= scale
  else:
    kernel = _cubic

  # 1-based output coordinates mapped to 1-based input coordinates, so that
  # pixel centres (not corners) line up between the two grids.
  x = np.arange(1, out_len + 1, dtype=np.float64)
  u = x / scale + 0.5 * (1.0 - 1.0 / scale)
  left = np.floor(u - kernel_width / 2.0).astype(np.int64)
  num_taps = int(math.ceil(kernel_width)) + 2
  indices = left[:, None] + np.arange(num_taps)[None, :]  # 1-based, may be OOB
  weights = kernel(u[:, None] - indices)
  weights = weights / weights.sum(axis=1, keepdims=True)

  # MATLAB mirrors with aux = [1..L, L..1] indexed mod 2L: symmetric padding
  # that repeats the edge pixel and works for any overhang, even one longer
  # than the image (tiny images with a 16-tap kernel).
  period = 2 * in_len
  m = np.mod(indices - 1, period)
  src = np.where(m < in_len, m, period - 1 - m)  # 0-based source pixel

  # Taps that mirror onto the same pixel add up; MATLAB's dropping of
  # all-zero weight columns is a no-op once the weights live in a matrix.
  mat = np.zeros((out_len, in_len), dtype=np.float64)
  rows = np.broadcast_to(np.arange(out_len)[:, None], src.shape)
  np.add.at(mat, (rows, src), weights)
  mat.setflags(write=False)  # Shared through the cache: keep it immutable.
  return mat


def _check_scale(scale) -> float:
  if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
    raise TypeError(
        f'imresize: scale must be a static Python float (e.g. 0.25 to shrink '
        f'by 4), got {type(scale).__name__}. It sets output shapes, so it '
        'cannot be a traced JAX value.')
  scale = float(scale)
  if not math.isfinite(scale) or scale <= 0:
    raise ValueError(
        f'imresize: scale must be a finite number > 0 (MATLAB convention: '
        f'0.25 shrinks by 4, 4 enlarges by 4), got {scale}.')
  return scale


def imresize(x, scale: float, antialiasing: bool = True) -> jax.Array:
  """Bicubic resize matching MATLAB's `imresize(x, scale, 'bicubic')`.

  Matches MATLAB on double images to ~1e-6 (float32 arithmetic). No clipping
  or rounding is applied, so bicubic overshoot can leave [0, 1] slightly.

  Args:
    x: [H, W, C] or [N, H, W, C] float image(s) in [0, 1]; jax or numpy.
    scale: static multiplier for both H and W, MATLAB convention: 0.25 shrinks
      by 4, 4 enlarges by 4. The output is [ceil(H*scale), ceil(W*scale)].
    antialiasing: when shrinking, widen the kernel by 1/scale (MATLAB's
      default). Ignored when scale >= 1.

  Returns:
    Array of the same rank and dtype as `x` (as a jax array), with H and W
    resized. Low-precision inputs (bf16, f16) are computed in float32.
  """
  scale = _check_scale(scale)
  x = jnp.asarray(x)
  if x.ndim not in (3, 4):
    raise ValueError(
        f'imresize: expected an HWC [H, W, C] or NHWC [N, H, W, C] image, got '
        f'shape {x.shape} (rank {x.ndim}). Add a trailing channel axis for '
        'grayscale images.')
  if not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(
        f'imresize: expected a float image in [0, 1], got dtype {x.dtype}. '
        'Convert first, e.g. x.astype(jnp.float32) / 255.')
  in_h, in_w = x.shape[-3], x.shape[-2]
  if in_h == 0 or in_w == 0:
    raise ValueError(f'imresize: empty image of shape {x.shape}.')

  # bf16 weights would be off by ~1e-3 and accumulate badly; float64 stays
  # float64 when jax_enable_x64 is on.
  compute_dtype = jnp.promote_types(x.dtype, jnp.float32)
  mat_h = jnp.asarray(_resize_matrix(in_h, scale, bool(antialiasing)),
                      compute_dtype)
  mat_w = jnp.asarray(_resize_matrix(in_w, scale, bool(antialiasing)),
                      compute_dtype)
  # HIGHEST: TPUs and Ampere+ GPUs otherwise run f32 matmuls in bf16/tf32,
  # which alone would break the 1e-5 match with MATLAB.
  precision = jax.lax.Precision.HIGHEST
  y = jnp.einsum('oh,...hwc->...owc', mat_h, x.astype(compute_dtype),
                 precision=precision)
  y = jnp.einsum('pw,...hwc->...hpc', mat_w, y, precision=precision)
  return y.astype(x.dtype)
