"""UNetDiscriminatorSN against a PyTorch reference written from BasicSR's."""
import copy
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax.models import unet_sn

F = torch.nn.functional

NUM_FEAT = 8
SHAPE = (2, 32, 48, 3)  # NHWC; not square, to catch an H / W mix-up.
TOL = 1e-4


class TorchUNetDiscriminatorSN(torch.nn.Module):
  """The published architecture (basicsr/archs/discriminator_arch.py)."""

  def __init__(self, num_in_ch, num_feat=64, skip_connection=True):
    super().__init__()
    self.skip_connection = skip_connection
    sn = torch.nn.utils.spectral_norm
    conv = torch.nn.Conv2d
    nf = num_feat
    self.conv0 = conv(num_in_ch, nf, 3, 1, 1)
    self.conv1 = sn(conv(nf, nf * 2, 4, 2, 1, bias=False))
    self.conv2 = sn(conv(nf * 2, nf * 4, 4, 2, 1, bias=False))
    self.conv3 = sn(conv(nf * 4, nf * 8, 4, 2, 1, bias=False))
    self.conv4 = sn(conv(nf * 8, nf * 4, 3, 1, 1, bias=False))
    self.conv5 = sn(conv(nf * 4, nf * 2, 3, 1, 1, bias=False))
    self.conv6 = sn(conv(nf * 2, nf, 3, 1, 1, bias=False))
    self.conv7 = sn(conv(nf, nf, 3, 1, 1, bias=False))
    self.conv8 = sn(conv(nf, nf, 3, 1, 1, bias=False))
    self.conv9 = conv(nf, 1, 3, 1, 1)

  def forward(self, x):
    act = lambda y: F.leaky_relu(y, negative_slope=0.2)
    up = lambda y: F.interpolate(y, scale_factor=2, mode='bilinear',
                                 align_corners=False)
    x0 = act(self.conv0(x))
    x1 = act(self.conv1(x0))
    x2 = act(self.conv2(x1))
    x3 = act(self.conv3(x2))
    x4 = act(self.conv4(up(x3)))
    if self.skip_connection:
      x4 = x4 + x2
    x5 = act(self.conv5(up(x4)))
    if self.skip_connection:
      x5 = x5 + x1
    x6 = act(self.conv6(up(x5)))
    if self.skip_connection:
      x6 = x6 + x0
    out = act(self.conv7(x6))
    out = act(self.conv8(out))
    return self.conv9(out)


def nchw(x):
  return torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def run_once(fn, *args):
  """fn(*args) compiled whole, without XLA's backend optimisation passes.

  Each program here runs once, and on CPU those passes cost more than they
  save: about half the compile time (random init most of all).
  """
  compiled = jax.jit(fn).lower(*args).compile(
      {'xla_backend_optimization_level': 0})
  return compiled(*args)


def max_diff(a, b):
  return float(np.max(np.abs(np.asarray(a) - np.asarray(b))))


@pytest.fixture(scope='module')
def torch_model():
  """Random torch weights, u / v moved off their init by train-mode passes."""
  torch.manual_seed(0)
  model = TorchUNetDiscriminatorSN(3, NUM_FEAT).train()
  with torch.no_grad():
    for _ in range(3):
      model(torch.rand(2, 3, 16, 16))
  return model


@pytest.fixture(scope='module')
def x():
  return np.random.default_rng(1).uniform(size=SHAPE).astype(np.float32)


def test_eval_matches_torch(torch_model, x):
  model = copy.deepcopy(torch_model).eval()
  variables, kwargs = unet_sn.convert_torch(model.state_dict())
  assert kwargs == dict(num_in_ch=3, num_feat=NUM_FEAT, skip_connection=True)
  assert set(variables) == {'params', 'spectral'}
  module = unet_sn.UNetDiscriminatorSN(**kwargs)
  out, updates = run_once(
      functools.partial(module.apply, mutable=['spectral']), variables, x)
  # Eval mode leaves u and v as they were.
  assert jax.tree.all(jax.tree.map(np.array_equal, updates['spectral'],
                                   variables['spectral']))
  with torch.no_grad():
    expected = nhwc(model(nchw(x)))
  assert out.shape == SHAPE[:3] + (1,) and out.dtype == jnp.float32
  diff = max_diff(out, expected)
  print(f'eval max abs diff {diff:.3g}, max |logit| '
        f'{np.abs(expected).max():.3g}')
  assert diff < TOL


@pytest.mark.slow
def test_train_step_matches_torch(torch_model, x):
  """One train-mode pass: same logits, same new u / v, same gradients.

  The loss weights each logit differently so the gradients see the layout.
  """
  model = copy.deepcopy(torch_model).train()
  variables, kwargs = unet_sn.convert_torch(model.state_dict())
  module = unet_sn.UNetDiscriminatorSN(**kwargs)

  def loss(params):
    out, updates = module.apply(
        {'params': params, 'spectral': variables['spectral']}, x, train=True,
        mutable=['spectral'])
    weights = jnp.arange(out.size).reshape(out.shape) / out.size
    return jnp.sum(out * weights), (out, updates['spectral'])

  (_, (out, spectral)), grads = run_once(
      jax.value_and_grad(loss, has_aux=True), variables['params'])

  out_t = model(nchw(x))
  # Element k of [N, H, W, 1] is element k of [N, 1, H, W]: same weights.
  weights = torch.arange(out_t.numel()).reshape(out_t.shape).float()
  (out_t * weights / out_t.numel()).sum().backward()
  diffs = {'out': max_diff(out, nhwc(out_t))}
  sd = model.state_dict()
  for i in range(1, 9):
    name = f'conv{i}'
    diffs[f'{name}.u'] = max_diff(spectral[name]['u'], sd[f'{name}.weight_u'])
    diffs[f'{name}.v'] = max_diff(spectral[name]['v'], sd[f'{name}.weight_v'])
    for leaf in 'uv':  # Moved by the power iteration, still unit vectors.
      assert not np.array_equal(spectral[name][leaf],
                                variables['spectral'][name][leaf])
      np.testing.assert_allclose(np.linalg.norm(spectral[name][leaf]), 1.0,
                                 rtol=1e-5)
  for i in range(10):
    name = f'conv{i}'
    conv = getattr(model, name)
    weight = conv.weight_orig if 1 <= i <= 8 else conv.weight
    grad_t = weight.grad.numpy().transpose(2, 3, 1, 0)
    scale = max(float(np.abs(grad_t).max()), 1e-6)
    diffs[f'{name}.grad (rel)'] = max_diff(grads[name]['kernel'],
                                           grad_t) / scale
  print('train-step max abs diffs:',
        {k: f'{v:.3g}' for k, v in diffs.items()})
  assert max(diffs.values()) < TOL, diffs


def test_upsample_matches_torch_and_jax_image():
  x = np.random.default_rng(2).normal(size=(2, 5, 7, 3)).astype(np.float32)
  out = unet_sn.upsample_bilinear_2x(jnp.asarray(x))
  expected = nhwc(F.interpolate(nchw(x), scale_factor=2, mode='bilinear',
                                align_corners=False))
  assert out.shape == (2, 10, 14, 3)
  assert max_diff(out, expected) < 1e-6
  resized = jax.image.resize(jnp.asarray(x), (2, 10, 14, 3), 'bilinear')
  assert max_diff(out, resized) < 1e-5


def test_tiny_init_and_run():
  module = unet_sn.UNetDiscriminatorSN(**unet_sn.TINY_KWARGS)
  x = np.random.default_rng(3).uniform(size=(1, 16, 8, 3)).astype(np.float32)

  def init_and_run(key):
    variables = module.init(key, x)
    return variables, module.apply(variables, x)

  variables, out = run_once(init_and_run, jax.random.key(0))
  assert out.shape == (1, 16, 8, 1) and out.dtype == jnp.float32
  assert np.all(np.isfinite(out))
  assert set(variables) == {'params', 'spectral'}
  spectral = variables['spectral']
  assert sorted(spectral) == [f'conv{i}' for i in range(1, 9)]
  assert sorted(variables['params']['conv0']) == ['bias', 'kernel']
  assert sorted(variables['params']['conv1']) == ['kernel']
  assert variables['params']['conv1']['kernel'].shape == (4, 4, 4, 8)
  assert spectral['conv1']['u'].shape == (8,)
  assert spectral['conv1']['v'].shape == (4 * 4 * 4,)
  for leaf in jax.tree.leaves(spectral):
    np.testing.assert_allclose(np.linalg.norm(leaf), 1.0, rtol=1e-5)
  # Train mode must be allowed to store the updated u, v.
  with pytest.raises(ValueError, match="mutable=\\['spectral'\\]"):
    jax.eval_shape(functools.partial(module.apply, train=True), variables, x)


@pytest.mark.parametrize('shape', [(1, 12, 16, 3), (1, 16, 20, 3)])
def test_size_not_multiple_of_8_raises(shape):
  module = unet_sn.UNetDiscriminatorSN(**unet_sn.TINY_KWARGS)
  with pytest.raises(ValueError, match='multiples of 8'):
    jax.eval_shape(lambda: module.init(jax.random.key(0), jnp.zeros(shape)))


def test_convert_errors_name_keys(torch_model):
  sd = torch_model.state_dict()
  missing = {k: v for k, v in sd.items() if k != 'conv3.weight_u'}
  with pytest.raises(ValueError, match=r"missing keys: \['conv3.weight_u'\]"):
    unet_sn.convert_torch(missing)
  with pytest.raises(ValueError, match="unexpected keys: \\['conv10.weight'"):
    unet_sn.convert_torch(dict(sd, **{'conv10.weight': sd['conv9.weight']}))
  bad = dict(sd, **{'conv4.weight_orig': sd['conv4.weight_orig'][:, :-1]})
  with pytest.raises(ValueError, match=r'conv4.weight_orig: got \(32, 63'):
    unet_sn.convert_torch(bad)
  removed = {k: v for k, v in sd.items() if not k.startswith('conv2.')}
  removed['conv2.weight'] = sd['conv2.weight_orig']
  with pytest.raises(ValueError, match='spectral norm removed'):
    unet_sn.convert_torch(removed)


def test_convert_wrapped_and_recognise(torch_model):
  sd = torch_model.state_dict()
  assert unet_sn.recognise(sd)
  assert unet_sn.recognise({'params': sd})
  assert not unet_sn.recognise({'conv0_0.weight': 0, 'linear1.weight': 0})
  variables, kwargs = unet_sn.convert_torch({'params': sd},
                                            skip_connection=False)
  assert kwargs['skip_connection'] is False
  np.testing.assert_array_equal(variables['spectral']['conv5']['v'],
                                sd['conv5.weight_v'].numpy())
  np.testing.assert_array_equal(
      variables['params']['conv5']['kernel'],
      sd['conv5.weight_orig'].numpy().transpose(2, 3, 1, 0))


@pytest.mark.slow
def test_public_converter_and_registry(torch_model, x):
  """The API the checks use: get_discriminator('unet_sn', ...) and
  sr_jax.convert.convert_state_dict('unet_sn', sd) with the SN state."""
  from sr_jax import convert  # pylint: disable=g-import-not-at-top
  from sr_jax import models  # pylint: disable=g-import-not-at-top
  model = copy.deepcopy(torch_model).eval()
  variables = convert.convert_state_dict('unet_sn', model.state_dict())
  assert set(variables) == {'params', 'spectral'}
  assert set(variables['spectral']['conv1']) == {'u', 'v'}
  module = models.get_discriminator('unet_sn', num_in_ch=3,
                                    num_feat=NUM_FEAT, skip_connection=True)
  with torch.no_grad():
    expected = nhwc(model(nchw(x)))
  got = np.asarray(module.apply(variables, x, train=False))
  assert max_diff(got, expected) < TOL
