"""LPIPS in PyTorch, the reference of the LPIPS tests.

Written from the `lpips` package v0.1 (ScalingLayer, torchvision alexnet /
vgg16 `features` cut into five slices, channel-wise unit normalisation,
squared difference, 1x1 'lin' convs behind a Dropout, spatial mean, sum)
with its module names, so its state_dict() has the keys of a real
lpips.LPIPS: 'net.slice{s}.{i}.weight', 'lin{k}.model.1.weight'. Weights
are random (lin weights non-negative, as trained LPIPS's are).
"""
import re

import torch

tnn = torch.nn


# torchvision's `features` layouts and the lpips slices (end indices).
_ALEX = [('C', 3, 64, 11, 4, 2), 'R', 'M', ('C', 64, 192, 5, 1, 2), 'R', 'M',
         ('C', 192, 384, 3, 1, 1), 'R', ('C', 384, 256, 3, 1, 1), 'R',
         ('C', 256, 256, 3, 1, 1), 'R', 'M']


_ALEX_SLICES = (2, 5, 8, 10, 12)


_VGG16_CFG = [64, 64, 'M', 128, 128, 'M', 256, 256, 256, 'M', 512, 512, 512,
              'M', 512, 512, 512, 'M']


_VGG_SLICES = (4, 9, 16, 23, 30)


def _torch_features(net):
  layers = []
  if net == 'alex':
    for spec in _ALEX:
      if spec == 'R':
        layers.append(tnn.ReLU(inplace=True))
      elif spec == 'M':
        layers.append(tnn.MaxPool2d(kernel_size=3, stride=2))
      else:
        _, cin, cout, k, s, p = spec
        layers.append(tnn.Conv2d(cin, cout, k, stride=s, padding=p))
    return tnn.Sequential(*layers), _ALEX_SLICES, (64, 192, 384, 256, 256)
  cin = 3
  for v in _VGG16_CFG:
    if v == 'M':
      layers.append(tnn.MaxPool2d(kernel_size=2, stride=2))
    else:
      layers += [tnn.Conv2d(cin, v, 3, padding=1), tnn.ReLU(inplace=True)]
      cin = v
  return tnn.Sequential(*layers), _VGG_SLICES, (64, 128, 256, 512, 512)


class TorchScaling(tnn.Module):

  def __init__(self):
    super().__init__()
    self.register_buffer(
        'shift', torch.tensor([-.030, -.088, -.188])[None, :, None, None])
    self.register_buffer(
        'scale', torch.tensor([.458, .448, .450])[None, :, None, None])

  def forward(self, x):
    return (x - self.shift) / self.scale


class TorchSlices(tnn.Module):

  def __init__(self, features, ends):
    super().__init__()
    start = 0
    for s, end in enumerate(ends, 1):
      piece = tnn.Sequential()
      for i in range(start, end):
        piece.add_module(str(i), features[i])
      setattr(self, f'slice{s}', piece)
      start = end

  def forward(self, x):
    outs = []
    for s in range(1, 6):
      x = getattr(self, f'slice{s}')(x)
      outs.append(x)
    return outs


class TorchLin(tnn.Module):

  def __init__(self, channels):
    super().__init__()
    self.model = tnn.Sequential(tnn.Dropout(),
                                tnn.Conv2d(channels, 1, 1, bias=False))

  def forward(self, x):
    return self.model(x)


class TorchLPIPS(tnn.Module):
  """x, y [N, 3, H, W] in [-1, 1] -> ([N] distances, [N, 5] per layer)."""

  def __init__(self, net):
    super().__init__()
    features, ends, channels = _torch_features(net)
    self.scaling_layer = TorchScaling()
    self.net = TorchSlices(features, ends)
    for k, ch in enumerate(channels):
      setattr(self, f'lin{k}', TorchLin(ch))
      with torch.no_grad():
        getattr(self, f'lin{k}').model[1].weight.uniform_(0.0, 1.0 / ch)
    # lpips 0.1.4 also registers them as a ModuleList: each lin weight then
    # appears twice in state_dict(), as 'lin{k}...' and 'lins.{k}...'.
    self.lins = tnn.ModuleList([getattr(self, f'lin{k}') for k in range(5)])

  @staticmethod
  def _normalize(f, eps=1e-10):
    return f / (torch.sqrt(torch.sum(f ** 2, dim=1, keepdim=True)) + eps)

  def forward(self, x, y):
    fx = self.net(self.scaling_layer(x))
    fy = self.net(self.scaling_layer(y))
    per_layer = []
    for k in range(5):
      diff = (self._normalize(fx[k]) - self._normalize(fy[k])) ** 2
      per_layer.append(getattr(self, f'lin{k}')(diff).mean(dim=(1, 2, 3)))
    per_layer = torch.stack(per_layer, dim=1)
    return per_layer.sum(dim=1), per_layer


def _reference(net, seed=0):
  torch.manual_seed(seed)
  return TorchLPIPS(net).eval()


def _torchvision_and_lin(model):
  """Splits an lpips state dict into torchvision's and the lin file's."""
  backbone, lin = {}, {}
  for key, value in model.state_dict().items():
    if m := re.match(r'net\.slice\d\.(\d+)\.(weight|bias)$', key):
      backbone[f'features.{m.group(1)}.{m.group(2)}'] = value
    elif re.match(r'lin\d', key):
      lin[key] = value
  # torchvision files also hold the classifier, which LPIPS does not use.
  backbone['classifier.1.weight'] = torch.zeros(4, 9216)
  return backbone, lin
