"""sr_jax.losses.low_frequency: the low-frequency term ignores high
frequencies."""
import jax.numpy as jnp
import numpy as np

from sr_jax import losses
from tests.helpers.losses import _context


def test_low_frequency_term_ignores_high_frequencies():
  rng = np.random.default_rng(4)
  target = rng.random((1, 20, 20, 3), np.float32)
  term = losses.LOSS_TERMS.get('low_frequency')({}, jnp.float32)
  # A zero-mean pattern of period 5 averages to 0 in every 5x5 window.
  pattern = np.tile(np.array([2, -1, -1, 1, -1], np.float32), 4)
  sr = target + 0.05 * pattern[None, :, None, None]
  ctx = _context(jnp.asarray(sr), None, jnp.asarray(target), None)
  assert float(term.fn(ctx)) < 1e-6
  ctx = _context(jnp.asarray(target + 0.05), None, jnp.asarray(target), None)
  np.testing.assert_allclose(float(term.fn(ctx)), 0.05, rtol=1e-4)
