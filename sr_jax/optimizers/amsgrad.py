"""AMSGrad (Reddi et al. 2018): Adam with the running maximum of the second
moment. SRResCycGAN trains with it (torch.optim.Adam(amsgrad=True)).

torch's form: m_t = b1 m + (1 - b1) g, v_t = b2 v + (1 - b2) g^2,
v_max = max(v_max, v_t), step = lr * (m_t / (1 - b1^t)) /
(sqrt(v_max / (1 - b2^t)) + eps). optax.amsgrad takes the maximum of the
bias-corrected v; `amsgrad` here follows torch, whose maximum is of the raw v
and is bias-corrected afterwards (tests/optimizers/test_optimizers.py checks it
against torch.optim.Adam(amsgrad=True)). The bias corrections are adam.py's
(float32, accurate to an ulp, as torch's float64 ones).
"""
from typing import NamedTuple

import jax
import jax.numpy as jnp
import optax

from sr_jax.optimizers.adam import bias_correction
from sr_jax.optimizers.registry import register


class AmsgradState(NamedTuple):
  count: jax.Array
  mu: optax.Updates
  nu: optax.Updates
  nu_max: optax.Updates


def scale_by_amsgrad_torch(b1=0.9, b2=0.999, eps=1e-8
                           ) -> optax.GradientTransformation:
  """The AMSGrad direction as torch.optim.Adam(amsgrad=True) computes it."""

  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return AmsgradState(jnp.zeros((), jnp.int32), zeros(), zeros(), zeros())

  def update(updates, state, params=None):
    del params
    count = state.count + 1
    mu = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, state.mu, updates)
    nu = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * jnp.square(g),
                      state.nu, updates)
    nu_max = jax.tree.map(jnp.maximum, state.nu_max, nu)
    c1, c2 = bias_correction(b1, count), bias_correction(b2, count)
    out = jax.tree.map(lambda m, v: (m / c1) / (jnp.sqrt(v / c2) + eps),
                       mu, nu_max)
    return out, AmsgradState(count, mu, nu, nu_max)

  return optax.GradientTransformation(init, update)


@register('amsgrad')
def amsgrad(schedule, b1=0.9, b2=0.999, eps=1e-8, weight_decay=0.0):
  """torch.optim.Adam(amsgrad=True); weight_decay is L2 on the gradient."""
  parts = []
  if weight_decay:
    parts.append(optax.add_decayed_weights(float(weight_decay)))
  parts += [scale_by_amsgrad_torch(float(b1), float(b2), float(eps)),
            optax.scale_by_learning_rate(schedule)]
  return optax.chain(*parts)
