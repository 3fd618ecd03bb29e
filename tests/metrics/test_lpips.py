"""sr_jax.metrics.lpips: LPIPS against an independent PyTorch reference
(tests/helpers/torch_lpips.py), and its errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import metrics
from sr_jax.metrics import lpips as lpips_lib
from sr_jax.weights import lpips as convert_lib
from tests.helpers.torch_lpips import _reference
from tests.helpers.torch_lpips import _torchvision_and_lin


def rel_err(ours, ref) -> float:
  ours, ref = np.asarray(ours), np.asarray(ref)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.abs(ours - ref).max() / np.abs(ref).max())


def _images(shape, seed):
  rng = np.random.default_rng(seed)
  return (rng.random(shape, dtype=np.float32),
          rng.random(shape, dtype=np.float32))


@pytest.mark.slow
@pytest.mark.parametrize('net,shape', [('alex', (2, 37, 45, 3)),
                                       ('vgg', (2, 21, 27, 3))])
def test_lpips_matches_torch(net, shape):
  model = _reference(net)
  x, y = _images(shape, seed=1)
  with torch.no_grad():
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2)) * 2 - 1
    ty = torch.from_numpy(y.transpose(0, 3, 1, 2)) * 2 - 1
    ref, ref_layers = (t.numpy() for t in model(tx, ty))
  assert np.all(ref > 0)

  backbone, lin = _torchvision_and_lin(model)
  variables = convert_lib.convert_lpips(backbone, lin, net)
  ours = metrics.make_lpips_fn(variables, net)(x, y)
  assert ours.shape == (shape[0],)
  assert rel_err(ours, ref) < 1e-4
  ours_layers = jax.jit(lpips_lib.LPIPS(net=net, per_layer=True).apply)(
      variables, x, y)
  assert rel_err(ours_layers, ref_layers) < 1e-4

  if net == 'alex':
    # A whole lpips.LPIPS state dict (with its ScalingLayer buffers) converts
    # to the same variables.
    whole = convert_lib.convert_lpips(model.state_dict(), None, net)
    jax.tree.map(np.testing.assert_array_equal, whole, variables)


def test_identical_images_give_zero_and_distance_is_symmetric():
  x, y = _images((2, 33, 40, 3), seed=2)
  # Random weights in LPIPS's shapes (an eager init would be slow); lin
  # weights non-negative, as in trained LPIPS.
  abstract = jax.eval_shape(lambda: metrics.LPIPS(net='alex').init(
      jax.random.key(0), x, y))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(
      lambda a: np.abs(rng.standard_normal(a.shape)).astype(np.float32) * 0.1,
      abstract)
  fn = metrics.make_lpips_fn(variables, 'alex')
  np.testing.assert_array_equal(fn(x, x), np.zeros(2, np.float32))
  d_xy, d_yx = fn(x, y), fn(y, x)
  np.testing.assert_array_equal(d_xy, d_yx)
  assert np.all(np.asarray(d_xy) > 0)


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="net='squeeze'"):
    metrics.LPIPS(net='squeeze')
  x = jnp.zeros((1, 30, 40, 3))
  with pytest.raises(ValueError, match=r'H and W >= 31; got 30x40'):
    jax.eval_shape(lambda: metrics.LPIPS(net='alex').init(
        jax.random.key(0), x, x))
  fn = metrics.make_lpips_fn({}, 'alex')
  with pytest.raises(TypeError, match='divide uint8 images by 255'):
    fn(np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 32, 32, 3), np.uint8))
