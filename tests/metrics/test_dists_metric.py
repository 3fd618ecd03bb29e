"""DISTS against a PyTorch reference on random VGG16 weights and the real
alpha / beta, plus conversion and the weights.

The reference below is written from DISTS_pytorch 0.1 (torchvision's vgg16
`features` cut into five stages at the ReLUs before the pools, each 2x2
max-pool replaced by L2pooling: a depthwise 3x3 Hanning filter on x^2,
stride 2, padding 1, then sqrt(. + 1e-12); ImageNet mean / std buffers;
stage 0 is the raw input; alpha / beta normalised by their total sum;
c1 = c2 = 1e-6) with its module names, so its state_dict() has the keys of
a real DISTS: 'stage{s}.{i}.weight', 'stage{s}.{i}.filter', 'alpha', ...
"""
import dataclasses
import hashlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import weights
from sr_jax.metrics import dists_metric as dists_lib
from sr_jax.metrics import registry
from sr_jax.weights import dists as dists_weights


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


@pytest.fixture(scope='module')
def reference():
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


def errors(ours, ref) -> tuple[float, float]:
  """(max abs error, max abs error / max |ref|)."""
  ours, ref = np.asarray(ours, np.float64), np.asarray(ref, np.float64)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  err = float(np.abs(ours - ref).max())
  return err, err / float(np.abs(ref).max())


def _pair(shape, seed):
  """x and a distorted copy y (noise and a shift), in [0, 1]."""
  rng = np.random.default_rng(seed)
  x = rng.random(shape, dtype=np.float32)
  y = np.clip(0.7 * x + 0.3 * rng.random(shape, dtype=np.float32) + 0.05,
              0, 1).astype(np.float32)
  return x, y


def _torch(model, x, y):
  with torch.no_grad():
    return model(*(torch.from_numpy(a.transpose(0, 3, 1, 2))
                   for a in (x, y))).numpy()


@pytest.mark.slow
@pytest.mark.parametrize('shape', [(2, 48, 40, 3), (1, 37, 29, 3)])
def test_dists_matches_torch(reference, shape):
  model, variables = reference
  x, y = _pair(shape, seed=shape[1])
  ref = _torch(model, x, y)
  assert np.all((ref > 0.01) & (ref < 1))
  ours = dists_lib.make_dists_fn(variables)(x, y)
  abs_err, rel_err = errors(ours, ref)
  assert rel_err < 1e-4, (abs_err, rel_err)
  # The one-pass module (x and y in one batch) agrees too.
  both = jax.jit(dists_lib.DISTS().apply)(variables, x, y)
  assert errors(both, ref)[1] < 1e-4
  # Each stage's features (odd sizes: L2 pooling rounds up).
  with torch.no_grad():
    ref_feats = model.stages(torch.from_numpy(x.transpose(0, 3, 1, 2)))
  feats = jax.jit(lambda v, a: dists_lib.DISTS().apply(
      v, a, method=dists_lib.DISTS.features))(variables, x)
  for ours_f, ref_f in zip(feats, ref_feats):
    assert errors(ours_f, ref_f.numpy().transpose(0, 2, 3, 1))[1] < 1e-5


def test_uint8_metric_is_registered_and_lower_is_better(reference):
  model, variables = reference
  rng = np.random.default_rng(7)
  hr = rng.integers(0, 256, (40, 44, 3), dtype=np.uint8)
  noisy = np.clip(hr + rng.normal(0, 25, hr.shape), 0, 255).astype(np.uint8)
  d = dists_lib.dists(noisy, hr, variables)
  ref = _torch(model, *(a[None].astype(np.float32) / 255 for a in (noisy,
                                                                   hr)))
  assert errors(d, ref[0])[1] < 1e-4
  assert abs(dists_lib.dists(hr, hr, variables)) < 1e-5
  assert dists_lib.dists(hr, noisy, variables) == pytest.approx(d, rel=1e-5)
  metric = registry.METRICS.get('dists')
  assert (metric.frozen, metric.higher_is_better) == ('dists', False)
  assert metric.fn(noisy, hr, 4, variables=variables) == d
  with pytest.raises(TypeError, match='uint8'):
    dists_lib.dists(noisy / 255.0, hr, variables)


def test_released_alpha_beta():
  """The package data is DISTS_pytorch 0.1's weights.pt (see its NOTICE):
  1475 non-negative weights each, summing to 1 together."""
  released = dists_lib.released_alpha_beta()
  alpha, beta = released['alpha'], released['beta']
  assert alpha.shape == beta.shape == (1475,)
  assert alpha.dtype == beta.dtype == np.float32
  assert np.all(alpha > 0) and np.all(beta >= 0)
  assert float(alpha.sum(dtype=np.float64)) == pytest.approx(0.8760496,
                                                              abs=1e-6)
  assert float(beta.sum(dtype=np.float64)) == pytest.approx(0.1239502,
                                                             abs=1e-6)
  assert int(np.sum(beta == 0)) == 1063
  assert (dists_lib.ALPHA_BETA_FILE.parent /
          'dists_alpha_beta.NOTICE').is_file()


def _torchvision_vgg16(model):
  """The VGG16 of a DISTS state dict under torchvision's key names, with
  a stub classifier (the real file has one)."""
  sd = {}
  for key, value in model.state_dict().items():
    if key.startswith('stage') and not key.endswith('.filter'):
      sd['features.' + key.split('.', 1)[1]] = value
  sd['classifier.0.weight'] = torch.zeros(4, 8)
  return sd


def test_convert_torchvision_vgg16_and_bad_keys(reference):
  model, variables = reference
  # torchvision's vgg16 gets the released alpha / beta: the same variables.
  from_vgg = weights.convert_state_dict('dists', _torchvision_vgg16(model))
  jax.tree.map(np.testing.assert_array_equal, from_vgg, variables)

  sd = model.state_dict()
  with pytest.raises(ValueError, match=r"missing keys: \['beta'\]"):
    weights.convert_state_dict('dists', {k: v for k, v in sd.items()
                                         if k != 'beta'})
  with pytest.raises(ValueError, match=r"missing keys: \['features\.28\."
                                       r"bias'\]"):
    weights.convert_state_dict('dists', {k: v for k, v in sd.items()
                                         if k != 'stage5.28.bias'})
  with pytest.raises(ValueError, match=r'stage3\.12\.weight: got '
                     r'\(256, 256, 1, 1\), expected \(256, 256, 3, 3\)'):
    weights.convert_state_dict('dists', dict(sd, **{
        'stage3.12.weight': torch.zeros(256, 256, 1, 1)}))
  with pytest.raises(ValueError, match='stage2.4.filter .* not the L2 '
                     'pooling filter'):
    weights.convert_state_dict('dists', dict(sd, **{
        'stage2.4.filter': torch.ones(64, 1, 3, 3)}))
  with pytest.raises(ValueError, match=r'std is \[1.0, 1.0, 1.0\]'):
    weights.convert_state_dict('dists', dict(sd, std=torch.ones(1, 3, 1, 1)))
  with pytest.raises(ValueError, match=r'unexpected keys: \[.stage1\.1\.'):
    weights.convert_state_dict('dists', dict(sd, **{
        'stage1.1.weight': torch.zeros(3)}))


@pytest.fixture()
def isolated_cache(tmp_path, monkeypatch):
  cache = tmp_path / 'cache'
  monkeypatch.setenv('SR_JAX_CACHE_DIR', str(cache))
  return cache


def test_fetch_load_and_explain(reference, tmp_path, isolated_cache,
                                monkeypatch):
  model, variables = reference
  with pytest.raises(weights.WeightsNotFoundError) as info:
    weights.load_frozen('dists')
  for needle in ('python -m sr_jax.weights fetch dists',
                 'https://download.pytorch.org/models/vgg16-397923af.pth',
                 'python -m sr_jax.weights convert dists /path/to/'
                 'vgg16-397923af.pth',
                 str(isolated_cache / 'dists.npz')):
    assert needle in str(info.value)

  served = tmp_path / 'vgg16.pth'
  torch.save(_torchvision_vgg16(model), served)
  payload = served.read_bytes()

  def fake_download(url, f, progress):
    del progress
    assert url == 'https://download.pytorch.org/models/vgg16-397923af.pth'
    f.write(payload)
    return hashlib.sha256(payload).hexdigest()

  with pytest.raises(weights.FetchError, match='does not start with '
                     '397923af'):
    dists_weights.DISTS_WEIGHTS.fetch(download=fake_download, progress=False)
  assert not any(isolated_cache.iterdir())
  fetcher = dataclasses.replace(
      dists_weights.DISTS_WEIGHTS,
      sha256_prefix=hashlib.sha256(payload).hexdigest()[:8])
  assert fetcher.fetch(download=fake_download, progress=False) == \
      isolated_cache / 'dists.npz'
  # Loaded from the cache without torch, checked against DISTS's shapes.
  monkeypatch.setitem(sys.modules, 'torch', None)
  loaded = weights.load_frozen('dists')
  jax.tree.map(np.testing.assert_array_equal, loaded, variables)
  assert all(isinstance(a, jnp.ndarray) for a in jax.tree.leaves(loaded))
