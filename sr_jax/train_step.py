"""The jitted update steps: PSNR warm-up and GAN (ESRGAN order).

Both are pure functions `(state, batch, vgg_variables) -> (state, metrics)`
built by `make_train_steps`; the trainer jits them with explicit shardings
(batch split over the mesh's 'data' axis, state replicated), so the same code
runs on one CPU and on every device of a pod.

batch: {'hr': uint8 [B, P, P, 3]} and, from paired LR/HR sources, also
{'lr': uint8 [B, P / s, P / s, 3]}. Without 'lr', LR inputs are made on the
device from HR by the config's degradation pipeline (`config.degradation`,
MATLAB bicubic by default; see `sr_jax.degradations.pipelines`), with a key
derived from the state's rng and the step, so a resumed run degrades exactly
as an uninterrupted one.
"""
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import optax

from sr_jax import degradations
from sr_jax import losses
from sr_jax.train_state import Networks
from sr_jax.train_state import Optimizers
from sr_jax.train_state import TrainState


def hr_to_float(hr_uint8: jax.Array) -> jax.Array:
  return hr_uint8.astype(jnp.float32) / 255.0


class TrainingPairs(NamedTuple):
  lr: jax.Array  # Generator input, [N, P / s, P / s, 3].
  target: jax.Array  # Pixel and perceptual loss target, [N, P, P, 3].
  real: jax.Array  # What the discriminator sees as real, [N, P, P, 3].


def make_training_pairs(config: ml_collections.ConfigDict) -> Callable:
  """Builds `pairs(key, batch) -> TrainingPairs`, float32 in [0, 1].

  LR comes from the batch when the source is paired, else from the config's
  degradation pipeline; batch-level augmentations (mixup, coarse dropout of
  the LR) follow, when the config enables them. With
  `degradation.usm_sharpen_gt` (Real-ESRGAN), the HR is unsharp-masked first:
  the LR is made from the sharpened HR and the pixel and perceptual losses
  aim at it, while the discriminator's real images stay unsharpened.
  """
  degrade = degradations.pipeline_from_config(config)
  deg = config.get('degradation')
  get = lambda name, default: deg.get(name, default) if deg else default
  mixup_prob = float(get('mixup_prob', 0.0))
  mixup_alpha = float(get('mixup_alpha', 1.2))
  dropout_prob = float(get('coarse_dropout_prob', 0.0))
  usm = bool(get('usm_sharpen_gt', False))
  if usm and deg.name == 'perspective' and deg.perspective.aligned:
    raise ValueError('degradation.usm_sharpen_gt does not combine with the '
                     'aligned perspective pipeline (it warps the target).')

  def pairs(key, batch):
    k_degrade, k_mixup, k_dropout = jax.random.split(key, 3)
    real = hr_to_float(batch['hr'])
    target = degradations.usm_sharpen(real) if usm else real
    if 'lr' in batch:
      lr = hr_to_float(batch['lr'])
    else:
      lr, degraded_target = degrade(k_degrade, target)
      if not usm:  # Pipelines that warp the HR return the warped target.
        target = real = degraded_target
    if mixup_prob > 0:
      # One draw for all three: LR, target and real stay one mixed pair.
      lr, both, _ = degradations.mixup(
          k_mixup, lr, jnp.concatenate([target, real], axis=-1),
          alpha=mixup_alpha, prob=mixup_prob)
      target, real = both[..., :3], both[..., 3:]
    if dropout_prob > 0:
      lr = degradations.coarse_dropout(k_dropout, lr, prob=dropout_prob)
    return TrainingPairs(lr, target, real)

  return pairs


def _apply_with_stats(module, params, batch_stats, x, train):
  """Runs a module, threading BatchNorm statistics when it has any."""
  if batch_stats:
    out, updates = module.apply({'params': params, 'batch_stats': batch_stats},
                                x, train=train, mutable=['batch_stats'])
    return out.astype(jnp.float32), updates['batch_stats']
  return module.apply({'params': params}, x, train=train).astype(
      jnp.float32), batch_stats


def _ema(ema_params, params, decay):
  return jax.tree.map(lambda e, p: decay * e + (1.0 - decay) * p,
                      ema_params, params)


def _select(pred, on_true, on_false):
  return jax.tree.map(lambda a, b: jnp.where(pred, a, b), on_true, on_false)


class TrainSteps(NamedTuple):
  psnr: Callable[..., Any]
  gan: Callable[..., Any] | None


def make_train_steps(config: ml_collections.ConfigDict, networks: Networks,
                     optimizers: Optimizers, vgg_module=None) -> TrainSteps:
  """Builds the (unjitted) step functions for both phases.

  vgg_module: a `sr_jax.models.VGG19` for the perceptual term, or None when
    the GAN phase has no perceptual term.
  """
  ema_decay = config.ema_decay
  generator, discriminator = networks
  training_pairs = make_training_pairs(config)

  def step_keys(state):
    # (degradation key, gradient-penalty key), both fixed by (rng, step).
    step_key = jax.random.fold_in(state.rng, state.step)
    return jax.random.fold_in(step_key, 1), step_key

  def psnr_step(state: TrainState, batch, vgg_variables):
    del vgg_variables  # The warm-up uses pixel loss only.
    lr, hr, _ = training_pairs(step_keys(state)[0], batch)
    pixel_loss = losses.get_pixel_loss(config.psnr.pixel_loss)

    def loss_fn(params):
      sr, batch_stats = _apply_with_stats(generator, params,
                                          state.g_batch_stats, lr, True)
      return pixel_loss(sr, hr), batch_stats

    (l_pix, g_batch_stats), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.g_params)
    updates, g_opt_state = optimizers.g_psnr.update(
        grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, updates)
    new_state = state.replace(
        step=state.step + 1, g_params=g_params, g_batch_stats=g_batch_stats,
        g_opt_state=g_opt_state,
        ema_params=_ema(state.ema_params, g_params, ema_decay))
    return new_state, {'l_pix': l_pix, 'grad_norm_g': optax.tree.norm(grads)}

  if discriminator is None:
    return TrainSteps(psnr=psnr_step, gan=None)

  g_cfg = config.gan
  adversarial = losses.get_adversarial_loss(g_cfg.adversarial_loss)
  gan_pixel_loss = losses.get_pixel_loss(g_cfg.pixel_loss)
  perceptual_fn = None
  if g_cfg.perceptual_weight > 0 and vgg_module is not None:
    perceptual_fn = losses.make_perceptual_loss_fn(
        vgg_module, config.perceptual.layer_weights,
        config.perceptual.criterion)

  def gan_step(state: TrainState, batch, vgg_variables):
    degrade_key, gp_key = step_keys(state)
    lr, target, hr = training_pairs(degrade_key, batch)
    # BasicSR counts iterations from 1 within the GAN run.
    gan_iter = state.step - config.psnr.steps + 1
    update_g = ((gan_iter % g_cfg.net_d_iters == 0) &
                (gan_iter > g_cfg.net_d_init_iters))

    def d_logits(d_params, batch_stats, x):
      return _apply_with_stats(discriminator, d_params, batch_stats, x, True)

    # Generator update: D is fixed; gradients flow only through G(lr).
    def g_loss_fn(g_params):
      sr, g_batch_stats = _apply_with_stats(generator, g_params,
                                            state.g_batch_stats, lr, True)
      terms = {'l_g_pix': g_cfg.pixel_weight * gan_pixel_loss(sr, target)}
      if perceptual_fn is not None:
        terms['l_g_percep'] = g_cfg.perceptual_weight * perceptual_fn(
            vgg_variables, sr, target)
      if g_cfg.fft_weight > 0:
        terms['l_g_fft'] = g_cfg.fft_weight * losses.fft_loss(sr, target)
      real, _ = d_logits(state.d_params, state.d_batch_stats, hr)
      fake, _ = d_logits(state.d_params, state.d_batch_stats, sr)
      terms['l_g_gan'] = g_cfg.adversarial_weight * adversarial.g_loss(
          jax.lax.stop_gradient(real), fake)
      total = sum(terms.values())
      return total, (terms, sr, g_batch_stats)

    (l_g_total, (g_terms, sr, g_batch_stats)), g_grads = jax.value_and_grad(
        g_loss_fn, has_aux=True)(state.g_params)
    g_updates, g_opt_state = optimizers.g_gan.update(
        g_grads, state.g_opt_state, state.g_params)
    g_params = optax.apply_updates(state.g_params, g_updates)
    g_params, g_opt_state, g_batch_stats = _select(
        update_g, (g_params, g_opt_state, g_batch_stats),
        (state.g_params, state.g_opt_state, state.g_batch_stats))

    # Discriminator update on the same (pre-update) fakes, as BasicSR does.
    sr = jax.lax.stop_gradient(sr)

    def d_loss_fn(d_params):
      real, batch_stats = d_logits(d_params, state.d_batch_stats, hr)
      fake, batch_stats = d_logits(d_params, batch_stats, sr)
      terms = {'l_d': adversarial.d_loss(real, fake)}
      if adversarial.gradient_penalty:
        critic = lambda x: d_logits(d_params, batch_stats, x)[0]
        terms['l_d_gp'] = g_cfg.gp_weight * losses.gradient_penalty(
            critic, hr, sr, gp_key)
      aux = dict(terms, out_d_real=jnp.mean(real), out_d_fake=jnp.mean(fake))
      return sum(terms.values()), (aux, batch_stats)

    (l_d_total, (d_aux, d_batch_stats)), d_grads = jax.value_and_grad(
        d_loss_fn, has_aux=True)(state.d_params)
    d_updates, d_opt_state = optimizers.d.update(d_grads, state.d_opt_state,
                                                 state.d_params)
    d_params = optax.apply_updates(state.d_params, d_updates)

    new_state = state.replace(
        step=state.step + 1,
        g_params=g_params, g_batch_stats=g_batch_stats, g_opt_state=g_opt_state,
        ema_params=_ema(state.ema_params, g_params, ema_decay),
        d_params=d_params, d_batch_stats=d_batch_stats, d_opt_state=d_opt_state)
    metrics = dict(g_terms, **d_aux, l_g_total=l_g_total, l_d_total=l_d_total,
                   grad_norm_g=optax.tree.norm(g_grads),
                   grad_norm_d=optax.tree.norm(d_grads))
    return new_state, metrics

  return TrainSteps(psnr=psnr_step, gan=gan_step)


def data_parallel_mesh(devices=None) -> jax.sharding.Mesh:
  """A 1-D mesh ('data',) over `devices` (default: all devices).

  Axis type Auto: XLA propagates the batch sharding through the convolutions
  (jax.make_mesh's default, Explicit, would ask every op for its sharding).
  """
  devices = jax.devices() if devices is None else list(devices)
  return jax.make_mesh((len(devices),), ('data',), devices=devices,
                       axis_types=(jax.sharding.AxisType.Auto,))


def jit_for_mesh(step_fn: Callable, mesh: jax.sharding.Mesh) -> Callable:
  """Jits a step with the batch split over the mesh's 'data' axis.

  The state and VGG variables are replicated and the state is donated, so an
  update happens in place. The same code serves 1 device and N.
  """
  replicated = NamedSharding(mesh, P())
  return jax.jit(step_fn,
                 in_shardings=(replicated, NamedSharding(mesh, P('data')),
                               replicated),
                 out_shardings=(replicated, replicated), donate_argnums=0)
