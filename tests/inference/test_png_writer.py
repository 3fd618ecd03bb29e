"""sr_jax.inference.png_writer: the streaming PNG writer read back by
Pillow, and its refusals."""
import io

import numpy as np
from PIL import Image
import pytest

from sr_jax.inference import image_files
from sr_jax.inference import png_writer


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
