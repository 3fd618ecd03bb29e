"""sr_jax.data.image_io: finding images in folders, reading them as uint8 RGB
(modes, 16 bits, EXIF orientation, CMYK TIFF and Adobe JPEG) and refusing
too many pixels from the header, before decoding."""
import os
import struct
import warnings
import zlib

import numpy as np
from PIL import Image
from PIL import ImageFile
import pytest

from sr_jax import data
from sr_jax.data import bad_inputs
from sr_jax.data import image_io
from tests.helpers.data import _config
from tests.helpers.data import _coord_image
from tests.helpers.data import _write_png


def test_list_images_recursive_case_insensitive_sorted(tmp_path):
  img = _coord_image(8, 8)
  _write_png(str(tmp_path / 'b.PNG'), img)
  _write_png(str(tmp_path / 'sub' / 'a.png'), img)
  Image.fromarray(img).save(tmp_path / 'c.JpEg', format='JPEG')
  (tmp_path / 'notes.txt').write_text('not an image')
  assert data.list_images(tmp_path) == sorted(
      str(tmp_path / n) for n in ('b.PNG', 'sub/a.png', 'c.JpEg'))


def test_missing_and_empty_folders_name_the_folder(tmp_path):
  missing = tmp_path / 'no_such_dir'
  with pytest.raises(FileNotFoundError, match='no_such_dir'):
    data.list_images(missing)
  with pytest.raises(FileNotFoundError, match='no_such_dir'):
    data.make_train_dataset(_config(missing), global_batch_size=2, seed=0)
  empty = tmp_path / 'empty_dir'
  empty.mkdir()
  (empty / 'readme.txt').write_text('no images here')
  with pytest.raises(ValueError, match='empty_dir'):
    data.list_images(empty)
  with pytest.raises(ValueError, match='empty_dir'):
    data.load_validation_set(_config(val_dir=str(empty)), 4)


def test_read_image_modes(tmp_path):
  rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
  Image.fromarray(rgb).save(tmp_path / 'rgb.png')
  np.testing.assert_array_equal(data.read_image(tmp_path / 'rgb.png'), rgb)

  flat = np.zeros((16, 24, 3), np.uint8)
  flat[...] = (200, 100, 50)
  Image.fromarray(flat).save(tmp_path / 'flat.jpg', quality=95)
  jpg = data.read_image(tmp_path / 'flat.jpg')
  assert jpg.shape == (16, 24, 3) and jpg.dtype == np.uint8
  np.testing.assert_allclose(jpg, flat, atol=3)

  grey = np.arange(20, dtype=np.uint8).reshape(4, 5) * 10
  Image.fromarray(grey).save(tmp_path / 'grey.png')
  np.testing.assert_array_equal(
      data.read_image(tmp_path / 'grey.png'), np.stack([grey] * 3, -1))

  rgba = np.concatenate([rgb, np.zeros((6, 5, 1), np.uint8)], -1)
  Image.fromarray(rgba).save(tmp_path / 'rgba.png')
  # Alpha is dropped, not composited: fully transparent pixels keep colour.
  np.testing.assert_array_equal(data.read_image(tmp_path / 'rgba.png'), rgb)

  palette = Image.fromarray(flat).convert('P', palette=Image.Palette.ADAPTIVE)
  palette.save(tmp_path / 'palette.png')
  np.testing.assert_array_equal(data.read_image(tmp_path / 'palette.png'),
                                flat)

  deep = np.array([[0, 32768, 65535], [257, 1000, 65280]], np.uint16)
  Image.fromarray(deep).save(tmp_path / 'deep16.png')
  assert Image.open(tmp_path / 'deep16.png').mode.startswith('I')
  got = data.read_image(tmp_path / 'deep16.png')
  assert got.shape == (2, 3, 3) and got.dtype == np.uint8
  # Scaled by the uint16 range, not the image max (65535 -> 255, 32768 ->
  # 128) and rounded: keeping the high byte would give 3 for 1000 and 255
  # for 65280.
  np.testing.assert_array_equal(got[..., 0], [[0, 128, 255], [1, 4, 254]])
  assert (got == got[..., :1]).all()
  # A dark 16-bit image stays dark (normalising by its max would not).
  Image.fromarray(deep // 2).save(tmp_path / 'dark16.png')
  np.testing.assert_array_equal(
      data.read_image(tmp_path / 'dark16.png')[..., 1],
      [[0, 64, 127], [0, 2, 127]])

  for name in os.listdir(tmp_path):
    image = data.read_image(tmp_path / name)
    assert image.ndim == 3 and image.shape[-1] == 3 and image.dtype == np.uint8


def test_read_image_applies_exif_orientation(tmp_path):
  stored = np.zeros((32, 64, 3), np.uint8)  # Landscape as stored.
  stored[:, :] = (0, 0, 255)
  stored[:16, :16] = (255, 0, 0)  # Red block at the stored top-left.
  exif = Image.Exif()
  exif[0x0112] = 6  # Orientation: display rotated 90 degrees clockwise.
  Image.fromarray(stored).save(tmp_path / 'rotated.jpg', exif=exif,
                               quality=95, subsampling=0)
  got = data.read_image(tmp_path / 'rotated.jpg').astype(int)
  assert got.shape == (64, 32, 3)  # Portrait as displayed.
  # Away from JPEG's blurred edges it is the stored image turned clockwise:
  # the red block is now top-right and the top-left is blue.
  expected = np.rot90(stored, k=-1).astype(int)
  np.testing.assert_allclose(got[2:14, 18:30], expected[2:14, 18:30], atol=8)
  np.testing.assert_allclose(got[2:14, 2:14], expected[2:14, 2:14], atol=8)
  np.testing.assert_allclose(got[20:60, :], expected[20:60, :], atol=8)
  assert got[8, 24, 0] > 200 and got[8, 8, 2] > 200


def test_read_image_error_names_file(tmp_path):
  bad = tmp_path / 'broken.png'
  bad.write_bytes(b'definitely not a png')
  with pytest.raises(ValueError, match='broken.png'):
    data.read_image(bad)
  with pytest.raises(FileNotFoundError, match='gone.png'):
    data.read_image(tmp_path / 'gone.png')


def _png_claiming(path, width, height):
  """A 1-bit PNG whose header says width x height; it holds one row only."""
  def chunk(kind, payload):
    return (struct.pack('>I', len(payload)) + kind + payload
            + struct.pack('>I', zlib.crc32(kind + payload)))
  ihdr = struct.pack('>IIBBBBB', width, height, 1, 0, 0, 0, 0)
  row = b'\0' * (1 + (width + 7) // 8)
  path.write_bytes(b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', ihdr)
                   + chunk(b'IDAT', zlib.compress(row)) + chunk(b'IEND', b''))


def test_pixel_limit_refuses_before_decoding(tmp_path, monkeypatch):
  bomb = tmp_path / 'bomb.png'
  _png_claiming(bomb, 100_000, 100_000)  # 10^10 pixels in ~100 bytes.
  def no_decoding(self):
    raise AssertionError('pixel data was decoded')
  monkeypatch.setattr(ImageFile.ImageFile, 'load', no_decoding)
  # Pillow's own DecompressionBombError (above 2 * 89 MP) must not win.
  for read in (image_io.read_image, image_io.image_size):
    with pytest.raises(image_io.ImageTooLargeError,
                       match=r'bomb.png.*100000x100000.*max_image_pixels'):
      read(bomb, max_pixels=10_000 * 10_000)
  # 0: no limit at all; None: Pillow's default guard, as before.
  assert image_io.image_size(bomb, max_pixels=0) == (100_000, 100_000)
  with pytest.raises(image_io.ImageTooLargeError,
                     match=r"bomb.png.*Pillow's Image.MAX_IMAGE_PIXELS"):
    image_io.read_image(bomb)
  monkeypatch.undo()
  assert Image.MAX_IMAGE_PIXELS == 1024 * 1024 * 1024 // 4 // 3  # Restored.
  # The training index skips and counts it; the default limit applies.
  for i in range(3):
    _write_png(str(tmp_path / f'ok{i}.png'), _coord_image(20, 20))
  cfg = _config(tmp_path, gt_size=16, max_bad_fraction=0.5)
  assert next(iter(data.make_train_dataset(
      cfg, global_batch_size=4, seed=0)))['hr'].shape == (4, 16, 16, 3)
  cfg.max_bad_fraction = 0.2
  with pytest.raises(bad_inputs.TooManyBadFilesError,
                     match=r'1 of 4(.|\n)*bomb.png: Refusing'):
    data.make_train_dataset(cfg, global_batch_size=4, seed=0)


def test_pixel_limit_is_ours_not_pillows(tmp_path, monkeypatch):
  image = _coord_image(32, 32)
  _write_png(str(tmp_path / 'a.png'), image)
  # Pillow's limit far below the image: it would error (> 2 * 300) or warn.
  for pil_limit in (300, 1000):
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', pil_limit)
    with warnings.catch_warnings(record=True) as caught:
      np.testing.assert_array_equal(
          data.read_image(tmp_path / 'a.png', max_pixels=0), image)
      np.testing.assert_array_equal(
          data.read_image(tmp_path / 'a.png', max_pixels=1024), image)
      with pytest.raises(image_io.ImageTooLargeError, match='a.png'):
        data.read_image(tmp_path / 'a.png', max_pixels=1000)
    assert not [w for w in caught
                if issubclass(w.category, Image.DecompressionBombWarning)]
    assert Image.MAX_IMAGE_PIXELS == pil_limit


def _cmyk_image(cmyk):
  height, width = cmyk.shape[:2]
  return Image.frombytes('CMYK', (width, height), cmyk.tobytes())


def _cmyk_to_rgb(cmyk):
  """The usual naive conversion: (255 - C) * (255 - K) / 255 per channel."""
  cmyk = cmyk.astype(np.float64)
  return (255 - cmyk[..., :3]) * (255 - cmyk[..., 3:]) / 255


def test_read_cmyk_tiff_and_adobe_jpeg(tmp_path):
  cmyk = np.random.default_rng(0).integers(0, 256, (6, 5, 4), np.uint8)
  _cmyk_image(cmyk).save(tmp_path / 'cmyk.tif')
  np.testing.assert_allclose(data.read_image(tmp_path / 'cmyk.tif'),
                             _cmyk_to_rgb(cmyk), atol=1)
  flat = np.zeros((16, 16, 4), np.uint8)
  flat[...] = (30, 200, 90, 40)
  _cmyk_image(flat).save(tmp_path / 'cmyk.jpg', quality=95)
  with Image.open(tmp_path / 'cmyk.jpg') as img:
    # libjpeg writes CMYK the Adobe way (inverted, APP14 marker).
    assert img.mode == 'CMYK' and 'adobe' in img.info
  got = data.read_image(tmp_path / 'cmyk.jpg')
  assert got.shape == (16, 16, 3) and got.dtype == np.uint8
  np.testing.assert_allclose(got, _cmyk_to_rgb(flat), atol=3)
  # Reading the stored (inverted) samples as plain CMYK would be far off.
  assert np.abs(_cmyk_to_rgb(255 - flat) - _cmyk_to_rgb(flat)).max() > 100
