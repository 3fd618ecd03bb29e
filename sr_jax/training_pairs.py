"""What one step trains on: (LR input, target, real HR) from a batch.

batch: {'hr': uint8 [B, P, P, 3]} and, from paired LR/HR sources, also
{'lr': uint8 [B, P / s, P / s, 3]}. Without 'lr', LR inputs are made on the
device from HR by the config's degradation pipeline (`config.degradation`,
MATLAB bicubic by default; see `sr_jax.degradations.pipelines`), with a key
derived from the state's rng and the step, so a resumed run degrades exactly
as an uninterrupted one.
"""
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import ml_collections

from sr_jax import degradations


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
