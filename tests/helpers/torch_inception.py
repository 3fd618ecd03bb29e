"""FID's InceptionV3 in PyTorch, the reference of the FID tests, and their
comparison helpers.

Written from pytorch-fid 0.3.0's FID InceptionV3 (torchvision's Inception3
blocks with FIDInceptionA / C / E_1 average-pooling without the padding and
FIDInceptionE_2 max-pooling; input resized to 299x299 bilinearly,
align_corners=False, and mapped to [-1, 1]; the mean of Mixed_7c) with
torchvision's module names, so its state_dict() has the keys of
pt_inception-2015-12-05-6726825d.pth (including the unused 1008-way 'fc').
Weights are random, BatchNorm running statistics included.
"""
import numpy as np
import pytest
import torch

from sr_jax import weights

tnn = torch.nn


F = torch.nn.functional


class TorchBasicConv(tnn.Module):
  """Conv without bias, BatchNorm(eps=1e-3), ReLU ('conv' / 'bn' keys)."""

  def __init__(self, cin, cout, kernel, stride=1, padding=0):
    super().__init__()
    self.conv = tnn.Conv2d(cin, cout, kernel, stride=stride, padding=padding,
                           bias=False)
    self.bn = tnn.BatchNorm2d(cout, eps=0.001)

  def forward(self, x):
    return F.relu(self.bn(self.conv(x)))


def _avg_pool(x):
  return F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)


class TorchBlock(tnn.Module):
  """An Inception block from a table of branches: each branch is a list of
  (name, cout, kernel, stride, padding) convs, optionally preceded by a
  pool ('avg', 'max3x3s1' or 'max3x3s2' with no convs); a conv entry that
  is a pair of convs runs both on the same input and concatenates them."""

  def __init__(self, cin, branches):
    super().__init__()
    self.branches = []
    for pool, convs in branches:
      chain, c = [], cin
      for spec in convs:
        pair = spec if isinstance(spec[0], tuple) else (spec,)
        for name, cout, kernel, stride, padding in pair:
          self.add_module(name, TorchBasicConv(c, cout, kernel, stride,
                                               padding))
        chain.append([name for name, *_ in pair])
        c = sum(cout for _, cout, *_ in pair)
      self.branches.append((pool, chain))

  def forward(self, x):
    outs = []
    for pool, chain in self.branches:
      y = x
      if pool == 'avg':
        y = _avg_pool(y)
      elif pool == 'max3x3s1':
        y = F.max_pool2d(y, 3, stride=1, padding=1)
      elif pool == 'max3x3s2':
        y = F.max_pool2d(y, 3, stride=2)
      for names in chain:
        y = torch.cat([getattr(self, n)(y) for n in names], 1)
      outs.append(y)
    return torch.cat(outs, 1)


def _block_a(cin, pool_features):
  return TorchBlock(cin, [
      (None, [('branch1x1', 64, 1, 1, 0)]),
      (None, [('branch5x5_1', 48, 1, 1, 0), ('branch5x5_2', 64, 5, 1, 2)]),
      (None, [('branch3x3dbl_1', 64, 1, 1, 0),
              ('branch3x3dbl_2', 96, 3, 1, 1),
              ('branch3x3dbl_3', 96, 3, 1, 1)]),
      ('avg', [('branch_pool', pool_features, 1, 1, 0)])])


def _block_b(cin):
  return TorchBlock(cin, [
      (None, [('branch3x3', 384, 3, 2, 0)]),
      (None, [('branch3x3dbl_1', 64, 1, 1, 0),
              ('branch3x3dbl_2', 96, 3, 1, 1),
              ('branch3x3dbl_3', 96, 3, 2, 0)]),
      ('max3x3s2', [])])


def _block_c(cin, c7):
  row, col = ((1, 7), (0, 3)), ((7, 1), (3, 0))
  return TorchBlock(cin, [
      (None, [('branch1x1', 192, 1, 1, 0)]),
      (None, [('branch7x7_1', c7, 1, 1, 0),
              ('branch7x7_2', c7, row[0], 1, row[1]),
              ('branch7x7_3', 192, col[0], 1, col[1])]),
      (None, [('branch7x7dbl_1', c7, 1, 1, 0),
              ('branch7x7dbl_2', c7, col[0], 1, col[1]),
              ('branch7x7dbl_3', c7, row[0], 1, row[1]),
              ('branch7x7dbl_4', c7, col[0], 1, col[1]),
              ('branch7x7dbl_5', 192, row[0], 1, row[1])]),
      ('avg', [('branch_pool', 192, 1, 1, 0)])])


def _block_d(cin):
  return TorchBlock(cin, [
      (None, [('branch3x3_1', 192, 1, 1, 0), ('branch3x3_2', 320, 3, 2, 0)]),
      (None, [('branch7x7x3_1', 192, 1, 1, 0),
              ('branch7x7x3_2', 192, (1, 7), 1, (0, 3)),
              ('branch7x7x3_3', 192, (7, 1), 1, (3, 0)),
              ('branch7x7x3_4', 192, 3, 2, 0)]),
      ('max3x3s2', [])])


def _block_e(cin, pool):
  return TorchBlock(cin, [
      (None, [('branch1x1', 320, 1, 1, 0)]),
      (None, [('branch3x3_1', 384, 1, 1, 0),
              (('branch3x3_2a', 384, (1, 3), 1, (0, 1)),
               ('branch3x3_2b', 384, (3, 1), 1, (1, 0)))]),
      (None, [('branch3x3dbl_1', 448, 1, 1, 0),
              ('branch3x3dbl_2', 384, 3, 1, 1),
              (('branch3x3dbl_3a', 384, (1, 3), 1, (0, 1)),
               ('branch3x3dbl_3b', 384, (3, 1), 1, (1, 0)))]),
      (pool, [('branch_pool', 192, 1, 1, 0)])])


class TorchFIDInception(tnn.Module):
  """x [N, 3, H, W] in [0, 1] -> [N, 2048] pool3 features."""

  def __init__(self, resize_input=True):
    super().__init__()
    self.resize_input = resize_input
    self.Conv2d_1a_3x3 = TorchBasicConv(3, 32, 3, stride=2)
    self.Conv2d_2a_3x3 = TorchBasicConv(32, 32, 3)
    self.Conv2d_2b_3x3 = TorchBasicConv(32, 64, 3, padding=1)
    self.Conv2d_3b_1x1 = TorchBasicConv(64, 80, 1)
    self.Conv2d_4a_3x3 = TorchBasicConv(80, 192, 3)
    self.Mixed_5b = _block_a(192, 32)
    self.Mixed_5c = _block_a(256, 64)
    self.Mixed_5d = _block_a(288, 64)
    self.Mixed_6a = _block_b(288)
    self.Mixed_6b = _block_c(768, 128)
    self.Mixed_6c = _block_c(768, 160)
    self.Mixed_6d = _block_c(768, 160)
    self.Mixed_6e = _block_c(768, 192)
    self.Mixed_7a = _block_d(768)
    self.Mixed_7b = _block_e(1280, 'avg')
    self.Mixed_7c = _block_e(2048, 'max3x3s1')
    self.fc = tnn.Linear(2048, 1008)  # In the file; not part of FID.

  def forward(self, x):
    if self.resize_input:
      x = F.interpolate(x, size=(299, 299), mode='bilinear',
                        align_corners=False)
    x = 2 * x - 1
    x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))
    x = F.max_pool2d(x, 3, stride=2)
    x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))
    x = F.max_pool2d(x, 3, stride=2)
    for name in ('Mixed_5b', 'Mixed_5c', 'Mixed_5d', 'Mixed_6a', 'Mixed_6b',
                 'Mixed_6c', 'Mixed_6d', 'Mixed_6e', 'Mixed_7a', 'Mixed_7b',
                 'Mixed_7c'):
      x = getattr(self, name)(x)
    return F.adaptive_avg_pool2d(x, 1).flatten(1)


def randomise(model, seed):
  """Kaiming-normal convs (activations keep their scale through the 94
  convs) and random BatchNorm affine parameters and running statistics."""
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for m in model.modules():
      if isinstance(m, tnn.Conv2d):
        fan_in = m.weight[0].numel()
        m.weight.normal_(0, (2 / fan_in) ** 0.5, generator=gen)
      elif isinstance(m, tnn.BatchNorm2d):
        m.weight.uniform_(0.5, 1.5, generator=gen)
        m.bias.normal_(0, 0.2, generator=gen)
        m.running_mean.normal_(0, 0.2, generator=gen)
        m.running_var.uniform_(0.5, 2.0, generator=gen)
  return model.eval()


def rand_images(shape, seed):
  return np.random.default_rng(seed).random(shape, dtype=np.float32)


def errors(ours, ref) -> tuple[float, float]:
  """(max abs error, max abs error / max |ref|)."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  err = float(np.abs(ours - ref).max())
  return err, err / float(np.abs(ref).max())


def torch_features(model, x_nhwc):
  with torch.no_grad():
    return model(torch.from_numpy(x_nhwc.transpose(0, 3, 1, 2))).numpy()


# Fixtures (tests/conftest.py loads this module as a plugin).


@pytest.fixture(scope='module')
def inception_reference():
  """(torch model, converted variables), shared by the tests (~22M
  parameters: building it takes seconds)."""
  model = randomise(TorchFIDInception(), seed=0)
  variables = weights.convert_state_dict('inception_fid', model.state_dict())
  return model, variables
