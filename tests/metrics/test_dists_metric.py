"""sr_jax.metrics.dists_metric: DISTS against a PyTorch reference
(tests/helpers/torch_dists.py) on random VGG16 weights and the real
alpha / beta; the registered uint8 metric; the released alpha / beta."""

import jax
import numpy as np
import pytest
import torch

from sr_jax.metrics import dists_metric as dists_lib
from sr_jax.metrics import registry

tnn = torch.nn


def errors(ours, ref) -> tuple[float, float]:
  """(max abs error, max abs error / max |ref|)."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  err = float(np.abs(ours - ref).max())
  return err, err / float(np.abs(ref).max())


def _pair(shape, seed):
  """x and a distorted copy y (noise and a shift), in [0, 1]."""
  rng = np.random.default_rng(seed)
  x = rng.random(shape, dtype=np.float32)
  y = np.clip(0.7 * x + 0.3 * rng.random(shape, dtype=np.float32) + 0.05,
              0, 1).astype(np.float32)
  return x, y


def _torch(model, x, y):
  with torch.no_grad():
    return model(*(torch.from_numpy(a.transpose(0, 3, 1, 2))
                   for a in (x, y))).numpy()


@pytest.mark.slow
@pytest.mark.parametrize('shape', [(2, 48, 40, 3), (1, 37, 29, 3)])
def test_dists_matches_torch(dists_reference, shape):
  model, variables = dists_reference
  x, y = _pair(shape, seed=shape[1])
  ref = _torch(model, x, y)
  assert np.all((ref > 0.01) & (ref < 1))
  ours = dists_lib.make_dists_fn(variables)(x, y)
  abs_err, rel_err = errors(ours, ref)
  assert rel_err < 1e-4, (abs_err, rel_err)
  # The one-pass module (x and y in one batch) agrees too.
  both = jax.jit(dists_lib.DISTS().apply)(variables, x, y)
  assert errors(both, ref)[1] < 1e-4
  # Each stage's features (odd sizes: L2 pooling rounds up).
  with torch.no_grad():
    ref_feats = model.stages(torch.from_numpy(x.transpose(0, 3, 1, 2)))
  feats = jax.jit(lambda v, a: dists_lib.DISTS().apply(
      v, a, method=dists_lib.DISTS.features))(variables, x)
  for ours_f, ref_f in zip(feats, ref_feats):
    assert errors(ours_f, ref_f.numpy().transpose(0, 2, 3, 1))[1] < 1e-5


def test_uint8_metric_is_registered_and_lower_is_better(dists_reference):
  model, variables = dists_reference
  rng = np.random.default_rng(7)
  hr = rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)
  noisy = np.clip(hr + rng.normal(0, 25, hr.shape), 0, 255).astype(np.uint8)
  d = dists_lib.dists(noisy, hr, variables)
  ref = _torch(model, *(a[None].astype(np.float32) / 255 for a in (noisy,
                                                                   hr)))
  assert errors(d, ref[0])[1] < 1e-4
  assert abs(dists_lib.dists(hr, hr, variables)) < 1e-5
  assert dists_lib.dists(hr, noisy, variables) == pytest.approx(d, rel=1e-5)
  metric = registry.METRICS.get('dists')
  assert (metric.frozen, metric.higher_is_better) == ('dists', False)
  assert metric.fn(noisy, hr, 4, variables=variables) == d
  with pytest.raises(TypeError, match='uint8'):
    dists_lib.dists(noisy / 255.0, hr, variables)


def test_released_alpha_beta():
  """The package data is DISTS_pytorch 0.1's weights.pt (see its NOTICE):
  1475 non-negative weights each, summing to 1 together."""
  released = dists_lib.released_alpha_beta()
  alpha, beta = released['alpha'], released['beta']
  assert alpha.shape == beta.shape == (1475,)
  assert alpha.dtype == beta.dtype == np.float32
  assert np.all(alpha > 0) and np.all(beta >= 0)
  assert float(alpha.sum(dtype=np.float64)) == pytest.approx(0.8760496,
                                                              abs=1e-6)
  assert float(beta.sum(dtype=np.float64)) == pytest.approx(0.1239502,
                                                             abs=1e-6)
  assert int(np.sum(beta == 0)) == 1063
  assert (dists_lib.ALPHA_BETA_FILE.parent /
          'dists_alpha_beta.NOTICE').is_file()
