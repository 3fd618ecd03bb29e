"""sr_jax.losses.r1: R1 on an analytic critic."""
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import losses
from tests.helpers.losses import _images


def test_r1_on_an_analytic_critic():
  """C(x) = sum(w * x) + b has grad w at every x: R1 = sum(w^2)."""
  w = jax.random.normal(jax.random.key(2), (16, 16, 3))
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 0.5
  real, _ = _images()
  np.testing.assert_allclose(float(losses.r1_penalty(critic, real)),
                             float(jnp.sum(w * w)), rtol=1e-5)
  # A quadratic critic C(x) = sum(x^2): grad 2x, R1 = mean_i 4 ||x_i||^2.
  quad = lambda x: jnp.sum(x * x, axis=(1, 2, 3))
  expected = np.mean(4 * np.sum(np.asarray(real) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(float(losses.r1_penalty(quad, real)), expected,
                             rtol=1e-5)
