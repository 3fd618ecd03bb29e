"""Training loop: `train_and_evaluate(config, workdir)`.

Sections, in order: recipe (networks, phases, frozen networks; checked
before anything is written), mesh, input, state (init or resume), steps
(one jitted step per phase, explicit shardings), loop (log, evaluate,
checkpoint).
"""
import contextlib
import dataclasses
import functools
import os
import signal
import sys
import time
from typing import Any

from absl import logging
from clu import metric_writers
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

from sr_jax import checkpoint as ckpt_lib
from sr_jax import data
from sr_jax import errors
from sr_jax import evaluate as eval_lib
from sr_jax.train import checks as config_checks
from sr_jax.train import config_lib
from sr_jax.train import state as ts
# ConfigError and check_config are part of this module's API.
from sr_jax.train.checks import check_config
from sr_jax.train.checks import ConfigError  # noqa: F401
from sr_jax.train.progress import ProgressReporter
from sr_jax.train.step import data_parallel_mesh
from sr_jax.train.step import jit_for_mesh
from sr_jax.train.step import make_phase_step
from sr_jax.utils import distributed
from sr_jax.utils import io_utils
from sr_jax.utils import run_lock
from sr_jax.utils import scalar_csv


def load_frozen_networks(recipe: ts.Recipe, config) -> tuple[ts.Recipe, dict]:
  """Loads the frozen networks the terms need; for the offline demo
  (config.frozen_drop_if_missing), drops the terms whose weights are
  missing, loudly. A randomly initialised frozen network is never used."""
  aux, missing = ts.load_aux(recipe, config)
  if missing:
    recipe, dropped = ts.drop_terms(recipe, missing)
    banner = '!' * 78
    _print0(f'\n{banner}\nWARNING: no weights for {missing}; the loss terms '
            f'{dropped} are DISABLED for this demo run. Get them with '
            f'`python -m sr_jax.weights fetch {missing[0]}`.\n{banner}\n')
  return recipe, aux


def _print0(message: str) -> None:
  """Console messages of the run: process 0 speaks for every process."""
  if jax.process_index() == 0:
    print(message, flush=True)


def _make_writer(workdir):
  """TensorBoard events in W/tensorboard and scalars in W/scalars.csv,
  written by process 0."""
  if jax.process_index() > 0:
    return metric_writers.MultiWriter([])
  return metric_writers.MultiWriter([
      metric_writers.AsyncWriter(
          metric_writers.SummaryWriter(os.path.join(workdir, 'tensorboard'))),
      scalar_csv.CsvScalarWriter(workdir)])


class NonFiniteError(errors.SrJaxError, RuntimeError):
  """A loss, gradient or parameter went non-finite; nothing was saved."""
  exit_code = 3


class Preempted(Exception):
  """SIGTERM or SIGINT stopped the run after saving it; rerun to resume.
  `python -m sr_jax.main` exits with RESUMABLE_EXIT_CODE for it."""

  def __init__(self, step: int, signame: str):
    super().__init__(f'{signame} received: saved step {step}; rerun the same '
                     'command to resume.')
    self.step = step


# What `python -m sr_jax.main` returns when preempted (128 + SIGTERM), so a
# scheduler can tell "preempted, requeue" from "finished" (0). Returned only
# once the checkpoint is complete on disk.
RESUMABLE_EXIT_CODE = errors.RESUMABLE_EXIT_CODE
# A third signal aborts a save in progress at once: not 143, since nothing
# new was saved (the previous checkpoint stands).
ABORTED_EXIT_CODE = errors.ABORTED_EXIT_CODE


class _Preemption:
  """Turns SIGTERM (preemption, scancel, docker stop) and a first Ctrl-C
  into a clean stop at the next step boundary, then a save.

  A second signal is acknowledged and ignored while the run finishes its
  step and its checkpoint (schedulers send SIGTERM more than once: SLURM to
  every task, then again at the grace period), except a second Ctrl-C
  before the save has started, which interrupts the step at once (the
  emergency save still runs). A third signal aborts whatever is running
  with ABORTED_EXIT_CODE, never RESUMABLE_EXIT_CODE.
  """

  def __init__(self):
    self.signame = None
    self.count = 0
    self.saving = False  # Set once the final save has started.
    self._previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handler)
      except ValueError:  # Not the main thread (e.g. notebooks): no handler.
        pass

  @property
  def requested(self) -> bool:
    return self.signame is not None

  def agreed(self, sync_point: bool) -> bool:
    """Whether to stop now. With several processes, every one must stop
    at the same step (saving is collective), and a signal may reach them
    at different steps: they agree at sync points (the logging steps,
    where every process already waits for the device), and stop if any
    was signalled; one process stops at once."""
    if jax.process_count() == 1:
      return self.requested
    if not sync_point:
      return False
    if distributed.any_process(self.requested) and self.signame is None:
      self.signame = 'SIGTERM (to another process)'
    return self.requested

  def _handler(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    self.count += 1
    if self.count == 1:
      self.signame = name
      return
    if self.count >= 3:
      print(f'\n{name} received a third time: aborting now (exit code '
            f'{ABORTED_EXIT_CODE}); a save in progress is lost, the '
            'previous checkpoint stands. Rerun the same command to resume.',
            file=sys.stderr, flush=True)
      os._exit(ABORTED_EXIT_CODE)  # pylint: disable=protected-access
    if signum == signal.SIGINT and not self.saving:
      raise KeyboardInterrupt  # Interrupt the step; the emergency save runs.
    print(f'\n{name} received again: finishing the '
          + ('checkpoint' if self.saving else 'step and its checkpoint')
          + ' first (a third signal aborts it).', file=sys.stderr,
          flush=True)

  def restore(self):
    for sig, handler in self._previous.items():
      try:
        signal.signal(sig, handler)
      except (ValueError, TypeError):
        pass


@dataclasses.dataclass
class _SaveGuard:
  """What an emergency save needs: the last saved step, and the iterator
  state from before the batch of `fetch_step` was fetched (for a state that
  never consumed it)."""
  last_saved: int | None
  fetch_step: int = 0
  data_state_before: Any = None
  state_is_finite: bool = True

  def check_finite(self, state, step_metrics, config) -> int:
    """Raises NonFiniteError (nothing is saved from then on) if an update
    went non-finite, or too many were skipped in a row; returns how many
    updates config.on_nonfinite='skip' dropped so far."""
    health = {k: int(v) for k, v in jax.device_get(state.health).items()}
    limit = int(config.get('max_nonfinite_skips', 10))
    if health['first_bad_step'] < 0 and health['streak'] < limit:
      return health['skipped']
    self.state_is_finite = False
    names = sorted(step_metrics)
    if health['first_bad_step'] >= 0:
      bad = [n for i, n in enumerate(names) if health['bad_terms'] >> i & 1]
      what = (f'at step {health["first_bad_step"]} '
              + (f'{", ".join(bad)} became non-finite' if bad else
                 'the updated parameters became non-finite or too large '
                 '(|p| past ~1e19, where activations overflow)'))
    else:
      what = (f'{health["streak"]} updates in a row were non-finite and '
              f'skipped (config.max_nonfinite_skips={limit})')
    last = (f'the last checkpoint is step {self.last_saved}'
            if self.last_saved is not None else 'no checkpoint was saved')
    raise NonFiniteError(
        f'Training stopped: {what}. Nothing was saved from this state; '
        f'{last}. Lower the learning rates or loss weights and rerun to '
        "resume, or set --config.on_nonfinite=skip to drop such updates.")

  def before_fetch(self, step, train_iter):
    self.fetch_step, self.data_state_before = step, train_iter.get_state()

  def emergency_save(self, checkpointer, state, train_iter, config,
                     workdir) -> bool:
    """Saves `state` on a crash or Ctrl-C, if sound and not yet saved;
    returns whether its step is saved (now, or by the last save)."""
    if not self.state_is_finite:
      return False
    if jax.process_count() > 1:
      # Saving is collective: one process cannot save alone, and the
      # others are not here (a stop they agree on saves: Preempted).
      last = (f'step {self.last_saved}' if self.last_saved is not None
              else 'none yet')
      print(f'Process {jax.process_index()} stopped; a multi-process run '
            f'saves only together (the last checkpoint: {last}).',
            flush=True)
      return False
    saved_step = None
    try:
      health = jax.device_get(state.health)
      if int(health['first_bad_step']) >= 0:
        return False  # Never save a non-finite state.
      saved_step = int(jax.device_get(state.step))
      if saved_step == self.last_saved:
        return True
      # A state that has not consumed batch `fetch_step` goes with the
      # iterator from before that fetch; one that has, with the iterator now.
      data_state = (self.data_state_before if saved_step == self.fetch_step
                    else train_iter.get_state())
      checkpointer.save(saved_step, state, data_state, config, force=True)
      if not checkpointer.finished(saved_step):
        raise OSError('the save did not complete')
      self.last_saved = saved_step
      print(f'Interrupted: saved a checkpoint of step {saved_step} in '
            f'{workdir}; rerun the same command to resume.', flush=True)
      return True
    except Exception as save_error:  # pylint: disable=broad-except
      last = (f'the last complete checkpoint is step {self.last_saved}'
              if self.last_saved is not None else 'no checkpoint was saved')
      print(f'Could not save step {saved_step} on exit ({save_error}); '
            f'{last}.', flush=True)
      return False


def _check_resume_config(step, saved, config, workdir, allow: bool,
                         accepted: list) -> None:
  """Refuses to resume from a checkpoint whose config `saved` differs
  from `config`, unless allowed: then (step, the differences) is appended
  to `accepted`, for _log_config_changes once the resume has succeeded."""
  if 'phases' not in saved:
    raise ckpt_lib.CheckpointMismatchError(
        f'{workdir} was written by an sr_jax from before training phases, '
        'whose train state cannot be resumed. Start a new --workdir from '
        'its generator with --config.generator.init_from='
        f'{workdir}.')
  changes = config_checks.config_changes(saved, config)
  if not changes:
    return
  listed = '; '.join(changes[:10]) + (
      f'; and {len(changes) - 10} more' if len(changes) > 10 else '')
  if not allow:
    raise ConfigError(
        f'The config differs from the one {workdir} was trained with (step '
        f'{step}): {listed}. Rerun with the same settings, use a new '
        '--workdir, or pass --allow_config_change to resume with these.')
  accepted.append((step, listed))


def _log_config_changes(workdir: str, step: int, listed: str) -> None:
  """Says, and appends to W/config_changes.log, the config changes a
  resume from `step` was allowed (only once it has succeeded)."""
  _print0(f'Resuming with a changed config: {listed}.')
  if jax.process_index() == 0:
    log = io_utils.path(workdir) / 'config_changes.log'
    # Read and rewritten (object stores have no append).
    log.write_text((log.read_text() if log.exists() else '') +
                   f'{time.strftime("%Y-%m-%d %H:%M:%S")} at step {step}: '
                   f'{listed}\n')


def _due(step: int, every: int, end_step: int) -> bool:
  """Periodic actions run every `every` steps and at the last step."""
  return step % every == 0 or step == end_step


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str,
                       allow_config_change: bool = False):
  """Trains (or resumes) the run in `workdir`; returns the final state.

  A resume whose config differs from the checkpoint's (beyond logging,
  evaluation and checkpointing cadence, data loading and the last phase's
  length) is refused, unless allow_config_change: then the change is
  appended to W/config_changes.log.
  """
  # A local folder, file://..., or any etils / fsspec URL (gs://...).
  workdir = io_utils.workdir_path(workdir)
  # --- Recipe: networks, phases and frozen weights, before anything slow.
  recipe = check_config(config)
  recipe, aux = load_frozen_networks(recipe, config)

  # --- Mesh: one data-parallel axis over every device of every process.
  mesh = data_parallel_mesh()
  logging.info('Mesh: %d devices (%s), %d processes.', jax.device_count(),
               jax.devices()[0].platform, jax.process_count())

  # --- Input (before anything is written: a wrong folder leaves no run).
  try:
    train_iter = iter(data.make_train_dataset(
        config.data, global_batch_size=config.batch_size, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
        scale=config.scale))
    evaluators = eval_lib.build_evaluators(config)
  except ValueError as e:
    # Mismatched pairs, too many bad files, images too small or too large:
    # the message names the files and the data.* setting to change.
    raise ConfigError(str(e)) from None
  if (not config.data.train_dir and not config.data.get('tfds_name')
      and config.get('variant', '') not in config_lib.SAMPLE_PHOTO_VARIANTS
      and jax.process_index() == 0):
    print('Training on the sample photos shipped with scikit-image: '
          'data.train_dir is not set (e.g. --config.data.train_dir='
          '/data/DIV2K/DIV2K_train_HR).', flush=True)
  if data.is_paired(config.data) and config.degradation.name != 'bicubic':
    logging.warning(
        'The training source is paired (data.train_lr_dir / data.tfds_name), '
        'so its LR images are used and config.degradation.name=%r is not '
        'applied.', config.degradation.name)
  # A new run's generator.init_from must exist (a resume never reads it).
  if (why := ts.missing_init_from(config)) is not None and not (
      io_utils.path(workdir).joinpath('checkpoints').is_dir()):
    raise ConfigError(why)
  try:
    io_utils.path(workdir).mkdir(parents=True, exist_ok=True)
  except OSError as e:
    raise ConfigError(f'Cannot create --workdir {workdir}: {e}.') from None
  remote = io_utils.is_remote(workdir)
  if not remote and (
      why := io_utils.write_probe(workdir, size=4096)) is not None:
    raise ConfigError(f'Cannot write to --workdir {workdir}: {why}. Use a '
                      'writable folder with free space.')
  # One trainer per workdir (process 0 holds the lock for all processes).
  # An object store has no exclusive create: a remote workdir is not
  # locked.
  with (run_lock.RunLock(workdir) if jax.process_index() == 0 and not remote
        else contextlib.nullcontext()):
    return _train(config, workdir, recipe, aux, mesh, train_iter, evaluators,
                  allow_config_change)


def _train(config, workdir, recipe, aux, mesh, train_iter, evaluators,
           allow_config_change):
  """State (restore or init), steps and loop of train_and_evaluate."""
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))
  writer = _make_writer(workdir)

  # --- State: restore the latest checkpoint, else initialise on the mesh.
  def init_fn(phase, loaded=()):
    return jax.jit(functools.partial(ts.init_train_state, recipe,
                                     phase=phase, loaded=loaded),
                   out_shardings=replicated)

  rng = jax.random.key(config.seed)
  checkpointer = ckpt_lib.Checkpointer(workdir, keep=config.keep_checkpoints)
  def layouts(step):
    # A checkpoint at a phase boundary holds the finished phase's layout,
    # or the next one's if the run stopped right after entering it.
    phases = {p.name: p for p in (recipe.phase_of_checkpoint(step),
                                  recipe.phase_at(step))}
    return {name: ckpt_lib.abstract_with_sharding(
        jax.eval_shape(init_fn(p), rng), replicated)
            for name, p in phases.items()}

  accepted_changes = []
  restored = checkpointer.restore_latest(
      layouts, functools.partial(
          _check_resume_config, config=config, workdir=workdir,
          allow=allow_config_change, accepted=accepted_changes))
  if restored is not None:
    state, data_state, start_step = restored[:3]
    changes = [listed for step, listed in accepted_changes
               if step == start_step]
    if changes:
      _log_config_changes(workdir, start_step, changes[-1])
    state_phase = {p.name: p for p in recipe.phases}[restored.layout]
    train_iter.set_state(data_state)
    logging.info('Resumed from %s at step %d.', workdir, start_step)
    _print0(f'Resuming from step {start_step} ({workdir}).')
  else:
    state_phase = recipe.phases[0]
    # A generator loaded from init_from is not randomly initialised first.
    loaded = ((ts.MAIN_GENERATOR,) if config.generator.get('init_from')
              else ())
    state = ts.apply_frozen_submodules(
        config, recipe,
        ts.apply_init_from(config, recipe, init_fn(state_phase, loaded)(rng)))
    start_step = 0
  aux = jax.device_put(aux, replicated)

  # --- Steps: one jitted step per phase; the state is donated.
  steps = {p.name: jit_for_mesh(make_phase_step(config, recipe, p), mesh)
           for p in recipe.phases}
  start_phase = {p.name: jax.jit(functools.partial(ts.start_phase, phase=p),
                                 out_shardings=replicated, donate_argnums=0)
                 for p in recipe.phases}
  super_resolve = (eval_lib.make_super_resolve_fn(recipe.generator)
                   if evaluators else None)

  end_step = min(recipe.total_steps, config.stop_at_step or
                 recipe.total_steps)
  progress = ProgressReporter(start_step, end_step)
  preemption = _Preemption()

  best_eval, best_name, higher_is_better = eval_lib.best_metric(config)
  best_weights = config.get('best_weights', 'ema')
  # The raw generator differs from its EMA unless the decay is 0.
  validate_raw = config.ema_decay > 0

  def run_eval(step, phase) -> dict[str, float]:
    """Runs every evaluator on the EMA and the raw generator; returns
    {'<eval>/<metric>': value} ('<eval>/<metric>_raw' for the raw one)."""
    logged = {}
    for i, evaluator in enumerate(evaluators):
      values, strips = evaluator.run(
          super_resolve, ts.generator_variables(state), config.scale,
          raw_variables=(ts.generator_variables(state, use_ema=False)
                         if validate_raw else None))
      name = evaluator.name
      scalars = {f'{name}/{k}': float(v) for k, v in values.items()}
      writer.write_scalars(step, scalars)
      logged.update(scalars)
      if strips and jax.process_index() == 0:
        writer.write_images(step, {f'{name}/{n}': s[None] for n, s in strips})
        folder = os.path.join(workdir, 'images', f'{step:08d}')
        eval_lib.save_strips(folder if i == 0 else
                             os.path.join(folder, name), strips)
      if name == best_eval:
        value, weights = eval_lib.pick_best(values, best_name,
                                            higher_is_better, best_weights)
        checkpointer.save_best(step, state, value, config,
                               phase=phase.name,
                               mode='max' if higher_is_better else 'min',
                               metrics=scalars, generator=weights)
      progress.report_eval(step, values, name,
                           'bicubic' if config.scale > 1 else 'input')
    return logged

  # --- Loop.
  batch_keys = data.batch_keys(config.data)
  step, step_metrics = start_step, {}
  guard = _SaveGuard(last_saved=start_step if restored is not None else None)
  try:
    while step < end_step:
      phase = recipe.phase_at(step)
      if phase is not state_phase:
        state, state_phase = start_phase[phase.name](state), phase
        logging.info('Step %d: phase %r starts (%s).', step, phase.name,
                     phase.start_mode)
      guard.before_fetch(step, train_iter)
      try:
        batch = next(train_iter)
      except Exception:  # pylint: disable=broad-except
        if not preemption.requested:
          raise
        # The signal also reached the grain workers (kill of the process
        # group): the state has not consumed this fetch; save it with the
        # iterator position from before.
        train_iter = _FrozenIterator(guard.data_state_before)
        break
      # 'hr', 'lr' from paired sources (else made on the device), 'real'
      # with data.real_dir.
      batch = {k: jax.make_array_from_process_local_data(
          batch_sharding, np.asarray(v)) for k, v in batch.items()
               if k in batch_keys}
      state, step_metrics = steps[phase.name](state, batch, aux)
      step += 1

      logging_now = _due(step, config.log_every, end_step)
      stop = preemption.agreed(logging_now)
      preemption.saving = stop  # Its checkpoint is next: signals wait.
      if logging_now or any(_due(step, every, end_step) for every in (
          config.eval_every, config.checkpoint_every)) or stop:
        # Before anything is logged, evaluated or saved.
        skipped = guard.check_finite(state, step_metrics, config)
      if logging_now:
        scalars = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
        if skipped:
          scalars['skipped_updates'] = float(skipped)
        scalars.update(phase.learning_rates(step - 1))
        writer.write_scalars(step, {f'train/{k}': v for k, v in
                                    scalars.items()})
        progress.report_train(step, phase.name, scalars)
      eval_values = (run_eval(step, phase)
                     if _due(step, config.eval_every, end_step) else {})
      if _due(step, config.checkpoint_every, end_step):
        checkpointer.save(step, state, train_iter.get_state(), config,
                          force=step == end_step, metrics=eval_values)
        guard.last_saved = step
      if stop:
        break
    preemption.saving = True
    if guard.last_saved != step:
      guard.check_finite(state, step_metrics, config)
      checkpointer.save(step, state, train_iter.get_state(), config,
                        force=True)
      guard.last_saved = step
  except BaseException as e:
    # Never lose training to a crash or Ctrl-C: save what we have, if sound
    # (not when the disk just refused a checkpoint: the last one stands).
    preemption.saving = True
    saved = (not isinstance(e, ckpt_lib.CheckpointWriteError)
             and guard.emergency_save(checkpointer, state, train_iter, config,
                                      workdir))
    if isinstance(e, KeyboardInterrupt):
      # For `python -m sr_jax.main`: exit 143 ("saved, requeue") only if so.
      e.sr_jax_saved = saved
    raise
  finally:
    # Signals stay acknowledged-and-ignored until every save is on disk.
    preemption.saving = True
    try:
      checkpointer.wait_until_finished()
    finally:
      try:
        checkpointer.close()
        writer.flush()
        writer.close()
      finally:
        preemption.restore()
  if preemption.requested and step < end_step:
    raise Preempted(step, preemption.signame)
  progress.report_done(step)
  return state


class _FrozenIterator:
  """Stands in for an iterator whose workers died: only its last state."""

  def __init__(self, state):
    self._state = state

  def get_state(self):
    return self._state
