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
from typing import Any, Mapping, Optional

import numpy as np

from sr_jax import errors
from sr_jax import io_utils

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


def _open(path: pathlib.Path):
  if not path.is_file():
    raise WeightsNotFoundError(f'{path} does not exist.')
  try:
    return np.load(path, allow_pickle=False)
  except (OSError, ValueError, zipfile.BadZipFile) as e:
    raise ValueError(
        f'{path} is not a weights file written by sr_jax (an .npz): {e}. '
        'Convert PyTorch weights with python -m sr_jax.convert ARCH SRC '
        'OUT.npz.') from None


def load_params(path: str | os.PathLike) -> dict[str, Any]:
  """Reads a file written by save_params back into nested dicts of arrays."""
  path = pathlib.Path(path).expanduser()
  variables: dict[str, Any] = {}
  with _open(path) as data:
    for key in data.files:
      if key == META_KEY:
        continue
      *parents, leaf = key.split('/')
      node = variables
      for name in parents:
        node = node.setdefault(name, {})
      node[leaf] = data[key]
  return variables


def load_metadata(path: str | os.PathLike) -> dict[str, Any]:
  """The metadata dict saved with the variables; {} for files without."""
  path = pathlib.Path(path).expanduser()
  with _open(path) as data:
    if META_KEY not in data.files:
      return {}
    return json.loads(str(data[META_KEY]))
