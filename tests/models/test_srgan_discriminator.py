"""sr_jax.models.srgan_discriminator: the SRGAN discriminator against a
PyTorch module written from the paper (Ledig et al. 2017, Fig. 4) on the
same random weights."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import models


class TorchSRGANDiscriminator(torch.nn.Module):
  """Fig. 4: k3n64s1, then (k3, n, s) with BN for n in 64 .. 512, s 2 / 1,
  dense 1024, LeakyReLU(0.2), dense 1."""

  def __init__(self, nf, size, dense):
    super().__init__()
    layers = [torch.nn.Conv2d(3, nf, 3, 1, 1), torch.nn.LeakyReLU(0.2)]
    chans = nf
    for mult, stride in ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1),
                         (8, 2)):
      layers += [torch.nn.Conv2d(chans, nf * mult, 3, stride, 1, bias=False),
                 torch.nn.BatchNorm2d(nf * mult), torch.nn.LeakyReLU(0.2)]
      chans = nf * mult
    self.features = torch.nn.Sequential(*layers)
    self.dense1 = torch.nn.Linear(chans * (size // 16) ** 2, dense)
    self.dense2 = torch.nn.Linear(dense, 1)

  def forward(self, x):
    x = self.features(x).flatten(1)
    return self.dense2(torch.nn.functional.leaky_relu(self.dense1(x), 0.2))


def _to_flax(model):
  """Copies torch weights into sr_jax's names by hand (no converter)."""
  params, stats = {}, {}
  convs = [m for m in model.features if isinstance(m, torch.nn.Conv2d)]
  bns = [m for m in model.features if isinstance(m, torch.nn.BatchNorm2d)]
  t = lambda v: v.detach().numpy()
  for i, conv in enumerate(convs):
    params[f'conv{i}'] = {'kernel': t(conv.weight).transpose(2, 3, 1, 0)}
    if conv.bias is not None:
      params[f'conv{i}']['bias'] = t(conv.bias)
  for i, bn in enumerate(bns, start=1):
    params[f'bn{i}'] = {'scale': t(bn.weight), 'bias': t(bn.bias)}
    stats[f'bn{i}'] = {'mean': t(bn.running_mean), 'var': t(bn.running_var)}
  for name in ('dense1', 'dense2'):
    layer = getattr(model, name)
    params[name] = {'kernel': t(layer.weight).T, 'bias': t(layer.bias)}
  return {'params': params, 'batch_stats': stats}


@pytest.mark.slow
def test_srgan_discriminator_matches_torch():
  torch.manual_seed(0)
  model = TorchSRGANDiscriminator(8, 32, 16)
  with torch.no_grad():  # Non-trivial running statistics.
    for bn in model.features:
      if isinstance(bn, torch.nn.BatchNorm2d):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
        bn.weight.uniform_(0.5, 1.5)
  x = np.random.default_rng(0).random((2, 32, 32, 3), np.float32)
  module = models.get_discriminator('srgan', num_feat=8, input_size=32,
                                    dense_features=16)
  expected_shapes = jax.tree.map(
      np.shape, module.init(jax.random.key(0), jnp.zeros((1, 32, 32, 3))))
  variables = _to_flax(model)
  assert jax.tree.map(np.shape, variables) == expected_shapes
  model.eval()
  with torch.no_grad():
    want = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  got = np.asarray(module.apply(variables, x, train=False))
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
  model.train()
  with torch.no_grad():
    want_train = model(torch.from_numpy(x).permute(0, 3, 1, 2)).numpy()
  got_train, _ = module.apply(variables, x, train=True,
                              mutable=['batch_stats'])
  np.testing.assert_allclose(np.asarray(got_train), want_train, rtol=1e-4,
                             atol=1e-5)
  with pytest.raises(ValueError, match='multiple of 16'):
    models.get_discriminator('srgan', input_size=40)
