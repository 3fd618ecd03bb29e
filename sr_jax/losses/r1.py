"""R1 (Mescheder et al. 2018, "Which training methods for GANs do actually
converge?"): the squared input-gradient norm of the critic on real images,

  R1 = E_x_real[ ||grad_x C(x)||_2^2 ],

the gradient of the raw critic output (logit), summed over pixels and
channels per image, averaged over the batch. The paper writes the penalty
as (gamma / 2) R1, so a config weight w means gamma = 2 w. Per-sample:
needs a critic without BatchNorm in train mode. Registered as 'r1'.
"""
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.losses import regularisers


def r1_penalty(critic_fn, real: jax.Array) -> jax.Array:
  """E[||grad_x C(x_real)||^2]; differentiable in the critic's parameters."""
  grads = regularisers.input_gradients(critic_fn, real.astype(jnp.float32))
  return jnp.mean(jnp.sum(jnp.square(grads), axis=tuple(range(1, grads.ndim))))


@regularisers.register('r1')
def make_r1(options) -> regularisers.Regulariser:
  if options:
    raise errors.ConfigError(
        f'takes no options besides weight; got {dict(options)}.')
  return regularisers.Regulariser(lambda ctx: r1_penalty(ctx.critic, ctx.real),
                                  log_name='r1', per_sample=True)
