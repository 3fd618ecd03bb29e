"""orbax checkpoints: the latest N for resuming, and the best of each phase.

Layout under the workdir:
  checkpoints/<step>/{state, data, config}  last `keep` steps; auto-resume
  best/<phase>/<step>/{state, config}       per phase, the best by its
                                            validation metric
`state` is the whole TrainState, `data` the grain iterator state (JSON) and
`config` the run's config (JSON), so a checkpoint says how it was made.
Every process must call save/restore (orbax coordinates multi-host writes).
Workdirs of sr_jax before phases (best/<step>/, a TrainState with g_params /
ema_params fields) still load for inference (`load_generator`).
"""
import dataclasses
import json
import os
import re
from typing import Any

from absl import logging
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from sr_jax import models


class CheckpointMismatchError(ValueError):
  """A workdir's checkpoint does not fit this config; says how to go on."""


def _config_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


class Checkpointer:
  """Owns the run's orbax CheckpointManagers: latest, and best per phase."""

  def __init__(self, workdir: str, keep: int = 3):
    self.workdir = os.path.abspath(workdir)
    self.latest = ocp.CheckpointManager(
        os.path.join(self.workdir, 'checkpoints'),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=('state', 'data', 'config'))
    self._best: dict[str, ocp.CheckpointManager] = {}

  def _best_manager(self, phase: str, mode: str) -> ocp.CheckpointManager:
    if phase not in self._best:
      self._best[phase] = ocp.CheckpointManager(
          os.path.join(self.workdir, 'best', phase),
          options=ocp.CheckpointManagerOptions(
              max_to_keep=1, create=True, best_fn=lambda m: m['value'],
              best_mode=mode, keep_checkpoints_without_metrics=False),
          item_names=('state', 'config'))
    return self._best[phase]

  def latest_step(self) -> int | None:
    return self.latest.latest_step()

  def save(self, step: int, state, data_state: dict,
           config: ml_collections.ConfigDict, force: bool = False) -> bool:
    """Saves asynchronously; returns whether a checkpoint was started."""
    saved = self.latest.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            data=ocp.args.JsonSave(data_state),
            config=ocp.args.JsonSave(_config_json(config))),
        force=force)
    if saved:
      logging.info('Saving checkpoint of step %d.', step)
    return saved

  def save_best(self, step: int, state, value: float,
                config: ml_collections.ConfigDict, phase: str = 'run',
                mode: str = 'max') -> None:
    """Offers a validated state of `phase`; orbax keeps it only if its
    metric `value` is the best of that phase (mode 'max' or 'min')."""
    self._best_manager(phase, mode).save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            config=ocp.args.JsonSave(_config_json(config))),
        metrics={'value': float(value)}, force=True)

  def restore_latest(self, abstract_state) -> tuple[Any, dict, int] | None:
    """Returns (state, data_state, step) of the newest checkpoint, or None.

    abstract_state: the TrainState's jax.ShapeDtypeStruct tree, with
      shardings, so arrays are restored straight onto the mesh.
    """
    step = self.latest.latest_step()
    if step is None:
      return None
    try:
      restored = self.latest.restore(
          step,
          args=ocp.args.Composite(
              state=ocp.args.StandardRestore(abstract_state),
              data=ocp.args.JsonRestore()))
    except (ValueError, KeyError, TypeError) as e:
      raise CheckpointMismatchError(
          f'Cannot resume from {self.latest.directory}/{step}: its train '
          'state does not match this config (did the model, the phases or '
          'the losses change, or was it written by an older sr_jax?). Use a '
          'new --workdir, or the config the run was started with (saved in '
          f'{self.latest.directory}/{step}/config). To start a new run from '
          'its generator, set --config.generator.init_from='
          f'{self.workdir}. Details: {str(e)[:300]}') from None
    return restored['state'], restored['data'], step

  def saved_config(self, step: int) -> dict | None:
    """The config a checkpoint was saved with (JSON), or None if unreadable."""
    try:
      return dict(_restore_config(self.latest, step))
    except Exception:  # pylint: disable=broad-except
      return None

  def wait_until_finished(self) -> None:
    self.latest.wait_until_finished()
    for manager in self._best.values():
      manager.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    for manager in self._best.values():
      manager.close()


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


@dataclasses.dataclass(frozen=True)
class LoadedGenerator:
  module: Any
  variables: dict
  config: ml_collections.ConfigDict
  step: int
  phase: str
  directory: str

  def describe(self) -> str:
    return (f'the EMA generator of phase {self.phase!r} at step {self.step} '
            f'({self.directory})')


def _open_read_only(directory: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(read_only=True),
      item_handlers={'state': ocp.StandardCheckpointHandler(),
                     'config': ocp.JsonCheckpointHandler()})


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


def _restore_on_this_host(manager, step) -> tuple[dict, dict]:
  """(state tree, config) of `step` on one local device, whatever mesh
  wrote it: the target is built from the checkpoint's own metadata."""
  metadata = manager.item_metadata(step)['state']
  metadata = getattr(metadata, 'tree', metadata)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      metadata)
  restored = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract),
      config=ocp.args.JsonRestore()))
  return restored['state'], restored['config']


def _generator_module(config: ml_collections.ConfigDict):
  g = config.generator
  kwargs = dict(g.kwargs)
  cls = models.GENERATORS.get(g.name)
  if 'scale' in models.module_fields(cls):
    kwargs.setdefault('scale', config.scale)
  dtype = jnp.dtype(config.get('dtype', 'float32'))
  return models.get_generator(g.name, dtype=dtype, **kwargs)


def _generator_variables(state: dict) -> dict:
  if 'model_state' in state:  # Phased layout.
    return {'params': state['ema_params']['generator'],
            **state['model_state']['generator']}
  variables = {'params': state['ema_params']}  # Before phases.
  if state.get('g_batch_stats'):
    variables['batch_stats'] = state['g_batch_stats']
  return variables


def _best_dirs(workdir: str) -> dict[str, str]:
  """{phase: directory} of a workdir's best checkpoints, both layouts."""
  root = os.path.join(workdir, 'best')
  if not os.path.isdir(root):
    return {}
  entries = os.listdir(root)
  if any(re.fullmatch(r'\d+', e) for e in entries):
    # Before phases: one best/<step>/ for the whole run, filed under the
    # phase its step belongs to.
    newest = _newest_config(root)
    if newest is None:
      return {}
    step, config = newest
    return {phase_of_step(config, step): root}
  return {e: os.path.join(root, e) for e in entries
          if os.path.isdir(os.path.join(root, e))}


def load_generator_from_workdir(workdir: str, which: str = 'best',
                                phase: str | None = None) -> LoadedGenerator:
  """Loads a trained EMA generator from a run's workdir.

  which: 'best' (the best validated state of `phase`; by default of the
    last phase that has one, i.e. the final phase once it has validated)
    or 'latest' (the newest checkpoint; `phase` must then match it).
  """
  if which not in ('best', 'latest'):
    raise ValueError(f'which={which!r}; use "best" or "latest".')
  workdir = os.path.abspath(workdir)
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
  if not os.path.isdir(directory):
    raise FileNotFoundError(
        f'No checkpoints in {directory}: is {workdir} the --workdir of a run '
        'that has saved at least once?')
  manager = _open_read_only(directory)
  try:
    step = manager.latest_step()
    if step is None:
      raise FileNotFoundError(f'No finished checkpoint in {directory}.')
    state, config = _restore_on_this_host(manager, step)
  finally:
    manager.close()
  config = ml_collections.ConfigDict(config)
  loaded_phase = phase_of_step(config, step)
  if phase is not None and which == 'latest' and phase != loaded_phase:
    raise FileNotFoundError(
        f'The newest checkpoint of {workdir} (step {step}) is of phase '
        f'{loaded_phase!r}, not {phase!r}; use which="best" for a phase.')
  variables = jax.tree.map(np.asarray, _generator_variables(state))
  return LoadedGenerator(_generator_module(config), variables, config, step,
                         loaded_phase, os.path.join(directory, str(step)))


def _latest_config(workdir: str, best: dict[str, str]) -> dict:
  for directory in [os.path.join(workdir, 'checkpoints')] + list(
      best.values()):
    if os.path.isdir(directory) and (newest := _newest_config(directory)):
      return newest[1]
  raise FileNotFoundError(workdir)


def run_phases(workdir: str) -> list[str]:
  """The phases (with steps > 0) of the run in `workdir`, in order."""
  config = _latest_config(os.path.abspath(workdir),
                          _best_dirs(os.path.abspath(workdir)))
  return [p for p, n in phase_names(config) if n > 0]


def load_generator(workdir: str, which: str = 'best',
                   phase: str | None = None):
  """(generator module, variables for module.apply, the run's config).

  The variables hold the EMA parameters, which BasicSR also evaluates. By
  default the final phase's best validated generator; see
  `load_generator_from_workdir` for `which` and `phase`.
  """
  loaded = load_generator_from_workdir(workdir, which, phase)
  return loaded.module, loaded.variables, loaded.config
