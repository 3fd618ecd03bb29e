"""Training loop: `train_and_evaluate(config, workdir)`.

Sections, in order: recipe (the config parsed and checked once, before
anything is written: from here on each part reads its own piece of it),
mesh and setup (frozen networks, jitted steps), input, state (init or
resume), loop (log, evaluate, checkpoint)."""
import contextlib
import dataclasses
import functools
import os
import time
from typing import Any

from absl import logging
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

from sr_jax import checkpoint as ckpt_lib
from sr_jax import data
from sr_jax import evaluate as eval_lib
from sr_jax.train import checks as config_checks
from sr_jax.train import config_lib
from sr_jax.train import state as ts
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import warm_start
# ConfigError, check_config, the exit codes and the errors a run ends with
# are part of this module's API.
from sr_jax.train.checks import ConfigError
from sr_jax.train.preemption import ABORTED_EXIT_CODE  # noqa: F401
from sr_jax.train.preemption import NonFiniteError  # noqa: F401
from sr_jax.train.preemption import Preempted
from sr_jax.train.preemption import Preemption
from sr_jax.train.preemption import RESUMABLE_EXIT_CODE  # noqa: F401
from sr_jax.train.preemption import SaveGuard
from sr_jax.train.progress import ProgressReporter
from sr_jax.train.setup import setup
from sr_jax.train.setup import Setup
from sr_jax.train.step import data_parallel_mesh
from sr_jax.utils import io_utils
from sr_jax.utils import run_lock
from sr_jax.utils import scalar_csv
from sr_jax.utils import tensorflow_cpu


# Every check of a config, returning the recipe (the parse).
check_config = recipe_lib.Recipe.from_config


def _say_dropped(run_setup: Setup) -> None:
  """The offline demo (config.frozen_drop_if_missing) runs without the
  terms whose frozen networks have no weights: loudly. A randomly
  initialised frozen network is never used."""
  if run_setup.missing:
    missing = list(run_setup.missing)
    banner = '!' * 78
    _print0(f'\n{banner}\nWARNING: no weights for {missing}; the loss terms '
            f'{list(run_setup.dropped)} are DISABLED for this demo run. Get '
            f'them with `python -m sr_jax.weights fetch {missing[0]}`.'
            f'\n{banner}\n')


def _print0(message: str) -> None:
  """Console messages of the run: process 0 speaks for every process."""
  if jax.process_index() == 0:
    print(message, flush=True)


def _make_writer(workdir):
  """TensorBoard events in W/tensorboard and scalars in W/scalars.csv,
  written by process 0."""
  # Imported here, by a run that writes: clu.metric_writers imports
  # TensorFlow (about 5 s), which a command that stops at a config error,
  # or a notebook that reads a finished run, never needs; GPUs hidden from
  # it first.
  tensorflow_cpu.tensorflow()
  from clu import metric_writers  # pylint: disable=g-import-not-at-top
  if jax.process_index() > 0:
    return metric_writers.MultiWriter([])
  return metric_writers.MultiWriter([
      metric_writers.AsyncWriter(
          metric_writers.SummaryWriter(os.path.join(workdir, 'tensorboard'))),
      scalar_csv.CsvScalarWriter(workdir)])


def _check_resume_config(step, saved, record, workdir, allow: bool,
                         accepted: list) -> None:
  """Refuses to resume from a checkpoint whose config `saved` differs
  from this run's (`record`), unless allowed: then (step, the differences)
  is appended to `accepted`, for _log_config_changes once the resume has
  succeeded."""
  if 'phases' not in saved:
    raise ckpt_lib.CheckpointMismatchError(
        f'{workdir} was written by an sr_jax from before training phases, '
        'whose train state cannot be resumed. Start a new --workdir from '
        'its generator with --config.generator.init_from='
        f'{workdir}.')
  changes = config_checks.config_changes(saved, record)
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
  # --- Recipe: the config parsed and checked once, before anything slow.
  recipe = recipe_lib.Recipe.from_config(config)
  settings = recipe.settings

  # --- Mesh: one data-parallel axis over every device of every process;
  # the frozen networks on it.
  mesh = data_parallel_mesh()
  logging.info('Mesh: %d devices (%s), %d processes.', jax.device_count(),
               jax.devices()[0].platform, jax.process_count())
  run_setup = setup(recipe, mesh)
  _say_dropped(run_setup)

  # --- Input (before anything is written: a wrong folder leaves no run).
  # Mismatched pairs, too many bad files, images too small or too large
  # raise ConfigError naming the files and the data.* setting to change.
  train_iter = iter(data.make_train_dataset(
      recipe.data, global_batch_size=settings.batch_size,
      seed=settings.seed, process_index=jax.process_index(),
      process_count=jax.process_count(), scale=settings.scale))
  evaluators = eval_lib.build_evaluators(recipe.evals)
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
  if (why := warm_start.missing_init_from(recipe.warm.init_from)
      ) is not None and not (
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
    return _train(workdir, run_setup, train_iter, evaluators,
                  allow_config_change)


def _train(workdir, run_setup: Setup, train_iter, evaluators,
           allow_config_change):
  """State (restore or init), steps and loop of train_and_evaluate."""
  writer = _make_writer(workdir)
  recipe = run_setup.recipe
  settings = recipe.settings
  checkpointer = ckpt_lib.Checkpointer(workdir,
                                       keep=settings.keep_checkpoints)
  state, state_phase, start_step, resumed = _restore_or_init(
      workdir, run_setup, checkpointer, train_iter, allow_config_change)
  end_step = min(recipe.total_steps, settings.stop_at_step or
                 recipe.total_steps)
  run = _Run(setup=run_setup, train_iter=train_iter,
             checkpointer=checkpointer, writer=writer, end_step=end_step,
             state=state, state_phase=state_phase, step=start_step,
             progress=ProgressReporter(start_step, end_step))
  # After the compile-free setup above: a signal before here exits at once.
  run.preemption = Preemption()
  run.evaluation = Evaluation(workdir, recipe, evaluators, writer,
                              checkpointer, run.progress)
  run.guard = SaveGuard(last_saved=start_step if resumed else None)
  try:
    run.loop()
  except BaseException as e:
    # Never lose training to a crash or Ctrl-C: save what we have, if sound
    # (not when the disk just refused a checkpoint: the last one stands).
    run.preemption.saving = True
    saved = (not isinstance(e, ckpt_lib.CheckpointWriteError)
             and run.guard.emergency_save(checkpointer, run.state,
                                          run.train_iter, recipe.record,
                                          workdir))
    if isinstance(e, KeyboardInterrupt):
      # For `python -m sr_jax.main`: exit 143 ("saved, requeue") only if so.
      e.sr_jax_saved = saved
    raise
  finally:
    # Signals stay acknowledged-and-ignored until every save is on disk.
    run.preemption.saving = True
    try:
      checkpointer.wait_until_finished()
    finally:
      try:
        checkpointer.close()
        writer.flush()
        writer.close()
      finally:
        run.preemption.restore()
  if run.preemption.requested and run.step < end_step:
    raise Preempted(run.step, run.preemption.signame)
  run.progress.report_done(run.step)
  return run.state


def _restore_or_init(workdir, run_setup: Setup, checkpointer, train_iter,
                     allow_config_change):
  """The latest intact checkpoint of `workdir` (and the iterator moved to
  its position), else a fresh state on the mesh with init_from and the
  frozen parts loaded; returns (state, its phase, step, resumed)."""
  recipe = run_setup.recipe
  rng = jax.random.key(recipe.settings.seed)

  def layouts(step):
    # A checkpoint at a phase boundary holds the finished phase's layout,
    # or the next one's if the run stopped right after entering it.
    phases = {p.name: p for p in (recipe.phase_of_checkpoint(step),
                                  recipe.phase_at(step))}
    return {name: ckpt_lib.abstract_with_sharding(
        run_setup.abstract_state(p, rng), run_setup.replicated)
            for name, p in phases.items()}

  accepted_changes = []
  restored = checkpointer.restore_latest(
      layouts, functools.partial(
          _check_resume_config, record=recipe.record, workdir=workdir,
          allow=allow_config_change, accepted=accepted_changes))
  if restored is None:
    return run_setup.initial_state(rng), recipe.phases[0], 0, False
  state, data_state, start_step = restored[:3]
  changes = [listed for step, listed in accepted_changes
             if step == start_step]
  if changes:
    _log_config_changes(workdir, start_step, changes[-1])
  train_iter.set_state(data_state)
  logging.info('Resumed from %s at step %d.', workdir, start_step)
  _print0(f'Resuming from step {start_step} ({workdir}).')
  state_phase = {p.name: p for p in recipe.phases}[restored.layout]
  return state, state_phase, start_step, True


class Evaluation:
  """Every evaluator, run on the EMA and the raw generator at one step: the
  scalars and strips written, the best checkpoint of the phase kept."""

  def __init__(self, workdir, recipe, evaluators, writer, checkpointer,
               progress):
    self.workdir, self.evaluators = workdir, evaluators
    # The config a best checkpoint keeps.
    self.settings, self.record = recipe.settings, recipe.record
    self.writer, self.checkpointer, self.progress = (writer, checkpointer,
                                                     progress)
    self.super_resolve = (eval_lib.make_super_resolve_fn(recipe.generator)
                          if evaluators else None)
    self.best = recipe.evals

  def __call__(self, step: int, phase, state) -> dict[str, float]:
    """Returns {'<eval>/<metric>': value} ('<eval>/<metric>_raw' for the
    raw generator)."""
    logged = {}
    for i, evaluator in enumerate(self.evaluators):
      values, strips = evaluator.run(
          self.super_resolve, ts.generator_variables(state),
          self.settings.scale,
          raw_variables=(ts.generator_variables(state, use_ema=False)
                         if self.settings.validate_raw else None))
      name = evaluator.name
      scalars = {f'{name}/{k}': float(v) for k, v in values.items()}
      self.writer.write_scalars(step, scalars)
      logged.update(scalars)
      if strips and jax.process_index() == 0:
        self.writer.write_images(
            step, {f'{name}/{n}': s[None] for n, s in strips})
        folder = os.path.join(self.workdir, 'images', f'{step:08d}')
        eval_lib.save_strips(folder if i == 0 else
                             os.path.join(folder, name), strips)
      if name == self.best.best_eval:
        value, weights = eval_lib.pick_best(
            values, self.best.best_name, self.best.higher_is_better,
            self.settings.best_weights)
        self.checkpointer.save_best(
            step, state, value, self.record, phase=phase.name,
            mode='max' if self.best.higher_is_better else 'min',
            metrics=scalars, generator=weights)
      self.progress.report_eval(
          step, values, name,
          'bicubic' if self.settings.scale > 1 else 'input')
    return logged


@dataclasses.dataclass
class _Run:
  """The loop's state between steps: what an emergency save reads."""
  setup: Setup
  train_iter: Any
  checkpointer: Any
  writer: Any
  end_step: int
  state: ts.TrainState
  state_phase: recipe_lib.Phase
  step: int
  progress: ProgressReporter
  preemption: Preemption | None = None
  evaluation: Evaluation | None = None
  guard: SaveGuard | None = None

  def loop(self) -> None:
    """Steps to end_step (or a signal), logging, evaluating and saving on
    their cadence; then a final save of the last step."""
    recipe = self.setup.recipe
    # --- Steps: one jitted step per phase; the state is donated.
    steps = {p.name: self.setup.step(p) for p in recipe.phases}
    start_phase = {p.name: self.setup.start_phase(p) for p in recipe.phases}
    batch_sharding = NamedSharding(self.setup.mesh, P('data'))
    batch_keys = data.batch_keys(recipe.data)
    step_metrics = {}
    while self.step < self.end_step:
      phase = recipe.phase_at(self.step)
      if phase is not self.state_phase:
        self.state = start_phase[phase.name](self.state)
        self.state_phase = phase
        logging.info('Step %d: phase %r starts (%s).', self.step, phase.name,
                     phase.start_mode)
      batch = self._next_batch()
      if batch is None:
        break
      # 'hr', 'lr' from paired sources (else made on the device), 'real'
      # with data.real_dir.
      batch = {k: jax.make_array_from_process_local_data(
          batch_sharding, np.asarray(v)) for k, v in batch.items()
               if k in batch_keys}
      self.state, step_metrics = steps[phase.name](self.state, batch,
                                                   self.setup.aux)
      self.step += 1
      if self._after_step(phase, step_metrics):
        break
    self.preemption.saving = True
    if self.guard.last_saved != self.step:
      self.guard.check_finite(self.state, step_metrics,
                              recipe.settings.max_nonfinite_skips)
      self.checkpointer.save(self.step, self.state,
                             self.train_iter.get_state(), recipe.record,
                             force=True)
      self.guard.last_saved = self.step

  def _next_batch(self):
    """The next batch, or None when a signal also stopped grain's workers."""
    self.guard.before_fetch(self.step, self.train_iter)
    try:
      return next(self.train_iter)
    except Exception:  # pylint: disable=broad-except
      if not self.preemption.requested:
        raise
      # The signal also reached the grain workers (kill of the process
      # group): the state has not consumed this fetch; save it with the
      # iterator position from before.
      self.train_iter = _FrozenIterator(self.guard.data_state_before)
      return None

  def _after_step(self, phase, step_metrics) -> bool:
    """Logs, evaluates and saves when due; returns whether to stop."""
    step, end_step = self.step, self.end_step
    settings = self.setup.recipe.settings
    logging_now = _due(step, settings.log_every, end_step)
    stop = self.preemption.agreed(logging_now)
    self.preemption.saving = stop  # Its checkpoint is next: signals wait.
    if logging_now or any(_due(step, every, end_step) for every in (
        settings.eval_every, settings.checkpoint_every)) or stop:
      # Before anything is logged, evaluated or saved.
      skipped = self.guard.check_finite(self.state, step_metrics,
                                        settings.max_nonfinite_skips)
    if logging_now:
      scalars = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
      if skipped:
        scalars['skipped_updates'] = float(skipped)
      scalars.update(phase.learning_rates(step - 1))
      self.writer.write_scalars(step, {f'train/{k}': v for k, v in
                                       scalars.items()})
      self.progress.report_train(step, phase.name, scalars)
    eval_values = (self.evaluation(step, phase, self.state)
                   if _due(step, settings.eval_every, end_step) else {})
    if _due(step, settings.checkpoint_every, end_step):
      self.checkpointer.save(step, self.state, self.train_iter.get_state(),
                             self.setup.recipe.record,
                             force=step == end_step, metrics=eval_values)
      self.guard.last_saved = step
    return stop


class _FrozenIterator:
  """Stands in for an iterator whose workers died: only its last state."""

  def __init__(self, state):
    self._state = state

  def get_state(self):
    return self._state
