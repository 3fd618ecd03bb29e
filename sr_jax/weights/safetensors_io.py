"""Reading .safetensors files with numpy alone (no safetensors, no torch).

The format (https://github.com/huggingface/safetensors, "Format"):
  8 bytes   N, unsigned little-endian: the header's length in bytes
  N bytes   a UTF-8 JSON object {name: {"dtype": "F32", "shape": [..],
            "data_offsets": [begin, end]}, ..., "__metadata__": {str: str}}
  rest      the byte buffer; a tensor is buffer[begin:end], C order,
            little-endian.
Every length and offset is checked against the file, so a truncated or
foreign file fails with its name instead of giving garbage weights.
"""
import json
import math
import os
import pathlib
import numpy as np

from sr_jax import errors

# numpy dtype of each safetensors dtype; BF16 is widened below (numpy has no
# bfloat16) and F16 too, since every converter works in float32 anyway.
_DTYPES = {
    'F64': '<f8', 'F32': '<f4', 'F16': '<f2', 'BF16': '<u2',
    'I64': '<i8', 'I32': '<i4', 'I16': '<i2', 'I8': 'i1',
    'U64': '<u8', 'U32': '<u4', 'U16': '<u2', 'U8': 'u1', 'BOOL': '?',
}
# A header is a few kB per thousand tensors; anything near this is not one.
_MAX_HEADER_BYTES = 100 << 20


def _bad(path, what: str) -> errors.CorruptFileError:
  return errors.CorruptFileError(
      f'{path} is not a valid .safetensors file: {what}.')


def _bf16_to_f32(raw: np.ndarray) -> np.ndarray:
  # bfloat16 is the upper half of a float32: shift its bits into place.
  return (raw.astype(np.uint32) << 16).view(np.float32)


def read_safetensors(path: str | os.PathLike
                     ) -> tuple[dict[str, np.ndarray], dict[str, str]]:
  """Returns ({name: array}, the header's __metadata__ or {}).

  Arrays are numpy copies in native byte order: F32/F64/ints/bool keep
  their type, F16 and BF16 become float32. Raises ValueError (naming the file
  and what is wrong) for a truncated or malformed file or an unsupported
  dtype (e.g. the float8 types).
  """
  path = pathlib.Path(path).expanduser()
  size = path.stat().st_size
  with open(path, 'rb') as f:
    prefix = f.read(8)
    if len(prefix) < 8:
      raise _bad(path, f'only {size} bytes, less than the 8-byte header size')
    n = int.from_bytes(prefix, 'little')
    if n > min(size - 8, _MAX_HEADER_BYTES):
      raise _bad(path, f'header length {n} does not fit in {size} bytes')
    try:
      header = json.loads(f.read(n).decode('utf-8'))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
      raise _bad(path, f'header is not JSON ({e})') from None
    buffer = f.read()
  if not isinstance(header, dict):
    raise _bad(path, 'header is not a JSON object')
  metadata = header.pop('__metadata__', None) or {}

  tensors = {}
  for name, info in header.items():
    try:
      dtype, shape, (begin, end) = (info['dtype'], info['shape'],
                                    info['data_offsets'])
      shape = tuple(int(d) for d in shape)
      begin, end = int(begin), int(end)
    except (KeyError, TypeError, ValueError):
      raise _bad(path, f'entry {name!r} lacks dtype/shape/data_offsets: '
                 f'{info!r}') from None
    if dtype not in _DTYPES:
      raise ValueError(f'{path}: tensor {name!r} has dtype {dtype}, which '
                       f'sr_jax cannot read; supported: {sorted(_DTYPES)}.')
    np_dtype = np.dtype(_DTYPES[dtype])
    count = math.prod(shape)
    if (min(shape, default=0) < 0 or not 0 <= begin <= end <= len(buffer)
        or end - begin != count * np_dtype.itemsize):
      raise _bad(path, f'tensor {name!r} ({dtype} {list(shape)}) has data '
                 f'offsets [{begin}, {end}] that do not fit its size or the '
                 f'{len(buffer)}-byte buffer (truncated file?)')
    array = np.frombuffer(buffer, np_dtype, count, offset=begin)
    if dtype == 'BF16':
      array = _bf16_to_f32(array)
    elif dtype == 'F16':
      array = array.astype(np.float32)
    else:
      array = array.astype(np_dtype.newbyteorder('='))  # A writable copy.
    tensors[name] = array.reshape(shape)
  return tensors, metadata


def is_safetensors(path: str | os.PathLike) -> bool:
  """Whether path looks like a .safetensors file (by its first bytes)."""
  with open(path, 'rb') as f:
    head = f.read(9)
  return len(head) == 9 and head[8:9] == b'{'

