"""AdamW (Loshchilov & Hutter 2019): decoupled weight decay."""
import optax

from sr_jax.optimizers.adam import scale_by_adam_torch
from sr_jax.optimizers.registry import register


@register('adamw')
def adamw(schedule, b1=0.9, b2=0.99, eps=1e-8, weight_decay=1e-2):
  """torch.optim.AdamW: the decay is lr * weight_decay * param per step.
  optax.adamw's chain and state, with adam.py's bias corrections."""
  return optax.chain(scale_by_adam_torch(float(b1), float(b2), float(eps)),
                     optax.add_decayed_weights(float(weight_decay)),
                     optax.scale_by_learning_rate(schedule))
