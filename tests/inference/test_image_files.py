"""sr_jax.inference.image_files: PNGs built by hand (16 bits, alpha, palette,
grey) read and written back, other formats through Pillow, no partial file
after a failed write, Pillow's bomb guard left to sr_jax's limit."""
import os
import warnings

import numpy as np
from PIL import Image
import pytest

from sr_jax.inference import image_files
from sr_jax.inference import tiling
from tests.helpers.upscale import nearest
from tests.helpers.upscale import png_bytes
from tests.helpers.upscale import png_header


def test_reads_hand_made_16bit_rgba_png(tmp_path):
  values = np.random.default_rng(4).integers(0, 65536, (6, 5, 4)
                                             ).astype(np.uint16)
  path = tmp_path / 'a.png'
  path.write_bytes(png_bytes(values, filters=(0, 1)))
  image = image_files.read_image_file(path)
  assert image.bit_depth == 16 and not image.grey
  np.testing.assert_array_equal(image.pixels, values[..., :3])
  np.testing.assert_array_equal(image.alpha, values[..., 3])


@pytest.mark.parametrize('channels', [1, 2, 3, 4])
def test_16bit_png_written_and_read_back(tmp_path, channels):
  rng = np.random.default_rng(channels)
  values = rng.integers(0, 65536, (300, 7, channels)).astype(np.uint16)
  colour = values[..., :3] if channels >= 3 else values[..., :1]
  image = image_files.ImageData(
      colour.astype(np.float32) / 65535,
      values[..., -1].astype(np.float32) / 65535 if channels in (2, 4)
      else None, 16)
  path = tmp_path / 'b.png'
  assert image_files.write_image_file(path, image) == []
  assert png_header(path) == (7, 300, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels])
  back = image_files.read_image_file(path)
  np.testing.assert_array_equal(back.pixels, colour)
  # Pillow, an independent decoder: 16-bit grey exactly, colour as v >> 8.
  with Image.open(path) as pil:
    pil_values = np.asarray(pil)
  if channels == 1:
    np.testing.assert_array_equal(pil_values, values[..., 0])
  else:
    high = (values >> 8).astype(np.uint8)
    np.testing.assert_array_equal(pil_values[..., :3] if channels >= 3
                                  else pil_values[..., 0], high[..., 0]
                                  if channels == 2 else high[..., :3])


def test_modes_palette_grey_alpha(tmp_path):
  rgb = np.random.default_rng(5).integers(0, 256, (6, 8, 3), dtype=np.uint8)
  pal = Image.fromarray(rgb).quantize(8)
  pal.save(tmp_path / 'p.png')
  pal.save(tmp_path / 'pt.png', transparency=0)
  Image.fromarray(rgb).convert('LA').save(tmp_path / 'la.png')
  p = image_files.read_image_file(tmp_path / 'p.png')
  assert p.pixels.shape == (6, 8, 3) and p.alpha is None
  np.testing.assert_array_equal(p.pixels, np.asarray(pal.convert('RGB')))
  pt = image_files.read_image_file(tmp_path / 'pt.png')
  assert pt.alpha is not None and pt.alpha.min() == 0 and not pt.grey
  la = image_files.read_image_file(tmp_path / 'la.png')
  assert la.grey and la.alpha is not None and la.bit_depth == 8


def test_upscale_image_data_grey_alpha_outscale():
  rng = np.random.default_rng(6)
  image = image_files.ImageData(rng.random((5, 7, 1), dtype=np.float32),
                                rng.random((5, 7), dtype=np.float32))

  def fake(rgb):  # x2, weights the channels differently.
    return nearest(rgb * np.array([0.5, 1.0, 1.5], np.float32), 2)

  def as_uint8(x):
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)

  out = image_files.upscale_image_data(image, tiling.whole_image(fake), 2)
  grey3 = nearest(image.pixels, 2) * np.array([0.5, 1.0, 1.5], np.float32)
  assert out.pixels.dtype == np.uint8 and out.bit_depth == 8
  assert np.abs(out.pixels.astype(int) - as_uint8(grey3.mean(
      -1, keepdims=True))).max() <= 1
  np.testing.assert_array_equal(out.alpha, as_uint8(nearest(image.alpha, 2)))
  resized = image_files.upscale_image_data(
      image, tiling.whole_image(fake), 2, outscale=1.5,
      alpha_upsampler='bicubic', bit_depth=16)
  assert resized.pixels.shape == (8, 11, 1)  # round(7.5), round(10.5)
  assert resized.alpha.shape == (8, 11)
  assert resized.pixels.dtype == resized.alpha.dtype == np.uint16


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
  def broken(f, *args):
    f.write(b'\x89PNG half an image')
    raise OSError('disk full (simulated)')

  monkeypatch.setattr(image_files, '_encode', broken)
  image = image_files.ImageData(np.zeros((4, 4, 3), np.float32))
  with pytest.raises(OSError, match='simulated'):
    image_files.write_image_file(tmp_path / 'x.png', image)
  assert os.listdir(tmp_path) == []


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
