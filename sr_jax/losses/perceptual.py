"""VGG perceptual loss (Johnson et al. 2016; ESRGAN uses conv5_4 before ReLU).

BasicSR's PerceptualLoss: sum over layers of weight_k * criterion(phi_k(pred),
phi_k(target)), with the target's features treated as constants.
"""
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from sr_jax.losses import pixel


def perceptual_loss(pred_features: Mapping[str, jax.Array],
                    target_features: Mapping[str, jax.Array],
                    layer_weights: Mapping[str, float],
                    criterion: str = 'l1') -> jax.Array:
  """Weighted feature distance; feature maps are [N, h, w, c] per layer name."""
  distance = pixel.get_pixel_loss(criterion)
  total = jnp.zeros((), jnp.float32)
  for name, weight in layer_weights.items():
    target = jax.lax.stop_gradient(target_features[name])
    total = total + weight * distance(
        pred_features[name].astype(jnp.float32), target.astype(jnp.float32))
  return total


def make_perceptual_loss_fn(vgg_module, layer_weights: Mapping[str, float],
                            criterion: str = 'l1') -> Callable:
  """Returns fn(vgg_variables, pred, target) -> scalar loss.

  vgg_module: a `sr_jax.models.VGG19` whose `layers` cover layer_weights.
  pred, target: [N, H, W, 3] float32 in [0, 1].
  The VGG variables are an argument (not closed over) so the ~80 MB of
  weights are not baked into the compiled program as constants.
  """
  layer_weights = dict(layer_weights)

  def loss_fn(vgg_variables, pred, target):
    pred_features = vgg_module.apply(vgg_variables, pred)
    target_features = vgg_module.apply(vgg_variables, target)
    return perceptual_loss(pred_features, target_features, layer_weights,
                           criterion)

  return loss_fn
