"""Images, weights and arguments for the upscale and inference tests: the
untiled reference, PNGs built by hand, a tiny SRVGG, upscale's parsed
arguments."""
import struct
import zlib

import jax
import numpy as np

from sr_jax import models
from sr_jax import upscale
from sr_jax.inference import png_writer
from sr_jax.inference import tiling
from sr_jax.weights import params_io


def direct(module, variables, image, multiple=1):
  """The untiled reference: the whole (mod-padded) image in one apply."""
  h, w = image.shape[:2]
  padded = tiling.pad_to_multiple(image, multiple)
  out = np.asarray(module.apply(variables, padded[None], train=False))[0]
  s = module.scale
  return out[:h * s, :w * s]


def png_bytes(values: np.ndarray, filters=(0,)) -> bytes:
  """A PNG built by hand: uint8/uint16 [H, W, C], rows cycling `filters`
  (0 None, 1 Sub), so the reader is tested on more than one filter type."""
  h, w, c = values.shape
  depth = 16 if values.dtype == np.uint16 else 8
  raw = values.astype('>u2' if depth == 16 else 'u1').view(np.uint8)
  raw = raw.reshape(h, -1)
  bpp = c * depth // 8
  rows = []
  for y in range(h):
    f = filters[y % len(filters)]
    row = raw[y].copy()
    if f == 1:
      row[bpp:] = raw[y, bpp:] - raw[y, :-bpp]
    rows.append(bytes([f]) + row.tobytes())

  def chunk(tag, data):
    return (struct.pack('>I', len(data)) + tag + data +
            struct.pack('>I', zlib.crc32(tag + data)))

  colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
  return (b'\x89PNG\r\n\x1a\n' +
          chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, colour_type,
                                     0, 0, 0)) +
          chunk(b'IDAT', zlib.compress(b''.join(rows))) + chunk(b'IEND', b''))


def png_header(path):
  """(width, height, bit depth, colour type) from the IHDR bytes."""
  with open(path, 'rb') as f:
    head = f.read(26)
  return struct.unpack('>II', head[16:24]) + (head[24], head[25])


def nearest(x, s):
  return np.repeat(np.repeat(x, s, axis=0), s, axis=1)


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
