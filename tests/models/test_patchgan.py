"""sr_jax.models.patchgan: pix2pixHD's NLayerDiscriminator with spectral
norm, against PyTorch's spectral_norm on the same random weights; its 70x70
receptive field."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import models
from sr_jax.models.unet_sn import SPECTRAL

nn = torch.nn


def torch_patchgan(nf, num_layers):
  """pix2pixHD's NLayerDiscriminator, spectral norm instead of the norm."""
  sn = torch.nn.utils.spectral_norm
  layers, c_in = [], 3
  for i in range(num_layers + 1):
    c_out = min(nf * 2 ** i, 8 * nf)
    layers += [sn(nn.Conv2d(c_in, c_out, 4, 2 if i < num_layers else 1, 2)),
               nn.LeakyReLU(0.2)]
    c_in = c_out
  layers.append(sn(nn.Conv2d(c_in, 1, 4, 1, 2)))
  return nn.Sequential(*layers)


def _variables_from_torch(net):
  params, spectral = {}, {}
  convs = [m for m in net if isinstance(m, nn.Conv2d)]
  for i, conv in enumerate(convs):
    params[f'conv{i}'] = {
        'kernel': conv.weight_orig.detach().numpy().transpose(2, 3, 1, 0),
        'bias': conv.bias.detach().numpy()}
    # Copies: torch's training forward updates u and v in place.
    spectral[f'conv{i}'] = {'u': conv.weight_u.numpy().copy(),
                            'v': conv.weight_v.numpy().copy()}
  return {'params': params, SPECTRAL: spectral}


@pytest.mark.parametrize('train', [False, True])
def test_matches_torch_spectral_norm_patchgan(train):
  torch.manual_seed(0)
  net = torch_patchgan(8, 3)
  variables = _variables_from_torch(net)  # u, v before any iteration.
  x = np.random.default_rng(0).uniform(0, 1, (2, 3, 40, 36)).astype(
      np.float32)
  net.train(train)
  with torch.no_grad():
    expected = net(torch.from_numpy(x)).numpy().transpose(0, 2, 3, 1)
  d = models.get_discriminator('patchgan', num_feat=8, num_layers=3)
  if train:
    out, updated = d.apply(variables, x.transpose(0, 2, 3, 1), train=True,
                           mutable=[SPECTRAL])
    for i, conv in enumerate(m for m in net if isinstance(m, nn.Conv2d)):
      np.testing.assert_allclose(updated[SPECTRAL][f'conv{i}']['u'],
                                 conv.weight_u.numpy(), atol=1e-5)
  else:
    out = d.apply(variables, x.transpose(0, 2, 3, 1))
  assert out.shape == expected.shape == (2, 8, 8, 1)
  np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_each_logit_sees_70x70_pixels():
  d = models.get_discriminator('patchgan', num_feat=4)
  x = jnp.zeros((1, 128, 128, 3))
  variables = d.init(jax.random.key(0), x)
  grad = jax.grad(lambda x: d.apply(variables, x)[0, 8, 8, 0])(x)
  rows = np.nonzero(np.abs(np.asarray(grad)).sum(axis=(0, 2, 3)))[0]
  cols = np.nonzero(np.abs(np.asarray(grad)).sum(axis=(0, 1, 3)))[0]
  assert rows.max() - rows.min() + 1 <= 70
  assert cols.max() - cols.min() + 1 <= 70
  assert rows.max() - rows.min() + 1 >= 60  # Most of it, minus padding.
