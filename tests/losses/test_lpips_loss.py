"""sr_jax.losses.lpips_loss: the LPIPS term is the LPIPS metric."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from sr_jax.metrics import lpips as lpips_lib
from tests.helpers.losses import _images


@pytest.mark.slow
def test_lpips_term_equals_the_metric():
  term = losses.LOSS_TERMS.get('lpips')({'net': 'vgg'}, jnp.float32)
  (frozen,) = term.frozen
  assert frozen.name == 'lpips_vgg'
  variables = frozen.random_init(jax.random.key(3))
  variables = jax.tree.map(jnp.abs, variables)  # LPIPS lins are >= 0.
  sr, target = _images(n=2)
  sr, target = (jax.image.resize(x, (2, 32, 32, 3), 'nearest')
                for x in (sr, target))
  ctx = losses.LossContext(sr=sr, target=target, real=target, lr=sr,
                           key=jax.random.key(0),
                           aux={'lpips_vgg': variables},
                           apply=lambda name, x: x)
  expected = np.mean(np.asarray(
      lpips_lib.make_lpips_fn(variables, 'vgg')(sr, target)))
  np.testing.assert_allclose(float(term.fn(ctx)), expected, rtol=1e-4)
  assert expected > 0
