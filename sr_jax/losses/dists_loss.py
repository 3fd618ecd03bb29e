"""DISTS (Ding et al. 2020) as a generator loss term: mean over the batch of
DISTS(sr, target), the structure and texture distance of
`sr_jax.metrics.DISTS` with the same weights as the metric (frozen network
'dists': torchvision's VGG16 plus DISTS' released alpha / beta, from
`python -m sr_jax.weights fetch dists`). Registered as 'dists'; no options.
The DISTS authors trained with it as a loss; it needs patches of at least
32 px (five L2-pooling stages).
"""
import jax
import jax.numpy as jnp

from sr_jax.losses import terms
from sr_jax.metrics import dists_metric


@terms.register('dists')
def make_dists_term(options, dtype) -> terms.LossTerm:
  del dtype  # DISTS runs in float32, like the metric.
  terms.unknown_options(options, ())
  module = dists_metric.DISTS()

  def random_init(key):
    x = jnp.zeros((1, 32, 32, 3), jnp.float32)
    return module.init(key, x, x)

  def fn(ctx: terms.LossContext):
    target = jax.lax.stop_gradient(ctx.target)
    return jnp.mean(module.apply(ctx.aux['dists'], ctx.sr, target))

  return terms.LossTerm(fn, log_name='dists',
                        frozen=(terms.FrozenNetwork('dists', random_init),))
