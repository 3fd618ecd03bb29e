"""Shapes, parameter counts, layer selection and dtypes of sr_jax.models."""
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models
from sr_jax.models import layers

TINY_RRDB = dict(num_feat=8, num_block=1, num_grow_ch=4)
TINY_SRRESNET = dict(num_feat=8, num_block=1)


def abstract_variables(module, *shape, **kwargs):
  return jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros(shape), **kwargs))


def random_variables(module, *shape, seed=0, **kwargs):
  """Random variables with the right shapes, without compiling the init.

  Random init under jit is slow to compile on CPU (threefry per parameter);
  shapes from eval_shape plus numpy noise test the same forward pass.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if path[-1].key == 'var':  # BatchNorm variance must be positive.
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    return (0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(
      fill, abstract_variables(module, *shape, **kwargs))


def count(tree):
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def image(*shape, seed=1):
  return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, shape),
                     jnp.float32)


# ---------------------------------------------------------------- RRDBNet --

@pytest.mark.parametrize('scale,h,w', [(1, 12, 16), (2, 10, 14), (4, 7, 9),
                                       (8, 7, 9)])
def test_rrdbnet_output_shape(scale, h, w):
  model = models.get_generator('rrdbnet', scale=scale, **TINY_RRDB)
  x = image(2, h, w, 3)
  out = model.apply(random_variables(model, 1, h, w, 3), x, train=False)
  assert out.shape == (2, h * scale, w * scale, 3)
  assert out.dtype == jnp.float32
  assert np.isfinite(np.asarray(out)).all()


def test_rrdbnet_unshuffle_needs_divisible_input():
  model = models.get_generator('rrdbnet', scale=2, **TINY_RRDB)
  with pytest.raises(ValueError, match='divisible by 2'):
    abstract_variables(model, 1, 7, 9, 3)


def test_rrdbnet_default_param_count_and_names():
  variables = abstract_variables(models.get_generator('rrdbnet'), 1, 8, 8, 3)
  params = variables['params']
  assert count(params) == 16_697_987
  assert set(variables) == {'params'}
  assert sorted(params) == sorted(
      ['conv_first', 'conv_body', 'conv_up1', 'conv_up2', 'conv_hr',
       'conv_last'] + [f'body_{i}' for i in range(23)])
  assert sorted(params['body_22']) == ['rdb1', 'rdb2', 'rdb3']
  assert params['body_22']['rdb3']['conv5']['kernel'].shape == (3, 3, 192, 64)
  assert all(x.dtype == jnp.float32 for x in jax.tree.leaves(params))


def test_rrdbnet_scale_specific_layers():
  x8 = abstract_variables(models.RRDBNet(scale=8, **TINY_RRDB), 1, 4, 4, 3)
  assert 'conv_up3' in x8['params']
  x1 = abstract_variables(models.RRDBNet(scale=1, **TINY_RRDB), 1, 4, 4, 3)
  # Pixel-unshuffle by 4 turns 3 channels into 48 (BasicSR's num_in_ch * 16).
  assert x1['params']['conv_first']['kernel'].shape == (3, 3, 48, 8)
  with pytest.raises(ValueError, match='scale'):
    abstract_variables(models.RRDBNet(scale=3, **TINY_RRDB), 1, 4, 4, 3)


@pytest.mark.parametrize('mode,scale', [('bicubic', 4), ('bilinear', 2),
                                        ('nearest', 4)])
def test_rrdbnet_upsample_skip_adds_torch_interpolation(mode, scale):
  import torch  # pylint: disable=g-import-not-at-top
  plain = models.RRDBNet(scale=scale, **TINY_RRDB)
  skip = models.RRDBNet(scale=scale, upsample_skip=mode, **TINY_RRDB)
  variables = random_variables(plain, 1, 6, 10, 3)
  # The option adds no parameters: the same variables drive both.
  assert jax.tree.structure(variables) == jax.tree.structure(
      abstract_variables(skip, 1, 6, 10, 3))
  x = image(2, 6, 10, 3)
  added = skip.apply(variables, x) - plain.apply(variables, x)
  ref = torch.nn.functional.interpolate(
      torch.from_numpy(np.array(x)).permute(0, 3, 1, 2),
      scale_factor=scale, mode=mode,
      align_corners=None if mode == 'nearest' else False)
  np.testing.assert_allclose(np.asarray(added),
                             ref.permute(0, 2, 3, 1).numpy(), atol=2e-6)


def test_rrdbnet_upsample_skip_rejects_unknown_mode():
  with pytest.raises(ValueError, match="upsample_skip must be .*'lanczos'"):
    abstract_variables(models.RRDBNet(upsample_skip='lanczos', **TINY_RRDB),
                       1, 4, 4, 3)


@pytest.mark.slow
def test_rrdbnet_init_follows_basicsr():
  model = models.RRDBNet(num_feat=16, num_block=1, num_grow_ch=16)
  # The non-partitionable threefry compiles ~10x faster on CPU; the values
  # differ but the distributions under test do not.
  with jax.threefry_partitionable(False):
    params = jax.jit(model.init)(jax.random.key(0),
                                 jnp.zeros((1, 4, 4, 3)))['params']
  rdb = params['body_0']['rdb1']
  for i, fan_in in [(1, 9 * 16), (5, 9 * 80)]:
    kernel = np.asarray(rdb[f'conv{i}']['kernel'])
    # kaiming_normal(fan_in) * 0.1 (BasicSR's default_init_weights).
    np.testing.assert_allclose(kernel.std(), 0.1 * math.sqrt(2 / fan_in),
                               rtol=0.15)
    assert not np.asarray(rdb[f'conv{i}']['bias']).any()
  # Other convs: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
  for name, fan_in in [('conv_first', 27), ('conv_body', 144)]:
    bound = 1 / math.sqrt(fan_in)
    kernel = np.asarray(params[name]['kernel'])
    bias = np.asarray(params[name]['bias'])
    assert np.abs(kernel).max() <= bound and np.abs(bias).max() <= bound
    np.testing.assert_allclose(kernel.std(), bound / math.sqrt(3), rtol=0.15)


# --------------------------------------------------------------- SRResNet --

@pytest.mark.parametrize('scale', [2, 4])
def test_srresnet_output_shape_and_batch_stats(scale):
  model = models.get_generator('srresnet', scale=scale, **TINY_SRRESNET)
  variables = random_variables(model, 1, 7, 9, 3)
  x = image(2, 7, 9, 3)
  out = model.apply(variables, x, train=False)
  assert out.shape == (2, 7 * scale, 9 * scale, 3)
  assert out.dtype == jnp.float32
  out_train, updates = model.apply(variables, x, train=True,
                                   mutable=['batch_stats'])
  assert out_train.shape == out.shape
  old = variables['batch_stats']['bn_body']['mean']
  new = updates['batch_stats']['bn_body']['mean']
  assert not np.allclose(old, new)  # Running statistics moved.


def test_srresnet_param_count_matches_formula():
  nf, nb, c = 64, 16, 3
  conv = lambda k, cin, cout, bias=True: k * k * cin * cout + bias * cout
  expected = (conv(9, c, nf) + nf                             # head + PReLU
              + nb * (2 * conv(3, nf, nf, False) + 2 * 2 * nf  # convs + BN
                      + nf)                                    # block PReLU
              + conv(3, nf, nf, False) + 2 * nf                # conv_body+BN
              + 2 * (conv(3, nf, 4 * nf) + nf)                 # x4 = 2 ups
              + conv(9, nf, c))                                # tail
  variables = abstract_variables(models.get_generator('srresnet'), 1, 8, 8, 3)
  assert count(variables['params']) == expected
  # BN running mean and var of 2 * nb + 1 BatchNorms.
  assert count(variables['batch_stats']) == (2 * nb + 1) * 2 * nf
  prelu = variables['params']['body_0']['prelu']['negative_slope']
  assert prelu.shape == (nf,)


def test_srresnet_rejects_scale_3():
  with pytest.raises(ValueError, match='scale'):
    abstract_variables(models.SRResNet(scale=3, **TINY_SRRESNET), 1, 4, 4, 3)


# ------------------------------------------------------- VGG discriminator --

@pytest.mark.slow
@pytest.mark.parametrize('size,stages', [(32, 3), (128, 5)])
def test_vgg_style_shapes(size, stages):
  model = models.get_discriminator('vgg_style', num_feat=4, input_size=size)
  variables = random_variables(model, 1, size, size, 3)
  params = variables['params']
  expected_convs = {f'conv{i}_{j}' for i in range(stages) for j in (0, 1)}
  assert {k for k in params if k.startswith('conv')} == expected_convs
  assert 'bn0_0' not in variables['batch_stats']  # conv0_0 has no BN...
  assert 'bias' in params['conv0_0'] and 'bias' not in params['conv0_1']
  last_ch = 4 * min(2**(stages - 1), 8)
  assert params['linear1']['kernel'].shape == (last_ch * 4 * 4, 100)
  logits = model.apply(variables, image(2, size, size, 3), train=False)
  assert logits.shape == (2, 1) and logits.dtype == jnp.float32


def test_vgg_style_128_matches_basicsr_channels():
  params = abstract_variables(models.VGGStyleDiscriminator(), 1, 128, 128, 3)
  kernels = {k: v['kernel'].shape for k, v in params['params'].items()
             if not k.startswith('bn')}
  assert sorted(params['batch_stats']) == sorted(
      ['bn0_1'] + [f'bn{i}_{j}' for i in range(1, 5) for j in (0, 1)])
  assert kernels['conv0_0'] == (3, 3, 3, 64)
  assert kernels['conv1_0'] == (3, 3, 64, 128)
  assert kernels['conv3_1'] == (4, 4, 512, 512)
  assert kernels['conv4_1'] == (4, 4, 512, 512)
  assert kernels['linear1'] == (512 * 16, 100)
  assert kernels['linear2'] == (100, 1)


def test_vgg_style_errors():
  model = models.get_discriminator('vgg_style', num_feat=4, input_size=32)
  with pytest.raises(ValueError, match='input_size'):
    abstract_variables(model, 1, 64, 64, 3)
  for bad in (100, 4, 0):
    with pytest.raises(ValueError, match='4 \\* 2\\^k'):
      models.get_discriminator('vgg_style', input_size=bad)


def test_vgg_style_without_bn():
  model = models.VGGStyleDiscriminator(num_feat=4, input_size=16, use_bn=False)
  variables = random_variables(model, 1, 16, 16, 3)
  assert 'batch_stats' not in variables
  assert all('bias' in v for v in variables['params'].values())
  x = image(3, 16, 16, 3)
  # Without BN each sample's logit depends on that sample only.
  np.testing.assert_allclose(model.apply(variables, x, train=True)[:1],
                             model.apply(variables, x[:1], train=True),
                             rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------ VGG19 --

def test_vgg19_layer_selection_and_depth():
  model = models.VGG19(layers=('conv1_2', 'relu1_2', 'pool1', 'relu2_1'))
  variables = random_variables(model, 1, 11, 13, 3)
  # Only as deep as needed: conv1_1, conv1_2, conv2_1.
  assert sorted(variables['params']) == ['conv1_1', 'conv1_2', 'conv2_1']
  feats = model.apply(variables, image(2, 11, 13, 3))
  assert sorted(feats) == ['conv1_2', 'pool1', 'relu1_2', 'relu2_1']
  conv, relu = np.asarray(feats['conv1_2']), np.asarray(feats['relu1_2'])
  assert conv.shape == (2, 11, 13, 64) and (conv < 0).any()
  np.testing.assert_array_equal(relu, np.maximum(conv, 0))
  # 2x2 max-pool with floor, as torch.nn.MaxPool2d(2, 2).
  pooled = relu[:, :10, :12].reshape(2, 5, 2, 6, 2, 64).max(axis=(2, 4))
  np.testing.assert_array_equal(np.asarray(feats['pool1']), pooled)
  assert feats['relu2_1'].shape == (2, 5, 6, 128)


def test_vgg19_input_normalisation():
  model = models.VGG19(layers=('conv1_1',))
  model_pm1 = models.VGG19(layers=('conv1_1',), range_norm=True)
  raw = models.VGG19(layers=('conv1_1',), use_input_norm=False)
  variables = random_variables(model, 1, 5, 5, 3)
  x = image(1, 5, 5, 3)
  normalised = ((x - jnp.array([0.485, 0.456, 0.406]))
                / jnp.array([0.229, 0.224, 0.225]))
  a = model.apply(variables, x)['conv1_1']
  np.testing.assert_allclose(a,
                             model_pm1.apply(variables, 2 * x - 1)['conv1_1'],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(a, raw.apply(variables, normalised)['conv1_1'],
                             rtol=1e-5, atol=1e-5)


def test_vgg19_all_layers_and_unknown_names():
  variables = abstract_variables(models.VGG19(layers=('pool5',)), 1, 32, 32, 3)
  assert count(variables['params']) == 20_024_384  # torchvision's features.
  with pytest.raises(ValueError, match='relu5_4'):  # Lists the valid names.
    models.VGG19(layers=('conv5_5',))
  with pytest.raises(ValueError, match='sequence'):
    models.VGG19(layers='conv5_4')


# --------------------------------------------------------- registry, dtype --

def test_registry():
  # Every registered model is checked by tests/test_registries.py; here,
  # that lookups work and that an unknown name lists the known ones.
  assert isinstance(models.get_generator('rrdbnet'), models.RRDBNet)
  with pytest.raises(ValueError, match='Known: ' + re.escape(
      ', '.join(models.GENERATORS.names())) + r'\.'):
    models.get_generator('esrgan')
  with pytest.raises(ValueError, match='Known: ' + re.escape(
      ', '.join(models.DISCRIMINATORS.names())) + r'\.'):
    models.get_discriminator('nlayer')


def test_all_lists_every_exported_class():
  classes = {name for name, value in vars(models).items()
             if isinstance(value, type) and not name.startswith('_')
             and value.__module__.startswith('sr_jax.')}
  assert classes <= set(models.__all__)
  assert all(hasattr(models, name) for name in models.__all__)


@pytest.mark.slow
@pytest.mark.parametrize('name,kwargs,shape', [
    ('rrdbnet', TINY_RRDB, (2, 7, 9, 3)),
    ('srresnet', TINY_SRRESNET, (2, 7, 9, 3)),
    ('vgg_style', dict(num_feat=4, input_size=16), (2, 16, 16, 3)),
])
def test_bfloat16_compute(name, kwargs, shape):
  get = models.get_discriminator if name == 'vgg_style' else \
      models.get_generator
  f32 = get(name, **kwargs)
  bf16 = get(name, dtype='bfloat16', **kwargs)
  assert bf16.dtype == jnp.bfloat16
  variables = random_variables(f32, *shape)
  # Parameters are float32 whatever the compute dtype.
  assert all(x.dtype == jnp.float32 for x in
             jax.tree.leaves(abstract_variables(bf16, *shape)))
  x = image(*shape)
  ref = f32.apply(variables, x, train=False)
  out = bf16.apply(variables, x, train=False)
  assert out.dtype == jnp.float32 and out.shape == ref.shape
  np.testing.assert_allclose(out, ref, rtol=0.1, atol=0.05 * np.abs(ref).max())


def test_pixel_shuffle_inverts_unshuffle():
  x = image(2, 6, 8, 5)
  np.testing.assert_array_equal(
      layers.pixel_shuffle(layers.pixel_unshuffle(x, 2), 2), x)
