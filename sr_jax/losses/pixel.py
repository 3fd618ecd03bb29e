"""Pixel losses between a prediction and its target.

pred, target: [N, H, W, C] float32 images in [0, 1]. Each returns a scalar.
"""
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.losses import terms


def l1_loss(pred, target):
  """Mean absolute error (BasicSR's L1Loss with reduction='mean')."""
  return jnp.mean(jnp.abs(pred - target))


def mse_loss(pred, target):
  """Mean squared error (BasicSR's MSELoss with reduction='mean')."""
  return jnp.mean(jnp.square(pred - target))


def charbonnier_loss(pred, target, eps=1e-12):
  """sqrt((pred - target)^2 + eps), averaged (BasicSR's CharbonnierLoss)."""
  return jnp.mean(jnp.sqrt(jnp.square(pred - target) + eps))


PIXEL_LOSSES = {
    'l1': l1_loss,
    'mse': mse_loss,
    'l2': mse_loss,
    'charbonnier': charbonnier_loss,
}


def get_pixel_loss(name):
  try:
    return PIXEL_LOSSES[name]
  except KeyError:
    raise errors.ConfigError(
        f'Unknown pixel loss {name!r}; known: {sorted(PIXEL_LOSSES)}.'
    ) from None


@terms.register('pixel')
def make_pixel_term(options, dtype) -> terms.LossTerm:
  """criterion(sr, target): 'l1' (default), 'mse' / 'l2' or 'charbonnier'."""
  del dtype
  terms.unknown_options(options, ('criterion',))
  distance = get_pixel_loss(options.get('criterion', 'l1'))
  return terms.LossTerm(lambda ctx: distance(ctx.sr, ctx.target),
                        log_name='pix')
