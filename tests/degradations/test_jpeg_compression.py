"""JPEG round trip against Pillow (libjpeg-turbo) and hand-worked values.

References: the quantisation tables Pillow writes into the file, Pillow's
decoded round trip of natural images (skimage.data) with its default 4:2:0
subsampling, T.81's DC-only decoding of flat blocks worked by hand, and the
linearity of the straight-through pipeline (it maps a constant to itself).
"""
import io

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from PIL import JpegImagePlugin
import pytest
from skimage import data

from sr_jax.degradations import jpeg_compression as jpeg_lib

_jpeg = jax.jit(jpeg_lib.jpeg, static_argnames='rounding')
QUALITIES = (10, 30, 50, 75, 95)


def _pil_roundtrip(img, quality):
  """uint8 [H, W, 3] -> Pillow's decoded JPEG at `quality`, uint8."""
  buf = io.BytesIO()
  Image.fromarray(img).save(buf, 'JPEG', quality=quality)
  buf.seek(0)
  dec = Image.open(buf)
  # Pillow's default for RGB is 4:2:0 (2); jpeg() models exactly that.
  assert JpegImagePlugin.get_sampling(dec) == 2
  return np.asarray(dec.convert('RGB'))


def _psnr(a, b):
  mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64))**2)
  return 10 * np.log10(255.0**2 / max(mse, 1e-12))


def _zigzag():
  """[64] natural (row-major) index of each zigzag position (T.81 fig. A.6)."""
  pos = sorted(((i, j) for i in range(8) for j in range(8)),
               key=lambda p: (p[0] + p[1], p[0] if (p[0] + p[1]) % 2 else p[1]))
  return np.array([i * 8 + j for i, j in pos])


def _pil_tables(quality):
  """(luma, chroma) [8, 8] natural-order tables Pillow writes at `quality`."""
  buf = io.BytesIO()
  Image.new('RGB', (16, 16), (90, 140, 200)).save(buf, 'JPEG',
                                                   quality=quality)
  buf.seek(0)
  tables = Image.open(buf).quantization
  out = []
  for k in (0, 1):
    t = np.asarray(tables[k])
    if _PIL_ZIGZAG:
      t = t[np.argsort(_zigzag())]
    out.append(t.reshape(8, 8))
  return out


def _pil_lists_zigzag():
  """Pillow 13 lists tables in natural order; older ones listed zigzag.

  At q=50 (Annex K), entry 2 is K.1[0, 2] = 10 in natural order and
  K.1[1, 0] = 12 in zigzag order.
  """
  buf = io.BytesIO()
  Image.new('RGB', (8, 8)).save(buf, 'JPEG', quality=50)
  buf.seek(0)
  t2 = list(Image.open(buf).quantization[0])[2]
  assert t2 in (10, 12), t2
  return t2 == 12


_PIL_ZIGZAG = _pil_lists_zigzag()


# Quantisation tables.
def test_quality_to_tables_match_pillow_and_hand_values():
  qs = (1, 10, 30, 50, 75, 95, 100)
  luma, chroma = jpeg_lib.quality_to_tables(jnp.array(qs))
  assert luma.shape == chroma.shape == (len(qs), 8, 8)
  assert luma.dtype == jnp.float32
  for i, q in enumerate(qs):
    ref_l, ref_c = _pil_tables(q)
    np.testing.assert_array_equal(luma[i], ref_l, err_msg=f'luma q={q}')
    np.testing.assert_array_equal(chroma[i], ref_c, err_msg=f'chroma q={q}')
  # Hand-worked: q=50 is Annex K itself; q=10 scales by 5000 // 10 = 500, so
  # 16 -> (16 * 500 + 50) // 100 = 80; q=30 scales by 5000 // 30 = 166 (C
  # integer division), so 11 -> (1826 + 50) // 100 = 18; q=1 clamps to 255
  # (baseline); q=100 is all ones.
  assert luma[3, 0, 0] == 16 and luma[3, 0, 1] == 11 and chroma[3, 0, 0] == 17
  assert luma[1, 0, 0] == 80 and luma[2, 0, 1] == 18
  assert float(luma[0].min()) == 255.0 and float(luma[6].max()) == 1.0


# Parity with Pillow on natural images.
_IMAGES = (data.astronaut(), data.chelsea(), data.coffee(), data.rocket())


@pytest.fixture(scope='module', params=[(96, 128), (77, 101)],
                ids=['96x128', '77x101'])
def roundtrips(request):
  """Crops x qualities: (originals, pil, jax) uint8/float [20, H, W, 3]."""
  h, w = request.param
  crops = [im[40:40 + h, 60:60 + w] for im in _IMAGES]
  orig = np.stack([c for c in crops for _ in QUALITIES])
  qs = np.array([q for _ in crops for q in QUALITIES])
  pil = np.stack([_pil_roundtrip(o, int(q)) for o, q in zip(orig, qs)])
  out = np.asarray(_jpeg(orig.astype(np.float32) / 255.0, qs)) * 255.0
  return orig, qs, pil, out


def test_psnr_matches_pillow(roundtrips):
  orig, qs, pil, out = roundtrips
  assert out.shape == orig.shape
  for o, q, p, j in zip(orig, qs, pil, out):
    p_pil, p_jax = _psnr(p, o), _psnr(j, o)
    # The acceptance criterion is 0.5 dB; we measured < 0.05 dB here (a
    # float pipeline without libjpeg's 8-bit roundings was 0.36 dB off).
    assert abs(p_jax - p_pil) < 0.1, (q, p_jax, p_pil)
    # Measured >= 43.5 dB (and often bit-exact): the same pixels, not only
    # the same error level.
    assert _psnr(j, p) > 40.0, (q, _psnr(j, p))


def test_output_is_on_8bit_levels_in_range(roundtrips):
  out = roundtrips[3]
  assert out.min() >= 0.0 and out.max() <= 255.0
  np.testing.assert_allclose(out, np.round(out), atol=1e-3)


def test_lower_quality_gives_lower_psnr(roundtrips):
  orig, _, _, out = roundtrips
  n_q = len(QUALITIES)
  for i in range(0, len(orig), n_q):
    p = [_psnr(out[i + k], orig[i + k]) for k in range(n_q)]
    assert all(a < b for a, b in zip(p, p[1:])), p


def test_psnr_matches_pillow_on_extreme_content():
  rng = np.random.default_rng(0)
  # Random black / white pixels: every coefficient is large and many decoded
  # samples overshoot [0, 255] (the decoder's range limit is exercised).
  sat = (rng.random((4, 24, 40, 3)) > 0.5).astype(np.uint8) * 255
  qs = (10, 50, 90, 100)
  out = np.asarray(_jpeg(sat.astype(np.float32) / 255.0, np.array(qs))) * 255
  for o, q, j in zip(sat, qs, out):
    p = _pil_roundtrip(o, q)
    # Measured < 0.04 dB. Pixelwise only ~25 dB at q <= 50: libjpeg's
    # integer DCT differs from the exact one by ~1 unit, which flips
    # coefficients lying near a rounding boundary by a whole (large) step.
    assert abs(_psnr(j, o) - _psnr(p, o)) < 0.1, q
  # Images smaller than one block: all padding.
  for h, w in ((1, 1), (3, 5)):
    img = rng.integers(0, 256, (1, h, w, 3), np.uint8)
    out = np.asarray(_jpeg(img.astype(np.float32) / 255.0, 50)) * 255
    assert out.shape == img.shape
    assert _psnr(out[0], _pil_roundtrip(img[0], 50)) > 40


# Per-sample quality, scalars, jit.
@pytest.mark.slow
def test_per_sample_quality_equals_per_image_results():
  img = data.chelsea()[100:140, 150:190]
  x = np.stack([img, img[::-1], img[:, ::-1]]).astype(np.float32) / 255.0
  qs = np.array([15, 60, 90])
  batch = np.asarray(_jpeg(x, qs))
  for i, q in enumerate(qs):
    # The same shapes as the batch call, so no new compilation.
    single = np.asarray(_jpeg(x, np.full(3, q)))[i]
    np.testing.assert_array_equal(batch[i], single)
  # Eager (jit traces the quality; this does not), with a Python int
  # broadcast to the batch.
  np.testing.assert_allclose(np.asarray(jpeg_lib.jpeg(x, 90))[2], batch[2],
                             atol=1e-6)
  assert np.abs(batch[0] - batch[1][::-1]).max() > 0.01


def test_random_jpeg_draws_inclusive_integer_qualities_per_sample():
  rng = np.random.default_rng(0)
  x = rng.random((48, 16, 16, 3)).astype(np.float32)
  low, high = 40, 43
  # What each quality in the range (and one beyond each end) produces.
  cands = {q: np.asarray(_jpeg(x, np.full(48, q)))
           for q in range(low - 1, high + 2)}
  f = jax.jit(jpeg_lib.random_jpeg)
  out = np.asarray(f(jax.random.key(0), x, (low, high)))
  drawn = []
  for i in range(48):
    hits = [q for q, c in cands.items() if np.array_equal(c[i], out[i])]
    assert len(hits) == 1, hits
    drawn.append(hits[0])
  assert set(drawn) == {40, 41, 42, 43}  # both ends are reachable
  np.testing.assert_array_equal(
      np.asarray(f(jax.random.key(0), x, (low, high))), out)
  assert not np.array_equal(
      np.asarray(f(jax.random.key(1), x, (low, high))), out)


def test_bad_arguments_fail_with_a_message():
  x = np.zeros((2, 8, 8, 3), np.float32)
  with pytest.raises(ValueError, match='N, H, W, 3'):
    jpeg_lib.jpeg(x[0], 50)
  with pytest.raises(ValueError, match='rounding'):
    jpeg_lib.jpeg(x, 50, rounding='floor')
  with pytest.raises(ValueError, match='quality'):
    jpeg_lib.jpeg(x, np.array([50, 60, 70]))


# Gradients.
def _smooth_image(shape, seed):
  """Mid-grey smooth texture, so no sample is clipped at 0 or 255."""
  rng = np.random.default_rng(seed)
  n, h, w, c = shape
  yy, xx = np.mgrid[0:h, 0:w] / 7.0
  ph = rng.random((n, 1, 1, c)) * 6
  return (0.5 + 0.15 * np.sin(xx[None, ..., None] + ph)
          * np.cos(yy[None, ..., None] - ph)).astype(np.float32)


@pytest.mark.slow
def test_gradients_by_rounding_mode():
  x = _smooth_image((2, 20, 27, 3), 1)
  qs = jnp.array([30, 80])
  count = x.size
  res = {}
  for mode in jpeg_lib.ROUNDING_MODES:
    def loss(x, mode=mode):
      y = jpeg_lib.jpeg(x, qs, rounding=mode)
      return jnp.sum(y), y
    (_, out), g = jax.jit(jax.value_and_grad(loss, has_aux=True))(x)
    res[mode] = (np.asarray(out), np.asarray(g))
  out_r, g_r = res['round']
  out_st, g_st = res['straight_through']
  out_c, g_c = res['cubic']
  assert 0 < out_r.min() and out_r.max() < 1  # nothing clipped
  np.testing.assert_array_equal(out_r, out_st)
  # Hard rounding has zero gradient almost everywhere.
  np.testing.assert_array_equal(g_r, 0.0)
  # Straight-through is the linear map L of the codec without quantisation;
  # it maps a constant image to itself (colour round trip exact, the box
  # and triangular resamplers preserve constants), so
  # sum(grad of sum(L x)) = <1, L 1> = number of values.
  assert np.isfinite(g_st).all()
  np.testing.assert_allclose(g_st.sum(), count, rtol=1e-4)
  # Cubic scales each coefficient's gradient by 3 (v - r)^2 in [0, 3/4].
  assert np.isfinite(g_c).all() and np.abs(g_c).max() > 0
  assert 0.05 * count < g_c.sum() < 0.75 * count
  # Cubic moves each coefficient by at most Q / 8: close to hard rounding.
  assert _psnr(out_c * 255, out_r * 255) > 30


# Flat images.
def test_constant_grey_roundtrips_as_dc_only_blocks():
  levels = np.arange(256)
  x = np.broadcast_to(levels[:, None, None, None] / 255.0,
                      (256, 10, 13, 3)).astype(np.float32)
  for q, q_dc in ((1, 255), (10, 80), (50, 16), (100, 1)):
    out = np.asarray(_jpeg(x, np.full(256, q))) * 255.0
    # A flat block has only a DC term, F = 8 (v - 128); the decoder gets
    # 128 + Q k / 8 with k = F / Q rounded half away from zero, rounded to
    # 8 bits, and chroma stays exactly at 128.
    f = 8.0 * (levels - 128)
    k = np.sign(f) * np.floor(np.abs(f) / q_dc + 0.5)
    want = np.clip(np.floor(128 + q_dc * k / 8 + 0.5), 0, 255)
    np.testing.assert_allclose(out, np.broadcast_to(
        want[:, None, None, None], out.shape), atol=1e-3, err_msg=f'q={q}')
    pil = [_pil_roundtrip(np.full((10, 13, 3), v, np.uint8), q)[0, 0, 0]
           for v in levels[::15]]
    np.testing.assert_array_equal(want[::15], pil)
  # Worked by hand: grey 127 at q=50 is the tie k = -0.5 -> -1, so 126;
  # 37 -> -45.5 -> -46 -> 36; q=100 is lossless on flat images.
  assert (want == levels).all()
  out50 = np.asarray(_jpeg(x, np.full(256, 50)))[:, 0, 0, 0] * 255
  assert round(out50[127]) == 126 and round(out50[37]) == 36
