"""sr_jax.weights.safetensors_io: safetensors files written byte by byte (no
library), their dtypes and damaged files."""
import struct

import numpy as np
import pytest

from sr_jax import weights
from tests.helpers.files import write_safetensors


def test_safetensors_dtypes_by_hand(tmp_path):
  path = tmp_path / 'w.safetensors'
  f32 = np.arange(6, dtype='<f4').reshape(2, 3) - 2.5
  # bfloat16 bit patterns worked out by hand: 0x3FC0 = 1.5, 0xC010 = -2.25,
  # 0x0000 = 0, 0x7F80 = +inf.
  bf16 = struct.pack('<4H', 0x3FC0, 0xC010, 0x0000, 0x7F80)
  write_safetensors(
      path, {'a.weight': f32, 'half': np.array([0.5, -1.0], '<f2'),
             'count': np.array([7, -3], '<i8'),
             'bytes': np.arange(3, dtype='u1')},
      metadata={'format': 'pt'}, raw={'b': ('BF16', [2, 2], bf16)})
  tensors, meta = weights.read_safetensors(path)
  assert meta == {'format': 'pt'}
  np.testing.assert_array_equal(tensors['a.weight'], f32)
  assert tensors['a.weight'].flags.writeable
  np.testing.assert_array_equal(tensors['b'], [[1.5, -2.25], [0.0, np.inf]])
  assert tensors['b'].dtype == tensors['half'].dtype == np.float32
  np.testing.assert_array_equal(tensors['half'], [0.5, -1.0])
  assert tensors['count'].dtype == np.int64
  np.testing.assert_array_equal(tensors['count'], [7, -3])
  np.testing.assert_array_equal(tensors['bytes'], [0, 1, 2])
  assert sorted(weights.load_torch_file(path)) == sorted(tensors)


def test_safetensors_bad_files_are_named(tmp_path):
  good = tmp_path / 'good.safetensors'
  write_safetensors(good, {'w': np.ones((4, 4), '<f4')})
  data = good.read_bytes()
  cases = {
      'truncated': (data[:-5], 'data offsets'),
      'tiny': (data[:5], 'less than the 8-byte'),
      'header_too_long': (struct.pack('<Q', 1 << 40) + data[8:],
                          'header length'),
      'not_json': (data[:8] + b'x' * (len(data) - 8), 'not JSON'),
  }
  for name, (content, message) in cases.items():
    path = tmp_path / f'{name}.safetensors'
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
      weights.load_torch_file(path)
    assert str(path) in str(info.value)
  fp8 = tmp_path / 'fp8.safetensors'
  write_safetensors(fp8, {}, raw={'w': ('F8_E4M3', [2], b'\x00\x01')})
  with pytest.raises(ValueError, match='F8_E4M3.*supported'):
    weights.load_torch_file(fp8)


def test_safetensors_matches_the_library_if_installed(tmp_path):
  st_numpy = pytest.importorskip('safetensors.numpy')
  tensors = {'x': np.random.rand(3, 5).astype(np.float32),
             'y': np.arange(4, dtype=np.int64),
             'z': np.random.rand(2).astype(np.float16)}
  path = tmp_path / 'lib.safetensors'
  st_numpy.save_file(tensors, str(path), metadata={'k': 'v'})
  ours, meta = weights.read_safetensors(path)
  assert meta == {'k': 'v'}
  for key, value in tensors.items():
    np.testing.assert_array_equal(ours[key], value)
