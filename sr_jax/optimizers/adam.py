"""Adam (Kingma & Ba 2015): BasicSR's default, betas (0.9, 0.99).

The bias corrections 1 - b^t are computed as torch.optim.Adam's are, to
float32 precision: optax's `scale_by_adam` evaluates 1 - b^t in float32,
where b^t near 1 keeps few digits of the difference (2e-6 relative for
b2 = 0.99 in the first hundred steps: every update of a step a little too
large or small, the same way for every parameter). torch computes them in
float64; over a 300-step L1 run that alone moved the loss 6e-5 (relative)
away from BasicSR's, 30x the float32 drift of the PyTorch run itself
(tests/optimizers/test_adam.py). `bias_correction` evaluates -expm1(t log b),
accurate to about an ulp.
"""
import math

import jax
import jax.numpy as jnp
import optax

from sr_jax.optimizers.registry import register


def bias_correction(decay: float, count: jax.Array) -> jax.Array:
  """1 - decay^count in float32 to ~1 ulp (count: the step, from 1)."""
  if decay == 0.0:
    return jnp.ones((), jnp.float32)
  log_decay = jnp.float32(math.log(decay))
  return -jnp.expm1(count.astype(jnp.float32) * log_decay)


def scale_by_adam_torch(b1: float = 0.9, b2: float = 0.999,
                        eps: float = 1e-8) -> optax.GradientTransformation:
  """optax.scale_by_adam (same state, moments and formula
  m_hat / (sqrt(v_hat) + eps)) with accurate bias corrections."""

  def init(params):
    zeros = lambda: jax.tree.map(jnp.zeros_like, params)
    return optax.ScaleByAdamState(count=jnp.zeros([], jnp.int32),
                                  mu=zeros(), nu=zeros())

  def update(updates, state, params=None):
    del params
    mu = optax.tree.update_moment(updates, state.mu, b1, 1)
    nu = optax.tree.update_moment_per_elem_norm(updates, state.nu, b2, 2)
    count = optax.safe_increment(state.count)
    c1, c2 = bias_correction(b1, count), bias_correction(b2, count)
    out = jax.tree.map(lambda m, v: (m / c1) / (jnp.sqrt(v / c2) + eps),
                       mu, nu)
    return out, optax.ScaleByAdamState(count=count, mu=mu, nu=nu)

  return optax.GradientTransformation(init, update)


@register('adam')
def adam(schedule, b1=0.9, b2=0.99, eps=1e-8, weight_decay=0.0):
  """torch.optim.Adam; weight_decay is L2 added to the gradient, as there.
  The state is optax.adam's (checkpoints of either load in the other)."""
  tx = optax.chain(scale_by_adam_torch(float(b1), float(b2), float(eps)),
                   optax.scale_by_learning_rate(schedule))
  if weight_decay:
    tx = optax.chain(optax.add_decayed_weights(float(weight_decay)), tx)
  return tx
