"""Torch-compatible resizes and per-sample canvas resizes.

References: `torch.nn.functional.interpolate` itself (torch is a test-only
dependency), `jax.image.resize` where its definition coincides, hand-worked
values, `np.pad(mode='reflect')` for the canvas fill, and
`scipy.ndimage.correlate(mode='mirror')` plus `blur.apply_kernels` on the
cropped image for the blur invariance the canvas fill is there for.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage

from sr_jax.degradations import blur
from sr_jax.degradations import resampling as resize_lib

MODES = resize_lib.MODES
# Eager jax.random.choice and gathers dispatch slowly; compiled they are
# cheap, and the probabilities and ranges may be traced.
_sample = jax.jit(resize_lib.sample_resize_params, static_argnums=(1,),
                  static_argnames='modes')
_refill = jax.jit(resize_lib.refill)


def _torch_resize(img, out_hw, mode):
  """F.interpolate on one HWC float32 numpy image -> HWC float64."""
  import torch
  t = torch.from_numpy(np.ascontiguousarray(img.transpose(2, 0, 1)))[None]
  kwargs = {} if mode in ('nearest', 'area') else dict(align_corners=False)
  out = torch.nn.functional.interpolate(t, size=tuple(out_hw), mode=mode,
                                        **kwargs)
  return out[0].numpy().transpose(1, 2, 0).astype(np.float64)


def _reflect_fill(img, canvas_hw):
  """Pads HWC img to canvas_hw at the bottom/right by repeated reflection."""
  h, w = img.shape[:2]
  # numpy reflects again and again when the pad exceeds the length (and
  # repeats the single pixel of a length-1 axis).
  return np.pad(img, ((0, canvas_hw[0] - h), (0, canvas_hw[1] - w), (0, 0)),
                mode='reflect')


def _reflect_index(r, n):
  """Reflect-101 by walking the sequence 0, 1, .., n-1, n-2, .., 1, 0, 1, .."""
  seq = list(range(n)) + list(range(n - 2, 0, -1))
  return seq[r % len(seq)]


# 1. Fixed-size resize against torch.
@pytest.mark.parametrize('mode', MODES)
@pytest.mark.parametrize('in_hw, out_hw', [((37, 53), (17, 29)),
                                           ((16, 16), (40, 24)),
                                           ((33, 33), (11, 11)),
                                           ((7, 5), (7, 13))])
def test_resize_matches_torch_interpolate(mode, in_hw, out_hw):
  x = np.random.default_rng(0).random((2,) + in_hw + (3,), np.float32)
  y = np.asarray(resize_lib.resize(x, out_hw, mode))
  assert y.shape == (2,) + out_hw + (3,) and y.dtype == np.float32
  for n in range(2):
    np.testing.assert_allclose(y[n], _torch_resize(x[n], out_hw, mode),
                               atol=1e-5)


@pytest.mark.parametrize('mode', MODES)
def test_resize_matrix_matches_torch_for_all_small_lengths(mode):
  # Every in/out pair up to 24: catches off-by-ones at the borders and
  # float32 rounding of `nearest`'s floor(i * in / out) (e.g. 26 -> 22 picks
  # pixel 12, not 13, for output 11 in float32, as torch does).
  import torch
  v = np.random.default_rng(1).random(26).astype(np.float32)
  for in_len in list(range(1, 25)) + [26]:
    t = torch.from_numpy(v[:in_len]).reshape(1, 1, 1, in_len)
    for out_len in range(1, 25):
      kwargs = {} if mode in ('nearest', 'area') else dict(align_corners=False)
      ref = torch.nn.functional.interpolate(t, size=(1, out_len), mode=mode,
                                            **kwargs).numpy().ravel()
      got = resize_lib.resize_matrix(in_len, out_len, mode) @ v[:in_len]
      # float32 in torch too: its bicubic weights are ~1e-6 off ours.
      np.testing.assert_allclose(got, ref, atol=1e-5,
                                 err_msg=f'{mode} {in_len}->{out_len}')


# 2. Against jax.image.resize and hand-worked values.
def test_bilinear_matches_jax_image_resize_without_antialiasing():
  # jax's 'linear' drops out-of-image taps and renormalises, which gives the
  # edge pixel exactly where torch clamps; without antialiasing the two
  # definitions coincide up and down. With antialiasing (jax's default) they
  # part on downscales.
  x = np.random.default_rng(2).random((1, 19, 23, 2), np.float32)
  for out_hw in ((45, 31), (8, 11)):
    ref = jax.image.resize(x, (1,) + out_hw + (2,), 'linear', antialias=False)
    np.testing.assert_allclose(resize_lib.resize(x, out_hw, 'bilinear'), ref,
                               atol=1e-6)
  ref = jax.image.resize(x, (1, 8, 11, 2), 'linear')
  assert np.abs(np.asarray(resize_lib.resize(x, (8, 11), 'bilinear') -
                           ref)).max() > 1e-2


def test_nearest_area_bilinear_on_hand_worked_ramps():
  v = np.array([10., 20., 30., 40., 50.], np.float32)
  # torch's 'nearest' is floor(i * 5 / 8), not half-pixel (that is
  # 'nearest-exact', and jax.image.resize's 'nearest').
  np.testing.assert_allclose(resize_lib.resize_matrix(5, 8, 'nearest') @ v,
                             [10, 10, 20, 20, 30, 40, 40, 50])
  # 5 -> 3: windows [0, 2), [1, 4), [3, 5).
  np.testing.assert_allclose(resize_lib.resize_matrix(5, 3, 'area') @ v,
                             [15, 30, 45], rtol=1e-6)
  # 5 -> 2 bilinear: sources 2.5 * (i + 0.5) - 0.5 = 0.75, 3.25.
  np.testing.assert_allclose(resize_lib.resize_matrix(5, 2, 'bilinear') @ v,
                             [17.5, 42.5], rtol=1e-6)
  # 2 -> 4 bilinear: sources -0.25 (clamped to 0), 0.25, 0.75, 1.25.
  np.testing.assert_allclose(
      resize_lib.resize_matrix(2, 4, 'bilinear') @ v[:2], [10, 12.5, 17.5, 20],
      rtol=1e-6)
  # 8 -> 4 bicubic: sources 2 i + 0.5, so every output has t = 0.5 and the
  # a = -0.75 weights (-3/32, 19/32, 19/32, -3/32) on taps 2i-1 .. 2i+2.
  m = resize_lib.resize_matrix(8, 4, 'bicubic')
  np.testing.assert_allclose(m[:, 3], [0, 19 / 32, -3 / 32, 0], atol=1e-7)
  # Tap -1 replicates pixel 0: -3/32 + 19/32.
  np.testing.assert_allclose(m[:, 0], [0.5, 0, 0, 0], atol=1e-7)
  np.testing.assert_allclose(m.sum(1), 1.0, atol=1e-6)


# 3. Dynamic matrices.
@functools.partial(jax.jit, static_argnums=(2, 3, 4))
def _dynamic_matrix(in_v, out_v, in_canvas, out_canvas, mode):
  return resize_lib.resize_matrix_dynamic(in_v, out_v, in_canvas, out_canvas,
                                          mode)


@pytest.mark.parametrize('mode', MODES)
def test_resize_matrix_dynamic_pads_and_reflects(mode):
  in_canvas, out_canvas = 20, 31
  for in_v, out_v in ((13, 7), (6, 17), (20, 31), (1, 4), (9, 1), (3, 3)):
    got = np.asarray(_dynamic_matrix(in_v, out_v, in_canvas, out_canvas,
                                     mode))
    assert got.shape == (out_canvas, in_canvas)
    ref = resize_lib.resize_matrix(in_v, out_v, mode)
    np.testing.assert_allclose(got[:out_v, :in_v], ref, atol=1e-6)
    assert not np.any(got[:, in_v:])
    for r in range(out_v, out_canvas):
      np.testing.assert_array_equal(got[r], got[_reflect_index(r, out_v)])


# 4. Per-sample canvas resize.
_resize_canvas = jax.jit(resize_lib.resize_canvas, static_argnums=(2,),
                         static_argnames='mode_set')


def test_resize_canvas_matches_torch_per_sample():
  rng = np.random.default_rng(3)
  in_valid = np.array([[20, 24], [9, 5], [1, 1], [20, 7], [13, 17]], np.int32)
  out_valid = np.array([[11, 30], [25, 9], [4, 3], [1, 20], [13, 17]],
                       np.int32)
  modes = np.array([0, 1, 2, 3, 2], np.int32)  # area, bilinear, bicubic, ...
  x = np.zeros((5, 20, 24, 3), np.float32)
  for n, (h, w) in enumerate(in_valid):
    # Outside the valid region: large junk that must never be read.
    x[n] = 1e3 * rng.standard_normal((20, 24, 3))
    x[n, :h, :w] = rng.random((h, w, 3))
  y = np.asarray(_resize_canvas(x, in_valid, (27, 32), out_valid, modes))
  assert y.shape == (5, 27, 32, 3)
  for n in range(5):
    h, w = in_valid[n]
    ref = _torch_resize(x[n, :h, :w], out_valid[n], MODES[modes[n]])
    np.testing.assert_allclose(y[n], _reflect_fill(ref, (27, 32)), atol=1e-5,
                               err_msg=f'sample {n}')


def test_refill_matches_numpy_reflect_pad():
  rng = np.random.default_rng(4)
  x = rng.random((3, 11, 16, 2), np.float32)
  valid = np.array([[11, 16], [2, 5], [1, 3]], np.int32)
  y = np.asarray(_refill(x, valid))
  for n, (h, w) in enumerate(valid):
    np.testing.assert_array_equal(y[n], _reflect_fill(x[n, :h, :w], (11, 16)))


@pytest.mark.slow
def test_random_resize_matches_torch_with_the_drawn_parameters():
  rng = np.random.default_rng(5)
  x = rng.random((8, 12, 10, 3), np.float32)
  valid = np.array([[12, 10], [5, 7], [12, 3]] + [[9, 9]] * 5, np.int32)
  key = jax.random.key(0)
  f = jax.jit(functools.partial(resize_lib.random_resize,
                                resize_range=(0.3, 1.8)))
  y, new = f(key, _refill(x, valid), valid)
  y, new = np.asarray(y), np.asarray(new)
  assert y.shape == (8, 22, 18, 3)  # ceil(12 * 1.8), ceil(10 * 1.8)
  scale, mode = _sample(key, 8, resize_range=(0.3, 1.8))
  scale, mode = np.asarray(scale), np.asarray(mode)
  np.testing.assert_array_equal(
      new, np.maximum(1, np.floor(valid.astype(np.float32) * scale[:, None])))
  assert set(mode) <= {0, 1, 2} and len(set(mode)) >= 2
  for n in range(8):
    h, w = valid[n]
    ref = _torch_resize(x[n, :h, :w], new[n], MODES[mode[n]])
    np.testing.assert_allclose(y[n], _reflect_fill(ref, (22, 18)), atol=1e-5)


def test_random_resize_to_uses_one_of_the_modes_per_sample():
  rng = np.random.default_rng(6)
  x = rng.random((24, 14, 14, 1), np.float32)
  valid = rng.integers(6, 15, (24, 2)).astype(np.int32)
  y = np.asarray(jax.jit(resize_lib.random_resize_to, static_argnums=(3,))(
      jax.random.key(1), x, valid, (5, 6)))
  assert y.shape == (24, 5, 6, 1)
  seen = []
  for n, (h, w) in enumerate(valid):
    hits = [m for m in ('area', 'bilinear', 'bicubic') if np.allclose(
        y[n], _torch_resize(x[n, :h, :w], (5, 6), m), atol=1e-5)]
    assert len(hits) == 1, (n, hits)
    seen += hits
  assert len(set(seen)) == 3


# 5. The reflect fill makes a blur of the canvas a blur of the valid image.
@pytest.mark.slow
def test_blur_on_canvas_equals_blur_on_valid_region():
  rng = np.random.default_rng(7)
  canvas_hw, p = (30, 34), 4
  # Sizes well above the radius, below it, 1, and the full canvas (no fill
  # needed); the others leave canvas - valid >= p (see module docstring).
  valid = np.array([[17, 21], [3, 2], [1, 5], [30, 34], [26, 9]], np.int32)
  src_valid = np.array([[9, 11], [3, 3], [2, 5], [11, 12], [12, 4]], np.int32)
  x = rng.random((5, 12, 12, 2), np.float32)
  # The canvas comes straight out of a resize: its fill is the matrices' work.
  canvas = _resize_canvas(x, src_valid, canvas_hw, valid,
                          np.array([2, 1, 0, 2, 3], np.int32))
  ks = rng.random((5, 2 * p + 1, 2 * p + 1)).astype(np.float32)
  ks /= ks.sum((1, 2), keepdims=True)
  y = np.asarray(blur.apply_kernels(canvas, ks))
  canvas = np.asarray(canvas)
  for n, (h, w) in enumerate(valid):
    img = canvas[n, :h, :w]
    for c in range(2):
      # scipy's 'mirror' is reflect-101, repeated for any overhang.
      ref = scipy.ndimage.correlate(img[..., c].astype(np.float64), ks[n],
                                    mode='mirror')
      np.testing.assert_allclose(y[n, :h, :w, c], ref, atol=1e-5)
    if h > p and w > p:  # apply_kernels refuses smaller images
      alone = blur.apply_kernels(img[None], ks[n:n + 1])[0]
      np.testing.assert_allclose(y[n, :h, :w], alone, atol=1e-5)


# 6. Statistics of the random draws.
def test_random_resize_statistics_and_determinism():
  n = 2000
  prob, rng_lo, rng_hi = (0.2, 0.7, 0.1), 0.15, 1.5
  scale, mode = _sample(jax.random.key(2), n, prob, (rng_lo, rng_hi),
                        (0.5, 0.3, 0.2))
  scale, mode = np.asarray(scale), np.asarray(mode)
  up, down, keep = scale > 1, scale < 1, scale == 1
  np.testing.assert_allclose([up.mean(), down.mean(), keep.mean()], prob,
                             atol=0.03)
  assert scale.min() >= rng_lo and scale.max() <= rng_hi
  # Uniform within each branch: means near the midpoints.
  assert abs(scale[up].mean() - (1 + rng_hi) / 2) < 0.03
  assert abs(scale[down].mean() - (1 + rng_lo) / 2) < 0.03
  np.testing.assert_allclose(
      [np.mean(mode == MODES.index(m)) for m in ('area', 'bilinear',
                                                  'bicubic')],
      (0.5, 0.3, 0.2), atol=0.04)

  # The full op on tiny images: sizes follow the scales, same key -> same
  # result, another key -> another one.
  x = jnp.asarray(np.random.default_rng(8).random((n, 8, 8, 1), np.float32))
  f = jax.jit(resize_lib.random_resize)
  y, new = f(jax.random.key(3), x)
  assert y.shape == (n, 12, 12, 1)
  s, _ = _sample(jax.random.key(3), n)
  np.testing.assert_array_equal(
      new, np.maximum(1, np.floor(8 * np.asarray(s, np.float64)))[:, None]
      * np.ones((1, 2)))
  new = np.asarray(new)
  assert new.min() >= 1 and new.max() <= 12
  np.testing.assert_allclose(np.mean(new[:, 0] == 8), 0.1 + 0.2 / 4, atol=0.03)
  y2, new2 = f(jax.random.key(3), x)
  np.testing.assert_array_equal(y, y2)
  np.testing.assert_array_equal(new, new2)
  _, new3 = f(jax.random.key(4), x)
  assert np.any(np.asarray(new3) != new)


def test_rejects_bad_modes_and_shapes():
  with pytest.raises(ValueError, match='mode'):
    resize_lib.resize(np.zeros((1, 4, 4, 1), np.float32), (2, 2), 'lanczos')
  with pytest.raises(ValueError, match='NHWC'):
    resize_lib.resize(np.zeros((4, 4, 1), np.float32), (2, 2), 'area')
