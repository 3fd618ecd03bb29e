"""SRResCGAN's generator against a PyTorch module written here from the
published architecture (the released code's computation), on random
weights; its parameter count; the converter's key checks."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import models
from sr_jax import weights
from sr_jax.models import srrescgan

nn = torch.nn
F = torch.nn.functional

DB7 = srrescgan.DB7_DECOMPOSITION_HIGH.tolist()


def _weight_norm(module):
  # The released code's torch.nn.utils.weight_norm (keys weight_g / _v).
  return torch.nn.utils.weight_norm(module)


class TorchBlock(nn.Module):
  def __init__(self, feat, shortcut):
    super().__init__()
    self.shortcut = shortcut
    self.conv1 = _weight_norm(nn.Conv2d(feat, feat, 3))
    self.conv2 = _weight_norm(nn.Conv2d(feat, feat, 3))
    self.relu1 = nn.PReLU(feat, init=0.1)
    self.relu2 = nn.PReLU(feat, init=0.1)

  def forward(self, x):
    out = self.conv1(F.pad(self.relu1(x), (1, 1, 1, 1), 'reflect'))
    out = self.conv2(F.pad(self.relu2(out), (1, 1, 1, 1), 'reflect'))
    return x + out if self.shortcut else out


class TorchResCNet(nn.Module):
  def __init__(self, depth, feat):
    super().__init__()
    self.conv1 = _weight_norm(nn.Conv2d(3, feat, 5))
    self.layer1 = nn.Sequential(*[TorchBlock(feat, i > 0)
                                  for i in range(depth)])
    self.conv_out = _weight_norm(nn.ConvTranspose2d(feat, 3, 5, padding=2))

  def zeromean(self):
    # As released: overwritten by weight norm's pre-hook before each conv.
    for m in self.modules():
      if isinstance(m, nn.Conv2d):
        m.weight.data = m.weight.data - torch.mean(m.weight.data)

  def forward(self, x, stdn, alpha):
    self.zeromean()
    out = self.conv_out(self.layer1(self.conv1(F.pad(x, (2, 2, 2, 2),
                                                     'reflect'))))
    num = torch.sqrt(torch.tensor(float(out[0].numel()) - 1))
    eps = (torch.exp(alpha) * stdn * num)[:, None, None, None]
    norm = torch.norm(out.reshape(out.shape[0], -1), 2, dim=1).reshape(
        -1, 1, 1, 1)
    return out * (eps / torch.max(norm, eps))


def torch_wmad(x):
  if x.max() > 1:
    x = x / 255
  c = x.shape[1]
  f = torch.tensor(DB7)[None, None, :, None].repeat(c, 1, 1, 1)
  d = F.conv2d(F.pad(x, (0, 0, 7, 7), mode='reflect'), f, stride=(2, 1),
               groups=c)
  d = F.pad(d, (7, 7, 0, 0), mode='reflect')
  d = F.conv2d(d.transpose(2, 3), f, stride=(2, 1), groups=c)
  d = d.reshape(d.shape[0], c, -1)
  sigma = sum(torch.median(torch.abs(d[:, i]), dim=1)[0] / 0.6745
              for i in range(c))
  return sigma / c


class TorchGenerator(nn.Module):
  def __init__(self, scale, depth=5, feat=64):
    super().__init__()
    self.model = TorchResCNet(depth, feat)
    self.scale = scale
    self.alpha = nn.Parameter(torch.tensor([np.log(2.0)], dtype=torch.float32))

  def forward(self, x):
    x = F.interpolate(x, scale_factor=self.scale, mode='bilinear',
                      align_corners=False)
    sigma = torch_wmad(x) * 255.0
    return torch.clamp(x - self.model(x, sigma, self.alpha), 0.0, 255.0)


def _randomise(module, seed):
  g = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for name, p in module.named_parameters():
      scale = 0.5 if name.endswith('weight_g') else 0.1
      p.copy_(torch.randn(p.shape, generator=g) * scale
              + (1.0 if name.endswith('weight_g') else 0.0))
    module.alpha.fill_(0.3)


def test_released_size_has_380356_parameters():
  generator = models.get_generator('srrescgan', scale=4, depth=5)
  variables = jax.eval_shape(lambda: generator.init(
      jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
  assert sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables)) == (
      380_356)
  torch_count = sum(p.numel() for p in TorchGenerator(4).parameters())
  assert torch_count == 380_356


@pytest.mark.slow
@pytest.mark.parametrize('scale,depth,feat,shape', [
    (4, 5, 64, (2, 12, 10)),  # The released size.
    (3, 2, 16, (1, 5, 7)),  # Even wavelet counts: torch's lower median.
])
def test_matches_the_published_architecture_on_random_weights(
    scale, depth, feat, shape):
  reference = TorchGenerator(scale, depth, feat).eval()
  _randomise(reference, seed=depth)
  n, h, w = shape
  rng = np.random.default_rng(0)
  lr = rng.uniform(0, 255, (n, 3, h, w)).astype(np.float32)
  with torch.no_grad():
    expected = reference(torch.from_numpy(lr)).numpy().transpose(0, 2, 3, 1)
  sd = {k: v.detach() for k, v in reference.state_dict().items()}
  assert {'alpha', 'model.conv1.weight_g', 'model.conv1.weight_v',
          'model.layer1.0.relu1.weight'} <= set(sd)
  params = weights.convert_state_dict('srrescgan', sd)
  generator = models.get_generator('srrescgan', scale=scale, depth=depth,
                                   num_feat=feat)
  out = np.asarray(generator.apply(params, lr.transpose(0, 2, 3, 1) / 255.0))
  assert out.shape == (n, h * scale, w * scale, 3)
  # [0, 1] out, the released [0, 255] in the reference.
  np.testing.assert_allclose(out * 255.0, expected, rtol=1e-4, atol=2e-3)
  assert np.abs(out * 255.0 - expected).max() / np.abs(expected).max() < 1e-4


def test_lower_median_and_noise_estimate_match_torch():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(3, 10)).astype(np.float32)  # Even count.
  np.testing.assert_array_equal(
      srrescgan.lower_median(jnp.asarray(x), axis=1),
      torch.median(torch.from_numpy(x), dim=1)[0].numpy())
  img = rng.uniform(0, 255, (2, 3, 20, 18)).astype(np.float32)
  np.testing.assert_allclose(
      srrescgan.wmad_sigma(jnp.asarray(img.transpose(0, 2, 3, 1))),
      torch_wmad(torch.from_numpy(img)).numpy(), rtol=1e-5)


def test_converter_names_missing_and_unexpected_keys():
  sd = {k: v.detach() for k, v in TorchGenerator(4, 2, 8).state_dict().items()}
  assert models.arch_spec('srrescgan').recognise(sd)
  del sd['model.layer1.1.relu2.weight']
  sd['model.extra.weight'] = torch.zeros(1)
  sd['stray'] = torch.zeros(1)
  with pytest.raises(ValueError, match='layer1_1.relu2.negative_slope') as e:
    weights.convert_state_dict('srrescgan', sd)
  assert "'stray'" in str(e.value)


@pytest.mark.slow
def test_tiny_size_has_gradients_and_its_kwargs_read_off_the_params():
  generator = models.get_generator('srrescgan', scale=4,
                                   **models.arch_spec('srrescgan').tiny_kwargs)
  x = jnp.asarray(np.random.default_rng(2).uniform(0, 1, (2, 6, 5, 3)),
                  jnp.float32)
  variables = generator.init(jax.random.key(0), x)
  assert models.arch_spec('srrescgan').kwargs_from_params(
      variables['params']) == dict(depth=2, num_feat=8, num_in_ch=3)
  loss = lambda v: jnp.mean(jnp.abs(generator.apply(v, x) - 0.5))
  grads = jax.grad(loss)(variables)
  leaves = jax.tree.leaves(grads)
  assert all(np.isfinite(g).all() for g in leaves)
  assert np.abs(grads['params']['conv1']['v']).sum() > 0
  assert np.abs(grads['params']['alpha']).sum() > 0
