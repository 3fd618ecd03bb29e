"""sr_jax.losses.regularisers: the contract every registered regulariser
keeps (a new one is checked with no test to edit)."""
import jax
import jax.numpy as jnp
import pytest

from sr_jax import losses


@pytest.mark.parametrize('name', losses.REGULARISERS.names())
def test_regulariser_contract(name):
  regulariser = losses.REGULARISERS.get(name)({})
  assert isinstance(regulariser, losses.Regulariser) and regulariser.log_name
  k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
  context = losses.RegulariserContext(
      critic=lambda x: jnp.sum(x ** 2, axis=(1, 2, 3))[:, None],
      real=jax.random.uniform(k1, (2, 8, 8, 3)),
      fake=jax.random.uniform(k2, (2, 8, 8, 3)), key=k3)
  value = jax.jit(lambda: regulariser.fn(context))()
  assert value.shape == () and value.dtype == jnp.float32
  assert bool(jnp.isfinite(value))
