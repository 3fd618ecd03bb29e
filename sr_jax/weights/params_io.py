"""A torch-free file format for converted weights, and where they are cached.

Variables are stored as one `.npz` with '/'-joined keys
('params/conv1_1/kernel'), float32, so loading needs only numpy. An optional
`__meta__` entry holds a JSON object (as a numpy unicode string, so no
pickle): for converted weights, the architecture and its kwargs, which say
what to build. Files without it (older ones) load as before.
"""
import json
import os
import pathlib
import zipfile
import zlib
from typing import Any, Mapping, Optional

import numpy as np

from sr_jax import errors
from sr_jax.utils import io_utils

CACHE_ENV_VAR = 'SR_JAX_CACHE_DIR'
META_KEY = '__meta__'


class WeightsNotFoundError(errors.SrJaxError, FileNotFoundError):
  """Pretrained weights are not on disk; the message says how to get them."""


def cache_dir() -> pathlib.Path:
  """$SR_JAX_CACHE_DIR, else ~/.cache/sr_jax (not created here)."""
  return pathlib.Path(
      os.environ.get(CACHE_ENV_VAR) or '~/.cache/sr_jax').expanduser()


def _flatten(tree: Mapping[str, Any],
             prefix: str = '') -> dict[str, np.ndarray]:
  flat = {}
  for name, value in tree.items():
    name = str(name)
    if '/' in name or not name or name == META_KEY:
      raise ValueError(f'Cannot save a variable named {name!r} (empty, '
                       f"containing '/', the key separator, or {META_KEY}).")
    if isinstance(value, Mapping):
      flat.update(_flatten(value, prefix + name + '/'))
    else:
      array = np.asarray(value)
      if np.issubdtype(array.dtype, np.floating) or array.dtype.kind == 'V':
        array = np.asarray(value, np.float32)  # Also bfloat16 jax arrays.
      flat[prefix + name] = array
  return flat


def save_params(path: str | os.PathLike, variables: Mapping[str, Any],
                metadata: Optional[Mapping[str, Any]] = None) -> None:
  """Writes nested dicts of arrays to `path` (.npz), atomically.

  metadata: an optional JSON-serialisable dict, read back by load_metadata.
  The file is written next to `path` and renamed into place, so a crash never
  leaves a truncated cache file that a later run would trust.
  """
  path = pathlib.Path(path).expanduser()
  flat = _flatten(variables)
  if metadata is not None:
    try:
      flat[META_KEY] = np.asarray(json.dumps(dict(metadata), sort_keys=True))
    except TypeError as e:
      raise ValueError(f'Metadata for {path} is not JSON-serialisable: {e}.'
                       ) from None
  with io_utils.atomic_write(path) as f:  # np.savez adds no suffix to f.
    np.savez(f, **flat)


# What reading a damaged zip archive raises: zipfile's own error (a bad
# CRC-32 or header), zlib's (bad deflate data), EOFError (a member cut
# short), ValueError (a garbled numpy header) and OSError (a seek past the
# end: "[Errno 22] Invalid argument").
READ_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, ValueError, OSError)
_ZIP_MAGIC = (b'PK\x03\x04', b'PK\x05\x06')  # A member, an empty archive.
_AGAIN = 'download or convert it again.'


def is_zip(path: str | os.PathLike) -> bool:
  """Whether the file starts like a zip archive (an .npz, the .pth of
  torch >= 1.6), whole or not: zipfile.is_zipfile needs its end."""
  with open(path, 'rb') as f:
    return f.read(4) in _ZIP_MAGIC


def check_zip(path: str | os.PathLike) -> None:
  """Reads every member of the zip archive `path` and checks its CRC-32,
  as zipfile.ZipFile.testzip does (~50 ms per 100 MB cached); raises
  errors.CorruptFileError naming the file (and the damaged member) if it
  is truncated, damaged or not a zip archive. torch.load and np.load check
  no CRCs of what they do not read to its end, so a flipped bit in a weight
  would otherwise load silently."""
  with open(path, 'rb') as f:  # Missing / unreadable: an OSError naming it.
    try:
      archive = zipfile.ZipFile(f)
    except READ_ERRORS as e:
      raise errors.CorruptFileError(
          f'{path} is damaged: it is not a whole zip archive ({e}; truncated '
          f'by an interrupted copy?); {_AGAIN}') from None
    with archive:
      for info in archive.infolist():
        try:
          with archive.open(info) as member:
            while member.read(1 << 24):
              pass
        except READ_ERRORS as e:
          why = ('fails its CRC check (a bit flip or an interrupted copy)'
                 if 'CRC' in str(e) else f'cannot be read ({e})')
          raise errors.CorruptFileError(
              f'{path} is damaged: member {info.filename} {why}; {_AGAIN}'
          ) from None


def _read(path: pathlib.Path, arrays: bool) -> tuple[dict[str, np.ndarray],
                                                      dict[str, Any]]:
  """({key: array} (if `arrays`), metadata) of a save_params file; the one
  reader of sr_jax's .npz files. With `arrays`, the whole archive's CRCs
  are checked first (check_zip)."""
  if not path.is_file():
    raise WeightsNotFoundError(f'{path} does not exist.')
  if not is_zip(path):
    raise errors.CorruptFileError(
        f'{path} is not a weights file written by sr_jax (an .npz, which is '
        'a zip archive): another kind of file, or damaged. Convert PyTorch '
        'weights with python -m sr_jax.convert ARCH SRC OUT.npz.')
  if arrays:
    check_zip(path)
  try:  # np.load reads members lazily: a CRC error surfaces on access.
    with np.load(path, allow_pickle=False) as data:
      meta = (json.loads(str(data[META_KEY])) if META_KEY in data.files
              else {})
      flat = ({key: data[key] for key in data.files if key != META_KEY}
              if arrays else {})
  except READ_ERRORS as e:  # json.JSONDecodeError is a ValueError.
    raise errors.CorruptFileError(
        f'{path} is damaged, or not a weights file written by sr_jax '
        f'({type(e).__name__}: {e}); {_AGAIN}') from None
  if not isinstance(meta, dict):
    raise errors.CorruptFileError(
        f'{path}: its {META_KEY} entry is not a JSON object; {_AGAIN}')
  return flat, meta


def load_params(path: str | os.PathLike) -> dict[str, Any]:
  """Reads a file written by save_params back into nested dicts of arrays.
  Raises WeightsNotFoundError, or errors.CorruptFileError (naming the file)
  for a damaged, truncated or foreign file."""
  flat, _ = _read(pathlib.Path(path).expanduser(), arrays=True)
  variables: dict[str, Any] = {}
  for key, array in flat.items():
    *parents, leaf = key.split('/')
    node = variables
    for name in parents:
      node = node.setdefault(name, {})
    node[leaf] = array
  return variables


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
  """The metadata dict saved with the variables; {} for files without.
  Reads only that entry (load_params checks the whole file)."""
  return _read(pathlib.Path(path).expanduser(), arrays=False)[1]
