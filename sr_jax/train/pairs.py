"""What one step trains on: (LR input, target, real HR) from a batch.

batch: {'hr': uint8 [B, P, P, 3]} and, from paired LR/HR sources, also
{'lr': uint8 [B, P / s, P / s, 3]}. Without 'lr', LR inputs are made on the
device from HR by the config's degradation pipeline (`config.degradation`,
MATLAB bicubic by default; see `sr_jax.degradations.pipelines`), with a key
derived from the state's rng and the step, so a resumed run degrades exactly
as an uninterrupted one.

Down-sampling generators (DSGAN, configs/dsgan.py) learn an LR -> LR map
from unpaired data: with `degradation.target='lr'` the loss terms aim at the
generator's own input (the bicubic LR), and the discriminator's real images
are the batch's unpaired 'real' LR-domain patches (data.real_dir) or, with
`degradation.real_domain` naming a pipeline, a synthetic real domain: that
pipeline applied to the batch's HR patches rolled by one sample (so no
image meets its own degraded copy), as DSGAN's own synthetic-artifact
experiments do.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from sr_jax import errors
from sr_jax import degradations
from sr_jax.data.image_io import hr_to_float  # noqa: F401  (re-exported)
from sr_jax import losses
from sr_jax import models


class TrainingPairs(NamedTuple):
  lr: jax.Array  # Generator input, [N, P / s, P / s, 3].
  target: jax.Array  # Pixel and perceptual loss target, [N, P, P, 3].
  real: jax.Array  # What the discriminator sees as real, [N, P, P, 3].


def _degradation_network(pipeline: 'degradations.NetworkPipeline',
                         name: str):
  """(FrozenNetwork, aux -> network fn) for a pipeline that runs a trained
  generator: the trainer loads its weights into aux[name]; the module is
  built from their shapes (its settings need not be configured)."""
  arch = pipeline.arch
  spec = models.arch_spec(arch)

  def random_init(key):
    module = models.get_generator(arch, **(spec.tiny_kwargs or {}))
    return module.init(key, jnp.zeros((1, 8, 8, 3)))

  def network(aux):
    variables = aux[name]
    module = models.get_generator(
        arch, **spec.kwargs_from_params(variables['params']))
    return lambda x: module.apply(variables, x, train=False)

  frozen = losses.terms.FrozenNetwork(name=name, random_init=random_init,
                                      source=pipeline.source, arch=arch)
  return frozen, network


def make_training_pairs(degradation: ml_collections.ConfigDict | None,
                        scale: int, real_dir: str = '') -> Callable:
  """Builds `pairs(key, batch, aux=None) -> TrainingPairs`, float32 in
  [0, 1]. `pairs.frozen` lists the frozen networks it reads from aux (a
  degradation that runs a trained generator: 'dsgan').

  LR comes from the batch when the source is paired, else from the
  `degradation` pipeline (config.degradation, at `scale`), then the batch
  augmentations `degradation` enables (mixup, coarse dropout of the LR).
  `real_dir`: config.data.real_dir (a down-sampling generator's real LR
  domain). With `degradation.usm_sharpen_gt` (Real-ESRGAN), the HR is
  unsharp-masked first: the LR is made from the sharpened HR and the pixel
  and perceptual losses aim at it; the critic's real images stay as they
  are.
  """
  degrade = degradations.pipeline_from_config(degradation, scale)
  deg = degradation
  frozen, network = (), None
  if isinstance(degrade, degradations.NetworkPipeline):
    net, network = _degradation_network(degrade, f'degradation_{deg.name}')
    frozen = (net,)
  get = lambda name, default: deg.get(name, default) if deg else default
  mixup_prob = float(get('mixup_prob', 0.0))
  mixup_alpha = float(get('mixup_alpha', 1.2))
  dropout_prob = float(get('coarse_dropout_prob', 0.0))
  usm = bool(get('usm_sharpen_gt', False))
  target = get('target', 'hr')
  if target not in ('hr', 'lr'):
    raise errors.ConfigError(
        f"degradation.target={target!r}; use 'hr' "
        "(super-resolution) or 'lr' (a down-sampling generator's "
        'own input).')
  target_is_lr = target == 'lr'
  real_domain = get('real_domain', '')
  if target_is_lr and not (real_domain or real_dir):
    raise errors.ConfigError(
        "degradation.target='lr' trains a down-sampling generator, whose "
        'discriminator needs images of the real LR domain: set '
        'data.real_dir to a folder of them, or degradation.real_domain to '
        "a pipeline that makes them (e.g. 'srrescgan').")
  make_real = (degradations.pipeline_from_config(deg, scale, real_domain)
               if real_domain else None)
  if usm and deg.name == 'perspective' and deg.perspective.aligned:
    raise errors.ConfigError(
        'degradation.usm_sharpen_gt does not combine with the '
        'aligned perspective pipeline (it warps the target).')

  def pairs(key, batch, aux=None):
    k_degrade, k_mixup, k_dropout = jax.random.split(key, 3)
    real = hr_to_float(batch['hr'])
    target = degradations.usm_sharpen(real) if usm else real
    if 'lr' in batch:
      lr = hr_to_float(batch['lr'])
    else:
      if network is not None:
        lr, degraded_target = degrade(k_degrade, target, network(aux))
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
    if target_is_lr:
      target = lr
      # One of the two exists (checked above); the batch's wins.
      if 'real' in batch:
        real = hr_to_float(batch['real'])
      else:
        real = make_real(jax.random.fold_in(key, 7),
                         jnp.roll(real, 1, axis=0))[0]
    return TrainingPairs(lr, target, real)

  pairs.frozen = frozen
  return pairs
