"""A trained generator out of a workdir (its best checkpoint of a phase, or
the newest intact one) or out of a weights file, for inference."""
import dataclasses
import os
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from sr_jax import models
from sr_jax.checkpoint.inspect import best_dirs
from sr_jax.checkpoint.inspect import directory_of_step
from sr_jax.checkpoint.inspect import latest_config
from sr_jax.checkpoint.inspect import open_read_only
from sr_jax.checkpoint.inspect import phase_names
from sr_jax.checkpoint.inspect import phase_of_step
from sr_jax.checkpoint.inspect import restore_on_this_host
from sr_jax.checkpoint.integrity import CorruptCheckpointError
from sr_jax.utils import io_utils


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


def _newest_intact(manager, directory: str) -> tuple[int, dict, dict, dict]:
  """(step, state, config, checksum record) of the newest verified
  checkpoint in a read-only manager; corrupt ones are skipped with a
  warning (and left in place: loading for inference never changes a
  workdir)."""
  problems = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      return (step,) + restore_on_this_host(manager, step)
    except CorruptCheckpointError as e:
      problems.append(f'{directory}/{step}: {e}')
      print(f'warning: checkpoint {directory}/{step} is corrupt ({e}); '
            'skipped.', flush=True)
  if problems:
    raise CorruptCheckpointError(
        'No intact checkpoint: ' + '; '.join(problems) + '. Try '
        '--which latest (or which="latest"), or another phase.')
  raise FileNotFoundError(f'No finished checkpoint in {directory}.')


def _generator_module(saved: ml_collections.ConfigDict):
  """The generator of a checkpoint's recorded config `saved`."""
  g = saved.generator
  kwargs = dict(g.kwargs)
  cls = models.GENERATORS.get(g.name)
  if 'scale' in models.module_fields(cls):
    kwargs.setdefault('scale', saved.scale)
  dtype = jnp.dtype(saved.get('dtype', 'float32'))
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
    directory = directory_of_step(workdir, step)
    manager = open_read_only(directory)
    try:
      state, config, record = restore_on_this_host(manager, step)
    except CorruptCheckpointError as e:
      raise CorruptCheckpointError(
          f'Checkpoint {directory}/{step} is corrupt: {e}.') from None
    finally:
      manager.close()
    return _loaded_generator(state, config, step, directory, record)
  if which == 'latest':
    directory = os.path.join(workdir, 'checkpoints')
  else:
    best = best_dirs(workdir)
    if not best:
      raise FileNotFoundError(
          f'No best checkpoints in {workdir}/best: is {workdir} the '
          '--workdir of a run that has validated at least once? (Use '
          'which="latest" / --which latest for the newest checkpoint.)')
    if phase is None:
      # The last phase of the run (in its own order) that has validated.
      try:
        order = [p for p, _ in phase_names(latest_config(workdir, best))]
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
  manager = open_read_only(directory)
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


def _loaded_generator(state: dict, saved: dict, step: int,
                      directory: str, record: dict) -> LoadedGenerator:
  """The generator a checkpoint (`state`, its recorded config `saved`)
  keeps for inference: its EMA, or the raw one where its checksum record
  says that one scored better (best_weights)."""
  saved = ml_collections.ConfigDict(saved)
  weights = record.get('generator', 'ema') if 'model_state' in state else 'ema'
  return LoadedGenerator(
      _generator_module(saved),
      jax.tree.map(np.asarray, _generator_variables(state, weights)), saved,
      step, phase_of_step(saved, step), os.path.join(directory, str(step)),
      weights)
