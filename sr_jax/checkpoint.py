"""orbax checkpoints: the latest N for resuming, and the best by validation PSNR.

Layout under the workdir:
  checkpoints/<step>/{state, data, config}  last `keep` steps; auto-resume
  best/<step>/{state, config}               the single best by val PSNR
`state` is the whole TrainState, `data` the grain iterator state (JSON) and
`config` the run's config (JSON), so a checkpoint says how it was made.
Every process must call save/restore (orbax coordinates multi-host writes).
"""
import json
import os
from typing import Any

from absl import logging
import jax
import ml_collections
import orbax.checkpoint as ocp


def _config_json(config: ml_collections.ConfigDict) -> dict:
  return json.loads(config.to_json_best_effort())


class Checkpointer:
  """Owns the two orbax CheckpointManagers of a run."""

  def __init__(self, workdir: str, keep: int = 3):
    workdir = os.path.abspath(workdir)
    self.latest = ocp.CheckpointManager(
        os.path.join(workdir, 'checkpoints'),
        options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True),
        item_names=('state', 'data', 'config'))
    self.best = ocp.CheckpointManager(
        os.path.join(workdir, 'best'),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=1, create=True, best_fn=lambda m: m['psnr'],
            best_mode='max', keep_checkpoints_without_metrics=False),
        item_names=('state', 'config'))

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

  def save_best(self, step: int, state, psnr: float,
                config: ml_collections.ConfigDict) -> None:
    """Offers a validated state; orbax keeps it only if its PSNR is best."""
    self.best.save(
        step,
        args=ocp.args.Composite(
            state=ocp.args.StandardSave(state),
            config=ocp.args.JsonSave(_config_json(config))),
        metrics={'psnr': float(psnr)}, force=True)

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
    except (ValueError, KeyError) as e:
      raise ValueError(
          f'Cannot resume from {self.latest.directory}/{step}: its train '
          'state does not match this config (did the model or losses '
          'change?). Use a new --workdir, or the config the run was started '
          f'with (saved in {self.latest.directory}/{step}/config). '
          f'Details: {e}') from e
    return restored['state'], restored['data'], step

  def wait_until_finished(self) -> None:
    self.latest.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.latest.close()
    self.best.close()


def abstract_with_sharding(tree, sharding):
  """ShapeDtypeStructs of `tree` placed with `sharding` (for restore)."""
  return jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding), tree)


def load_generator(workdir: str, which: str = 'best'):
  """Loads a trained generator from a run's workdir.

  which: 'best' (highest validation PSNR) or 'latest'.
  Returns (generator module, variables for module.apply, the run's config);
  the variables hold the EMA parameters, which BasicSR also evaluates.
  """
  # Imported here: train_state imports the models, which this module's
  # checkpoint-only users do not need.
  from sr_jax import train_state as ts  # pylint: disable=g-import-not-at-top
  if which not in ('best', 'latest'):
    raise ValueError(f'which={which!r}; use "best" or "latest".')
  directory = os.path.join(os.path.abspath(workdir),
                           'best' if which == 'best' else 'checkpoints')
  if not os.path.isdir(directory):
    raise FileNotFoundError(
        f'No checkpoints in {directory}: is {workdir} the --workdir of a run '
        'that has saved (or, for "best", validated) at least once?')
  manager = ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(read_only=True),
      item_names=('state', 'config'))
  step = manager.latest_step()
  if step is None:
    raise FileNotFoundError(f'No finished checkpoint in {directory}.')
  config = ml_collections.ConfigDict(manager.restore(
      step, args=ocp.args.Composite(config=ocp.args.JsonRestore()))['config'])
  networks = ts.build_networks(config)
  abstract = jax.eval_shape(
      lambda: ts.init_train_state(config, networks,
                                  ts.build_optimizers(config),
                                  jax.random.key(0)))
  state = manager.restore(step, args=ocp.args.Composite(
      state=ocp.args.StandardRestore(abstract)))['state']
  manager.close()
  return networks.generator, ts.generator_variables(state), config
