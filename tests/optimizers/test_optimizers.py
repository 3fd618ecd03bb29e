"""sr_jax.optimizers.build_optimizer: AMSGrad and RMSprop against
torch.optim, optimizers by name and their errors, weight clipping."""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import optimizers


@pytest.mark.parametrize('entry,make_torch', [
    (dict(name='amsgrad', lr=1e-2, b1=0.9, b2=0.99, weight_decay=1e-3),
     lambda torch, p: torch.optim.Adam([p], lr=1e-2, betas=(0.9, 0.99),
                                       eps=1e-8, amsgrad=True,
                                       weight_decay=1e-3)),
    # The original WGAN's critic optimizer.
    (dict(name='rmsprop', lr=1e-2),
     lambda torch, p: torch.optim.RMSprop([p], lr=1e-2, alpha=0.99,
                                          eps=1e-8)),
])
def test_optimizer_matches_torch(entry, make_torch):
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  p0 = rng.normal(size=(5,)).astype(np.float32)
  grads = [rng.normal(size=(5,)).astype(np.float32) * s
           for s in (1.0, 0.1, 3.0, 0.01, 1.0, 0.2)]
  param = torch.nn.Parameter(torch.tensor(p0))
  opt = make_torch(torch, param)
  tx, _ = optimizers.build_optimizer(entry)
  params = jnp.asarray(p0)
  state = tx.init(params)
  for g in grads:
    opt.zero_grad()
    param.grad = torch.tensor(g)
    opt.step()
    updates, state = tx.update(jnp.asarray(g), state, params)
    params = params + updates
  np.testing.assert_allclose(np.asarray(params), param.detach().numpy(),
                             rtol=1e-5, atol=1e-6)


def test_optimizers_by_name_and_clear_errors():
  assert {'adam', 'adamw', 'amsgrad', 'rmsprop'} <= set(
      optimizers.OPTIMIZERS.names())
  tx, schedule = optimizers.build_optimizer(
      dict(name='adamw', lr=1e-3, milestones=(2,), gamma=0.1,
           clip_grad_norm=1.0))
  assert float(schedule(1)) == pytest.approx(1e-3)
  assert float(schedule(2)) == pytest.approx(1e-4)
  params = jnp.ones(3)
  updates, _ = tx.update(jnp.full(3, 100.0), tx.init(params), params)
  # Clipped to norm 1 before Adam: the first AdamW step is ~lr per element.
  assert np.all(np.abs(np.asarray(updates)) < 2e-3)
  with pytest.raises(ValueError, match="where.*'sgdx'"):
    optimizers.build_optimizer(dict(name='sgdx', lr=1.0), 'where')
  with pytest.raises(ValueError, match='bogus'):
    optimizers.build_optimizer(dict(name='adam', lr=1.0, bogus=2))


def test_weight_clip_bounds_the_parameters_after_each_update():
  tx, _ = optimizers.build_optimizer(dict(name='adam', lr=0.5,
                                          weight_clip=0.01))
  params = {'w': jnp.array([0.005, -0.5, 0.3, 0.0])}
  state = tx.init(params)
  grads = {'w': jnp.array([-1.0, 1.0, -1.0, 1e-3])}
  updates, state = tx.update(grads, state, params)
  new = np.asarray(params['w'] + updates['w'])
  np.testing.assert_allclose(new, [0.01, -0.01, 0.01, -0.01], atol=1e-7)
  with pytest.raises(ValueError, match='weight_clip'):
    optimizers.build_optimizer(dict(name='adam', lr=0.5, weight_clip=-1))
