"""RMSprop (Tieleman & Hinton 2012), as torch.optim.RMSprop computes it: the
original WGAN's critic optimizer (Arjovsky et al. 2017, lr 5e-5).

torch's form (centered=False, momentum=0): v = alpha v + (1 - alpha) g^2,
p -= lr g / (sqrt(v) + eps), v starting at 0. optax.rmsprop's default puts
eps inside the square root; here it is outside, as torch.
"""
import optax

from sr_jax.optimizers.registry import register


@register('rmsprop')
def rmsprop(schedule, alpha=0.99, eps=1e-8, weight_decay=0.0):
  """torch.optim.RMSprop; weight_decay is L2 added to the gradient."""
  tx = optax.rmsprop(schedule, decay=float(alpha), eps=float(eps),
                     eps_in_sqrt=False)
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(float(weight_decay)), tx)
  return tx
