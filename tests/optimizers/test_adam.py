"""sr_jax.optimizers.adam: its bias corrections to float32 accuracy, and
torch.optim.Adam's steps."""
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from sr_jax import optimizers
from sr_jax.optimizers.adam import bias_correction


# One torch thread: tests/conftest.py's one_torch_thread.
pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_adam_bias_correction_is_float32_accurate():
  """1 - b^t to ~1 ulp (torch computes it in float64); optax's float32
  1 - b^t is off by up to 2e-5 (relative) for b = 0.999."""
  t = np.arange(1, 100_001)
  for b in (0.9, 0.99, 0.999):
    exact = -np.expm1(t * np.log(b))
    ours = np.asarray(bias_correction(b, jnp.asarray(t, jnp.int32)),
                      np.float64)
    np.testing.assert_allclose(ours, exact, rtol=4e-7)
    if b > 0.9:
      naive = np.asarray(1 - jnp.float32(b) ** jnp.asarray(t, jnp.float32),
                         np.float64)
      assert np.max(np.abs(naive / exact - 1)) > 1e-6
  # Same state as optax.adam / adamw: checkpoints load either way.
  p = {'w': jnp.zeros((2, 3))}
  for name in ('adam', 'adamw'):
    tx, schedule = optimizers.build_optimizer(dict(name=name, lr=1e-3,
                                                   milestones=(5,)))
    assert (jax.tree.structure(tx.init(p)) ==
            jax.tree.structure(getattr(optax, name)(schedule).init(p)))


def test_adam_matches_torch_adam():
  """50 steps of sr_jax's Adam and torch.optim.Adam (b2 0.999, where
  optax's float32 bias correction is 2e-5 off) on the same gradients end
  within 3e-6 of the distance moved (optax.adam: 8e-6)."""
  rng = np.random.default_rng(0)
  p0 = rng.normal(size=(64,)).astype(np.float32)
  param = torch.nn.Parameter(torch.tensor(p0))
  opt = torch.optim.Adam([param], lr=1e-2, betas=(0.9, 0.999))
  tx, _ = optimizers.build_optimizer(dict(name='adam', lr=1e-2, b2=0.999))
  params, state = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  update = jax.jit(tx.update)
  for i in range(50):
    g = (rng.normal(size=(64,)) * (0.01 + i % 5)).astype(np.float32)
    param.grad = torch.tensor(g)
    opt.step()
    updates, state = update(jnp.asarray(g), state, params)
    params = params + updates
  expected = param.detach().numpy()
  moved = np.max(np.abs(expected - p0))
  assert np.max(np.abs(np.asarray(params) - expected)) < 3e-6 * moved
