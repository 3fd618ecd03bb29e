"""The train state (one pytree) and how to build it from a config.

Everything a run needs to continue exactly lives in `TrainState`: both
networks' parameters and BatchNorm statistics, both optimizer states, the EMA
generator, the global step and the PRNG key. Checkpointing, EMA and network
interpolation are then pytree operations on it.
"""
from typing import Any, NamedTuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sr_jax import convert
from sr_jax import models


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar, global step over both phases.
  g_params: Any
  g_batch_stats: Any  # {} when the generator has no BatchNorm.
  g_opt_state: Any
  ema_params: Any  # EMA of g_params (BasicSR's net_g_ema).
  d_params: Any  # {} when the run has no GAN phase.
  d_batch_stats: Any
  d_opt_state: Any
  rng: jax.Array  # Per-step keys are fold_in(rng, step).


class Networks(NamedTuple):
  generator: nn.Module
  discriminator: nn.Module | None  # None for PSNR-only runs.


class Optimizers(NamedTuple):
  g_psnr: optax.GradientTransformation
  g_gan: optax.GradientTransformation
  d: optax.GradientTransformation
  # Host-side learning-rate schedules, for logging.
  lr_g_psnr: optax.Schedule
  lr_g_gan: optax.Schedule
  lr_d: optax.Schedule


def compute_dtype(config: ml_collections.ConfigDict):
  names = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
  if config.dtype not in names:
    raise ValueError(f'config.dtype={config.dtype!r}; use one of {list(names)}.')
  return names[config.dtype]


def build_networks(config: ml_collections.ConfigDict) -> Networks:
  dtype = compute_dtype(config)
  g_kwargs = dict(config.generator.kwargs)
  g_kwargs.setdefault('scale', config.scale)
  generator = models.get_generator(config.generator.name, dtype=dtype,
                                   **g_kwargs)
  discriminator = None
  if config.gan.steps > 0:
    d_kwargs = dict(config.discriminator.kwargs)
    d_kwargs.setdefault('input_size', config.data.gt_size)
    discriminator = models.get_discriminator(config.discriminator.name,
                                             dtype=dtype, **d_kwargs)
  return Networks(generator, discriminator)


def _multistep_schedule(lr, milestones, gamma):
  """BasicSR's MultiStepLR: lr * gamma^(number of milestones passed)."""
  return optax.piecewise_constant_schedule(
      lr, {int(m): float(gamma) for m in milestones})


def build_optimizers(config: ml_collections.ConfigDict) -> Optimizers:
  p, g = config.psnr, config.gan
  lr_g_psnr = _multistep_schedule(p.lr, p.milestones, p.gamma)
  lr_g_gan = _multistep_schedule(g.lr_g, g.milestones, g.gamma)
  lr_d = _multistep_schedule(g.lr_d, g.milestones, g.gamma)
  # Both generator optimizers have the same structure, so one checkpoint
  # layout serves both phases; each schedule counts its own updates.
  return Optimizers(
      g_psnr=optax.adam(lr_g_psnr, b1=p.b1, b2=p.b2),
      g_gan=optax.adam(lr_g_gan, b1=g.b1, b2=g.b2),
      d=optax.adam(lr_d, b1=g.b1, b2=g.b2),
      lr_g_psnr=lr_g_psnr, lr_g_gan=lr_g_gan, lr_d=lr_d)


def apply_init_from(config: ml_collections.ConfigDict,
                    state: TrainState) -> TrainState:
  """Starts the generator and its EMA from `config.generator.init_from`.

  BasicSR's pretrain_network_g. Called once on the host after a fresh
  `init_train_state`, never when resuming: the checkpoint holds the weights
  from then on, so the file may be moved or deleted after the first step,
  and the weights never become constants of a compiled function. Adam's
  initial moments depend only on shapes, so the optimizer state stays valid.
  Raises ValueError naming every parameter whose shape does not match.
  """
  g = config.generator
  if not g.get('init_from'):
    return state
  like = {'params': state.g_params}
  if state.g_batch_stats:
    like['batch_stats'] = state.g_batch_stats
  loaded = convert.load_like(
      g.init_from, g.name, like,
      f'config.generator (name={g.name!r}, kwargs={dict(g.kwargs)}, '
      f'scale={config.scale}) given as generator.init_from',
      **dict(g.kwargs))
  put = lambda tree, ref: jax.tree.map(
      lambda v, r: jax.device_put(jnp.asarray(v, r.dtype), r.sharding),
      tree, ref)
  g_params = put(loaded['params'], state.g_params)
  return state.replace(
      g_params=g_params, ema_params=put(loaded['params'], state.ema_params),
      g_batch_stats=(put(loaded['batch_stats'], state.g_batch_stats)
                     if state.g_batch_stats else state.g_batch_stats))


def init_train_state(config: ml_collections.ConfigDict, networks: Networks,
                     optimizers: Optimizers, rng: jax.Array) -> TrainState:
  """Random initial state (call under jit or jax.eval_shape).

  For config.generator.init_from, follow with `apply_init_from`.
  """
  g_rng, d_rng, state_rng = jax.random.split(rng, 3)
  gt = config.data.gt_size
  if gt % config.scale:
    raise ValueError(f'data.gt_size={gt} must be a multiple of '
                     f'scale={config.scale}.')
  lr_patch = jnp.zeros((1, gt // config.scale, gt // config.scale, 3))
  g_vars = networks.generator.init(g_rng, lr_patch, train=False)
  g_params = g_vars['params']
  d_params, d_batch_stats, d_opt_state = {}, {}, {}
  if networks.discriminator is not None:
    d_vars = networks.discriminator.init(d_rng, jnp.zeros((1, gt, gt, 3)),
                                         train=False)
    d_params = d_vars['params']
    d_batch_stats = d_vars.get('batch_stats', {})
    d_opt_state = optimizers.d.init(d_params)
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      g_params=g_params,
      g_batch_stats=g_vars.get('batch_stats', {}),
      g_opt_state=optimizers.g_psnr.init(g_params),
      # A copy, not the same arrays: the train step donates both trees.
      ema_params=jax.tree.map(jnp.copy, g_params),
      d_params=d_params,
      d_batch_stats=d_batch_stats,
      d_opt_state=d_opt_state,
      rng=state_rng)


def start_gan_phase(state: TrainState, optimizers: Optimizers) -> TrainState:
  """The GAN phase starts from the warm-up's EMA generator, fresh optimizer."""
  g_params = jax.tree.map(jnp.copy, state.ema_params)  # Donated separately.
  return state.replace(g_params=g_params,
                       g_opt_state=optimizers.g_gan.init(g_params))


def generator_variables(state: TrainState, use_ema: bool = True) -> dict:
  params = state.ema_params if use_ema else state.g_params
  variables = {'params': params}
  if state.g_batch_stats:
    variables['batch_stats'] = state.g_batch_stats
  return variables
