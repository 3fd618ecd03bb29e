"""Files and folders the tests make."""
import json
import os
import struct

import numpy as np
import pytest


def unwritable_folder(path, how: str):
  """`path` made a place no file can be written under: a regular file
  (`how='under_a_file'`: ENOTDIR, for root too) or a folder of mode 0555
  (`'read_only'`; skipped as root, who writes anyway)."""
  if how == 'read_only' and os.geteuid() == 0:
    pytest.skip('root writes into read-only folders')
  if how == 'under_a_file':
    path.write_bytes(b'')
  else:
    path.mkdir()
    path.chmod(0o555)
  return path


_ST_CODES = {np.dtype('<f4'): 'F32', np.dtype('<f2'): 'F16',
             np.dtype('<i8'): 'I64', np.dtype('u1'): 'U8'}


def write_safetensors(path, tensors, metadata=None, raw=None):
  """Writes the safetensors layout byte by byte (no library).

  tensors: {name: numpy array} stored in their own dtype; raw: {name:
  (dtype code, shape, bytes)} for entries written verbatim (BF16, F8...).
  """
  header, chunks, offset = {}, [], 0
  entries = [(name, _ST_CODES[a.dtype], list(a.shape),
              np.ascontiguousarray(a).tobytes()) for name, a in tensors.items()]
  entries += [(name, *spec) for name, spec in (raw or {}).items()]
  for name, code, shape, data in entries:
    header[name] = {'dtype': code, 'shape': list(shape),
                    'data_offsets': [offset, offset + len(data)]}
    chunks.append(data)
    offset += len(data)
  if metadata is not None:
    header['__metadata__'] = metadata
  text = json.dumps(header).encode()
  text += b' ' * (-len(text) % 8)  # The spec pads the header with spaces.
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(text)) + text + b''.join(chunks))


def files_under(path):
  return sorted(p for p in path.rglob('*') if p.is_file()) \
      if path.exists() else []
