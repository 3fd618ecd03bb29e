"""orbax checkpoints: the latest N for resuming, and the best of each phase.

Layout under the workdir:
  checkpoints/<step>/{state, data, config}  last `keep` steps; auto-resume
  best/<phase>/<step>/{state, config}       per phase, the best by its
                                            validation metric
`state` is the whole TrainState, `data` the grain iterator state (JSON),
`config` the run's config (JSON), so a checkpoint says how it was made, and
`checksums` (JSON) a CRC-32 of every array and of the iterator state, taken
at save and verified on every restore, with whether all arrays were finite
and the validation metrics of that step.

A checkpoint that cannot be read, is incomplete or fails its checksums is
corrupt: on resume it is moved aside to W/corrupt_checkpoints/ (never
deleted) with a warning, and the newest intact one is used instead.
`python -m sr_jax.checkpoints W` lists every checkpoint and its status.
Every process must call save/restore (orbax coordinates multi-host writes).
Workdirs of sr_jax before phases (best/<step>/, a TrainState with g_params /
ema_params fields) still load for inference (`load_generator`).
"""
from collections.abc import Callable
import contextlib
import dataclasses
import functools
import gc
import json
import logging as std_logging
import os
import re
import sys
import threading
import time
from typing import Any, NamedTuple
import zlib

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from sr_jax import errors
from sr_jax import distributed
from sr_jax import io_utils
from sr_jax import models
from sr_jax import weights


class CheckpointMismatchError(errors.SrJaxError, ValueError):
  """A workdir's checkpoint does not fit this config; says how to go on."""


class CorruptCheckpointError(errors.SrJaxError, RuntimeError):
  """A checkpoint is unreadable, incomplete or fails its checksums."""


class CheckpointWriteError(errors.SrJaxError, OSError):
  """A checkpoint could not be written (full disk, quota, read-only); the
  message names the step, the folder, why, and the last complete one."""


class _OrbaxErrors(std_logging.Filter):
  """Collects the errors orbax logs from its background save threads (a
  traceback per array and thread on a full disk) instead of printing them;
  the Checkpointer reports a failed save once, as CheckpointWriteError."""

  def __init__(self):
    super().__init__()
    self.messages: list[str] = []

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.ERROR and (
        f'{os.sep}orbax{os.sep}' in record.pathname):
      self.messages.append(record.getMessage())
      return False
    return True

  def install(self) -> None:
    std_logging.getLogger('absl').addFilter(self)
    _drop_closed_loop_echoes()

  def remove(self) -> None:
    std_logging.getLogger('absl').removeFilter(self)

  def take(self) -> list[str]:
    messages, self.messages = self.messages, []
    return messages


@functools.cache
def _drop_closed_loop_echoes() -> None:
  """After a failed write, tensorstore's callbacks into orbax's closed event
  loops each report 'RuntimeError: Event loop is closed' as unraisable,
  some while Python exits. This process-wide hook drops exactly those
  echoes and passes everything else on."""
  previous = sys.unraisablehook

  def unraisablehook(args):
    if not _closed_loop_echo(args.exc_value):
      previous(args)

  sys.unraisablehook = unraisablehook


class _OrphanedFutureEchoes(std_logging.Filter):
  """asyncio's 'Future exception was never retrieved', logged once per
  array when orbax's abandoned write futures are collected (often as Python
  exits): after a failed save is reported, these repeat it hundreds of
  times."""

  def filter(self, record: std_logging.LogRecord) -> bool:
    first_line = str(record.msg).split('\n', 1)[0]
    return not first_line.endswith('exception was never retrieved')


@functools.cache
def _drop_orphaned_future_echoes() -> None:
  """Installed once a checkpoint write has failed (and been reported)."""
  std_logging.getLogger('asyncio').addFilter(_OrphanedFutureEchoes())


def _closed_loop_echo(error) -> bool:
  return isinstance(error, RuntimeError) and (
      str(error) == 'Event loop is closed')


CORRUPT_DIR = 'corrupt_checkpoints'
WHY_FILE = 'CORRUPT.txt'
_ITEM_HANDLERS = dict(
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


def _short(error: BaseException) -> str:
  """The first line of an error, at most 200 characters."""
  text = str(error).strip().splitlines()
  text = text[0].split(' See full TensorStore details')[0] if text else ''
  return f'{type(error).__name__}: {text[:200]}'


def _state_metadata(manager, step):
  """The metadata tree of a checkpoint's state (shapes and dtypes);
  CorruptCheckpointError if it is unreadable or missing."""
  try:
    metadata = manager.item_metadata(step)['state']
    metadata = getattr(metadata, 'tree', metadata)
  except Exception as e:  # pylint: disable=broad-except
    raise CorruptCheckpointError(
        f'its state metadata is unreadable ({_short(e)})') from None
  if not metadata:
    raise CorruptCheckpointError('its state metadata is missing')
  return metadata


def _saved_shapes(manager, step) -> dict[str, tuple]:
  """{path: shape} of a checkpoint's state, from its metadata."""
  leaves = jax.tree_util.tree_flatten_with_path(
      _state_metadata(manager, step))[0]
  return {_path_name(p): tuple(m.shape) for p, m in leaves}


def _stored_shape(x) -> tuple:
  """The shape a leaf is stored with (PRNG keys as their raw data)."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    return tuple(jax.eval_shape(jax.random.key_data, x).shape)
  return tuple(x.shape)


def _shapes(tree) -> dict[str, tuple]:
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


def _restore_verified(manager, step, abstract, items=('data',)) -> dict:
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
    raise CorruptCheckpointError(f'reading it failed ({_short(e)})') from None
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


def _config_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


# In a multi-process run, `data` holds every process's iterator state (each
# reads its own shard of the files): {PROCESSES_KEY: [state of process 0,
# ...]}; a single process's is the state itself.
PROCESSES_KEY = 'sr_jax_process_states'


def _all_processes_data(data_state: dict) -> dict:
  """This process's iterator state with every other's (a collective)."""
  if jax.process_count() == 1:
    return data_state
  return {PROCESSES_KEY: distributed.allgather_json(data_state)}


def _this_process_data(saved: dict, where: str) -> dict:
  """This process's part of a saved `data` item."""
  states = saved.get(PROCESSES_KEY, [saved]) if isinstance(saved, dict) else [
      saved]
  if len(states) != jax.process_count():
    raise CheckpointMismatchError(
        f'{where} was saved by a run of {len(states)} process(es), and '
        f'this one has {jax.process_count()}: each process resumes its own '
        'position in its shard of the data. Resume with the same number of '
        'processes, or start a new --workdir from its generator with '
        '--config.generator.init_from.')
  return states[jax.process_index()]


class Restored(NamedTuple):
  state: Any
  data_state: dict
  step: int
  layout: str  # Which of the layouts offered to restore_latest matched.


def _barriers(manager: str) -> ocp.options.MultiprocessingOptions:
  """Each manager's own names for its multi-process barriers: orbax names
  them by step, so the latest and the best checkpoint of one step, saved
  at once, would otherwise meet at the same barrier and fail."""
  return ocp.options.MultiprocessingOptions(
      barrier_sync_key_prefix=f'sr_jax_{manager}')


class Checkpointer:
  """Owns the run's orbax CheckpointManagers: latest, and best per phase."""

  def __init__(self, workdir: str, keep: int = 3):
    self.workdir = io_utils.workdir_path(workdir)
    # Saves a kill interrupted: orbax deletes them as it opens the folder.
    self.unfinished = unfinished_saves(
        os.path.join(self.workdir, 'checkpoints'))
    self.latest = ocp.CheckpointManager(
        os.path.join(self.workdir, 'checkpoints'),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=keep, create=True, cleanup_tmp_directories=True,
            multiprocessing_options=_barriers('latest')),
        item_handlers={k: h() for k, h in _ITEM_HANDLERS.items()})
    self._best: dict[str, ocp.CheckpointManager] = {}
    self._pending: list[int] = []  # Latest-checkpoint saves in flight.
    self._last_step = -1  # Of the last save of any kind.
    self._errors = _OrbaxErrors()
    self._errors.install()

  def _best_manager(self, phase: str, mode: str) -> ocp.CheckpointManager:
    if phase not in self._best:
      self._best[phase] = ocp.CheckpointManager(
          os.path.join(self.workdir, 'best', phase),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_fn=lambda m: m['value'],
              best_mode=mode, keep_checkpoints_without_metrics=False,
              cleanup_tmp_directories=True,
              multiprocessing_options=_barriers(f'best_{phase}')),
          item_handlers={k: _ITEM_HANDLERS[k]()
                         for k in ('state', 'config', 'checksums')})
    return self._best[phase]

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def save(self, step: int, state, data_state: dict,
           config: ml_collections.ConfigDict, force: bool = False,
           metrics: dict | None = None) -> bool:
    """Saves asynchronously (with its checksums); returns whether a
    checkpoint was started. `finished(step)` tells when it is complete.

    Raises CheckpointWriteError if this save, or one before it that was
    still in flight, could not be written.
    """
    self._finish_pending()
    self._last_step = step
    self._check_space(step, state)
    data_state = _all_processes_data(data_state)
    self._replace_older(self.latest, step, 'checkpoints')
    with self._write_errors(step):
      saved = self.latest.save(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(state),
              data=ocp.args.JsonSave(data_state),
              config=ocp.args.JsonSave(_config_json(config)),
              checksums=ocp.args.JsonSave(
                  checksum_record(state, data_state, metrics))),
          force=force)
    self._check_written([])
    if saved:
      self._pending = [step]
      logging.info('Saving checkpoint of step %d.', step)
    return saved

  def save_best(self, step: int, state, value: float,
                config: ml_collections.ConfigDict, phase: str = 'run',
                mode: str = 'max', metrics: dict | None = None,
                generator: str = 'ema') -> None:
    """Offers a validated state of `phase`; orbax keeps it only if its
    metric `value` is the best of that phase (mode 'max' or 'min').
    generator: which of its generators scored `value` and is the one to
    load for inference, 'ema' or 'raw' (config.best_weights)."""
    if generator not in GENERATOR_WEIGHTS:
      raise ValueError(f'generator={generator!r}; use one of '
                       f'{GENERATOR_WEIGHTS}.')
    self._finish_pending()
    self._last_step = step
    self._check_space(step, state)
    record = checksum_record(state, metrics=metrics)
    record['generator'] = generator
    manager = self._best_manager(phase, mode)
    self._replace_older(manager, step, f'best/{phase}')
    with self._write_errors(step):
      manager.save(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(state),
              config=ocp.args.JsonSave(_config_json(config)),
              checksums=ocp.args.JsonSave(record)),
          metrics={'value': float(value)}, force=True)
    self._check_written([])

  def _finish_pending(self) -> None:
    """Waits for the latest-checkpoint save in flight (orbax would wait for
    it anyway before starting another): a failure is reported with that
    save's step, and the free-space check and its message see the steps
    that are really complete."""
    pending, self._pending = self._pending, []
    if pending:
      with self._write_errors(pending[0]):
        self.latest.wait_until_finished()
      self._check_written(pending)

  def _replace_older(self, manager, step: int, what: str) -> None:
    """A step the folder already holds was written before this run fell
    back to an older checkpoint (the newer one was corrupt, or a save was
    interrupted) and has been trained again: this run's state replaces it
    (orbax would refuse to write the step again, for ever)."""
    if step not in manager.all_steps():
      return
    manager.wait_until_finished()
    if jax.process_index() == 0:
      print(f'note: {self.workdir}/{what}/{step} was written before this '
            f'run resumed from an older checkpoint; replaced by this run\'s '
            f'step {step}.', flush=True)
    with self._write_errors(step):
      manager.delete(step)

  @contextlib.contextmanager
  def _write_errors(self, step: int):
    """Turns a failed save inside orbax (whatever orbax raises: tensorstore
    reports a full disk as a ValueError) into CheckpointWriteError."""
    try:
      yield
    except CheckpointWriteError:
      raise
    except Exception as e:  # pylint: disable=broad-except
      self._errors.take()
      raise self._write_error(
          step, f'{type(e).__name__}: {str(e).strip()}') from None

  def _complete_steps(self) -> list[int]:
    """Steps whose latest checkpoint is complete on disk (read from the
    folder, not orbax's cache)."""
    root = io_utils.path(self.latest.directory)
    names = [p.name for p in root.iterdir()] if root.is_dir() else []
    return sorted(int(n) for n in names if n.isdigit() and (
        root / n / 'commit_success.txt').exists())

  def _write_error(self, step: int, detail: str) -> CheckpointWriteError:
    _drop_orphaned_future_echoes()
    # tensorstore's message ends in the OS error: name it as the OS does.
    code = re.search(r"os_error_code='?(\d+)", detail)
    why = io_utils.write_probe(self.workdir) or (
        os.strerror(int(code.group(1))) if code else detail[:300])
    complete = self._complete_steps()
    last = (f'The last complete checkpoint, step {complete[-1]}, is intact'
            if complete else 'No checkpoint of this run is complete yet')
    return CheckpointWriteError(
        f'Could not write the checkpoint of step {step} in {self.workdir}: '
        f'{why}. {last}. Free space (or fix the folder) and rerun the same '
        'command to resume.')

  def _check_space(self, step: int, state) -> None:
    """Refuses a save that cannot fit before orbax starts writing it."""
    need = sum(x.nbytes for x in jax.tree.leaves(state)
               if hasattr(x, 'nbytes')) * 1.1 + (1 << 20)
    try:
      stat = os.statvfs(self.workdir)
    except (OSError, AttributeError):  # Not a local folder (gs://, ...).
      return
    free = stat.f_bavail * stat.f_frsize
    if free < need:
      raise self._write_error(
          step, f'No space left on device ({free / 2**20:.0f} MB free, '
          f'the checkpoint needs about {need / 2**20:.0f} MB)')

  def _check_written(self, steps: list[int]) -> None:
    """Raises CheckpointWriteError if orbax reported a failed write, or a
    finished save of `steps` is not complete on disk."""
    messages = self._errors.take()
    missing = [s for s in steps if s not in self._complete_steps()]
    if messages or missing:
      step = missing[0] if missing else self._last_step
      detail = messages[0].split('raised an exception: ')[-1] if (
          messages) else 'the save did not complete'
      raise self._write_error(step, detail)

  def finished(self, step: int) -> bool:
    """Whether checkpoint `step` is complete on disk (after waiting for
    any save in flight); an interrupted save is never reported as saved."""
    try:
      self.latest.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      logging.error('Saving checkpoint of step %d failed: %s', step, e)
    self._errors.take()
    return step in self._complete_steps()

  def restore_latest(
      self, abstract_for_step: Callable[[int], dict[str, Any]],
      check_config: Callable[[int, dict], None] | None = None,
  ) -> Restored | None:
    """The newest intact checkpoint, or None if there is none.

    Corrupt checkpoints (unreadable, incomplete, failing their checksums)
    are moved aside to W/corrupt_checkpoints/ with a warning, newest first,
    until an intact one is found.

    abstract_for_step: step -> {layout name: TrainState layout} that a
      checkpoint of that step may have (jax.ShapeDtypeStruct trees with
      shardings, so arrays are restored straight onto the mesh); the first
      whose arrays match the checkpoint's is used (Restored.layout).
    check_config: called with (step, saved config) before restoring; may
      raise to refuse the resume.
    """
    moved = []
    while (step := self.latest.latest_step()) is not None:
      try:
        result = self._restore_step(step, abstract_for_step, check_config)
      except CorruptCheckpointError as e:
        moved.append(self._move_aside(step, str(e)))
        continue
      self._warn_unfinished(step)
      return result
    self._warn_unfinished(None)
    if moved:
      raise CorruptCheckpointError(
          f'Every checkpoint of {self.workdir} is corrupt (moved to '
          f'{", ".join(moved)}); nothing to resume. Rerun to start from '
          'scratch, or use a new --workdir.')
    return None

  def _warn_unfinished(self, resumed: int | None) -> None:
    """Says which interrupted saves were discarded, and where the run goes
    on from (never a silent restart from step 0)."""
    if not self.unfinished or jax.process_index() > 0:
      return
    steps = ', '.join(map(str, self.unfinished))
    where = (f'resuming from step {resumed}, the newest complete one'
             if resumed is not None else
             'no checkpoint of this run is complete: starting from step 0')
    print(f'warning: the save of step {steps} in {self.latest.directory} '
          f'was interrupted before it completed (a kill during the write) '
          f'and is discarded; {where}.', flush=True)

  def _restore_step(self, step, abstract_for_step, check_config):
    try:
      saved_config = dict(_restore_config(self.latest, step))
    except Exception as e:  # pylint: disable=broad-except
      raise CorruptCheckpointError(
          f'its config is unreadable ({_short(e)})') from None
    if check_config is not None:
      check_config(step, saved_config)
    saved = _saved_shapes(self.latest, step)
    layouts = [(name, a) for name, a in abstract_for_step(step).items()
               if _shapes(a) == saved]
    if not layouts:
      raise CheckpointMismatchError(
          f'Cannot resume from {self.latest.directory}/{step}: its train '
          'state does not match this config (did the model, the phases or '
          'the losses change, or was it written by an older sr_jax?). Use a '
          'new --workdir, or the config the run was started with (saved in '
          f'{self.latest.directory}/{step}/config). To start a new run from '
          'its generator, set --config.generator.init_from='
          f'{self.workdir}.')
    layout, abstract = layouts[0]
    restored = _restore_verified(self.latest, step, abstract)
    data_state = _this_process_data(restored['data'],
                                    f'{self.latest.directory}/{step}')
    return Restored(restored['state'], data_state, step, layout)

  def _move_aside(self, step: int, why: str) -> str:
    """Moves a corrupt checkpoint out of orbax's sight; returns where."""
    source = os.path.join(str(self.latest.directory), str(step))
    target = os.path.join(self.workdir, CORRUPT_DIR,
                          f'{step}-{time.strftime("%Y%m%d-%H%M%S")}')
    if jax.process_index() == 0:
      io_utils.path(target).parent.mkdir(parents=True, exist_ok=True)
      io_utils.path(source).rename(target)
      io_utils.path(target).joinpath(WHY_FILE).write_text(
          f'Step {step}, moved aside on resume: {why}\n')
      print(f'warning: checkpoint {source} is corrupt: {why}. Moved it to '
            f'{target}; trying the previous one.', flush=True)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'sr_jax moved aside {step}')
    self.latest.reload()
    return target

  def wait_until_finished(self) -> None:
    """Waits for every save in flight; CheckpointWriteError if one
    failed."""
    pending, self._pending = self._pending, []
    step = pending[0] if pending else self._last_step
    for manager in [self.latest] + list(self._best.values()):
      with self._write_errors(step):
        manager.wait_until_finished()
    self._check_written(pending)

  def close(self) -> None:
    """Closes the managers; a failed save was reported by
    wait_until_finished, and orbax raising it again here is dropped."""
    for manager in [self.latest] + list(self._best.values()):
      try:
        manager.close()
      except Exception as e:  # pylint: disable=broad-except
        logging.info('Closing %s: %s', manager.directory, e)
    self._errors.remove()


def unfinished_saves(directory: str) -> list[int]:
  """Steps of the saves in `directory` that never completed (orbax's
  temporary folders, `<step>.orbax-checkpoint-tmp...`)."""
  try:
    root = io_utils.path(directory)
    names = [p.name for p in root.iterdir()] if root.is_dir() else []
  except (OSError, ImportError, ValueError):  # E.g. no gs:// client here.
    return []  # Only a warning depends on it.
  return sorted(int(m.group(1)) for n in names
                if (m := re.match(r'(\d+)\.orbax-checkpoint-tmp', n)))


def abstract_with_sharding(tree, sharding):
  """ShapeDtypeStructs of `tree` placed with `sharding` (for restore)."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def phase_names(config: ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """(phase name, steps) in order, for this and older config layouts."""
  if 'phases' in config:
    return [(p, int(config[p]['steps'])) for p in config.phases]
  return [('psnr', int(config.psnr.steps)), ('gan', int(config.gan.steps))]


def phase_of_step(config: ml_collections.ConfigDict, step: int) -> str:
  """The phase whose last completed step is `step` (the first at 0)."""
  end = 0
  active = [(p, n) for p, n in phase_names(config) if n > 0]
  for name, steps in active:
    end += steps
    if max(step, 1) <= end:
      return name
  return active[-1][0] if active else 'run'


# A checkpoint's generators: its EMA and its raw (trained) weights.
GENERATOR_WEIGHTS = ('ema', 'raw')


@dataclasses.dataclass(frozen=True)
class LoadedGenerator:
  module: Any
  variables: dict
  config: ml_collections.ConfigDict
  step: int
  phase: str
  directory: str
  weights: str = 'ema'  # 'raw': it scored better than the EMA (best_weights).

  def describe(self) -> str:
    which = ('EMA' if self.weights == 'ema' else
             'raw (non-EMA; it validated better than the EMA)')
    return (f'the {which} generator of phase {self.phase!r} at step '
            f'{self.step} ({self.directory})')


def _open_read_only(directory: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(read_only=True),
      item_handlers={k: h() for k, h in _ITEM_HANDLERS.items()})


def _restore_config(manager, step) -> dict:
  return manager.restore(step, args=ocp.args.Composite(
      config=ocp.args.JsonRestore()))['config']


def _newest_config(directory: str) -> tuple[int, ml_collections.ConfigDict
                                            ] | None:
  """(step, config) of the newest checkpoint in `directory`, or None."""
  manager = _open_read_only(directory)
  try:
    step = manager.latest_step()
    if step is None:
      return None
    return step, ml_collections.ConfigDict(_restore_config(manager, step))
  finally:
    manager.close()


def _restore_on_this_host(manager, step, with_data: bool = False
                          ) -> tuple[dict, dict, dict]:
  """(state tree, config, checksum record or {}) of `step` on one local
  device, whatever mesh wrote it (the target is built from the
  checkpoint's own metadata), verified against its checksums (with_data:
  the data-iterator state too)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      _state_metadata(manager, step))
  restored = _restore_verified(
      manager, step, abstract,
      items=('config', 'data') if with_data else ('config',))
  return restored['state'], restored['config'], restored.get('checksums', {})


def _newest_intact(manager, directory: str) -> tuple[int, dict, dict, dict]:
  """(step, state, config, checksum record) of the newest verified
  checkpoint in a read-only manager; corrupt ones are skipped with a
  warning (and left in place: loading for inference never changes a
  workdir)."""
  problems = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return (step,) + _restore_on_this_host(manager, step)
    except CorruptCheckpointError as e:
      problems.append(f'{directory}/{step}: {e}')
      print(f'warning: checkpoint {directory}/{step} is corrupt ({e}); '
            'skipped.', flush=True)
  if problems:
    raise CorruptCheckpointError(
        'No intact checkpoint: ' + '; '.join(problems) + '. Try '
        '--which latest (or which="latest"), or another phase.')
  raise FileNotFoundError(f'No finished checkpoint in {directory}.')


def _generator_module(config: ml_collections.ConfigDict):
  g = config.generator
  kwargs = dict(g.kwargs)
  cls = models.GENERATORS.get(g.name)
  if 'scale' in models.module_fields(cls):
    kwargs.setdefault('scale', config.scale)
  dtype = jnp.dtype(config.get('dtype', 'float32'))
  return models.get_generator(g.name, dtype=dtype, **kwargs)


def _generator_variables(state: dict, weights: str = 'ema') -> dict:
  """The generator of a restored state: its EMA, or its raw parameters."""
  if 'model_state' in state:  # Phased layout.
    params = state['ema_params' if weights == 'ema' else 'params']
    return {'params': params['generator'],
            **state['model_state']['generator']}
  variables = {'params': state['ema_params']}  # Before phases.
  if state.get('g_batch_stats'):
    variables['batch_stats'] = state['g_batch_stats']
  return variables


def _best_dirs(workdir: str) -> dict[str, str]:
  """{phase: directory} of a workdir's best checkpoints, both layouts."""
  root = os.path.join(workdir, 'best')
  if not io_utils.path(root).is_dir():
    return {}
  entries = [p.name for p in io_utils.path(root).iterdir()]
  if any(re.fullmatch(r'\d+', e) for e in entries):
    # Before phases: one best/<step>/ for the whole run, filed under the
    # phase its step belongs to.
    newest = _newest_config(root)
    if newest is None:
      return {}
    step, config = newest
    return {phase_of_step(config, step): root}
  return {e: os.path.join(root, e) for e in entries
          if io_utils.path(root).joinpath(e).is_dir()}


def _directory_of_step(workdir: str, step: int) -> str:
  """The checkpoint folder (latest or a phase's best) that holds `step`."""
  folders = [os.path.join(workdir, 'checkpoints')] + sorted(
      _best_dirs(workdir).values())
  for directory in folders:
    if io_utils.path(directory).joinpath(str(step)).is_dir():
      return directory
  have = sorted({int(p.name) for d in folders if io_utils.path(d).is_dir()
                 for p in io_utils.path(d).iterdir() if p.name.isdigit()})
  raise FileNotFoundError(f'No checkpoint of step {step} in {workdir} (has '
                          f'steps {have or "none"}).')


def load_generator_from_workdir(workdir: str, which: str = 'best',
                                phase: str | None = None,
                                step: int | None = None) -> LoadedGenerator:
  """Loads a trained generator from a run's workdir: the EMA one, or the
  raw one where a best checkpoint records that it validated better
  (config.best_weights; LoadedGenerator.weights says which).

  which: 'best' (the best validated state of `phase`; by default of the
    last phase that has one, i.e. the final phase once it has validated)
    or 'latest' (the newest checkpoint; `phase` must then match it).
  step: a given step instead (from checkpoints/ or a best/ folder);
    `which` and `phase` are then not used.
  """
  if which not in ('best', 'latest'):
    raise ValueError(f'which={which!r}; use "best" or "latest".')
  workdir = io_utils.workdir_path(workdir)
  if step is not None:
    directory = _directory_of_step(workdir, step)
    manager = _open_read_only(directory)
    try:
      state, config, record = _restore_on_this_host(manager, step)
    except CorruptCheckpointError as e:
      raise CorruptCheckpointError(
          f'Checkpoint {directory}/{step} is corrupt: {e}.') from None
    finally:
      manager.close()
    return _loaded_generator(state, config, step, directory, record)
  if which == 'latest':
    directory = os.path.join(workdir, 'checkpoints')
  else:
    best = _best_dirs(workdir)
    if not best:
      raise FileNotFoundError(
          f'No best checkpoints in {workdir}/best: is {workdir} the '
          '--workdir of a run that has validated at least once? (Use '
          'which="latest" / --which latest for the newest checkpoint.)')
    if phase is None:
      # The last phase of the run (in its own order) that has validated.
      try:
        order = [p for p, _ in phase_names(_latest_config(workdir, best))]
      except FileNotFoundError:
        order = []
      ranked = [p for p in order if p in best] or sorted(best)
      directory = best[ranked[-1]]
    elif phase in best:
      directory = best[phase]
    else:
      raise FileNotFoundError(
          f'No best checkpoint of phase {phase!r} in {workdir}/best (has: '
          f'{sorted(best) or "none"}).')
  if not io_utils.path(directory).is_dir():
    raise FileNotFoundError(
        f'No checkpoints in {directory}: is {workdir} the --workdir of a run '
        'that has saved at least once?')
  manager = _open_read_only(directory)
  try:
    step, state, config, record = _newest_intact(manager, directory)
  finally:
    manager.close()
  loaded = _loaded_generator(state, config, step, directory, record)
  if phase is not None and which == 'latest' and phase != loaded.phase:
    raise FileNotFoundError(
        f'The newest checkpoint of {workdir} (step {step}) is of phase '
        f'{loaded.phase!r}, not {phase!r}; use which="best" for a phase.')
  return loaded


def _loaded_generator(state: dict, config: dict, step: int,
                      directory: str, record: dict) -> LoadedGenerator:
  """The generator a checkpoint keeps for inference: its EMA, or the raw
  one where its record says that one scored better (best_weights)."""
  config = ml_collections.ConfigDict(config)
  weights = record.get('generator', 'ema') if 'model_state' in state else 'ema'
  return LoadedGenerator(
      _generator_module(config),
      jax.tree.map(np.asarray, _generator_variables(state, weights)), config,
      step, phase_of_step(config, step), os.path.join(directory, str(step)),
      weights)


def _latest_config(workdir: str, best: dict[str, str]) -> dict:
  for directory in [os.path.join(workdir, 'checkpoints')] + list(
      best.values()):
    if io_utils.path(directory).is_dir() and (
        newest := _newest_config(directory)):
      return newest[1]
  raise FileNotFoundError(workdir)


def run_phases(workdir: str) -> list[str]:
  """The phases (with steps > 0) of the run in `workdir`, in order."""
  workdir = io_utils.workdir_path(workdir)
  config = _latest_config(workdir, _best_dirs(workdir))
  return [p for p, n in phase_names(config) if n > 0]


def load_generator(workdir: str, which: str = 'best',
                   phase: str | None = None, step: int | None = None):
  """(generator module, variables for module.apply, the run's config).

  The variables hold the EMA parameters, which BasicSR also evaluates (or,
  in a best checkpoint whose raw generator validated better and
  config.best_weights allowed it, the raw ones). By default the final
  phase's best validated generator; see
  `load_generator_from_workdir` for `which` and `phase`.
  """
  loaded = load_generator_from_workdir(workdir, which, phase, step)
  return loaded.module, loaded.variables, loaded.config


def load_final_generator(workdir: str) -> LoadedGenerator:
  """A run's final generator (EMA, or raw where it validated better): its
  best checkpoint (of the last phase that validated), else its newest one
  (runs without evaluations)."""
  try:
    return load_generator_from_workdir(workdir, 'best')
  except FileNotFoundError:
    return load_generator_from_workdir(workdir, 'latest')


def load_trained_generator(source: str, arch: str,
                           what: str) -> tuple[Any, dict]:
  """(module, variables) of the EMA generator of a run's workdir (its best
  checkpoint, else the newest), or of a weights file; ValueError naming
  `what` when it is not an `arch` generator."""
  if io_utils.path(io_utils.workdir_path(source)).is_dir():
    run = load_final_generator(source)
    if run.config.generator.name != arch:
      raise ValueError(f'{what}: {source} trained a '
                       f'{run.config.generator.name!r} generator, not a '
                       f'{arch!r} one.')
    print(f'{what}: {run.describe()}.', flush=True)
    return run.module, run.variables
  if not os.path.isfile(source):
    raise FileNotFoundError(f'{what}: {source} is neither a workdir nor a '
                            'weights file.')
  module, variables, _ = weights.load_generator_file(source, arch)
  return module, dict(variables)


@dataclasses.dataclass(frozen=True)
class CheckpointStatus:
  """One checkpoint of a workdir, as `python -m sr_jax.checkpoints` lists."""
  directory: str  # Its folder (checkpoints/, best/<phase>/, corrupt_...).
  step: int | None
  phase: str | None
  problem: str | None  # None: intact (verified, or unverifiable if old).
  verified: bool  # Checked against checksums recorded at save.
  finite: bool | None
  metrics: dict

  @property
  def intact(self) -> bool:
    return self.problem is None


def _inspect_manager(directory: str,
                     resumable: bool) -> list[CheckpointStatus]:
  manager = _open_read_only(directory)
  out = []
  try:
    for step in sorted(manager.all_steps()):
      try:
        state, config, record = _restore_on_this_host(
            manager, step, with_data=resumable)
      except CorruptCheckpointError as e:
        out.append(CheckpointStatus(directory, step, None, str(e), False,
                                    None, {}))
        continue
      metrics = dict(record.get('metrics', {}))
      if not metrics:
        value = (manager.metrics(step) or {}).get('value')
        metrics = {'value': value} if value is not None else {}
      out.append(CheckpointStatus(
          directory, step, phase_of_step(ml_collections.ConfigDict(config),
                                         step),
          None, bool(record), checksum_record(state)['finite'], metrics))
  finally:
    manager.close()
  return out


def inspect_workdir(workdir: str) -> list[CheckpointStatus]:
  """Every checkpoint of a workdir (resumable ones, the best of each phase,
  and those moved aside as corrupt), each restored and verified."""
  workdir = io_utils.workdir_path(workdir)
  if not io_utils.path(workdir).is_dir():
    raise FileNotFoundError(f'No workdir {workdir}.')
  latest = os.path.join(workdir, 'checkpoints')
  out = []
  for directory in [latest] + sorted(_best_dirs(workdir).values()):
    if io_utils.path(directory).is_dir():
      out += _inspect_manager(directory, resumable=directory == latest)
  aside = io_utils.path(workdir) / CORRUPT_DIR
  names = sorted(p.name for p in aside.iterdir()) if aside.is_dir() else []
  for name in names:
    why = aside / name / WHY_FILE
    reason = why.read_text().strip() if why.exists() else 'moved aside'
    step = re.match(r'\d+', name)
    out.append(CheckpointStatus(os.path.join(str(aside), name),
                                int(step.group()) if step else None, None,
                                reason, False, None, {}))
  return out
