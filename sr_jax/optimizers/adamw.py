"""AdamW (Loshchilov & Hutter 2019): decoupled weight decay."""
import optax

from sr_jax.optimizers.registry import register


@register('adamw')
def adamw(schedule, b1=0.9, b2=0.99, eps=1e-8, weight_decay=1e-2):
  """torch.optim.AdamW: the decay is lr * weight_decay * param per step."""
  return optax.adamw(schedule, b1=float(b1), b2=float(b2), eps=float(eps),
                     weight_decay=float(weight_decay))
