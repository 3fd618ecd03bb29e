"""PyTorch-compatible resizes, and per-sample random resizes with static shapes.

Real-ESRGAN resizes on the GPU with `torch.nn.functional.interpolate`
(align_corners=False, no antialiasing), not with MATLAB's `imresize` (see
`imresize.py`), so its degraded inputs depend on torch's conventions:
  * 'nearest': source pixel floor(i * in / out), computed in float32;
  * 'bilinear': source coordinate (i + 0.5) * in / out - 0.5, clamped at 0 on
    the low side (the high side clamps the tap index instead);
  * 'bicubic': the same coordinate, not clamped, Keys' kernel with a = -0.75
    (MATLAB uses -0.5), out-of-range taps replicate the edge pixel;
  * 'area': adaptive average pooling, output i averages the inputs
    [floor(i * in / out), ceil((i + 1) * in / out)).
Every mode is separable and linear, so each axis is one [out, in] matrix and
a resize is two einsums, as in `imresize.py`.

Per-sample random sizes under jit. Real-ESRGAN's second-order degradation
resizes each batch by a random factor (U(0.15, 1.5) in the first stage), then
blurs, adds noise, compresses and resizes again; under `jax.jit` with
per-sample factors every intermediate size would be dynamic. We keep shapes
static by holding each sample on a fixed canvas [Hc, Wc] together with its
true size `valid_hw` [N, 2] int32, the image living in the top-left
valid_h x valid_w corner. The resize matrices are then built from traced
sizes (`resize_matrix_dynamic`): an [out_canvas, in_canvas] matrix that reads
only the first in_valid columns, so whatever lies outside the valid region
never leaks in.

Why fill the rest of the canvas with a reflection instead of zeros: the rows
beyond out_valid are copies of the rows reflect101(r, out_valid), i.e. the
canvas continues the image as d c b | a b c d | c b a | b c d ..., periodic,
so it is defined however much larger the canvas is. That is exactly the
reflect padding of BasicSR's `filter2D` (`blur.apply_kernels`), so a blur of
the whole canvas gives, inside the valid region, the same pixels as a blur of
the cropped image alone: no per-sample padding or masking is needed in the
ops between two resizes. The fill costs nothing since it is folded into the
matrices. Two caveats:
  * it holds while the kernel radius p stays inside the canvas, i.e. when
    valid == canvas or canvas - valid >= p; beyond the canvas edge the blur
    reflects the canvas, not the image. Leave a margin of ksize // 2 (pass
    `canvas_hw`) when samples can nearly fill the canvas;
  * pointwise ops keep the fill, but ops that draw per pixel (noise) or work
    on blocks (JPEG) break it; `refill` restores it with one gather.
The pipeline ends with `resize_canvas` (or `random_resize_to`) to a fixed
out_valid equal to the output canvas, which crops and resizes in one go.
"""
import functools
import math
from typing import Optional, Sequence, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

MODES = ('area', 'bilinear', 'bicubic', 'nearest')

# torch's bicubic (upsample_bicubic2d) uses a = -0.75, following OpenCV.
_CUBIC_A = -0.75


def _check_mode(mode: str) -> None:
  if mode not in MODES:
    raise ValueError(f'Unknown resize mode {mode!r}; expected one of {MODES}.')


def _reflect101(i, n):
  """Reflect-101 index: i in [0, inf) -> [0, n), period 2 (n - 1).

  n = 1 has period 0: every index maps to 0.
  """
  period = 2 * (n - 1)
  m = i % jnp.maximum(period, 1)
  return jnp.where(m < n, m, period - m)


def _cubic_weights(t):
  """Weights of taps floor(src) - 1 .. floor(src) + 2 at fraction t in
  [0, 1]."""
  a = _CUBIC_A
  near = lambda d: ((a + 2) * d - (a + 3)) * d * d + 1  # |d| <= 1
  far = lambda d: ((a * d - 5 * a) * d + 8 * a) * d - 4 * a  # 1 < |d| < 2
  return far(t + 1), near(t), near(1 - t), far(2 - t)


def _weights(rows, in_len, out_len, in_canvas: int, mode: str, xp):
  """[len(rows), in_canvas] float32 weights of output pixels `rows`.

  Written once for numpy (static sizes, `resize_matrix`) and jax.numpy
  (traced sizes, `resize_matrix_dynamic`); `rows` are output indices in
  [0, out_len) and only columns < in_len get a weight. Coordinates follow
  torch's float32 arithmetic so that 'nearest' picks the same pixels.
  """
  cols = xp.arange(in_canvas)[None, :]
  if mode == 'area':
    # Integer arithmetic, as torch's adaptive_avg_pool2d start/end_index.
    start = ((rows * in_len) // out_len)[:, None]
    end = (((rows + 1) * in_len + out_len - 1) // out_len)[:, None]
    inside = (cols >= start) & (cols < end)
    return inside.astype(np.float32) / (end - start).astype(np.float32)

  ratio = (xp.asarray(in_len).astype(np.float32) /
           xp.asarray(out_len).astype(np.float32))
  dst = rows.astype(np.float32)
  last = in_len - 1
  if mode == 'nearest':
    taps = [(xp.minimum(xp.floor(dst * ratio).astype(np.int32), last), 1.0)]
  else:
    src = ratio * (dst + np.float32(0.5)) - np.float32(0.5)
    if mode == 'bilinear':
      src = xp.maximum(src, np.float32(0.0))
    i0 = xp.floor(src)
    t = xp.clip(src - i0, 0.0, 1.0).astype(np.float32)
    i0 = i0.astype(np.int32)
    if mode == 'bilinear':
      taps = [(i0, 1 - t), (xp.minimum(i0 + 1, last), t)]
    else:
      taps = [(xp.clip(i0 + k - 1, 0, last), w)
              for k, w in enumerate(_cubic_weights(t))]
  # One-hot sums rather than a scatter: clamped taps that land on the same
  # pixel add up, and it is the same code in numpy and under jit.
  mat = 0.0
  for idx, w in taps:
    w = xp.broadcast_to(xp.asarray(w, np.float32), idx.shape)
    mat = mat + xp.where(idx[:, None] == cols, w[:, None], np.float32(0.0))
  return mat.astype(np.float32)


@functools.lru_cache(maxsize=256)
def resize_matrix(in_len: int, out_len: int, mode: str) -> np.ndarray:
  """[out_len, in_len] float32 numpy matrix of torch's 1-D resize.

  `resize_matrix(...) @ v` equals `F.interpolate(v, size=out_len, mode=...,
  align_corners=False)` along one axis. Cached and read-only.
  """
  _check_mode(mode)
  if in_len < 1 or out_len < 1:
    raise ValueError(f'resize_matrix needs lengths >= 1, got in_len={in_len}, '
                     f'out_len={out_len}.')
  mat = _weights(np.arange(out_len), int(in_len), int(out_len), int(in_len),
                 mode, np)
  mat.setflags(write=False)  # Shared through the cache.
  return mat


def resize_matrix_dynamic(in_valid, out_valid, in_canvas: int,
                          out_canvas: int, mode: str) -> jax.Array:
  """Resize matrix between canvases, for traced valid lengths.

  Args:
    in_valid: int32 scalar (may be traced), 1 <= in_valid <= in_canvas.
    out_valid: int32 scalar (may be traced), 1 <= out_valid <= out_canvas.
    in_canvas, out_canvas: static ints.
    mode: static, one of MODES.
  Returns:
    [out_canvas, in_canvas] float32. Rows r < out_valid are
    `resize_matrix(in_valid, out_valid, mode)` zero-padded to in_canvas
    columns; rows r >= out_valid copy row reflect101(r, out_valid), so the
    product comes out already reflect-filled. Vmap it for per-sample sizes.
  """
  _check_mode(mode)
  in_valid = jnp.asarray(in_valid, jnp.int32)
  out_valid = jnp.asarray(out_valid, jnp.int32)
  rows = _reflect101(jnp.arange(out_canvas, dtype=jnp.int32), out_valid)
  return _weights(rows, in_valid, out_valid, in_canvas, mode, jnp)


def _check_image(x, name: str):
  x = jnp.asarray(x)
  if x.ndim != 4 or not jnp.issubdtype(x.dtype, jnp.floating):
    raise ValueError(f'{name}: expected float NHWC images [N, H, W, C], got '
                     f'shape {x.shape} and dtype {x.dtype}.')
  return x


def _apply(mat_h, mat_w, x):
  """[(N,) h, H] x [(N,) w, W] x [N, H, W, C] -> [N, h, w, C] float32."""
  # HIGHEST: GPUs and TPUs otherwise run float32 matmuls in TF32 / bf16
  # passes, ~1e-3 off.
  precision = jax.lax.Precision.HIGHEST
  x = x.astype(jnp.float32)
  if mat_h.ndim == 2:
    y = jnp.einsum('oh,nhwc->nowc', mat_h, x, precision=precision)
    return jnp.einsum('pw,nowc->nopc', mat_w, y, precision=precision)
  y = jnp.einsum('noh,nhwc->nowc', mat_h, x, precision=precision)
  return jnp.einsum('npw,nowc->nopc', mat_w, y, precision=precision)


def resize(x, out_hw: Tuple[int, int], mode: str) -> jax.Array:
  """`F.interpolate(x, size=out_hw, mode=mode, align_corners=False)`.

  Args:
    x: [N, H, W, C] float images (any range; the op is linear, and bicubic
      can overshoot it: no clipping here, as in torch).
    out_hw: static (h, w).
    mode: 'nearest', 'bilinear', 'bicubic' or 'area'.
  Returns:
    [N, h, w, C] float32.
  """
  x = _check_image(x, 'resize')
  _, in_h, in_w, _ = x.shape
  out_h, out_w = (int(v) for v in out_hw)
  return _apply(jnp.asarray(resize_matrix(in_h, out_h, mode)),
                jnp.asarray(resize_matrix(in_w, out_w, mode)), x)


def _mode_index(modes: Sequence[str]) -> jax.Array:
  for m in modes:
    _check_mode(m)
  return jnp.asarray([MODES.index(m) for m in modes], jnp.int32)


def resize_canvas(x, valid_hw, out_canvas_hw: Tuple[int, int], out_valid_hw,
                  modes: Union[str, jax.Array],
                  mode_set: Sequence[str] = MODES) -> jax.Array:
  """Resizes each sample's valid region to its own size, on a static canvas.

  Args:
    x: [N, Hc, Wc, C] float canvases; sample n is x[n, :h_n, :w_n] with
      (h_n, w_n) = valid_hw[n]. Pixels outside are never read (keep them
      finite: 0 * nan is nan).
    valid_hw: [N, 2] int32 (may be traced), 1 <= valid <= (Hc, Wc).
    out_canvas_hw: static (Hc', Wc').
    out_valid_hw: [N, 2] or [2] int32 (may be traced), target sizes,
      1 <= out_valid <= (Hc', Wc'). Equal to out_canvas_hw for a plain
      per-sample crop-and-resize to a fixed size.
    modes: one mode string for all samples, or [N] int32 indices into MODES.
    mode_set: static modes that `modes` may select, when it is an array;
      only these matrices are built. An index outside it gives zeros.
  Returns:
    [N, Hc', Wc', C] float32: torch's resize of each valid region to
    out_valid in the top-left corner, reflect-101 continued to the canvas.
  """
  x = _check_image(x, 'resize_canvas')
  n, in_h, in_w, _ = x.shape
  out_h, out_w = (int(v) for v in out_canvas_hw)
  valid_hw = jnp.broadcast_to(jnp.asarray(valid_hw, jnp.int32), (n, 2))
  out_valid_hw = jnp.broadcast_to(jnp.asarray(out_valid_hw, jnp.int32), (n, 2))
  if isinstance(modes, str):
    _check_mode(modes)
    mode_set, modes = (modes,), jnp.zeros((n,), jnp.int32) + MODES.index(modes)
  mode_ids = _mode_index(mode_set)
  modes = jnp.broadcast_to(jnp.asarray(modes, jnp.int32), (n,))

  def matrices(in_v, out_v, mode):
    def axis(i, in_canvas, out_canvas):
      # Every candidate is built and one is kept: [out, in] matrices are
      # small next to the image, and a select keeps shapes static.
      mat = jnp.zeros((out_canvas, in_canvas), jnp.float32)
      for m, m_id in zip(mode_set, mode_ids):
        cand = resize_matrix_dynamic(in_v[i], out_v[i], in_canvas, out_canvas,
                                     m)
        mat = jnp.where(mode == m_id, cand, mat)
      return mat
    return axis(0, in_h, out_h), axis(1, in_w, out_w)

  mat_h, mat_w = jax.vmap(matrices)(valid_hw, out_valid_hw, modes)
  return _apply(mat_h, mat_w, x)


def refill(x, valid_hw) -> jax.Array:
  """Re-applies the reflect-101 fill outside each sample's valid region.

  Args:
    x: [N, Hc, Wc, C] canvases.
    valid_hw: [N, 2] int32 (may be traced), 1 <= valid <= (Hc, Wc).
  Returns:
    [N, Hc, Wc, C], dtype of x: x[n, reflect101(i, h_n), reflect101(j, w_n)].
  """
  x = _check_image(x, 'refill')
  _, h, w, _ = x.shape
  valid_hw = jnp.broadcast_to(jnp.asarray(valid_hw, jnp.int32),
                              (x.shape[0], 2))

  def one(img, valid):
    rows = _reflect101(jnp.arange(h, dtype=jnp.int32), valid[0])
    cols = _reflect101(jnp.arange(w, dtype=jnp.int32), valid[1])
    return img[rows[:, None], cols[None, :]]
  return jax.vmap(one)(x, valid_hw)


def random_scales(key, n: int,
                  resize_prob: Sequence[float] = (0.2, 0.7, 0.1),
                  resize_range: Tuple[float, float] = (0.15, 1.5)):
  """Real-ESRGAN's random resize factor, per sample.

  As in Real-ESRGAN's `feed_data`: 'up', 'down' or 'keep' with probabilities
  resize_prob; scale ~ U(1, resize_range[1]) when up, U(resize_range[0], 1)
  when down, exactly 1 when kept.
  Returns:
    [N] float32 in [resize_range[0], resize_range[1]].
  """
  k_updown, k_scale = jax.random.split(key)
  updown = jax.random.choice(k_updown, 3, (n,), p=jnp.asarray(resize_prob))
  u = jax.random.uniform(k_scale, (n,), jnp.float32)
  lo, hi = resize_range
  scale = jnp.select([updown == 0, updown == 1],
                     [1.0 + u * (hi - 1.0), lo + u * (1.0 - lo)], 1.0)
  return scale.astype(jnp.float32)


def random_mode_index(key, n: int,
                      modes: Sequence[str] = ('area', 'bilinear', 'bicubic'),
                      mode_prob: Optional[Sequence[float]] = None):
  """Per-sample resize mode drawn from `modes` (uniform if mode_prob is None).

  Real-ESRGAN draws uniformly from area / bilinear / bicubic.
  Returns:
    [N] int32 indices into MODES (not into `modes`), for `resize_canvas`
    with mode_set=modes.
  """
  p = None if mode_prob is None else jnp.asarray(mode_prob)
  pick = jax.random.choice(key, len(modes), (n,), p=p)
  return _mode_index(modes)[pick]


def sample_resize_params(key, n: int,
                         resize_prob: Sequence[float] = (0.2, 0.7, 0.1),
                         resize_range: Tuple[float, float] = (0.15, 1.5),
                         mode_prob: Optional[Sequence[float]] = None,
                         modes: Sequence[str] = ('area', 'bilinear',
                                                 'bicubic')):
  """The draws of `random_resize(key, ...)`: `random_scales` and
  `random_mode_index` on two halves of key.

  Returns:
    scale: [N] float32; mode: [N] int32 indices into MODES.
  """
  k_scale, k_mode = jax.random.split(key)
  return (random_scales(k_scale, n, resize_prob, resize_range),
          random_mode_index(k_mode, n, modes, mode_prob))


def random_resize(key, x, valid_hw=None, *,
                  resize_prob: Sequence[float] = (0.2, 0.7, 0.1),
                  resize_range: Tuple[float, float] = (0.15, 1.5),
                  mode_prob: Optional[Sequence[float]] = None,
                  modes: Sequence[str] = ('area', 'bilinear', 'bicubic'),
                  canvas_hw: Optional[Tuple[int, int]] = None):
  """Real-ESRGAN's random resize, per sample, on a static canvas.

  The new valid size is max(1, floor(valid * scale)) per axis, one scale for
  both axes (Real-ESRGAN's `F.interpolate(scale_factor=scale)` output size).
  The pixels follow `F.interpolate(size=...)`: torch maps coordinates with
  1 / scale instead of in / out when given `scale_factor`, a sub-pixel
  difference below one output pixel (none for 'area').

  Args:
    key: jax.random key; `sample_resize_params(key, N, ...)` gives the draws.
    x: [N, Hc, Wc, C] float canvases (or plain images).
    valid_hw: [N, 2] int32 valid sizes, or None for the whole of x.
    resize_prob, resize_range, mode_prob, modes: see `sample_resize_params`.
    canvas_hw: static output canvas; default ceil((Hc, Wc) * resize_range[1]),
      which holds any draw. Sizes larger than the canvas are clipped to it.
      Add ksize // 2 to leave room for an exact blur (see module docstring).
  Returns:
    (canvas [N, Hc', Wc', C] float32, reflect-101 filled;
     valid_hw [N, 2] int32).
  """
  x = _check_image(x, 'random_resize')
  n, in_h, in_w, _ = x.shape
  if valid_hw is None:
    valid_hw = jnp.broadcast_to(jnp.asarray([in_h, in_w], jnp.int32), (n, 2))
  valid_hw = jnp.asarray(valid_hw, jnp.int32)
  if canvas_hw is None:
    hi = max(1.0, resize_range[1])
    canvas_hw = (math.ceil(in_h * hi), math.ceil(in_w * hi))
  canvas_hw = tuple(int(v) for v in canvas_hw)
  scale, mode = sample_resize_params(key, n, resize_prob, resize_range,
                                     mode_prob, modes)
  new = jnp.floor(valid_hw.astype(jnp.float32) * scale[:, None])
  new = jnp.clip(new.astype(jnp.int32), 1, jnp.asarray(canvas_hw, jnp.int32))
  out = resize_canvas(x, valid_hw, canvas_hw, new, mode, mode_set=tuple(modes))
  return out, new


def random_resize_to(key, x, valid_hw, out_hw: Tuple[int, int], *,
                     modes: Sequence[str] = ('area', 'bilinear', 'bicubic'),
                     mode_prob: Optional[Sequence[float]] = None):
  """Resizes each valid region to a fixed out_hw with a random mode.

  Real-ESRGAN's last step, `F.interpolate(size=(h // s, w // s), mode=m)`
  with m uniform over area / bilinear / bicubic.

  Args:
    key: jax.random key.
    x: [N, Hc, Wc, C] float canvases.
    valid_hw: [N, 2] int32 valid sizes, or None for the whole of x.
    out_hw: static (h, w).
    modes, mode_prob: static candidate modes and their probabilities
      (None: uniform).
  Returns:
    [N, h, w, C] float32.
  """
  x = _check_image(x, 'random_resize_to')
  n = x.shape[0]
  if valid_hw is None:
    valid_hw = jnp.asarray(x.shape[1:3], jnp.int32)
  mode = random_mode_index(key, n, modes, mode_prob)
  return resize_canvas(x, valid_hw, out_hw, jnp.asarray(out_hw, jnp.int32),
                       mode, mode_set=tuple(modes))
