"""WGAN-GP's gradient penalty (Gulrajani et al. 2017), as a regulariser.

  penalty = E[(||grad_x C(x_hat)||_2 - 1)^2],  x_hat = eps x_r + (1 - eps) x_f

with eps ~ U(0, 1) per sample. With the RaGAN objective this is the RaGP of
`configs/esrgan_fft.py`. Per-sample: needs a critic without BatchNorm in
train mode. Registered as 'gradient_penalty'; no options.
"""
from typing import Callable

import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.losses import regularisers


def gradient_penalty(critic_fn: Callable[[jax.Array], jax.Array],
                     real: jax.Array, fake: jax.Array,
                     key: jax.Array) -> jax.Array:
  """E[(||grad_x C(x_hat)||_2 - 1)^2] on random interpolates (WGAN-GP).

  critic_fn: x [N, H, W, C] -> logits [N, 1] (or [N]); differentiable in its
    own parameters, so this penalty can be differentiated again by the caller.
    It must be per-sample (see sr_jax.losses.regularisers).
  real, fake: [N, H, W, C] images; `fake` is treated as a constant.
  key: PRNG key for the per-sample interpolation weights eps ~ U(0, 1).
  """
  real = real.astype(jnp.float32)
  fake = jax.lax.stop_gradient(fake).astype(jnp.float32)
  eps = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1))
  x_hat = eps * real + (1.0 - eps) * fake
  grads = regularisers.input_gradients(critic_fn, x_hat)
  norms = jnp.sqrt(jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim)))
                   + 1e-12)
  return jnp.mean(jnp.square(norms - 1.0))


@regularisers.register('gradient_penalty')
def make_gradient_penalty(options) -> regularisers.Regulariser:
  if options:
    raise errors.ConfigError(
        f'takes no options besides weight; got {dict(options)}.')
  return regularisers.Regulariser(
      lambda ctx: gradient_penalty(ctx.critic, ctx.real, ctx.fake, ctx.key),
      log_name='gp', per_sample=True)
