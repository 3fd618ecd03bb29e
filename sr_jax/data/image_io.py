"""Reading HR images from disk as uint8 RGB, and finding them in folders.

Everything downstream (crops, the MATLAB-bicubic LR made on the accelerator,
PSNR/SSIM) assumes `uint8 [H, W, 3]` in the orientation a viewer shows, so all
format quirks are settled here, once.
"""
import os
import pathlib
import threading
from typing import Callable, TypeVar
import warnings

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
from PIL import ImageOps

from sr_jax import errors

T = TypeVar('T')

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp')

# Pillow's integer greyscale modes. 'I;16*' are 16-bit; 'I' is 32-bit storage
# that Pillow also uses for 16-bit PNG/TIFF data in some versions.
_UINT16_MODES = ('I;16', 'I;16L', 'I;16B', 'I;16N')
_UINT16_MAX = 65535

# Our `max_pixels` check replaces Pillow's decompression-bomb guard: its
# warning (above Image.MAX_IMAGE_PIXELS, ~89 MP) would only be noise in front
# of our own refusal, or about an image the user allowed.
_IGNORE_BOMB_WARNING = ('ignore', None, Image.DecompressionBombWarning, None, 0)
# Serialises the rare opens that need Pillow's own limit lifted (see
# `with_open_image`), so concurrent lifts cannot restore a wrong value.
_PIL_LIMIT_LOCK = threading.Lock()


class ImageTooLargeError(errors.SrJaxError, ValueError):
  """The file header claims more pixels than allowed; nothing was decoded."""


def _check_pixels(
    path: str, size: tuple[int, int], max_pixels: int | None
) -> None:
  width, height = size
  if max_pixels is not None and 0 < max_pixels < width * height:
    raise ImageTooLargeError(
        f'Refusing {path!r} before decoding it: its header says {width}x'
        f'{height} = {width * height:,} pixels, above the limit of '
        f'{max_pixels:,} (data.max_image_pixels). A decompression bomb, or '
        'just too large to train on: tile it once with `python -m '
        'sr_jax.data.extract_subimages`, or raise data.max_image_pixels.')


def with_open_image(
    path: str, max_pixels: int | None, use: Callable[[Image.Image], T]
) -> T:
  """Opens `path` (header only), checks its size, then returns use(image).

  `max_pixels`: None keeps Pillow's own guard (DecompressionBombError above
  2 * Image.MAX_IMAGE_PIXELS, ~179 MP); > 0 replaces it with this limit;
  0 means no limit. Pillow raises inside `Image.open`, before any caller
  sees the size; with a limit of our own the file is then opened again with
  Pillow's guard lifted, so our check decides: it refuses with a message
  naming the setting, or lets through an image the user allowed.
  """
  # Warning filters are process wide and `catch_warnings` blocks (pytest
  # wraps every test in one) restore them, so an import-time filter would
  # not last: make sure it is there on each call (a cheap list lookup).
  if _IGNORE_BOMB_WARNING not in warnings.filters:
    warnings.filterwarnings('ignore', category=Image.DecompressionBombWarning)
  try:
    with Image.open(path) as img:
      _check_pixels(path, img.size, max_pixels)
      return use(img)
  except Image.DecompressionBombError as e:
    if max_pixels is None:
      raise ImageTooLargeError(
          f'Refusing {path!r} before decoding it: {e} (Pillow\'s '
          'Image.MAX_IMAGE_PIXELS; pass max_pixels to set a limit).') from e
  with _PIL_LIMIT_LOCK:
    saved = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = None
    try:
      with Image.open(path) as img:
        _check_pixels(path, img.size, max_pixels)
        return use(img)
    finally:
      Image.MAX_IMAGE_PIXELS = saved


def _uint16_to_uint8(values: np.ndarray) -> np.ndarray:
  # Scale by the dtype's range, never by the image's own maximum: a dark
  # 16-bit photo must stay dark, or HR and SR statistics stop matching.
  scaled = values.astype(np.float64) * (255.0 / _UINT16_MAX)
  return np.round(scaled).astype(np.uint8)


def _to_rgb_uint8(img: Image.Image, path: str) -> np.ndarray:
  """Converts a loaded PIL image of any common mode to uint8 [H, W, 3]."""
  if img.mode in _UINT16_MODES or img.mode == 'I':
    values = np.asarray(img)
    if img.mode == 'I' and (values.min() < 0 or values.max() > _UINT16_MAX):
      raise ValueError(
          f'{path}: 32-bit integer image with values outside [0, 65535] is '
          'not supported; convert it to 8- or 16-bit PNG first.')
    grey = _uint16_to_uint8(values)
    return np.repeat(grey[..., None], 3, axis=-1)
  if img.mode == 'F':
    raise ValueError(
        f'{path}: floating-point images have no defined value range; '
        'convert it to 8- or 16-bit PNG first.')
  # Everything else ('1', 'L', 'LA', 'P', 'PA', 'RGBA', 'CMYK', 'YCbCr', ...)
  # Pillow converts to RGB itself. Alpha is dropped, not composited: SR
  # datasets with alpha are rare and any background colour would be invented.
  # Note: Pillow keeps only the high byte of 16-bit *colour* PNG/TIFF samples
  # (floor(v / 256)), which is within one level of round(v * 255 / 65535).
  if img.mode != 'RGB':
    img = img.convert('RGB')
  return np.asarray(img, dtype=np.uint8)


def _decode(img: Image.Image, path: str) -> np.ndarray:
  # Phone photos are often stored sideways with an orientation tag; the
  # HR target must be what a viewer (and a user comparing outputs) sees.
  img = ImageOps.exif_transpose(img)
  img.load()
  return _to_rgb_uint8(img, path)


def read_image(
    path: str | os.PathLike[str], max_pixels: int | None = None
) -> np.ndarray:
  """Reads an image file as RGB in display orientation.

  Args:
    path: any format Pillow reads (png, jpg, bmp, tif, webp, ...).
    max_pixels: a file whose header claims more pixels (width * height) is
      refused before any pixel is decoded. None: Pillow's default limit
      (~179 MP); 0: no limit.

  Returns:
    uint8 [H, W, 3] in [0, 255], after applying the EXIF orientation tag.
    Grey, palette, CMYK (also Adobe's inverted CMYK JPEG) and alpha images
    become RGB (alpha dropped); 16-bit greyscale is scaled by its dtype range
    (v * 255 / 65535, rounded).

  Raises:
    FileNotFoundError: the file does not exist.
    ImageTooLargeError: (a ValueError) the header is above `max_pixels`.
    ValueError: the file cannot be decoded: empty, truncated, not an image
      (the message names the file).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Image file {path!r} does not exist.')
  try:
    array = with_open_image(path, max_pixels, lambda img: _decode(img, path))
  except (OSError, SyntaxError) as e:
    # UnidentifiedImageError and truncated-file errors are OSErrors; PIL's
    # messages do not always say which file was being read.
    raise errors.CorruptFileError(f'Could not read image {path!r}: {e}') from e
  return np.ascontiguousarray(array)


def image_size(
    path: str | os.PathLike[str], max_pixels: int | None = None
) -> tuple[int, int]:
  """Returns (height, width) from the file header only, without decoding.

  The EXIF orientation is ignored, so height and width may be swapped relative
  to `read_image`; the shorter side, which is what size filters need, is not.

  Raises:
    ImageTooLargeError: (a ValueError) width * height is above `max_pixels`
      (as for `read_image`).
    ValueError: no readable image header (empty file, not an image, ...).
  """
  path = os.fspath(path)
  try:
    width, height = with_open_image(path, max_pixels, lambda img: img.size)
  except (OSError, SyntaxError) as e:
    raise errors.CorruptFileError(
        f'Could not read image header of {path!r}: {e}') from e
  return height, width


def display_size(
    path: str | os.PathLike[str], max_pixels: int | None = None
) -> tuple[int, int]:
  """(height, width) of `read_image(path)`, from the header and EXIF only.

  Raises as `image_size` does.
  """
  path = os.fspath(path)

  def size_as_shown(img: Image.Image) -> tuple[int, int]:
    width, height = img.size
    # EXIF orientations 5-8 are transposes or quarter turns: W, H swap.
    if img.getexif().get(0x0112) in (5, 6, 7, 8):
      return width, height
    return height, width

  try:
    return with_open_image(path, max_pixels, size_as_shown)
  except (OSError, SyntaxError) as e:
    raise errors.CorruptFileError(
        f'Could not read image header of {path!r}: {e}') from e


def list_images(folder: str | os.PathLike[str]) -> list[str]:
  """Lists image files under `folder`, recursively, sorted by path.

  Extensions (case-insensitive): png, jpg, jpeg, bmp, tif, tiff, webp. Hidden
  files (names starting with '.', e.g. macOS '._x.png' metadata) are skipped.

  Returns:
    Sorted list of file paths (str), e.g. a DIV2K_train_HR folder's PNGs.

  Raises:
    FileNotFoundError: `folder` does not exist.
    NotADirectoryError: `folder` is a file.
    ValueError: `folder` holds no image files.
  """
  root = pathlib.Path(folder).expanduser()
  if not root.exists():
    raise FileNotFoundError(
        f'Image folder {os.fspath(folder)!r} does not exist. Point the data '
        'config (train_dir / val_dir) at a folder of images such as '
        "DIV2K_train_HR, or set it to '' to use the embedded scikit-image "
        'samples.')
  if not root.is_dir():
    raise NotADirectoryError(
        f'{os.fspath(folder)!r} is a file; train_dir / val_dir must be a '
        'folder of images.')
  paths = sorted(
      os.fspath(p) for p in root.rglob('*')
      if p.suffix.lower() in IMAGE_EXTENSIONS
      and not p.name.startswith('.') and p.is_file())
  if not paths:
    raise errors.ConfigError(
        f'Image folder {os.fspath(folder)!r} holds no images (looked '
        f'recursively for {", ".join(IMAGE_EXTENSIONS)}).')
  return paths


def hr_to_float(hr_uint8: jax.Array) -> jax.Array:
  """uint8 images (any shape) -> float32 in [0, 1], on the device."""
  return hr_uint8.astype(jnp.float32) / 255.0
