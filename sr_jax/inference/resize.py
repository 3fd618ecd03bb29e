"""The cubic resize of ncnn's Interp (resize_type 3), for `--outscale-filter
cubic`: what realesr-animevideov3-x2 / -x3's .param files do to the x4
network's output.

Keys' cubic with a = -0.75, sample positions at half-pixel centres
(x_src = (x + 0.5) * in / out - 0.5), the image edge replicated, no
antialiasing: ncnn's Interp (src/layer/interp.cpp), OpenCV's INTER_CUBIC and
PyTorch's F.interpolate(mode='bicubic', align_corners=False) compute the
same thing. Pillow's BICUBIC (a = -0.5, widened when shrinking) and LANCZOS
(the default --outscale filter) are different filters.
"""
import numpy as np

CUBIC_A = -0.75
FILTERS = ('lanczos', 'cubic')


def cubic_taps(size_in: int, size_out: int) -> tuple[np.ndarray, np.ndarray]:
  """(index [size_out, 4], weight [size_out, 4] float32) along one axis."""
  x = (np.arange(size_out, dtype=np.float64) + 0.5) * (size_in / size_out)
  x = (x - 0.5).astype(np.float32)  # ncnn computes the position in float.
  start = np.floor(x)
  t = (x - start)[:, None]
  d = np.abs(np.array([-1.0, 0.0, 1.0, 2.0], np.float32) - t)
  a = np.float32(CUBIC_A)
  near = ((a + 2) * d - (a + 3)) * d * d + 1  # |d| <= 1
  far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # 1 < |d| < 2
  weight = np.where(d <= 1, near, far).astype(np.float32)
  index = np.clip(start.astype(np.int64)[:, None] + np.arange(-1, 3), 0,
                  size_in - 1)
  return index, weight


def cubic_resize(plane: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  """[H, W] (or [H, W, C]) float32 -> [size[0], size[1], ...] float32."""
  plane = np.asarray(plane, np.float32)
  h, w = size
  rows, row_w = cubic_taps(plane.shape[0], h)
  cols, col_w = cubic_taps(plane.shape[1], w)
  extra = (None,) * (plane.ndim - 2)
  tmp = sum(plane[rows[:, k]] * row_w[(slice(None), k, None) + extra]
            for k in range(4))
  return sum(tmp[:, cols[:, k]] * col_w[(None, slice(None), k) + extra]
             for k in range(4)).astype(np.float32)
