"""Adam (Kingma & Ba 2015): BasicSR's default, betas (0.9, 0.99)."""
import optax

from sr_jax.optimizers.registry import register


@register('adam')
def adam(schedule, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.0):
  """torch.optim.Adam; weight_decay is L2 added to the gradient, as there."""
  tx = optax.adam(schedule, b1=float(b1), b2=float(b2), eps=float(eps))
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(float(weight_decay)), tx)
  return tx
