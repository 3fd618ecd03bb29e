"""The Checkpointer: the latest N checkpoints for resuming and the best of
each phase, saved asynchronously, checked on every restore, and a corrupt
one moved aside (never deleted) with the newest intact one used instead.
The layout of a workdir is described in the package's docstring."""
from collections.abc import Callable
import contextlib
import functools
import json
import logging as std_logging
import os
import re
import sys
import time
from typing import Any, Mapping, NamedTuple

from absl import logging
import jax
from jax.experimental import multihost_utils
import ml_collections
import orbax.checkpoint as ocp

from sr_jax.checkpoint.inspect import GENERATOR_WEIGHTS
from sr_jax.checkpoint.inspect import restore_config
from sr_jax.checkpoint.inspect import unfinished_saves
from sr_jax.checkpoint.integrity import CheckpointMismatchError
from sr_jax.checkpoint.integrity import CheckpointWriteError
from sr_jax.checkpoint.integrity import checksum_record
from sr_jax.checkpoint.integrity import CORRUPT_DIR
from sr_jax.checkpoint.integrity import CorruptCheckpointError
from sr_jax.checkpoint.integrity import ITEM_HANDLERS
from sr_jax.checkpoint.integrity import restore_verified
from sr_jax.checkpoint.integrity import saved_shapes
from sr_jax.checkpoint.integrity import short_reason
from sr_jax.checkpoint.integrity import tree_shapes
from sr_jax.checkpoint.integrity import WHY_FILE
from sr_jax.utils import distributed
from sr_jax.utils import io_utils


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


def _config_json(record) -> dict:
  """A run's config as the JSON a checkpoint keeps: `record` is the
  recipe's (train.recipe.Recipe.record), or a ConfigDict."""
  if isinstance(record, (ml_collections.ConfigDict,
                         ml_collections.FrozenConfigDict)):
    return json.loads(record.to_json_best_effort())
  return json.loads(json.dumps(record))


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
        item_handlers={k: h() for k, h in ITEM_HANDLERS.items()})
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
          item_handlers={k: ITEM_HANDLERS[k]()
                         for k in ('state', 'config', 'checksums')})
    return self._best[phase]

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def save(self, step: int, state, data_state: dict,
           record: Mapping[str, Any], force: bool = False,
           metrics: dict | None = None) -> bool:
    """Saves asynchronously (with its checksums and the run's config
    `record`, see _config_json); returns whether a checkpoint was started.
    `finished(step)` tells when it is complete.

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
              config=ocp.args.JsonSave(_config_json(record)),
              checksums=ocp.args.JsonSave(
                  checksum_record(state, data_state, metrics))),
          force=force)
    self._check_written([])
    if saved:
      self._pending = [step]
      logging.info('Saving checkpoint of step %d.', step)
    return saved

  def save_best(self, step: int, state, value: float,
                record: Mapping[str, Any], phase: str = 'run',
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
    checksums = checksum_record(state, metrics=metrics)
    checksums['generator'] = generator
    manager = self._best_manager(phase, mode)
    self._replace_older(manager, step, f'best/{phase}')
    with self._write_errors(step):
      manager.save(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardSave(state),
              config=ocp.args.JsonSave(_config_json(record)),
              checksums=ocp.args.JsonSave(checksums)),
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
      saved_config = dict(restore_config(self.latest, step))
    except Exception as e:  # pylint: disable=broad-except
      raise CorruptCheckpointError(
          f'its config is unreadable ({short_reason(e)})') from None
    if check_config is not None:
      check_config(step, saved_config)
    saved = saved_shapes(self.latest, step)
    layouts = [(name, a) for name, a in abstract_for_step(step).items()
               if tree_shapes(a) == saved]
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
    restored = restore_verified(self.latest, step, abstract)
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


def abstract_with_sharding(tree, sharding):
  """ShapeDtypeStructs of `tree` placed with `sharding` (for restore)."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)
