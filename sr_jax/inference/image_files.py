"""Image files for inference: read any image, write the result at its depth.

Unlike training's reader (`sr_jax.data.image_io`, always uint8 RGB), this
keeps what a user expects to get back:
  * alpha: kept, upscaled separately (by the network, run on the alpha as a
    grey RGB image, like Real-ESRGAN's alpha_upsampler='realesrgan'; or by
    bicubic resize);
  * 16 bits: 16-bit PNGs are read as uint16 (fed to the network as
    v / 65535) and written back as uint16 PNGs; other formats are written
    at 8 bits;
  * grey: grey images (L, LA, I;16) run through the network as RGB with the
    grey replicated and come back grey, as the mean of the three output
    channels (equal weights: the network saw R = G = B);
  * palette images become RGB, or RGBA when they have transparency;
  * animated or multi-page files (GIF, APNG, WebP, TIFF): the first frame,
    with the frame count in ImageData.frames so the caller can say so.
Pillow cannot decode 16-bit colour PNGs beyond their high byte, so those are
decoded by TensorFlow (already a dependency, imported only then). EXIF
orientation is applied (Pillow files).

Host memory. Images are kept at their stored depth (uint8 / uint16), never
as float copies: the network gets float windows (inference.tiling), and the
result is allocated once at the output's bit depth and filled block by
block, each block quantised as it arrives (the same clip and round as
quantising the whole float output, so the values are identical). PNGs are
written a band of rows at a time (inference.png_writer); other formats go
through Pillow, which makes one copy of its own (4 bytes per pixel for RGB).
Inputs larger than max_pixels are refused from their header, before any
pixel is decoded.

Files are written to a temporary file next to the target and renamed into
place, so a failure never leaves a partial output.
"""
import dataclasses
import os

import numpy as np
from PIL import Image
from PIL import ImageOps

from sr_jax.utils import io_utils
from sr_jax.utils import tensorflow_cpu
from sr_jax.data import image_io
from sr_jax.data.image_io import IMAGE_EXTENSIONS
from sr_jax.inference import png_writer
from sr_jax.inference import resize as resize_lib
from sr_jax.inference import tiling

# Extension -> Pillow format for outputs; PNGs are written by png_writer.
WRITE_FORMATS = {'.png': 'PNG', '.jpg': 'JPEG', '.jpeg': 'JPEG',
                 '.webp': 'WEBP', '.bmp': 'BMP', '.tif': 'TIFF',
                 '.tiff': 'TIFF'}
# Extensions of the files a folder or glob INPUT takes: training's, and GIF
# (read as its first frame; it is written back as PNG).
INPUT_EXTENSIONS = IMAGE_EXTENSIONS + ('.gif',)
# Input pixels (width x height) read_image_file accepts by default; larger
# headers are refused before decoding (0: no limit). Training's default
# limit (data.max_image_pixels) is the same.
DEFAULT_MAX_PIXELS = 100_000_000
_NO_ALPHA_FORMATS = ('JPEG', 'BMP')
_UINT16_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
_DTYPES = {8: np.uint8, 16: np.uint16}
_RESAMPLE = {'lanczos': Image.Resampling.LANCZOS,
             'bicubic': Image.Resampling.BICUBIC}
# Output rows quantised at a time from a resized float channel.
_BAND_ROWS = 256


@dataclasses.dataclass
class ImageData:
  """An image in memory.

  pixels: [H, W, C], C = 1 for grey, 3 for colour. As read and as returned
    by upscale_image_data: the stored values, uint8 (bit_depth 8) or uint16
    (16). Float32 in [0, 1] is accepted too (clipped and rounded when
    written).
  alpha: [H, W], like pixels, or None.
  bit_depth: 8 or 16, the depth it was read at and will be written at.
  frames: the frames (pages) of the file it was read from; only the first
    is read.
  """
  pixels: np.ndarray
  alpha: np.ndarray | None = None
  bit_depth: int = 8
  frames: int = 1

  @property
  def grey(self) -> bool:
    return self.pixels.shape[-1] == 1

  @property
  def size(self) -> tuple[int, int]:
    return self.pixels.shape[0], self.pixels.shape[1]

  def rgb(self) -> np.ndarray:
    """[H, W, 3] pixels, grey replicated (a read-only view, no copy)."""
    if self.grey:
      return np.broadcast_to(self.pixels, (*self.size, 3))
    return self.pixels


def output_bytes(height: int, width: int, channels: int,
                 bit_depth: int) -> int:
  """Bytes of an output image at its bit depth (alpha counts as a channel)."""
  return height * width * channels * bit_depth // 8


# ------------------------------------------------------------------ reading --

def _png_bit_depth_and_colour(path: str) -> tuple[int, int] | None:
  """(bit depth, colour type) from a PNG's IHDR, None for other files."""
  with open(path, 'rb') as f:
    head = f.read(26)
  if len(head) < 26 or not head.startswith(png_writer.SIGNATURE) \
      or head[12:16] != b'IHDR':
    return None
  return head[24], head[25]


def _check_pixels(path: str, size: tuple[int, int],
                  max_pixels: int | None) -> None:
  """Refuses a header of more than max_pixels pixels (None, 0: no limit)."""
  width, height = size
  if max_pixels and width * height > max_pixels:
    raise image_io.ImageTooLargeError(
        f'{path} is {width}x{height} = {width * height:,} pixels, above the '
        f'limit of {max_pixels:,} (refused from its header, not decoded); '
        'raise it with --max-pixels N, 0 for no limit.')


def _open_checked(path: str, max_pixels: int | None, use):
  """use(img) for `path` opened by Pillow (header only), once its size
  passes max_pixels.

  Opened through image_io's opener with its own limit off (0), which keeps
  Pillow's decompression-bomb warning (above ~89 MP) and error (~179 MP)
  out of the way: our limit alone decides, with a message naming the flag.
  """
  def checked(img: Image.Image):
    _check_pixels(path, img.size, max_pixels)
    return use(img)

  return image_io.with_open_image(path, 0, checked)


def _tensorflow():
  try:
    return tensorflow_cpu.tensorflow()
  except ImportError as e:
    raise ValueError('Reading 16-bit colour PNGs needs TensorFlow (an sr_jax '
                     'dependency: pip install tensorflow-cpu).') from e


def _read_png16_colour(path: str) -> ImageData:
  """16-bit RGB / RGBA / grey+alpha PNG, at full depth (via TensorFlow)."""
  tf = _tensorflow()
  with open(path, 'rb') as f:
    contents = f.read()
  try:
    values = tf.io.decode_png(contents, channels=0, dtype=tf.uint16).numpy()
  except tf.errors.OpError as e:
    raise ValueError(f'Could not read image {path!r}: {e.message}') from e
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
    return ImageData(values.astype(np.uint16, copy=False)[..., None],
                     None, 16)
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
  values = np.asarray(img)  # uint8; colour and alpha stay views of it.
  if values.ndim == 2:
    values = values[..., None]
  alpha = values[..., -1] if img.mode in ('LA', 'RGBA') else None
  colour = values[..., :1] if grey else values[..., :3]
  return ImageData(colour, alpha, 8)


def _decode(img: Image.Image, path: str) -> ImageData:
  frames = getattr(img, 'n_frames', 1)  # Animated / multi-page: frame 1.
  # In place: no copy of the decoded image when it has no orientation tag.
  ImageOps.exif_transpose(img, in_place=True)
  img.load()
  return dataclasses.replace(_from_pil(img, path), frames=frames)


def read_image_file(path: str | os.PathLike[str],
                    max_pixels: int | None = DEFAULT_MAX_PIXELS
                    ) -> ImageData:
  """Reads an image for upscaling (see the module doc for what is kept).

  Args:
    path: an image file (any format Pillow reads; 16-bit colour PNGs too).
    max_pixels: a file whose header says more pixels (width x height) is
      refused before decoding; 0 or None: no limit (Pillow's own
      decompression-bomb limit never applies).

  Returns:
    ImageData with uint8 or uint16 pixels (read-only arrays).

  Raises:
    FileNotFoundError: no such file.
    ImageTooLargeError: (a ValueError) above max_pixels; says how to raise it.
    ValueError: not a readable image (the message names the file).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Image file {path!r} does not exist.')
  try:
    png = _png_bit_depth_and_colour(path)
    if png is not None and png[0] == 16 and png[1] in (2, 4, 6):
      _open_checked(path, max_pixels, lambda img: None)
      return _read_png16_colour(path)
    return _open_checked(path, max_pixels, lambda img: _decode(img, path))
  except (OSError, SyntaxError, Image.DecompressionBombError) as e:
    # PIL's messages do not always say which file was being read.
    raise ValueError(f'Could not read image {path!r}: {e}') from e


# ------------------------------------------------------------------ writing --

def _format(path: str) -> str:
  ext = os.path.splitext(path)[1].lower()
  if ext not in WRITE_FORMATS:
    raise ValueError(f'Cannot write {path!r}: unknown image extension '
                     f'{ext!r}; use one of {sorted(WRITE_FORMATS)}.')
  return WRITE_FORMATS[ext]


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


def output_bit_depth(path: str | os.PathLike[str],
                     bit_depth: int) -> tuple[int, list[str]]:
  """(depth an image of `bit_depth` is written at in path's format, notes).

  16 bits only in PNG; other formats get 8, with a note saying so.
  """
  return _depth_in(_format(os.fspath(path)), bit_depth)


def _depth_in(fmt: str, bit_depth: int) -> tuple[int, list[str]]:
  if bit_depth == 16 and fmt != 'PNG':
    return 8, [f'16-bit input written at 8 bits ({fmt}; use PNG for 16)']
  return bit_depth, []


def _quantise(values: np.ndarray, bit_depth: int) -> np.ndarray:
  """round(clip(v, 0, 1) * (2^bits - 1)) of float32 values, as uint8/16.

  In place on one float32 temporary (the size of `values`).
  """
  out = np.clip(values, 0.0, 1.0)
  out *= np.float32(65535 if bit_depth == 16 else 255)
  np.round(out, out=out)
  return out.astype(_DTYPES[bit_depth])


def _at_depth(values: np.ndarray, bit_depth: int) -> np.ndarray:
  """Stored values of `bit_depth` bits: floats quantised, uint16 -> uint8
  as round(v * 255 / 65535) (through v / 65535 in float32), else as is."""
  if values.dtype == _DTYPES[bit_depth]:
    return values
  if np.issubdtype(values.dtype, np.floating):
    return _quantise(values, bit_depth)
  if values.dtype == np.uint16:
    return _quantise(tiling.as_float(values), bit_depth)
  raise ValueError(f'Cannot write {values.dtype} pixels at {bit_depth} bits.')


def _encode(f, image: ImageData, fmt: str, jpeg_quality: int) -> list[str]:
  """Writes `image` to `f` in Pillow format `fmt`; returns notes on losses."""
  notes = []
  alpha = image.alpha
  if alpha is not None and fmt in _NO_ALPHA_FORMATS:
    notes.append(f'{fmt} cannot store alpha: alpha dropped')
    alpha = None
  bit_depth, depth_notes = _depth_in(fmt, image.bit_depth)
  notes += depth_notes
  pixels = _at_depth(image.pixels, bit_depth)
  alpha = None if alpha is None else _at_depth(alpha, bit_depth)
  if fmt == 'PNG':
    png_writer.write_png(f, pixels, alpha)  # Streams: no second copy.
    return notes
  # Pillow keeps an image of its own (RGB: 4 bytes per pixel) to encode.
  if alpha is not None:
    pixels = np.concatenate([pixels, alpha[..., None]], axis=-1)
  pil = Image.fromarray(np.ascontiguousarray(
      pixels[..., 0] if pixels.shape[-1] == 1 else pixels))
  options = {'quality': jpeg_quality} if fmt in ('JPEG', 'WEBP') else {}
  pil.save(f, format=fmt, **options)
  return notes


def write_image_file(path: str | os.PathLike[str], image: ImageData, *,
                     jpeg_quality: int = 95) -> list[str]:
  """Writes `image` atomically; the format follows the path's extension.

  PNG (8 / 16 bits) is written row band by row band (png_writer), other
  formats by Pillow. Returns notes on what the format could not keep (alpha
  in JPEG, 16 bits outside PNG). On any failure the target is untouched and
  no temporary file remains.
  """
  path = os.fspath(path)
  fmt = _format(path)
  with io_utils.atomic_write(path) as f:
    notes = _encode(f, image, fmt, jpeg_quality)
  return notes


# --------------------------------------------------------------- upscaling --

def _resize(plane: Image.Image, size: tuple[int, int],
            outscale_filter: str) -> Image.Image:
  """A float ('F') Pillow plane resized to size (h, w): Pillow's Lanczos,
  or ncnn's cubic (inference.resize: the release's x2 / x3 resize)."""
  if outscale_filter == 'lanczos':
    return plane.resize(size[::-1], _RESAMPLE['lanczos'])
  return Image.fromarray(resize_lib.cubic_resize(np.asarray(plane), size),
                         'F')


def _quantise_plane(plane: Image.Image, out: np.ndarray,
                    bit_depth: int) -> None:
  """Quantises a float ('F') Pillow image into out ([h, w], a channel of the
  result), a band of rows at a time."""
  h, w = out.shape
  for y in range(0, h, _BAND_ROWS):
    band = np.asarray(plane.crop((0, y, w, min(y + _BAND_ROWS, h))))
    out[y:y + band.shape[0]] = _quantise(band, bit_depth)


def _upscale_into(upscale: tiling.Streamed, source: np.ndarray,
                  out: np.ndarray, net_size: tuple[int, int],
                  bit_depth: int, grey: bool,
                  outscale_filter: str = 'lanczos') -> None:
  """Runs `upscale` on source [H, W, 3] and quantises its output into
  `out` [h, w, C] (grey: the mean of the three output channels).

  When out's size is not the network's (--outscale), the network output is
  collected in float32 first, in Pillow images (4 bytes per channel per
  network pixel), and resized channel by channel (`outscale_filter`;
  'cubic' adds a float32 copy of the rows-resized channel): Pillow's float
  resize needs the whole channel, and rounding before it would change the
  result.
  """
  def values(block: np.ndarray) -> np.ndarray:
    return block.mean(axis=-1, keepdims=True) if grey else block

  if out.shape[:2] == net_size:
    def quantise(y: int, x: int, block: np.ndarray) -> None:
      out[y:y + block.shape[0], x:x + block.shape[1]] = _quantise(
          values(block), bit_depth)

    upscale(source, quantise)
    return
  planes = [Image.new('F', net_size[::-1]) for _ in range(out.shape[-1])]

  def collect(y: int, x: int, block: np.ndarray) -> None:
    block = values(block)
    for c, plane in enumerate(planes):
      plane.paste(Image.fromarray(np.ascontiguousarray(block[..., c])), (x, y))

  upscale(source, collect)
  for c in range(len(planes)):  # One resized channel at a time.
    plane, planes[c] = planes[c], None
    plane = _resize(plane, out.shape[:2], outscale_filter)
    _quantise_plane(plane, out[..., c], bit_depth)


def upscale_image_data(image: ImageData, upscale: tiling.Streamed,
                       scale: int, *, outscale: float | None = None,
                       alpha_upsampler: str = 'network',
                       bit_depth: int | None = None,
                       outscale_filter: str = 'lanczos') -> ImageData:
  """Upscales colour (and alpha) of an image with a network.

  Args:
    image: as read by read_image_file.
    upscale: the network, tiled and / or ensembled, as a tiling.Streamed:
      upscale(rgb [H, W, 3], sink) hands its [s H, s W, 3] float32 output
      to sink block by block (tiling.whole_image wraps a plain function).
    scale: the network's scale s.
    outscale: final size round(H * outscale) x round(W * outscale) by a
      resize of the network output; None keeps the network's scale.
    outscale_filter: that resize: 'lanczos' (Pillow's) or 'cubic' (ncnn's
      Interp bicubic, as the realesr-animevideov3-x2 / -x3 files end;
      inference.resize).
    alpha_upsampler: 'network' (alpha as a grey RGB image through
      upscale, the mean of the 3 outputs) or 'bicubic'.
    bit_depth: the depth to return (8, 16); default the image's. Pick the
      depth the file will be written at (output_bit_depth): a 16-bit image
      for a JPEG is then quantised once, to 8 bits.

  Returns:
    ImageData at the new size, same channels, uint8 / uint16 pixels:
    round(clip(v, 0, 1) * (2^bits - 1)) of the network's float output v.
    Memory: that result (allocated once), plus with outscale one float32
    copy of the network output (see _upscale_into); bicubic alpha is
    resized in float32 too (one channel at the network's size).
  """
  if outscale_filter not in resize_lib.FILTERS:
    raise ValueError(f'outscale_filter={outscale_filter!r}; use one of '
                     f'{resize_lib.FILTERS}.')
  if alpha_upsampler not in ('network', 'bicubic'):
    raise ValueError(f'alpha_upsampler={alpha_upsampler!r}; use network or '
                     'bicubic.')
  bit_depth = bit_depth or image.bit_depth
  if bit_depth not in _DTYPES:
    raise ValueError(f'bit_depth must be 8 or 16; got {bit_depth}.')
  h, w = image.size
  net_size = (h * scale, w * scale)
  size = net_size if outscale is None else tiling.output_size(h, w, outscale)
  dtype = _DTYPES[bit_depth]
  alpha = None
  if image.alpha is not None:
    alpha = np.empty(size, dtype)  # Apart from colour: written row by row.
  if alpha is not None and alpha_upsampler == 'bicubic':
    # First, before the colour exists: it resizes in float32.
    plane = Image.fromarray(tiling.as_float(image.alpha)).resize(
        net_size[::-1], _RESAMPLE['bicubic'])
    if size != net_size:
      plane = _resize(plane, size, outscale_filter)
    _quantise_plane(plane, alpha, bit_depth)
    del plane
  pixels = np.empty((*size, image.pixels.shape[-1]), dtype)
  _upscale_into(upscale, image.rgb(), pixels, net_size, bit_depth,
                grey=image.grey, outscale_filter=outscale_filter)
  if alpha is not None and alpha_upsampler == 'network':
    _upscale_into(upscale, np.broadcast_to(image.alpha[..., None], (h, w, 3)),
                  alpha[..., None], net_size, bit_depth, grey=True,
                  outscale_filter=outscale_filter)
  return ImageData(pixels, alpha, bit_depth)


def is_image_file(path: str) -> bool:
  """Whether a folder or glob INPUT takes `path` (INPUT_EXTENSIONS)."""
  return os.path.splitext(path)[1].lower() in INPUT_EXTENSIONS


def output_folder_problem(directory: str) -> str | None:
  """Why `directory` (an output folder, created when first written) cannot
  take files, or None: checked before any work, leaving nothing behind.

  An existing folder is probed with a small file (io_utils.write_probe:
  read-only disk, no permission, full disk); a missing one through the
  nearest folder above it that exists, where it would be created.
  """
  path = os.path.abspath(directory)
  while not os.path.exists(path):
    path = os.path.dirname(path)
  if not os.path.isdir(path):
    return f'{path} is a file, not a folder'
  why = io_utils.write_probe(path, size=4096)
  return None if why is None else f'{path}: {why}'
