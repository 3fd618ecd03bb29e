"""sr_jax.optimizers.registry: the contract every registered optimizer keeps
(a new one is checked with no test to edit)."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sr_jax import optimizers


def _shapes(tree):
  return jax.tree.map(np.shape, tree)


@pytest.mark.parametrize('name', optimizers.OPTIMIZERS.names())
def test_optimizer_contract(name):
  tx, _ = optimizers.build_optimizer(dict(name=name, lr=1e-2))
  params = {'w': jnp.ones((3,)), 'b': jnp.zeros(())}
  grads = {'w': jnp.array([1.0, -1.0, 0.5]), 'b': jnp.array(2.0)}
  updates, _ = tx.update(grads, tx.init(params), params)
  new = optax.apply_updates(params, updates)
  assert _shapes(new) == _shapes(params)
  assert all(v.dtype == jnp.float32 for v in jax.tree.leaves(new))
  # A step against the gradient lowers <grads, params>.
  dot = lambda p: sum(jnp.vdot(g, v) for g, v in zip(
      jax.tree.leaves(grads), jax.tree.leaves(p)))
  assert float(dot(new)) < float(dot(params))
