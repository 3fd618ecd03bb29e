"""LPIPS (Zhang et al. 2018) as a generator loss term: mean over the batch of
LPIPS(sr, target), the learned perceptual distance of `sr_jax.metrics.LPIPS`
with the same weights as the metric (frozen network 'lpips_vgg' or
'lpips_alex', from `python -m sr_jax.weights fetch lpips_vgg`).

Options: net ('vgg', the default, which the LPIPS authors recommend as a
training loss, or 'alex'). Registered as 'lpips'. Patches must be at least
16 px ('vgg') or 31 px ('alex') wide.
"""
import jax
import jax.numpy as jnp

from sr_jax.losses import terms
from sr_jax.metrics import lpips as lpips_lib


@terms.register('lpips')
def make_lpips_term(options, dtype) -> terms.LossTerm:
  del dtype  # LPIPS runs in float32, like the metric.
  terms.unknown_options(options, ('net',))
  net = lpips_lib.check_net(options.get('net', 'vgg'))
  module = lpips_lib.LPIPS(net=net)
  name = f'lpips_{net}'

  def random_init(key):
    x = jnp.zeros((1, 32, 32, 3), jnp.float32)
    return module.init(key, x, x)

  def fn(ctx: terms.LossContext):
    target = jax.lax.stop_gradient(ctx.target)
    return jnp.mean(module.apply(ctx.aux[name], ctx.sr, target))

  return terms.LossTerm(fn, log_name='lpips',
                        frozen=(terms.FrozenNetwork(name, random_init),))
