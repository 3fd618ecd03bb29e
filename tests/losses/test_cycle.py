"""sr_jax.losses.cycle: the cycle and down-pixel terms against their formulas
in numpy."""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from tests.helpers.losses import _context


def test_cycle_and_down_pixel_terms_follow_their_formulas():
  rng = np.random.default_rng(3)
  sr, target = rng.random((2, 2, 8, 8, 3), np.float32)
  lr = rng.random((2, 4, 4, 3), np.float32)
  down = lambda x: x[:, ::2, ::2] * 0.9  # Any 'G_LR'.
  calls = []

  def apply(name, x):
    calls.append(name)
    return down(x)

  ctx = _context(jnp.asarray(sr), jnp.asarray(lr), jnp.asarray(target), apply)
  cycle = losses.LOSS_TERMS.get('cycle')({}, jnp.float32)
  down_pix = losses.LOSS_TERMS.get('down_pixel')(
      {'network': 'g_lr', 'criterion': 'mse'}, jnp.float32)
  np.testing.assert_allclose(float(cycle.fn(ctx)),
                             np.mean(np.abs(down(sr) - lr)), rtol=1e-6)
  np.testing.assert_allclose(float(down_pix.fn(ctx)),
                             np.mean((down(target) - lr)**2), rtol=1e-6)
  assert calls == ['generator_lr', 'g_lr']
  assert cycle.networks == ('generator_lr',)
  with pytest.raises(ValueError, match='unknown option'):
    losses.LOSS_TERMS.get('cycle')({'netwrk': 'x'}, jnp.float32)
