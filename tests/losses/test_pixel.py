"""sr_jax.losses.pixel: L1 and MSE against hand-worked values."""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses


def test_pixel_losses_hand_values():
  pred = jnp.array([0.0, 0.5, 1.0]).reshape(1, 1, 3, 1)
  target = jnp.array([0.25, 0.5, 0.0]).reshape(1, 1, 3, 1)
  # |diffs| = 0.25, 0, 1 -> mean 1.25/3; squares 0.0625, 0, 1 -> 1.0625/3.
  np.testing.assert_allclose(losses.l1_loss(pred, target), 1.25 / 3, rtol=1e-6)
  np.testing.assert_allclose(losses.mse_loss(pred, target), 1.0625 / 3,
                             rtol=1e-6)
  with pytest.raises(ValueError, match='known'):
    losses.get_pixel_loss('l3')
