"""sr_jax.degradations.frequency_split: DSGAN's low / high-pass filters
against PyTorch's (written from dsgan/model.py)."""
import jax.numpy as jnp
import numpy as np

from sr_jax.degradations import frequency_split
from tests.helpers.torch_dsgan import _nchw
from tests.helpers.torch_dsgan import _nhwc
from tests.helpers.torch_dsgan import nn
from tests.helpers.torch_dsgan import torch_high_pass


def test_frequency_filters_match_torch():
  x = np.random.default_rng(2).random((2, 9, 11, 3), np.float32)
  t = _nchw(x)
  np.testing.assert_allclose(
      np.asarray(frequency_split.high_pass(jnp.asarray(x))),
      _nhwc(torch_high_pass(t)), atol=1e-6)
  valid = nn.functional.avg_pool2d(t, 5, 1, 0)
  np.testing.assert_allclose(
      np.asarray(frequency_split.low_pass(jnp.asarray(x), pad=False)),
      _nhwc(valid), atol=1e-6)
  # A constant image has no high frequencies, borders included.
  flat = frequency_split.high_pass(jnp.full((1, 7, 7, 3), 0.3), 5)
  np.testing.assert_allclose(np.asarray(flat), 0.5, atol=1e-6)
