"""sr_jax.losses.dists_loss: the DISTS term is the DISTS metric, with
gradients."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from sr_jax.metrics import dists_metric as dists_lib
from tests.helpers.losses import _images


@pytest.mark.slow  # VGG16's gradient: ~20 s on 2 CPU cores.
def test_dists_term_equals_the_metric_and_has_gradients():
  term = losses.LOSS_TERMS.get('dists')({}, jnp.float32)
  (frozen,) = term.frozen
  assert frozen.name == 'dists'
  variables = frozen.random_init(jax.random.key(4))
  sr, target = _images(n=2)
  sr, target = (jax.image.resize(x, (2, 40, 40, 3), 'nearest')
                for x in (sr, target))

  def loss(x):
    return term.fn(losses.LossContext(
        sr=x, target=target, real=target, lr=x, key=jax.random.key(0),
        aux={'dists': variables}, apply=lambda name, y: y))

  expected = np.mean(np.asarray(
      dists_lib.make_dists_fn(variables)(sr, target)))
  np.testing.assert_allclose(float(loss(sr)), expected, rtol=1e-4)
  assert expected > 0
  grad = jax.grad(loss)(sr)
  assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).max()) > 0
