"""DISTS in PyTorch, the reference of the DISTS tests.

Written from DISTS_pytorch 0.1 (torchvision's vgg16 `features` cut into
five stages at the ReLUs before the pools, each 2x2 max-pool replaced by
L2pooling: a depthwise 3x3 Hanning filter on x^2, stride 2, padding 1, then
sqrt(. + 1e-12); ImageNet mean / std buffers; stage 0 is the raw input;
alpha / beta normalised by their total sum; c1 = c2 = 1e-6) with its module
names, so its state_dict() has the keys of a real DISTS:
'stage{s}.{i}.weight', 'stage{s}.{i}.filter', 'alpha', ...
"""
import pytest
import torch

from sr_jax import weights
from sr_jax.metrics import dists_metric as dists_lib

tnn = torch.nn


F = torch.nn.functional


_VGG16_CFG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512,
              'M', 512, 512, 512, 'M']


# Stage s takes torchvision indices [start, end); 4, 9, 16 and 23 are the
# max-pools that L2 pooling replaces.
_STAGES = ((0, 4), (4, 9), (9, 16), (16, 23), (23, 30))


class TorchL2Pool(tnn.Module):

  def __init__(self, channels):
    super().__init__()
    a = torch.tensor([0.5, 1.0, 0.5])
    g = a[:, None] * a[None, :]
    self.register_buffer('filter',
                         (g / g.sum())[None, None].repeat(channels, 1, 1, 1))

  def forward(self, x):
    y = F.conv2d(x ** 2, self.filter, stride=2, padding=1,
                 groups=x.shape[1])
    return (y + 1e-12).sqrt()


class TorchDISTS(tnn.Module):
  """x, y [N, 3, H, W] in [0, 1] -> [N] DISTS."""

  def __init__(self, alpha, beta):
    super().__init__()
    features, cin = [], 3
    for v in _VGG16_CFG:
      if v == 'M':
        features.append(tnn.MaxPool2d(2, 2))
      else:
        features += [tnn.Conv2d(cin, v, 3, padding=1), tnn.ReLU()]
        cin = v
    for s, (start, end) in enumerate(_STAGES, 1):
      stage = tnn.Sequential()
      for i in range(start, end):
        layer = features[i]
        if isinstance(layer, tnn.MaxPool2d):
          layer = TorchL2Pool(features[i - 2].out_channels)
        stage.add_module(str(i), layer)
      setattr(self, f'stage{s}', stage)
    self.register_buffer(
        'mean', torch.tensor([0.485, 0.456, 0.406]).view(1, -1, 1, 1))
    self.register_buffer(
        'std', torch.tensor([0.229, 0.224, 0.225]).view(1, -1, 1, 1))
    self.chns = [3, 64, 128, 256, 512, 512]
    self.alpha = tnn.Parameter(torch.from_numpy(alpha).view(1, -1, 1, 1))
    self.beta = tnn.Parameter(torch.from_numpy(beta).view(1, -1, 1, 1))

  def stages(self, x):
    h = (x - self.mean) / self.std
    feats = [x]
    for s in range(1, 6):
      h = getattr(self, f'stage{s}')(h)
      feats.append(h)
    return feats

  def forward(self, x, y):
    fx, fy = self.stages(x), self.stages(y)
    total = self.alpha.sum() + self.beta.sum()
    alphas = torch.split(self.alpha / total, self.chns, dim=1)
    betas = torch.split(self.beta / total, self.chns, dim=1)
    d1 = d2 = 0
    for a, b, alpha, beta in zip(fx, fy, alphas, betas):
      ma, mb = a.mean([2, 3], keepdim=True), b.mean([2, 3], keepdim=True)
      s1 = (2 * ma * mb + 1e-6) / (ma ** 2 + mb ** 2 + 1e-6)
      va = ((a - ma) ** 2).mean([2, 3], keepdim=True)
      vb = ((b - mb) ** 2).mean([2, 3], keepdim=True)
      cov = (a * b).mean([2, 3], keepdim=True) - ma * mb
      s2 = (2 * cov + 1e-6) / (va + vb + 1e-6)
      d1 = d1 + (alpha * s1).sum(1, keepdim=True)
      d2 = d2 + (beta * s2).sum(1, keepdim=True)
    return (1 - (d1 + d2)).flatten()


# A fixture (tests/conftest.py loads this module as a plugin).


@pytest.fixture(scope='module')
def dists_reference():
  """The PyTorch DISTS with random (Kaiming-normal, so that deep features
  keep their scale) VGG16 weights and the released alpha / beta, and the
  converted variables."""
  released = dists_lib.released_alpha_beta()
  model = TorchDISTS(released['alpha'], released['beta'])
  gen = torch.Generator().manual_seed(0)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, tnn.Conv2d):
        m.weight.normal_(0, (2 / m.weight[0].numel()) ** 0.5, generator=gen)
        m.bias.normal_(0, 0.1, generator=gen)
  model.eval()
  return model, weights.convert_state_dict('dists', model.state_dict())
