"""sr_jax.models.dsgan: DSGAN's generator and high-pass discriminator against
PyTorch modules written here from the published architecture (Fritsche et
al. 2019, dsgan/model.py), on random weights."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import models
from sr_jax import weights
from sr_jax.degradations import imresize
from tests.helpers.torch_dsgan import _nchw
from tests.helpers.torch_dsgan import _nhwc
from tests.helpers.torch_dsgan import torch_high_pass

nn = torch.nn


class TorchResBlock(nn.Module):
  def __init__(self, ch):
    super().__init__()
    self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
    self.prelu = nn.PReLU()
    self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

  def forward(self, x):
    return x + self.conv2(self.prelu(self.conv1(x)))


class TorchGenerator(nn.Module):
  def __init__(self, nf, blocks):
    super().__init__()
    self.block_input = nn.Sequential(nn.Conv2d(3, nf, 3, padding=1),
                                     nn.PReLU())
    self.res_blocks = nn.ModuleList([TorchResBlock(nf)
                                     for _ in range(blocks)])
    self.block_output = nn.Conv2d(nf, 3, 3, padding=1)

  def forward(self, x):
    x = self.block_input(x)
    for block in self.res_blocks:
      x = block(x)
    return torch.sigmoid(self.block_output(x))


class TorchDiscriminator(nn.Module):
  def __init__(self, nf):
    super().__init__()
    self.net = nn.Sequential(
        nn.Conv2d(3, nf, 5, padding=2), nn.LeakyReLU(0.2),
        nn.Conv2d(nf, 2 * nf, 5, padding=2), nn.BatchNorm2d(2 * nf),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * nf, 4 * nf, 5, padding=2), nn.BatchNorm2d(4 * nf),
        nn.LeakyReLU(0.2), nn.Conv2d(4 * nf, 1, 1))

  def forward(self, x):
    return self.net(torch_high_pass(x))


def _randomise(net, seed):
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in net.parameters():
      p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
  return net


@pytest.mark.parametrize('downscale', [1, 2])
def test_generator_matches_torch(downscale):
  net = _randomise(TorchGenerator(8, 2), 0).eval()
  sd = {k: v.numpy() for k, v in net.state_dict().items()}
  variables = weights.convert_state_dict('dsgan', sd, downscale=downscale)
  x = np.random.default_rng(0).random((2, 12, 16, 3), np.float32)
  module = models.get_generator('dsgan', num_feat=8, num_block=2,
                                downscale=downscale)
  ours = np.asarray(module.apply(variables, jnp.asarray(x)))
  lr = np.asarray(imresize(jnp.asarray(x), 1 / downscale)) if (
      downscale > 1) else x
  with torch.no_grad():
    ref = _nhwc(net(_nchw(lr)))
  assert ours.shape == (2, 12 // downscale, 16 // downscale, 3)
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


def test_generator_parameter_count_as_released():
  # DSGAN's generator (8 blocks of 64): 594,380 PyTorch parameters, with
  # one shared slope per PReLU; sr_jax keeps one slope per channel.
  torch_count = sum(p.numel() for p in TorchGenerator(64, 8).parameters())
  variables = jax.eval_shape(
      lambda: models.get_generator('dsgan').init(
          jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
  ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables))
  assert torch_count == 594_380
  assert ours == torch_count + 9 * 63  # 9 PReLUs, 63 more slopes each.


@pytest.mark.parametrize('train', [False, True])
def test_highpass_discriminator_matches_torch(train):
  net = _randomise(TorchDiscriminator(4), 1)
  with torch.no_grad():  # Non-trivial running statistics.
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.1, 0.1)
        m.running_var.uniform_(0.5, 1.5)
  net.train(train)
  x = np.random.default_rng(1).random((3, 10, 12, 3), np.float32)
  with torch.no_grad():
    ref = _nhwc(net(_nchw(x)))
  sd = {k: v.numpy() for k, v in net.state_dict().items()}
  convs = {0: 'conv0', 2: 'conv1', 5: 'conv2', 8: 'conv_last'}
  params, stats = {}, {}
  for i, name in convs.items():
    params[name] = {'kernel': sd[f'net.{i}.weight'].transpose(2, 3, 1, 0),
                    'bias': sd[f'net.{i}.bias']}
  for i, name in ((3, 'bn1'), (6, 'bn2')):
    params[name] = {'scale': sd[f'net.{i}.weight'],
                    'bias': sd[f'net.{i}.bias']}
    stats[name] = {'mean': sd[f'net.{i}.running_mean'],
                   'var': sd[f'net.{i}.running_var']}
  module = models.get_discriminator('dsgan_highpass', num_feat=4)
  variables = {'params': params, 'batch_stats': stats}
  if train:
    ours, _ = module.apply(variables, jnp.asarray(x), train=True,
                           mutable=['batch_stats'])
  else:
    ours = module.apply(variables, jnp.asarray(x))
  assert ours.shape == (3, 10, 12, 1)
  np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-5)
