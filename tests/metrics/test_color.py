"""sr_jax.metrics.color: BT.601 Y from RGB."""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import metrics
from tests.helpers.metrics import _random_pair


@pytest.mark.parametrize('rgb, expected', [
    ((0, 0, 0), 16.0),
    # 65.481 + 128.553 = 194.034, + 24.966 = 219.000: white is exactly 235.
    ((255, 255, 255), 235.0),
    ((255, 0, 0), 16 + 65.481),  # 81.481
    ((0, 255, 0), 16 + 128.553),  # 144.553
    ((0, 0, 255), 16 + 24.966),  # 40.966
    # (0.2, 0.4, 0.6): 16 + 13.0962 + 51.4212 + 14.9796.
    ((51, 102, 153), 95.497),
])
def test_rgb_to_y_formula(rgb, expected):
  img = np.broadcast_to(np.asarray(rgb, np.uint8), (3, 5, 3))
  y = metrics.rgb_to_y(img)
  assert y.shape == (3, 5)
  assert y.dtype == np.float64
  np.testing.assert_allclose(y, expected, rtol=0, atol=1e-9)


def test_rgb_to_y_jax_matches_numpy_on_0_1_input():
  a, _ = _random_pair(0)
  y_np = metrics.rgb_to_y(a)
  y_jax = metrics.rgb_to_y_jax(jnp.asarray(a / 255.0, jnp.float32))
  np.testing.assert_allclose(np.asarray(y_jax), y_np, atol=1e-4)
