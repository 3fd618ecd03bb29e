"""sr_jax.losses.tv: total variation against numpy."""
import numpy as np

from sr_jax import losses
from tests.helpers.losses import _images


def test_tv_loss_against_numpy():
  pred, target = (np.asarray(x) for x in _images(seed=3))
  dh = lambda x: x[:, :, 1:] - x[:, :, :-1]
  dv = lambda x: x[:, 1:] - x[:, :-1]
  expected = (np.mean(np.abs(dh(pred) - dh(target))) +
              np.mean(np.abs(dv(pred) - dv(target))))
  np.testing.assert_allclose(float(losses.tv_loss(pred, target)), expected,
                             rtol=1e-6)
  assert float(losses.tv_loss(pred, pred + 0.25)) < 1e-6  # Shift-invariant.
