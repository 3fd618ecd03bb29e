"""VGG perceptual loss (Johnson et al. 2016; ESRGAN uses conv5_4 before ReLU).

BasicSR's PerceptualLoss: sum over layers of weight_k * criterion(phi_k(pred),
phi_k(target)), with the target's features treated as constants.

As a loss term ('perceptual'): options layer_weights ({layer: weight}, VGG19
names, 'convX_Y' before ReLU, 'reluX_Y' after), criterion ('l1', 'mse', ...),
use_input_norm, range_norm, and feature_scale (features are multiplied by
it before the distance; SRGAN's VGG54 uses 1 / 12.75). The VGG19 weights are
the frozen network 'vgg19' (ImageNet, torchvision).
"""
from typing import Callable, Mapping

import jax
import jax.numpy as jnp

from sr_jax.losses import pixel
from sr_jax.losses import terms
from sr_jax.models import vgg19 as vgg19_lib


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


PERCEPTUAL_OPTIONS = ('layer_weights', 'criterion', 'use_input_norm',
                      'range_norm', 'feature_scale')


def vgg19_frozen() -> terms.FrozenNetwork:
  """The frozen VGG19 (all 16 convs, so any layer set applies)."""
  def random_init(key):
    return vgg19_lib.VGG19(layers=('conv5_4',)).init(
        key, jnp.zeros((1, 32, 32, 3), jnp.float32))
  return terms.FrozenNetwork('vgg19', random_init)


@terms.register('perceptual')
def make_perceptual_term(options, dtype) -> terms.LossTerm:
  terms.unknown_options(options, PERCEPTUAL_OPTIONS)
  layer_weights = dict(options.get('layer_weights', {'conv5_4': 1.0}))
  scale = float(options.get('feature_scale', 1.0))
  vgg = vgg19_lib.VGG19(layers=tuple(layer_weights),
                        use_input_norm=bool(options.get('use_input_norm',
                                                        True)),
                        range_norm=bool(options.get('range_norm', False)),
                        dtype=dtype)
  criterion = options.get('criterion', 'l1')
  pixel.get_pixel_loss(criterion)  # Fail now on an unknown criterion.

  def fn(ctx: terms.LossContext):
    variables = ctx.aux['vgg19']
    features = lambda x: {k: v * scale for k, v in
                          vgg.apply(variables, x).items()}
    return perceptual_loss(features(ctx.sr), features(ctx.target),
                           layer_weights, criterion)

  return terms.LossTerm(fn, log_name='percep', frozen=(vgg19_frozen(),))
