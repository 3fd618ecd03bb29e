"""What makes a checkpoint trustworthy: a CRC-32 of every array and of the
iterator state taken at save (`checksum_record`), checked on every restore
(`verify`, `restore_verified`), and the errors a bad or mismatched
checkpoint raises."""
import contextlib
import gc
import json
import logging as std_logging
import sys
import threading
import time
import zlib

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from sr_jax import errors
from sr_jax.utils import io_utils


class CheckpointMismatchError(errors.SrJaxError, ValueError):
  """A workdir's checkpoint does not fit this config; says how to go on."""


class CorruptCheckpointError(errors.SrJaxError, RuntimeError):
  """A checkpoint is unreadable, incomplete or fails its checksums."""


class CheckpointWriteError(errors.SrJaxError, OSError):
  """A checkpoint could not be written (full disk, quota, read-only); the
  message names the step, the folder, why, and the last complete one."""


CORRUPT_DIR = 'corrupt_checkpoints'


WHY_FILE = 'CORRUPT.txt'


ITEM_HANDLERS = dict(
    state=ocp.StandardCheckpointHandler, data=ocp.JsonCheckpointHandler,
    config=ocp.JsonCheckpointHandler, checksums=ocp.JsonCheckpointHandler)


def _path_name(path) -> str:
  """'params/generator/conv_first/kernel' for a jax key path, the same for
  a TrainState and for the nested dicts orbax's metadata gives."""
  parts = []
  for key in path:
    for attr in ('name', 'key', 'idx'):
      if hasattr(key, attr):
        parts.append(str(getattr(key, attr)))
        break
    else:
      parts.append(str(key))
  return '/'.join(parts)


def _host_array(x) -> np.ndarray | None:
  """A leaf's values on this host (PRNG keys as their raw data); None for a
  sharded array this host does not hold whole."""
  if isinstance(x, jax.Array):
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
      x = jax.random.key_data(x)
    if not x.is_fully_addressable:
      if not x.sharding.is_fully_replicated:
        return None
      x = x.addressable_data(0)
  return np.ascontiguousarray(np.asarray(x))


def _crc(data: bytes | np.ndarray) -> str:
  return f'{zlib.crc32(memoryview(data).cast("B")):08x}'


def _data_crc(data_state) -> str:
  return _crc(json.dumps(data_state, sort_keys=True).encode())


def checksum_record(state, data_state: dict | None = None,
                    metrics: dict | None = None) -> dict:
  """What a checkpoint records to be verified: a CRC-32 of every array of
  `state` (by path) and of the iterator state, whether every float array
  is finite, and the step's validation metrics."""
  arrays, finite = {}, True
  for path, leaf in jax.tree_util.tree_flatten_with_path(state)[0]:
    array = _host_array(leaf)
    if array is None:
      continue
    arrays[_path_name(path)] = _crc(array)
    if np.issubdtype(array.dtype, np.floating):
      finite = finite and bool(np.isfinite(array).all())
  record = {'format': 1, 'arrays': arrays, 'finite': finite,
            'metrics': {k: float(v) for k, v in (metrics or {}).items()}}
  if data_state is not None:
    record['data'] = _data_crc(data_state)
  return record


def verify(record: dict, state, data_state: dict | None = None) -> None:
  """Raises CorruptCheckpointError if restored `state` / `data_state` do
  not match the checksums recorded at save."""
  got = checksum_record(state)['arrays']
  bad = sorted(k for k, v in record['arrays'].items() if got.get(k, v) != v)
  missing = sorted(set(record['arrays']) - set(got))
  if bad or missing:
    names = bad + missing
    raise CorruptCheckpointError(
        f'{len(names)} array(s) fail their checksum ({", ".join(names[:3])}'
        f'{", ..." if len(names) > 3 else ""})')
  if data_state is not None and 'data' in record and (
      _data_crc(data_state) != record['data']):
    raise CorruptCheckpointError('its data-iterator state fails its checksum')


def short_reason(error: BaseException) -> str:
  """The first line of an error, at most 200 characters."""
  text = str(error).strip().splitlines()
  text = text[0].split(' See full TensorStore details')[0] if text else ''
  return f'{type(error).__name__}: {text[:200]}'


def state_metadata(manager, step):
  """The metadata tree of a checkpoint's state (shapes and dtypes);
  CorruptCheckpointError if it is unreadable or missing."""
  try:
    metadata = manager.item_metadata(step)['state']
    metadata = getattr(metadata, 'tree', metadata)
  except Exception as e:  # pylint: disable=broad-except
    raise CorruptCheckpointError(
        f'its state metadata is unreadable ({short_reason(e)})') from None
  if not metadata:
    raise CorruptCheckpointError('its state metadata is missing')
  return metadata


def saved_shapes(manager, step) -> dict[str, tuple]:
  """{path: shape} of a checkpoint's state, from its metadata."""
  leaves = jax.tree_util.tree_flatten_with_path(
      state_metadata(manager, step))[0]
  return {_path_name(p): tuple(m.shape) for p, m in leaves}


def _stored_shape(x) -> tuple:
  """The shape a leaf is stored with (PRNG keys as their raw data)."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return tuple(jax.eval_shape(jax.random.key_data, x).shape)
  return tuple(x.shape)


def tree_shapes(tree) -> dict[str, tuple]:
  return {_path_name(p): _stored_shape(x)
          for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}


@contextlib.contextmanager
def _quiet_async_failures():
  """While reading a checkpoint: when one array fails to read, orbax's
  other reads in flight fail too, and each prints a traceback from its
  thread, callback or coroutine (thousands of lines, some after the restore
  has raised). The first error is what the restore raises; the echoes are
  silenced, and on a failure the stragglers are given a moment to finish
  while silenced."""
  asyncio_logger = std_logging.getLogger('asyncio')
  saved = (asyncio_logger.level, sys.unraisablehook, sys.excepthook,
           threading.excepthook)
  asyncio_logger.setLevel(std_logging.CRITICAL)
  sys.unraisablehook = threading.excepthook = lambda unused_args: None
  sys.excepthook = lambda *unused_args: None
  try:
    yield
  except Exception:
    time.sleep(1.0)
    raise
  finally:
    gc.collect()  # Abandoned coroutines report now, while quiet.
    asyncio_logger.setLevel(saved[0])
    (sys.unraisablehook, sys.excepthook, threading.excepthook) = saved[1:]


def _has_item(manager, step, item: str) -> bool:
  return io_utils.path(manager.directory).joinpath(str(step), item).is_dir()


def restore_verified(manager, step, abstract, items=('data',)) -> dict:
  """Restores `state` (onto `abstract`) and `items` of one step and checks
  them against its recorded checksums; CorruptCheckpointError if anything
  cannot be read or does not match."""
  args = {'state': ocp.args.StandardRestore(abstract)}
  for item in items:
    args[item] = ocp.args.JsonRestore()
  checked = _has_item(manager, step, 'checksums')  # Older sr_jax: none.
  if checked:
    args['checksums'] = ocp.args.JsonRestore()
  try:
    with _quiet_async_failures():
      restored = manager.restore(step, args=ocp.args.Composite(**args))
  except Exception as e:  # pylint: disable=broad-except
    raise CorruptCheckpointError(
        f'reading it failed ({short_reason(e)})') from None
  data_state = restored['data'] if 'data' in items else None
  if 'data' in items and (not isinstance(data_state, dict) or not data_state):
    raise CorruptCheckpointError('its data-iterator state is empty')
  if checked:
    record = restored['checksums']
    if not isinstance(record, dict) or 'arrays' not in record:
      raise CorruptCheckpointError('its checksum record is unreadable')
    verify(record, restored['state'], data_state)
  else:
    logging.warning('%s/%d has no checksums (written by an older sr_jax); '
                    'restored unverified.', manager.directory, step)
  return dict(restored)
