"""Bounded host memory in `python -m sr_jax.upscale`.

References: the previous float path (the whole output in float32, quantised
at the end), kept here as it was, which the streamed, quantise-as-placed
path must match to the bit; Pillow and TensorFlow decoding the PNG writer's
files; a PNG header claiming a huge size; faked out-of-memory errors; the
peak RSS of a subprocess against the output's size.
"""
import io
import json
import struct
import warnings
import zlib

import jax
import numpy as np
from PIL import Image
from PIL import ImageFile
import pytest

from sr_jax import models
from sr_jax import upscale
from sr_jax.data import image_io
from sr_jax.inference import generator_loading
from sr_jax.inference import image_files
from sr_jax.inference import png_writer
from sr_jax.inference import tiling
from sr_jax.weights import params_io
from tests.helpers.repo import run_python

# ------------------------------------------- the previous float path, as it was


def old_upscale_tiled(run_batch, image, scale, *, tile, tile_pad, batch_tiles,
                      multiple, pre_pad):
  """The whole [H s, W s, C] float32 output, from padded copies."""
  h, w = image.shape[:2]
  image = np.asarray(image, np.float32)
  if pre_pad:
    image = np.pad(image, ((pre_pad, pre_pad), (pre_pad, pre_pad), (0, 0)),
                   mode='edge')
  padded = tiling.pad_to_multiple(image, multiple)
  ph, pw = padded.shape[:2]
  tile = tiling.round_up(tile, multiple) if tile > 0 else 0
  tiles, (win_h, win_w) = tiling.tile_grid(
      ph, pw, tile, tiling.round_up(tile_pad, multiple))
  batch_size = min(batch_tiles, len(tiles))
  output = None
  for i in range(0, len(tiles), batch_size):
    batch = tiles[i:i + batch_size]
    batch = batch + [batch[-1]] * (batch_size - len(batch))
    windows = np.stack([padded[t.wy:t.wy + win_h, t.wx:t.wx + win_w]
                        for t in batch])
    result = np.asarray(run_batch(windows), np.float32)
    if output is None:
      output = np.empty((ph * scale, pw * scale, result.shape[3]), np.float32)
    for out, t in zip(result, batch):
      oy, ox = (t.y0 - t.wy) * scale, (t.x0 - t.wx) * scale
      output[t.y0 * scale:t.y1 * scale, t.x0 * scale:t.x1 * scale] = out[
          oy:oy + (t.y1 - t.y0) * scale, ox:ox + (t.x1 - t.x0) * scale]
  top = pre_pad * scale
  return output[top:top + h * scale, top:top + w * scale]


def old_self_ensemble(upscale_fn, image):
  total = None
  for flip in (False, True):
    for k in range(4):
      x = np.rot90(image[:, ::-1] if flip else image, k, axes=(0, 1))
      y = np.rot90(upscale_fn(np.ascontiguousarray(x)), -k, axes=(0, 1))
      y = y[:, ::-1] if flip else y
      total = y.astype(np.float32) if total is None else total + y
  return total / np.float32(8)


def old_resize(values, size, method='lanczos'):
  resample = {'lanczos': Image.Resampling.LANCZOS,
              'bicubic': Image.Resampling.BICUBIC}[method]
  planes = [np.asarray(Image.fromarray(np.ascontiguousarray(
      values[..., c], np.float32), 'F').resize(size[::-1], resample))
            for c in range(values.shape[-1])]
  return np.stack(planes, axis=-1)


def old_quantise(values, bit_depth):
  top = 65535 if bit_depth == 16 else 255
  out = np.clip(values, 0.0, 1.0) * np.float32(top)
  return np.round(out).astype(np.uint16 if bit_depth == 16 else np.uint8)


def as_read(values):
  """The float32 image the previous reader returned for stored values."""
  top = 65535.0 if values.dtype == np.uint16 else 255.0
  return values.astype(np.float32) / top


def old_path(pixels, alpha, upscale_rgb, *, outscale, alpha_upsampler,
             bit_depth):
  """Previous upscale_image_data + write's quantisation, on stored values."""
  pixels = as_read(pixels)
  rgb = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels
  out = upscale_rgb(rgb)
  if pixels.shape[-1] == 1:
    out = out.mean(axis=-1, keepdims=True)
  if alpha is not None:
    alpha = as_read(alpha)
    if alpha_upsampler == 'network':
      alpha = upscale_rgb(np.repeat(alpha[..., None], 3, axis=-1)).mean(-1)
    else:
      alpha = old_resize(alpha[..., None], out.shape[:2], 'bicubic')[..., 0]
  if outscale is not None:
    size = tiling.output_size(*pixels.shape[:2], outscale)
    if size != out.shape[:2]:
      out = old_resize(out, size)
      alpha = None if alpha is None else old_resize(alpha[..., None],
                                                    size)[..., 0]
  return (old_quantise(out, bit_depth),
          None if alpha is None else old_quantise(alpha, bit_depth))


# ------------------------------------------------------------------ helpers --


def fake_net(scale):
  """A numpy 'network' [K, h, w, 3] -> [K, s h, s w, 3]: a zero-padded 3x3
  stencil mixing channels (so window borders matter), upsampled, plus a
  ramp across the window (so window placement matters), leaving [0, 1]."""

  def run(x):
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = (0.5 * x + 0.2 * p[:, :-2, 1:-1] + 0.15 * p[:, 2:, 1:-1]
         + 0.25 * p[:, 1:-1, :-2] - 0.1 * p[:, 1:-1, 2:])
    y = y + 0.3 * (y[..., [1, 2, 0]] - y[..., [2, 0, 1]])
    y = np.repeat(np.repeat(y, scale, axis=1), scale, axis=2)
    ramp = np.linspace(-0.1, 0.12, y.shape[2], dtype=np.float32)
    return (1.2 * y + ramp[None, None, :, None] - 0.05).astype(np.float32)

  return run


def tiny_srvgg_weights(path, scale=4):
  module = models.SRVGGNetCompact(scale=scale, num_feat=4, num_conv=1)
  rng = np.random.default_rng(0)
  variables = module.init(  # Shapes only; values drawn below.
      jax.random.key(0), np.zeros((1, 8, 8, 3), np.float32))
  variables = jax.tree.map(
      lambda v: (0.3 * rng.standard_normal(v.shape)).astype(np.float32),
      variables)
  params_io.save_params(path, variables)
  return str(path)


def png16(values):
  """A 16-bit PNG of uint16 [H, W, C], built by hand (filter None)."""
  h, w, c = values.shape
  raw = values.astype('>u2').view(np.uint8).reshape(h, -1)
  rows = b''.join(b'\0' + r.tobytes() for r in raw)

  def chunk(tag, data):
    return (struct.pack('>I', len(data)) + tag + data +
            struct.pack('>I', zlib.crc32(tag + data)))

  return (png_writer.SIGNATURE + chunk(b'IHDR', struct.pack(
      '>IIBBBBB', w, h, 16, {1: 0, 2: 4, 3: 2, 4: 6}[c], 0, 0, 0)) +
          chunk(b'IDAT', zlib.compress(rows)) + chunk(b'IEND', b''))


def cli_args(**kwargs):
  """upscale's parsed arguments, with overrides."""
  args = upscale._parser().parse_args(['in.png', '-o', 'out', '--weights',
                                       'w.npz'])
  for key, value in kwargs.items():
    setattr(args, key, value)
  return args


# ------------------------------------- bit-identical to the previous float path

CASES = {
    # name: (shape, dtype, alpha, tiled kwargs, ensemble, outscale,
    #        alpha_upsampler, output bit depth)
    'rgb8_tiled': ((13, 17, 3), np.uint8, False,
                   dict(tile=5, tile_pad=2, batch_tiles=3, multiple=2,
                        pre_pad=2), False, None, 'network', 8),
    'rgb8_ensemble': ((9, 12, 3), np.uint8, False,
                      dict(tile=4, tile_pad=1, batch_tiles=2, multiple=1,
                           pre_pad=1), True, None, 'network', 8),
    'rgba8_network_alpha': ((11, 7, 3), np.uint8, True,
                            dict(tile=4, tile_pad=2, batch_tiles=4,
                                 multiple=1, pre_pad=0), False, None,
                            'network', 8),
    'rgba8_bicubic_outscale': ((11, 7, 3), np.uint8, True,
                               dict(tile=6, tile_pad=1, batch_tiles=1,
                                    multiple=1, pre_pad=3), False, 1.5,
                               'bicubic', 8),
    'rgb16_tiled': ((10, 14, 3), np.uint16, False,
                    dict(tile=4, tile_pad=3, batch_tiles=2, multiple=4,
                         pre_pad=1), False, None, 'network', 16),
    'rgb16_to_8': ((10, 14, 3), np.uint16, False,
                   dict(tile=0, tile_pad=0, batch_tiles=1, multiple=1,
                        pre_pad=2), False, None, 'network', 8),
    'grey8_outscale': ((12, 9, 1), np.uint8, False,
                       dict(tile=5, tile_pad=2, batch_tiles=2, multiple=1,
                            pre_pad=2), False, 3.3, 'network', 8),
    'grey16_alpha_ensemble': ((8, 11, 1), np.uint16, True,
                              dict(tile=3, tile_pad=1, batch_tiles=3,
                                   multiple=2, pre_pad=1), True, None,
                              'network', 16),
    'grey8_ensemble_outscale': ((7, 10, 1), np.uint8, False,
                                dict(tile=4, tile_pad=1, batch_tiles=1,
                                     multiple=1, pre_pad=0), True, 1.25,
                                'network', 8),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_streamed_output_equals_the_float_path_bit_for_bit(case):
  shape, dtype, has_alpha, kw, ensemble, outscale, alpha_up, depth = (
      CASES[case])
  scale = 2
  rng = np.random.default_rng(sorted(CASES).index(case))
  top = np.iinfo(dtype).max
  pixels = rng.integers(0, top + 1, shape).astype(dtype)
  alpha = (rng.integers(0, top + 1, shape[:2]).astype(dtype)
           if has_alpha else None)
  run = fake_net(scale)
  calls = []

  def run_batch(x):
    calls.append((x.dtype, x.shape, x.min(), x.max()))
    return run(x)

  def old_rgb(x):
    tiled = lambda v: old_upscale_tiled(run, v, scale, **kw)
    return old_self_ensemble(tiled, x) if ensemble else tiled(x)

  def streamed(x, sink):
    def tiled(v, s):
      tiling.upscale_tiled(run_batch, v, scale, sink=s, **kw)
    if ensemble:
      tiling.self_ensemble(tiled, x, scale, sink)
    else:
      tiled(x, sink)

  ref_pixels, ref_alpha = old_path(pixels, alpha, old_rgb, outscale=outscale,
                                   alpha_upsampler=alpha_up, bit_depth=depth)
  out = image_files.upscale_image_data(
      image_files.ImageData(pixels, alpha, 8 * pixels.itemsize), streamed,
      scale, outscale=outscale, alpha_upsampler=alpha_up, bit_depth=depth)
  assert out.bit_depth == depth
  assert out.pixels.dtype == ref_pixels.dtype == (
      np.uint16 if depth == 16 else np.uint8)
  np.testing.assert_array_equal(out.pixels, ref_pixels)
  if has_alpha:
    np.testing.assert_array_equal(out.alpha, ref_alpha)
  else:
    assert out.alpha is None
  # The network saw float32 windows in [0, 1], tile-sized when tiled.
  largest = (tiling.round_up(kw['tile'], kw['multiple'])
             + 2 * tiling.round_up(kw['tile_pad'], kw['multiple']))
  for window_dtype, window_shape, low, high in calls:
    assert window_dtype == np.float32 and 0 <= low <= high <= 1
    assert window_shape[-1] == 3
    assert not kw['tile'] or max(window_shape[1:3]) <= largest
  if not ensemble and shape[-1] == 3:  # Clipping matters here too.
    assert ref_pixels.min() == 0 and ref_pixels.max() == np.iinfo(
        ref_pixels.dtype).max


@pytest.mark.parametrize('multiple', [1, 2, 4])
def test_padded_index_is_the_padded_image(multiple):
  """Indexing with the maps equals padding copies (np.pad, pad_to_multiple),
  thin images (mirrored with the edge repeated) included."""
  for h in range(1, 7):
    for pre_pad in range(4):
      image = np.arange(h * 5 * 2).reshape(h, 5, 2)
      padded = np.pad(image, ((pre_pad, pre_pad), (pre_pad, pre_pad), (0, 0)),
                      mode='edge')
      padded = tiling.pad_to_multiple(padded, multiple)
      rows = tiling.padded_index(h, pre_pad, multiple)
      cols = tiling.padded_index(5, pre_pad, multiple)
      np.testing.assert_array_equal(image[np.ix_(rows, cols)], padded)


def test_streamed_tiles_are_sensitive_to_window_placement():
  """The comparison above can fail: another tile grid changes the output."""
  image = np.random.default_rng(0).integers(0, 256, (9, 9, 3), np.uint8)
  kw = dict(tile=4, tile_pad=1, batch_tiles=1, multiple=1, pre_pad=0)
  ref = old_upscale_tiled(fake_net(2), as_read(image), 2, **kw)
  out = tiling.upscale_tiled(fake_net(2), image, 2, **kw)
  np.testing.assert_array_equal(out, ref)  # Float path, bit for bit.
  shifted = tiling.upscale_tiled(fake_net(2), image, 2, **dict(kw, tile=3))
  assert np.abs(shifted - ref).max() > 1e-3


@pytest.fixture(scope='module')
def rrdb_x2(tmp_path_factory):
  """A tiny RRDBNet x2 (pixel-unshuffle input: the mod pad is exercised)."""
  module = models.RRDBNet(scale=2, num_feat=4, num_block=0)
  variables = module.init(jax.random.key(1), np.zeros((1, 8, 8, 3)))
  rng = np.random.default_rng(1)
  variables = jax.tree.map(
      lambda v: (0.4 * rng.standard_normal(v.shape)).astype(np.float32),
      variables)
  path = tmp_path_factory.mktemp('w') / 'rrdb_x2.npz'
  params_io.save_params(path, variables)
  return str(path)


@pytest.mark.parametrize('kind,flags', [
    ('rgba8', ['--tile', '6', '--tile-pad', '4', '--batch-tiles', '3']),
    ('rgb16', ['--tile', '8', '--tile-pad', '2', '--ensemble']),
    ('grey8', ['--outscale', '1.5', '--alpha-upsampler', 'bicubic']),
])
def test_cli_files_equal_the_float_path(tmp_path, rrdb_x2, kind, flags):
  """End to end with a real network: read, stream, quantise, write, read."""
  rng = np.random.default_rng(3)
  if kind == 'rgba8':
    values = rng.integers(0, 256, (15, 13, 4), np.uint8)
    Image.fromarray(values).save(tmp_path / 'in.png')
    pixels, alpha = values[..., :3], values[..., 3]
  elif kind == 'rgb16':
    values = rng.integers(0, 65536, (11, 14, 3)).astype(np.uint16)
    (tmp_path / 'in.png').write_bytes(png16(values))
    pixels, alpha = values, None
  else:
    values = rng.integers(0, 256, (10, 9), np.uint8)
    Image.fromarray(values).save(tmp_path / 'in.png')
    pixels, alpha = values[..., None], None
  dst = tmp_path / 'out.png'
  assert upscale.main([str(tmp_path / 'in.png'), '-o', str(dst), '--weights',
                       rrdb_x2, '--arch', 'rrdbnet'] + flags) == 0
  module, variables, scale = generator_loading.load_generator_for_inference(
      weights=rrdb_x2, arch='rrdbnet')
  run_batch = generator_loading.make_run_batch(module, variables)
  args = upscale._parser().parse_args(['x', '-o', 'y', '--weights', 'z']
                                      + flags)
  upscale._release_defaults(args, scale)  # --pre-pad as the CLI resolves it
  assert args.pre_pad == 8
  kw = dict(tile=args.tile, tile_pad=args.tile_pad,
            batch_tiles=args.batch_tiles, multiple=2, pre_pad=args.pre_pad)

  def old_rgb(x):
    tiled = lambda v: old_upscale_tiled(run_batch, v, scale, **kw)
    return old_self_ensemble(tiled, x) if args.ensemble else tiled(x)

  ref_pixels, ref_alpha = old_path(
      pixels, alpha, old_rgb, outscale=args.outscale,
      alpha_upsampler=args.alpha_upsampler, bit_depth=8 * pixels.itemsize)
  back = image_files.read_image_file(dst)
  np.testing.assert_array_equal(back.pixels, ref_pixels)
  if alpha is not None:
    np.testing.assert_array_equal(back.alpha, ref_alpha)


# -------------------------------------------------------------- PNG writer --


@pytest.mark.parametrize('dtype', [np.uint8, np.uint16])
@pytest.mark.parametrize('channels', [1, 2, 3, 4])
def test_png_writer_round_trip(tmp_path, monkeypatch, dtype, channels):
  # Tiny bands (of 1-5 rows): 'Up' across band borders is checked too.
  monkeypatch.setattr(png_writer, '_BAND_BYTES', 50)
  rng = np.random.default_rng(channels)
  values = rng.integers(0, np.iinfo(dtype).max + 1, (23, 9, channels)
                        ).astype(dtype)
  values[5:12] = values[4]  # Smooth rows too: 'Up' gives zeros there.
  buf = io.BytesIO()
  if channels in (2, 4):  # Alpha as a separate plane, colour a strided view.
    colour = values[:, :, :channels - 1]
    png_writer.write_png(buf, colour, np.ascontiguousarray(values[..., -1]))
  else:
    png_writer.write_png(buf, values[..., 0] if channels == 1 else values)
  data = buf.getvalue()
  with Image.open(io.BytesIO(data)) as img:
    decoded = np.asarray(img)
  if dtype == np.uint8 or channels == 1:
    # Pillow decodes these exactly: 8 bits, and 16-bit grey ('I;16').
    np.testing.assert_array_equal(decoded.reshape(values.shape), values)
  else:
    # Pillow keeps the high byte of 16-bit colour (grey + alpha becomes
    # RGBA); TensorFlow decodes all 16 bits.
    if channels == 2:
      decoded = decoded[..., [0, 3]]
    np.testing.assert_array_equal(decoded, values >> 8)
    tf = image_files._tensorflow()
    full = tf.io.decode_png(data, channels=0, dtype=tf.uint16).numpy()
    np.testing.assert_array_equal(full, values)


def test_png_writer_refuses_bad_input():
  with pytest.raises(ValueError, match='uint8 or uint16'):
    png_writer.write_png(io.BytesIO(), np.zeros((2, 2, 3), np.float32))
  with pytest.raises(ValueError, match='alpha'):
    png_writer.write_png(io.BytesIO(), np.zeros((2, 2, 3), np.uint8),
                         np.zeros((2, 2), np.uint16))
  with pytest.raises(ValueError, match='channels'):
    png_writer.write_png(io.BytesIO(), np.zeros((2, 2, 4), np.uint8),
                         np.zeros((2, 2), np.uint8))


def test_write_image_file_formats(tmp_path):
  """PNG through the streaming writer, others through Pillow, at depth."""
  rng = np.random.default_rng(9)
  pixels = rng.integers(0, 65536, (6, 5, 3)).astype(np.uint16)
  alpha = rng.integers(0, 65536, (6, 5)).astype(np.uint16)
  image = image_files.ImageData(pixels, alpha, 16)
  assert image_files.write_image_file(tmp_path / 'a.png', image) == []
  back = image_files.read_image_file(tmp_path / 'a.png')
  np.testing.assert_array_equal(back.pixels, pixels)
  np.testing.assert_array_equal(back.alpha, alpha)
  notes = image_files.write_image_file(tmp_path / 'a.tif', image)
  assert notes == ['16-bit input written at 8 bits (TIFF; use PNG for 16)']
  assert image_files.output_bit_depth(tmp_path / 'a.tif', 16) == (8, notes)
  assert image_files.output_bit_depth(tmp_path / 'a.png', 16) == (16, [])
  with Image.open(tmp_path / 'a.tif') as img:
    assert img.mode == 'RGBA'
    np.testing.assert_array_equal(  # round(v * 255 / 65535)
        np.asarray(img)[..., :3],
        np.round(pixels.astype(np.float64) * 255 / 65535).astype(np.uint8))


# ------------------------------------------------------------ --max-pixels --


def png_claiming(path, width, height):
  """A small valid PNG whose IHDR then claims width x height (CRC fixed):
  nothing that large is ever allocated."""
  buf = io.BytesIO()
  Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(buf, 'PNG')
  data = bytearray(buf.getvalue())
  assert data[12:16] == b'IHDR'
  data[16:24] = struct.pack('>II', width, height)
  data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
  path.write_bytes(bytes(data))


@pytest.mark.slow
def test_max_pixels_refuses_from_the_header(tmp_path, monkeypatch, capsys):
  bomb = tmp_path / 'bomb.png'
  png_claiming(bomb, 200_000, 150_000)  # 3e10 pixels in ~70 bytes.

  def no_decoding(self):
    raise AssertionError('pixel data was decoded')

  monkeypatch.setattr(ImageFile.ImageFile, 'load', no_decoding)
  with pytest.raises(image_io.ImageTooLargeError) as e:
    image_files.read_image_file(bomb)
  message = str(e.value)
  assert 'bomb.png' in message and '200000x150000' in message
  assert '30,000,000,000 pixels' in message and '100,000,000' in message
  assert '--max-pixels' in message and '\n' not in message
  # Through the CLI: skipped with that one line, exit status 1.
  weights = tiny_srvgg_weights(tmp_path / 'w.npz')
  code = upscale.main([str(bomb), '-o', str(tmp_path / 'out'), '--weights',
                       weights, '--arch', 'srvgg'])
  err = capsys.readouterr().err
  assert code == 1
  skipped = [line for line in err.splitlines() if 'skipped' in line]
  assert len(skipped) == 1 and '200000x150000' in skipped[0]
  assert 'Traceback' not in err and not (tmp_path / 'out').exists()


def test_max_pixels_small_limit_and_no_limit(tmp_path, capsys):
  Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / 'a.png')
  (tmp_path / 'b.png').write_bytes(png16(np.zeros((12, 12, 3), np.uint16)))
  for name in ('a.png', 'b.png'):  # Pillow and TensorFlow readers.
    with pytest.raises(image_io.ImageTooLargeError, match='144 pixels'):
      image_files.read_image_file(tmp_path / name, max_pixels=100)
    assert image_files.read_image_file(tmp_path / name,
                                       max_pixels=144).size == (12, 12)
  weights = tiny_srvgg_weights(tmp_path / 'w.npz')
  base = [str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'), '--weights',
          weights, '--arch', 'srvgg']
  assert upscale.main(base + ['--max-pixels', '100']) == 1
  assert 'above the limit of 100' in capsys.readouterr().err
  assert upscale.main(base + ['--max-pixels', '0']) == 0


def test_pillow_bomb_guard_does_not_fire_within_our_limit(tmp_path,
                                                          monkeypatch):
  """Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; our
  limit decides instead (shrunk here so a small image crosses both)."""
  Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / 'a.png')
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 50)  # 144 > 2 * 50.
  with warnings.catch_warnings():
    warnings.simplefilter('error', Image.DecompressionBombWarning)
    image = image_files.read_image_file(tmp_path / 'a.png', max_pixels=1000)
  assert image.size == (12, 12)
  monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 100)  # Warning range.
  with warnings.catch_warnings():
    warnings.simplefilter('error', Image.DecompressionBombWarning)
    assert image_files.read_image_file(tmp_path / 'a.png').size == (12, 12)
  assert Image.MAX_IMAGE_PIXELS == 100  # Restored after the lift.


# ---------------------------------------------------------------- OOM hints --


def _device_oom():
  return RuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to '
                      'allocate 25769803776 bytes.')


@pytest.mark.parametrize('flags,expected,absent', [
    (dict(tile=0), ['--tile 512', '--dtype bfloat16'], ['--batch-tiles']),
    (dict(tile=256, batch_tiles=4),
     ['--tile 128 --batch-tiles 1', 'or --dtype bfloat16'], ['--tile 512']),
    (dict(tile=512, batch_tiles=1, dtype='bfloat16'), ['--tile 256'],
     ['--batch-tiles', 'bfloat16']),
])
def test_device_oom_hint(flags, expected, absent):
  hint = upscale.memory_hint(_device_oom(), cli_args(**flags), 4)
  assert 'out of device memory' in hint
  for text in expected:
    assert text in hint
  for text in absent:
    assert text not in hint


def test_host_oom_hint_says_what_the_output_needs():
  image = image_files.ImageData(np.zeros((3000, 4000, 3), np.uint8))
  error = MemoryError('Unable to allocate 25.7 GiB')
  hint = upscale.memory_hint(error, cli_args(tile=512), 4, image, 8)
  # 16000 x 12000 x 3 bytes.
  assert 'out of host memory' in hint and '16000x12000' in hint
  assert '0.6 GB at 8 bits' in hint and '--tile' not in hint
  assert '--outscale' in hint and 'PNG' in hint
  grey16 = image_files.ImageData(np.zeros((12000, 12000, 1), np.uint16),
                                 np.zeros((12000, 12000), np.uint16), 16)
  hint = upscale.memory_hint(error, cli_args(ensemble=True), 4, grey16, 16)
  # 48000^2 x 2 channels x 2 bytes; the ensemble's sum 48000^2 x 12 bytes.
  assert '9.2 GB at 16 bits' in hint and '--ensemble adds 27.6 GB' in hint
  assert 'reading' in upscale.memory_hint(error, cli_args(), 4)
  assert upscale.memory_hint(ValueError('bad'), cli_args(), 4) == ''
  assert upscale.memory_hint(OSError('disk'), cli_args(), 4, image) == ''


@pytest.mark.slow
def test_cli_prints_the_hint_and_goes_on(tmp_path, monkeypatch, capsys):
  for name in ('a.png', 'b.png'):
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / name)
  weights = tiny_srvgg_weights(tmp_path / 'w.npz')
  real = image_files.upscale_image_data

  def fails_once(image, *args, **kwargs):
    monkeypatch.setattr(image_files, 'upscale_image_data', real)
    raise MemoryError('Unable to allocate 1.0 TiB')

  monkeypatch.setattr(image_files, 'upscale_image_data', fails_once)
  code = upscale.main([str(tmp_path), '-o', str(tmp_path / 'o'), '--weights',
                       weights, '--arch', 'srvgg', '--tile', '4'])
  err = capsys.readouterr().err
  assert code == 1
  assert 'skipped' in err and 'out of host memory' in err and '20x24' in err
  assert (tmp_path / 'o' / 'b_out.png').exists()


# ------------------------------------------------------------------- memory --

# Runs the small image (compiles, warms up), resets the peak RSS (Linux:
# /proc/self/clear_refs), runs the big one; prints [RSS before, peak during].
_MEASURE = r'''
import json, sys
from sr_jax import upscale

def status(key):
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(key + ':'):
        return int(line.split()[1]) * 1024

def run(src, dst):
  assert upscale.main([src, '-o', dst, '--weights', sys.argv[5], '--arch',
                       'srvgg', '--tile', '64', '--tile-pad', '4']) == 0

run(sys.argv[1], sys.argv[2])
try:
  with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # Resets VmHWM, the peak RSS, to the current RSS.
except OSError as e:
  print(json.dumps(f'cannot reset the peak RSS: {e}'))
  sys.exit(0)
before = status('VmRSS')
run(sys.argv[3], sys.argv[4])
print(json.dumps([before, status('VmHWM')]))
'''


@pytest.mark.slow  # ~5 s alone: a subprocess importing JAX, a 36 MB PNG.
def test_peak_rss_stays_near_the_output_size(tmp_path):
  """A 4000x3000x3 (36 MB) output: the peak RSS may grow by at most 1.5x
  that plus 24 MB over the RSS after a run of a small image with the same
  tiles (which compiled everything). The previous float path grew by 461
  MiB here; one extra uint8 copy of the output would fail this too."""
  y, x = np.mgrid[0:750, 0:1000]
  big = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
  Image.fromarray(big).save(tmp_path / 'big.png')
  Image.fromarray(big[:100, :100]).save(tmp_path / 'small.png')
  weights = tiny_srvgg_weights(tmp_path / 'w.npz')
  result = run_python(['-c', _MEASURE, str(tmp_path / 'small.png'),
                       str(tmp_path / 's.png'), str(tmp_path / 'big.png'),
                       str(tmp_path / 'b.png'), weights], timeout=120,
                      # A fixed threshold: glibc then returns every freed
                      # block over 128 KiB at once, instead of raising the
                      # threshold and keeping freed blocks (~50 MB of tile
                      # and band buffers here) in its heap, which would
                      # add allocator slack to what our arrays take.
                      env_extra={'MALLOC_MMAP_THRESHOLD_': '131072'})
  assert result.returncode == 0, result.stderr
  measured = json.loads(result.stdout.strip().splitlines()[-1])
  if isinstance(measured, str):
    pytest.skip(measured)
  before, peak = measured
  output_bytes = 4000 * 3000 * 3
  growth = peak - before
  print(f'RSS {before / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB '
        f'(+{growth / 2**20:.0f} MiB) for a {output_bytes / 2**20:.0f} MiB '
        'output')
  assert output_bytes < growth < 1.5 * output_bytes + (24 << 20)
  with Image.open(tmp_path / 'b.png') as img:
    assert img.size == (4000, 3000)

