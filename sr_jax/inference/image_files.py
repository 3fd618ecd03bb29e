"""Image files for inference: read any image, write the result at its depth.

Unlike training's reader (`sr_jax.data.image_io`, always uint8 RGB), this
keeps what a user expects to get back:
  * alpha: kept, upscaled separately (by the network, run on the alpha as a
    grey RGB image, like Real-ESRGAN's alpha_upsampler='realesrgan'; or by
    bicubic resize);
  * 16 bits: 16-bit PNGs are read as v / 65535 and written back as uint16
    PNGs; other formats are written at 8 bits;
  * grey: grey images (L, LA, I;16) run through the network as RGB with the
    grey replicated and come back grey, as the mean of the three output
    channels (equal weights: the network saw R = G = B);
  * palette images become RGB, or RGBA when they have transparency.
Pillow cannot decode 16-bit colour PNGs beyond their high byte, so those are
decoded by TensorFlow (already a dependency, imported only then) and written
by the small PNG encoder below. EXIF orientation is applied (Pillow files).

Files are written to a temporary file next to the target and renamed into
place, so a failure never leaves a partial output.
"""
import dataclasses
import functools
import os
import struct
from typing import BinaryIO, Callable
import zlib

import numpy as np
from PIL import Image
from PIL import ImageOps

from sr_jax.data.image_io import IMAGE_EXTENSIONS
from sr_jax import io_utils
from sr_jax.inference import tiling

# Extension -> Pillow format for outputs; '.png' with 16 bits uses _write_png16.
WRITE_FORMATS = {'.png': 'PNG', '.jpg': 'JPEG', '.jpeg': 'JPEG',
                 '.webp': 'WEBP', '.bmp': 'BMP', '.tif': 'TIFF',
                 '.tiff': 'TIFF'}
_NO_ALPHA_FORMATS = ('JPEG', 'BMP')
_UINT16_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
_PNG_SIGNATURE = b'\x89PNG\r\n\x1a\n'
# zlib level of 16-bit PNGs: level 3 is ~4x faster than 6 on 16-bit photos
# and within a few % in size (16-bit noise barely compresses either way).
PNG16_COMPRESS_LEVEL = 3
_RESAMPLE = {'lanczos': Image.Resampling.LANCZOS,
             'bicubic': Image.Resampling.BICUBIC}


@dataclasses.dataclass
class ImageData:
  """An image in memory.

  pixels: float32 [H, W, C] in [0, 1] (outputs may leave the range until
    written); C = 1 for grey images, 3 for colour.
  alpha: float32 [H, W] in [0, 1], or None.
  bit_depth: 8 or 16, the depth it was read at and will be written at.
  """
  pixels: np.ndarray
  alpha: np.ndarray | None = None
  bit_depth: int = 8

  @property
  def grey(self) -> bool:
    return self.pixels.shape[-1] == 1

  @property
  def size(self) -> tuple[int, int]:
    return self.pixels.shape[0], self.pixels.shape[1]

  def rgb(self) -> np.ndarray:
    """[H, W, 3] float32: the pixels, grey replicated to three channels."""
    if self.grey:
      return np.repeat(self.pixels, 3, axis=-1)
    return self.pixels


# ------------------------------------------------------------------ reading --

def _png_bit_depth_and_colour(path: str) -> tuple[int, int] | None:
  """(bit depth, colour type) from a PNG's IHDR, None for other files."""
  with open(path, 'rb') as f:
    head = f.read(26)
  if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) \
      or head[12:16] != b'IHDR':
    return None
  return head[24], head[25]


@functools.cache
def _tensorflow():
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # Its banner is noise.
  try:
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ValueError('Reading 16-bit colour PNGs needs TensorFlow (an sr_jax '
                     'dependency: pip install tensorflow-cpu).') from e
  try:
    # JAX owns the accelerators; TF must not reserve their memory.
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TF was initialised elsewhere already.
    pass
  return tf


def _read_png16_colour(path: str) -> ImageData:
  """16-bit RGB / RGBA / grey+alpha PNG, at full depth (via TensorFlow)."""
  tf = _tensorflow()
  with open(path, 'rb') as f:
    contents = f.read()
  try:
    values = tf.io.decode_png(contents, channels=0, dtype=tf.uint16).numpy()
  except tf.errors.OpError as e:
    raise ValueError(f'Could not read image {path!r}: {e.message}') from e
  values = values.astype(np.float32) / 65535.0
  channels = values.shape[-1]
  colour = values[..., :3] if channels >= 3 else values[..., :1]
  alpha = values[..., -1] if channels in (2, 4) else None
  return ImageData(colour, alpha, 16)


def _from_pil(img: Image.Image, path: str) -> ImageData:
  mode = img.mode
  has_key = 'transparency' in img.info  # Palette or tRNS colour key.
  grey = mode in ('1', 'L', 'LA', 'La', 'I', 'F') or mode in _UINT16_MODES
  if mode == 'F':
    raise ValueError(f'{path}: floating-point images have no defined value '
                     'range; convert it to an 8- or 16-bit PNG first.')
  if mode in _UINT16_MODES or mode == 'I':
    values = np.asarray(img)
    if values.min() < 0 or values.max() > 65535:
      raise ValueError(f'{path}: 32-bit integer image with values outside '
                       '[0, 65535]; convert it to an 8- or 16-bit PNG first.')
    return ImageData(values.astype(np.float32)[..., None] / 65535.0, None, 16)
  if mode in ('P', 'PA'):
    img = img.convert('RGBA' if mode == 'PA' or has_key else 'RGB')
  elif mode in ('L', 'RGB', '1') and has_key:
    img = img.convert('RGBA')  # Colour-keyed transparency becomes alpha.
  elif mode in ('1', 'La'):
    img = img.convert('L' if mode == '1' else 'LA')
  elif mode == 'RGBa':
    img = img.convert('RGBA')
  elif mode not in ('L', 'LA', 'RGB', 'RGBA'):
    img = img.convert('RGB')  # CMYK, YCbCr, LAB, HSV, RGBX.
  values = np.asarray(img).astype(np.float32) / 255.0
  if values.ndim == 2:
    values = values[..., None]
  alpha = values[..., -1] if img.mode in ('LA', 'RGBA') else None
  colour = values[..., :1] if grey else values[..., :3]
  return ImageData(colour, alpha, 8)


def read_image_file(path: str | os.PathLike[str]) -> ImageData:
  """Reads an image for upscaling (see the module doc for what is kept).

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a readable image (the message names the file).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Image file {path!r} does not exist.')
  try:
    png = _png_bit_depth_and_colour(path)
    if png is not None and png[0] == 16 and png[1] in (2, 4, 6):
      return _read_png16_colour(path)
    with Image.open(path) as img:
      img = ImageOps.exif_transpose(img)
      img.load()
      return _from_pil(img, path)
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    # PIL's messages do not always say which file was being read.
    raise ValueError(f'Could not read image {path!r}: {e}') from e


# ------------------------------------------------------------------ writing --

def output_extension(input_path: str, requested: str,
                     image: ImageData) -> str:
  """The output extension ('.png', ...) for an input and --ext.

  requested: 'auto' (the input's format, PNG if it cannot be written) or an
  extension. An image with alpha is written as PNG instead of a format that
  cannot store alpha (JPEG, BMP), as Real-ESRGAN does.
  """
  if requested == 'auto':
    ext = os.path.splitext(input_path)[1].lower()
    ext = ext if ext in WRITE_FORMATS else '.png'
  else:
    ext = '.' + requested.lower().lstrip('.')
    if ext not in WRITE_FORMATS:
      raise ValueError(f'--ext {requested!r}: use auto or one of '
                       f'{sorted(e[1:] for e in WRITE_FORMATS)}.')
  if image.alpha is not None and WRITE_FORMATS[ext] in _NO_ALPHA_FORMATS:
    ext = '.png'
  return ext


def _quantise(values: np.ndarray, bit_depth: int) -> np.ndarray:
  top = 65535 if bit_depth == 16 else 255
  out = np.clip(values, 0.0, 1.0) * np.float32(top)
  return np.round(out).astype(np.uint16 if bit_depth == 16 else np.uint8)


def _write_png16(f: BinaryIO, pixels: np.ndarray) -> None:
  """Writes uint16 [H, W, C] (C = 1, 2, 3, 4: L, LA, RGB, RGBA) as a PNG.

  Every row uses the 'Up' filter (difference to the row above), which is
  vectorised here and compresses smooth photos well; rows are compressed in
  blocks, so memory stays near one block beyond the image.
  """
  h, w, c = pixels.shape
  colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]

  def chunk(tag: bytes, data: bytes) -> None:
    f.write(struct.pack('>I', len(data)) + tag + data +
            struct.pack('>I', zlib.crc32(tag + data)))

  f.write(_PNG_SIGNATURE)
  chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 16, colour_type, 0, 0, 0))
  rows = np.ascontiguousarray(pixels.astype('>u2')).view(np.uint8)
  rows = rows.reshape(h, w * c * 2)
  compressor = zlib.compressobj(PNG16_COMPRESS_LEVEL)
  above = np.zeros(rows.shape[1], np.uint8)
  for start in range(0, h, 256):
    block = rows[start:start + 256]
    filtered = np.empty((block.shape[0], block.shape[1] + 1), np.uint8)
    filtered[:, 0] = 2  # Filter type 'Up'.
    filtered[:, 1:] = block
    filtered[0, 1:] -= above  # uint8 arithmetic wraps modulo 256, as PNG's.
    filtered[1:, 1:] -= block[:-1]
    above = block[-1]
    data = compressor.compress(filtered.tobytes())
    if data:
      chunk(b'IDAT', data)
  chunk(b'IDAT', compressor.flush())
  chunk(b'IEND', b'')


def _encode(f: BinaryIO, image: ImageData, fmt: str,
            jpeg_quality: int) -> list[str]:
  """Writes `image` to `f` in Pillow format `fmt`; returns notes on losses."""
  notes = []
  alpha = image.alpha
  if alpha is not None and fmt in _NO_ALPHA_FORMATS:
    notes.append(f'{fmt} cannot store alpha: alpha dropped')
    alpha = None
  bit_depth = image.bit_depth
  if bit_depth == 16 and fmt != 'PNG':
    notes.append(f'16-bit input written at 8 bits ({fmt}; use PNG for 16)')
    bit_depth = 8
  planes = image.pixels if alpha is None else np.concatenate(
      [image.pixels, alpha[..., None]], axis=-1)
  values = _quantise(planes, bit_depth)
  if bit_depth == 16:
    _write_png16(f, values)
    return notes
  mode = {1: 'L', 2: 'LA', 3: 'RGB', 4: 'RGBA'}[values.shape[-1]]
  pil = Image.fromarray(values[..., 0] if mode == 'L' else values, mode)
  options = {'quality': jpeg_quality} if fmt in ('JPEG', 'WEBP') else {}
  pil.save(f, format=fmt, **options)
  return notes


def write_image_file(path: str | os.PathLike[str], image: ImageData, *,
                     jpeg_quality: int = 95) -> list[str]:
  """Writes `image` atomically; the format follows the path's extension.

  Returns notes on what the format could not keep (alpha in JPEG, 16 bits
  outside PNG). On any failure the target is untouched and no temporary file
  remains.
  """
  path = os.fspath(path)
  ext = os.path.splitext(path)[1].lower()
  if ext not in WRITE_FORMATS:
    raise ValueError(f'Cannot write {path!r}: unknown image extension '
                     f'{ext!r}; use one of {sorted(WRITE_FORMATS)}.')
  with io_utils.atomic_write(path) as f:
    notes = _encode(f, image, WRITE_FORMATS[ext], jpeg_quality)
  return notes


# --------------------------------------------------------------- upscaling --

def resize(values: np.ndarray, size: tuple[int, int],
           method: str = 'lanczos') -> np.ndarray:
  """Resizes float32 [H, W, C] to size=(h, w) with Pillow, channel by channel.

  'lanczos' is Pillow's LANCZOS (a = 3, antialiased when shrinking), the
  high-quality resize for --outscale; 'bicubic' is Pillow's BICUBIC
  (a = -0.5). Float ('F') images: no 8-bit rounding in between.
  """
  h, w = size
  planes = [np.asarray(Image.fromarray(np.ascontiguousarray(
      values[..., c], np.float32), 'F').resize((w, h), _RESAMPLE[method]))
            for c in range(values.shape[-1])]
  return np.stack(planes, axis=-1)


def upscale_image_data(image: ImageData,
                       upscale_rgb: Callable[[np.ndarray], np.ndarray], *,
                       outscale: float | None = None,
                       alpha_upsampler: str = 'network') -> ImageData:
  """Upscales colour (and alpha) of an image with a network.

  Args:
    image: as read by read_image_file.
    upscale_rgb: [H, W, 3] float32 -> [s H, s W, 3] float32 (the network,
      tiled and/or ensembled).
    outscale: final size round(H * outscale) x round(W * outscale) by Lanczos
      resize of the network output; None keeps the network's scale.
    alpha_upsampler: 'network' (alpha as a grey RGB image through
      upscale_rgb, the mean of the 3 outputs) or 'bicubic'.
  Returns:
    ImageData at the new size, same channels and bit depth, values unclipped.
  """
  if alpha_upsampler not in ('network', 'bicubic'):
    raise ValueError(f'alpha_upsampler={alpha_upsampler!r}; use network or '
                     'bicubic.')
  out = upscale_rgb(image.rgb())
  if image.grey:
    out = out.mean(axis=-1, keepdims=True)
  alpha = None
  if image.alpha is not None:
    if alpha_upsampler == 'network':
      alpha = upscale_rgb(np.repeat(image.alpha[..., None], 3, axis=-1))
      alpha = alpha.mean(axis=-1)
    else:
      alpha = resize(image.alpha[..., None], out.shape[:2], 'bicubic')[..., 0]
  if outscale is not None:
    size = tiling.output_size(*image.size, outscale)
    if size != out.shape[:2]:
      out = resize(out, size)
      alpha = None if alpha is None else resize(alpha[..., None], size)[..., 0]
  return ImageData(out, alpha, image.bit_depth)


def is_image_file(path: str) -> bool:
  return os.path.splitext(path)[1].lower() in IMAGE_EXTENSIONS
