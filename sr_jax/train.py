"""Training loop: `train_and_evaluate(config, workdir)`.

Sections, in order: mesh, input, model, perceptual, state (init or resume),
steps (jit with explicit shardings), loop (log, evaluate, checkpoint).
"""
import functools
import os
import signal
from absl import logging
from clu import metric_writers
import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np

from sr_jax import checkpoint as ckpt_lib
from sr_jax import data
from sr_jax import degradations
from sr_jax import evaluate as eval_lib
from sr_jax import models
from sr_jax import train_state as ts
from sr_jax import weights
from sr_jax.progress import ProgressReporter
from sr_jax.train_step import data_parallel_mesh
from sr_jax.train_step import jit_for_mesh
from sr_jax.train_step import make_train_steps


class ConfigError(ValueError):
  """A setting that cannot work; the message names it and what to do."""


def check_config(config: ml_collections.ConfigDict) -> None:
  n = jax.device_count()
  if config.batch_size % n:
    raise ConfigError(
        f'config.batch_size={config.batch_size} must be divisible by the '
        f'{n} devices; set --config.batch_size to a multiple of {n}.')
  if config.psnr.steps < 0 or config.gan.steps < 0:
    raise ConfigError('config.psnr.steps and config.gan.steps must be >= 0.')
  if config.psnr.steps + config.gan.steps == 0:
    raise ConfigError('Nothing to train: config.psnr.steps and '
                      'config.gan.steps are both 0.')
  if config.scale not in (1, 2, 4, 8):
    raise ConfigError(f'config.scale={config.scale}; use 1, 2, 4 or 8.')
  for name in ('log_every', 'eval_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise ConfigError(f'config.{name} must be positive.')
  _check_degradation(config)
  try:
    ts.build_networks(config)
  except (TypeError, ValueError, KeyError) as e:
    raise ConfigError(
        f'config.generator ({config.generator.name!r}, kwargs '
        f'{dict(config.generator.kwargs)}) / config.discriminator '
        f'({config.discriminator.name!r}) cannot be built: {e}. Each '
        'generator has its own kwargs: set them with --config.generator.kwargs'
        "='{...}' when changing generator.name.") from None


def _check_degradation(config: ml_collections.ConfigDict) -> None:
  """Builds and shape-checks the degradation now, not mid-compile."""
  deg = config.get('degradation')
  where = (f"config.degradation ('{deg.name}')" if deg is not None
           else 'the bicubic degradation')
  try:
    pipeline = degradations.pipeline_from_config(config)
    gt = config.data.gt_size
    # Abstract evaluation: catches bad options and kernels too large for the
    # patch size without running or compiling anything.
    jax.eval_shape(pipeline, jax.random.key(0),
                   jax.ShapeDtypeStruct((1, gt, gt, 3), np.float32))
  except (ValueError, TypeError) as e:
    raise ConfigError(
        f'{where} does not work with scale {config.scale} and '
        f'data.gt_size {config.data.gt_size}: {e}') from None


def _load_perceptual(config, dtype):
  """Returns (VGG19 module, its variables) or (None, {}) when unused.

  Without weights the run stops with instructions, unless the config is the
  offline demo (perceptual.drop_if_missing): then the term is dropped loudly.
  A randomly initialised VGG is never used.
  """
  if config.gan.steps == 0 or config.gan.perceptual_weight <= 0:
    return None, {}
  try:
    variables = weights.load_vgg19_params(config.perceptual.vgg_weights or None)
  except weights.WeightsNotFoundError as e:
    if not config.perceptual.drop_if_missing:
      raise
    banner = '!' * 78
    print(f'\n{banner}\nWARNING: no VGG19 weights found; the perceptual loss '
          f'is DISABLED for this demo run.\n{e}\n{banner}\n', flush=True)
    return None, {}
  vgg = models.VGG19(layers=tuple(config.perceptual.layer_weights),
                     use_input_norm=config.perceptual.use_input_norm,
                     range_norm=config.perceptual.range_norm, dtype=dtype)
  return vgg, variables


def _make_writer(workdir):
  if jax.process_index() > 0:
    return metric_writers.MultiWriter([])
  return metric_writers.AsyncWriter(
      metric_writers.SummaryWriter(os.path.join(workdir, 'tensorboard')))


class _Preemption:
  """Turns SIGTERM (preemption, scancel, docker stop) into a clean stop."""

  def __init__(self):
    self.requested = False
    try:
      signal.signal(signal.SIGTERM, self._handler)
    except ValueError:  # Not the main thread (e.g. notebooks): no handler.
      pass

  def _handler(self, signum, frame):
    del signum, frame
    self.requested = True


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str):
  """Trains (or resumes) the run in `workdir`; returns the final state."""
  # --- Mesh: one data-parallel axis over every device of every process.
  check_config(config)
  networks = ts.build_networks(config)
  dtype = ts.compute_dtype(config)
  # Weights first: a missing file must stop the run before anything slow.
  vgg_module, vgg_variables = _load_perceptual(config, dtype)
  mesh = data_parallel_mesh()
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))
  logging.info('Mesh: %d devices (%s), %d processes.', jax.device_count(),
               jax.devices()[0].platform, jax.process_count())

  # --- Input (before anything is written: a wrong folder leaves no run).
  try:
    train_iter = iter(data.make_train_dataset(
        config.data, global_batch_size=config.batch_size, seed=config.seed,
        process_index=jax.process_index(), process_count=jax.process_count(),
        scale=config.scale))
    val_set = data.load_validation_set(config.data, config.scale)
  except ValueError as e:
    # Mismatched pairs, too many bad files, images too small or too large:
    # the message names the files and the data.* setting to change.
    raise ConfigError(str(e)) from None
  paired = bool(config.data.get('train_lr_dir') or config.data.get('tfds_name'))
  degradation = config.get('degradation')
  if paired and degradation is not None and degradation.name != 'bicubic':
    logging.warning(
        'The training source is paired (data.train_lr_dir / data.tfds_name), '
        'so its LR images are used and config.degradation.name=%r is not '
        'applied.', degradation.name)
  os.makedirs(workdir, exist_ok=True)
  writer = _make_writer(workdir)

  # --- State: restore the latest checkpoint, else initialise on the mesh.
  optimizers = ts.build_optimizers(config)
  init_fn = jax.jit(
      functools.partial(ts.init_train_state, config, networks, optimizers),
      out_shardings=replicated)
  rng = jax.random.key(config.seed)
  checkpointer = ckpt_lib.Checkpointer(workdir, keep=config.keep_checkpoints)
  restored = checkpointer.restore_latest(ckpt_lib.abstract_with_sharding(
      jax.eval_shape(init_fn, rng), replicated))
  if restored is not None:
    state, data_state, start_step = restored
    train_iter.set_state(data_state)
    logging.info('Resumed from %s at step %d.', workdir, start_step)
    print(f'Resuming from step {start_step} ({workdir}).', flush=True)
  else:
    state, start_step = ts.apply_init_from(config, init_fn(rng)), 0
  vgg_variables = jax.device_put(vgg_variables, replicated)

  # --- Steps: jitted with explicit shardings; the state is donated.
  steps = make_train_steps(config, networks, optimizers, vgg_module)
  psnr_step = jit_for_mesh(steps.psnr, mesh)
  gan_step = jit_for_mesh(steps.gan, mesh) if steps.gan is not None else None
  start_gan = jax.jit(functools.partial(ts.start_gan_phase,
                                        optimizers=optimizers),
                      out_shardings=replicated, donate_argnums=0)
  super_resolve = eval_lib.make_super_resolve_fn(networks.generator)

  psnr_steps = config.psnr.steps
  total_steps = psnr_steps + config.gan.steps
  end_step = min(total_steps, config.stop_at_step or total_steps)
  progress = ProgressReporter(start_step, end_step)
  preemption = _Preemption()

  def learning_rates(step):
    if step < psnr_steps:
      return {'lr_g': optimizers.lr_g_psnr(step)}
    k = step - psnr_steps
    return {'lr_g': optimizers.lr_g_gan(k), 'lr_d': optimizers.lr_d(k)}

  def run_eval(step):
    val_metrics, strips = eval_lib.evaluate(
        super_resolve, ts.generator_variables(state), val_set, config.scale,
        config.num_val_strips)
    writer.write_scalars(step, {f'val/{k}': v for k, v in val_metrics.items()})
    if strips and jax.process_index() == 0:
      writer.write_images(step, {f'val/{n}': s[None] for n, s in strips})
      eval_lib.save_strips(os.path.join(workdir, 'images', f'{step:08d}'),
                           strips)
    checkpointer.save_best(step, state, val_metrics['psnr'], config)
    progress.report_eval(step, val_metrics)
    return val_metrics

  # --- Loop.
  step = start_step
  last_saved = start_step if restored is not None else None
  # The iterator state from before the batch of step `fetch_step` was
  # fetched: what an emergency save needs if that step never completed.
  fetch_step, data_state_before = step, train_iter.get_state()
  state_is_finite = True
  try:
    while step < end_step:
      if step == psnr_steps:
        state = start_gan(state)
        logging.info('Step %d: GAN phase starts from the EMA generator.', step)
      fetch_step, data_state_before = step, train_iter.get_state()
      batch = next(train_iter)
      # 'hr', and 'lr' from paired sources (else made on the device).
      batch = {k: jax.make_array_from_process_local_data(
          batch_sharding, np.asarray(v)) for k, v in batch.items()
               if k in ('hr', 'lr')}
      train_fn = psnr_step if step < psnr_steps else gan_step
      state, step_metrics = train_fn(state, batch, vgg_variables)
      step += 1

      if step % config.log_every == 0 or step == end_step:
        scalars = {k: float(v) for k, v in jax.device_get(step_metrics).items()}
        if not all(np.isfinite(v) for v in scalars.values()):
          state_is_finite = False
          raise FloatingPointError(
              f'Non-finite loss at step {step}: {scalars}. Nothing was saved '
              f'from this state; the last checkpoint is step {last_saved}. '
              'Lower the learning rate or loss weights and resume.')
        scalars.update(learning_rates(step - 1))
        writer.write_scalars(step, {f'train/{k}': v for k, v in
                                    scalars.items()})
        progress.report_train(step, 'psnr' if step <= psnr_steps else 'gan',
                              scalars)
      if val_set and (step % config.eval_every == 0 or step == end_step):
        run_eval(step)
      if step % config.checkpoint_every == 0 or step == end_step:
        checkpointer.save(step, state, train_iter.get_state(), config,
                          force=step == end_step)
        last_saved = step
      if preemption.requested:
        print(f'SIGTERM received: saving step {step} and stopping; rerun the '
              'same command to resume.', flush=True)
        break
    if last_saved != step:
      checkpointer.save(step, state, train_iter.get_state(), config,
                        force=True)
      last_saved = step
  except BaseException:
    # Never lose training to a crash or Ctrl-C: save what we have, if sound.
    if state_is_finite and step != last_saved:
      try:
        saved_step = int(jax.device_get(state.step))
        # A state that has not consumed batch `fetch_step` goes with the
        # iterator from before that fetch; one that has, with the iterator now.
        data_state = (data_state_before if saved_step == fetch_step
                      else train_iter.get_state())
        checkpointer.save(saved_step, state, data_state, config, force=True)
        last_saved = saved_step
        print(f'Interrupted: saved a checkpoint of step {saved_step} in '
              f'{workdir}; rerun the same command to resume.', flush=True)
      except Exception as save_error:  # pylint: disable=broad-except
        logging.error('Could not save a checkpoint on exit: %s', save_error)
    raise
  finally:
    checkpointer.wait_until_finished()
    checkpointer.close()
    writer.flush()
    writer.close()
  progress.report_done(step)
  return state
