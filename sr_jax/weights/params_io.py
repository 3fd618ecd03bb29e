"""A torch-free file format for converted weights, and where they are cached.

Variables are stored as one `.npz` with '/'-joined keys
('params/conv1_1/kernel'), float32, so loading needs only numpy.
"""
import os
import pathlib
import tempfile
from typing import Any, Mapping

import numpy as np

CACHE_ENV_VAR = 'SR_JAX_CACHE_DIR'


class WeightsNotFoundError(FileNotFoundError):
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
    if '/' in name or not name:
      raise ValueError(f'Cannot save a variable named {name!r} (empty or '
                       f"containing '/', the key separator).")
    if isinstance(value, Mapping):
      flat.update(_flatten(value, prefix + name + '/'))
    else:
      array = np.asarray(value)
      if np.issubdtype(array.dtype, np.floating) or array.dtype.kind == 'V':
        array = np.asarray(value, np.float32)  # Also bfloat16 jax arrays.
      flat[prefix + name] = array
  return flat


def save_params(path: str | os.PathLike, variables: Mapping[str, Any]) -> None:
  """Writes nested dicts of arrays to `path` (.npz), atomically.

  The file is written next to `path` and renamed into place, so a crash never
  leaves a truncated cache file that a later run would trust.
  """
  path = pathlib.Path(path).expanduser()
  flat = _flatten(variables)
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.',
                             suffix='.tmp')
  try:
    with os.fdopen(fd, 'wb') as f:  # A file object: np.savez adds no suffix.
      np.savez(f, **flat)
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


def load_params(path: str | os.PathLike) -> dict[str, Any]:
  """Reads a file written by save_params back into nested dicts of arrays."""
  path = pathlib.Path(path).expanduser()
  variables: dict[str, Any] = {}
  with np.load(path, allow_pickle=False) as data:
    for key in data.files:
      *parents, leaf = key.split('/')
      node = variables
      for name in parents:
        node = node.setdefault(name, {})
      node[leaf] = data[key]
  return variables
