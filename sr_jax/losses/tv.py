"""Total-variation loss between image gradients, SRResCycGAN's form:

  L_tv = || grad_h G(y) - grad_h x ||_1 + || grad_v G(y) - grad_v x ||_1

with grad_h / grad_v the forward differences along width / height and
||.||_1 the mean absolute value (BasicSR's L1 reduction), so a weight means
the same at any patch size. Registered as the loss term 'tv' (sr vs target).
"""
import jax
import jax.numpy as jnp

from sr_jax.losses import terms


def image_gradients(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """Forward differences of [N, H, W, C]: (along W [N, H, W-1, C], along H
  [N, H-1, W, C])."""
  return x[:, :, 1:] - x[:, :, :-1], x[:, 1:] - x[:, :-1]


def tv_loss(pred: jax.Array, target: jax.Array) -> jax.Array:
  ph, pv = image_gradients(pred.astype(jnp.float32))
  th, tv = image_gradients(target.astype(jnp.float32))
  return jnp.mean(jnp.abs(ph - th)) + jnp.mean(jnp.abs(pv - tv))


@terms.register('tv')
def make_tv_term(options, dtype) -> terms.LossTerm:
  del dtype
  terms.unknown_options(options, ())
  return terms.LossTerm(lambda ctx: tv_loss(ctx.sr, ctx.target),
                        log_name='tv')
