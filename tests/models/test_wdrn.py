"""sr_jax.models.wdrn: WDRN against a PyTorch module written here from the
same architecture (random weights, converted with wdrn.convert_torch); its
shapes, learned block weights and module names."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import models
from sr_jax import weights
from sr_jax.models import torch_layout
from sr_jax.models import wdrn

nn = torch.nn
F = torch.nn.functional

TINY = models.WDRN.TINY_KWARGS


class TorchDenseResidualBlock(nn.Module):
  def __init__(self, nf, num_layer, grow):
    super().__init__()
    self.num_layer = num_layer
    for j in range(1, num_layer + 1):
      setattr(self, f'conv{j}',
              nn.Conv2d(nf + (j - 1) * grow, grow, 3, padding=1))
    self.conv_fusion = nn.Conv2d(nf + num_layer * grow, nf, 1)

  def forward(self, x):
    features = [x]
    for j in range(1, self.num_layer + 1):
      conv = getattr(self, f'conv{j}')
      features.append(F.relu(conv(torch.cat(features, 1))))
    return x + self.conv_fusion(torch.cat(features, 1))


class TorchWDRN(nn.Module):
  def __init__(self, num_feat, num_block, num_layer, num_grow_ch, scale):
    super().__init__()
    nf = num_feat
    self.conv_first = nn.Conv2d(3, nf, 3, padding=1)
    self.prelu_first = nn.PReLU(nf)
    self.body = nn.ModuleList([
        TorchDenseResidualBlock(nf, num_layer, num_grow_ch)
        for _ in range(num_block)])
    self.block_weight = nn.Parameter(torch.ones(num_block))
    self.conv_fusion = nn.Conv2d(num_block * nf, nf, 1)
    self.conv_body = nn.Conv2d(nf, nf, 3, padding=1)
    self.upsample = nn.ModuleList([
        nn.Sequential(nn.Conv2d(nf, 4 * nf, 3, padding=1), nn.PixelShuffle(2),
                      nn.PReLU(nf))
        for _ in range(int(math.log2(scale)))])
    self.conv_last = nn.Conv2d(nf, 3, 3, padding=1)

  def forward(self, x):
    feat = self.prelu_first(self.conv_first(x))
    h, weighted = feat, []
    for i, block in enumerate(self.body):
      h = block(h)
      weighted.append(h * self.block_weight[i])
    feat = feat + self.conv_body(self.conv_fusion(torch.cat(weighted, 1)))
    for stage in self.upsample:
      feat = stage(feat)
    return self.conv_last(feat)


def _torch_reference(scale, seed=0, **kwargs):
  torch.manual_seed(seed)
  reference = TorchWDRN(scale=scale, **{**TINY, **kwargs}).eval()
  g = torch.Generator().manual_seed(seed + 1)
  with torch.no_grad():
    # Weights and slopes away from their initial 1.0 / 0.25, so a mix-up
    # of blocks or stages shows.
    reference.block_weight.copy_(
        torch.rand(reference.block_weight.shape, generator=g) + 0.5)
    for name, p in reference.named_parameters():
      if name.endswith('prelu_first.weight') or name.endswith('.2.weight'):
        p.copy_(torch.rand(p.shape, generator=g) * 0.5)
  return reference


@pytest.mark.parametrize('scale', [4, 1])
def test_matches_torch_on_random_weights(scale):
  reference = _torch_reference(scale)
  sd = {k: v.detach() for k, v in reference.state_dict().items()}
  assert models.arch_spec('wdrn').recognise(sd)
  variables, config = weights.convert_with_config('wdrn', sd)
  assert config == dict(num_in_ch=3, num_out_ch=3, scale=scale, **TINY)
  lr = np.random.default_rng(scale).uniform(0, 1, (2, 3, 6, 5)).astype(
      np.float32)
  with torch.no_grad():
    expected = reference(torch.from_numpy(lr)).numpy().transpose(0, 2, 3, 1)
  generator = models.get_generator('wdrn', **config)
  out = np.asarray(generator.apply(variables, lr.transpose(0, 2, 3, 1)))
  assert out.shape == (2, 6 * scale, 5 * scale, 3) == expected.shape
  assert np.abs(out - expected).max() / np.abs(expected).max() < 1e-5
  np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(variables['params']['block_weight'],
                                reference.block_weight.detach().numpy())
  assert models.arch_spec('wdrn').kwargs_from_params(
      variables['params']) == config


def test_default_size_parameter_count_matches_torch():
  generator = models.get_generator('wdrn')
  variables = jax.eval_shape(lambda: generator.init(
      jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
  count = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables))
  torch_model = TorchWDRN(num_feat=64, num_block=8, num_layer=4,
                          num_grow_ch=32, scale=4)
  assert count == sum(p.numel() for p in torch_model.parameters()) == 1_500_939


def test_converter_names_missing_and_misshaped_keys():
  sd = {k: v.detach() for k, v in _torch_reference(2).state_dict().items()}
  bad = dict(sd)
  del bad['body.1.conv2.bias']
  bad['stray.weight'] = torch.zeros(1)
  with pytest.raises(ValueError, match='body.1.conv2.bias') as e:
    weights.convert_state_dict('wdrn', bad)
  assert 'stray.weight' in str(e.value)
  with pytest.raises(ValueError, match='block_weight'):
    weights.convert_state_dict(
        'wdrn', {k: v for k, v in sd.items() if k != 'block_weight'})
  with pytest.raises(ValueError, match=r'block_weight: got \(3,\)'):
    weights.convert_state_dict('wdrn', {**sd, 'block_weight': torch.ones(3)})


@pytest.mark.slow
@pytest.mark.parametrize('scale', [2, 4])
def test_output_shapes(scale):
  generator = models.get_generator('wdrn', scale=scale, **TINY)
  x = jnp.zeros((2, 5, 7, 3))
  variables = generator.init(jax.random.key(0), x)
  out = generator.apply(variables, x, train=True)
  assert out.shape == (2, 5 * scale, 7 * scale, 3)
  assert out.dtype == jnp.float32
  assert len([k for k in variables['params']
              if k.startswith('upsample_') and k.endswith('_conv')]) == (
                  int(math.log2(scale)))


@pytest.mark.slow
def test_block_weights_start_at_one_and_are_used():
  generator = models.get_generator('wdrn', **TINY)
  x = jnp.asarray(np.random.default_rng(0).uniform(0, 1, (1, 6, 6, 3)),
                  jnp.float32)
  variables = generator.init(jax.random.key(1), x)
  weights = variables['params']['block_weight']
  assert weights.shape == (TINY['num_block'],)
  np.testing.assert_array_equal(weights, np.ones(TINY['num_block']))
  apply = jax.jit(generator.apply)
  out = apply(variables, x)
  for i in range(TINY['num_block']):
    changed = jax.tree.map(lambda a: a, variables)
    changed['params']['block_weight'] = weights.at[i].set(0.5)
    assert np.abs(apply(changed, x) - out).max() > 1e-4, i
  grad = jax.grad(lambda v: jnp.sum(apply(v, x) ** 2))(variables)
  assert np.all(np.abs(grad['params']['block_weight']) > 0)


def test_bad_settings_fail_at_construction():
  with pytest.raises(ValueError, match='scale 1'):
    models.get_generator('wdrn', scale=3)
  with pytest.raises(ValueError, match='num_block >= 1'):
    models.get_generator('wdrn', num_block=0)


def test_wdrn_module_names():
  # The converter's renaming covers every flax module path both ways.
  for torch_name, flax_name in [('body.3.conv2', 'body_3.conv2'),
                                ('upsample.1.0', 'upsample_1_conv'),
                                ('upsample.0.2', 'upsample_0_prelu'),
                                ('conv_fusion', 'conv_fusion')]:
    assert torch_layout.rename(torch_name, wdrn._TO_FLAX) == flax_name
    assert torch_layout.rename(flax_name, wdrn._TO_TORCH) == torch_name
