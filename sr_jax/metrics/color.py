"""RGB -> Y (luma) conversion used by the `test_y_channel` evaluation protocol.

SR papers report PSNR/SSIM on the Y channel of ITU-R BT.601 YCbCr, as computed
by MATLAB's `rgb2ycbcr`: "studio swing" Y in [16, 235] on the 0-255 scale,

  Y = 16 + 65.481 R + 128.553 G + 24.966 B,   R, G, B in [0, 1].

The coefficients are the BT.601 luma weights (0.299, 0.587, 0.114) times 219
(= 235 - 16, the studio-swing luma range), so they sum to exactly 219: black
maps to 16 and white to 235. Published SR results (MATLAB's `rgb2ycbcr`,
BasicSR's `bgr2ycbcr`) use this studio-swing Y, not the full-range
0.299 R + 0.587 G + 0.114 B, and the two give PSNRs that differ.

MATLAB's `rgb2ycbcr` rounds Y when given uint8 images; like BasicSR, we keep
the float Y.
"""
import jax.numpy as jnp
import numpy as np

# Y weights for (R, G, B) in [0, 1], giving Y on the 0-255 scale.
Y_WEIGHTS = (65.481, 128.553, 24.966)
Y_OFFSET = 16.0


def rgb_to_y(img: np.ndarray) -> np.ndarray:
  """BT.601 studio-swing luma of an RGB image, on the 0-255 scale.

  Args:
    img: [H, W, 3] RGB, uint8 or float on the 0-255 scale (not [0, 1]).

  Returns:
    [H, W] float64 Y in [16, 235].
  """
  img = np.asarray(img)
  if img.ndim != 3 or img.shape[-1] != 3:
    raise ValueError(f'rgb_to_y expects an [H, W, 3] RGB image, got shape '
                     f'{img.shape}.')
  rgb01 = img.astype(np.float64) / 255.0
  return Y_OFFSET + rgb01 @ np.asarray(Y_WEIGHTS, np.float64)


def rgb_to_y_jax(x: jnp.ndarray) -> jnp.ndarray:
  """JAX version of `rgb_to_y`, but taking the [0, 1] range of training code.

  Args:
    x: [..., 3] float RGB in [0, 1].

  Returns:
    [...] float Y on the 0-255 scale, in [16, 235] (same numbers as
    `rgb_to_y(255 * x)`).
  """
  if x.shape[-1] != 3:
    raise ValueError(f'rgb_to_y_jax expects [..., 3] RGB, got shape {x.shape}.')
  # Promote ints/bfloat16 so the weights are not truncated or rounded coarsely.
  dtype = jnp.promote_types(x.dtype, jnp.float32)
  return Y_OFFSET + x.astype(dtype) @ jnp.asarray(Y_WEIGHTS, dtype)
