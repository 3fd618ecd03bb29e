"""LPIPS against an independent PyTorch reference, plus weight handling.

The reference below is written from the `lpips` package v0.1 (ScalingLayer,
torchvision alexnet / vgg16 `features` cut into five slices, channel-wise
unit normalisation, squared difference, 1x1 'lin' convs behind a Dropout,
spatial mean, sum) with its module names, so its state_dict() has the keys
of a real lpips.LPIPS: 'net.slice{s}.{i}.weight', 'lin{k}.model.1.weight'.
Weights are random (lin weights non-negative, as trained LPIPS's are).
"""
import hashlib
import pathlib
import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import metrics
from sr_jax import weights
from sr_jax.weights import lpips as convert_lib
from sr_jax.metrics import lpips as lpips_lib
from sr_jax.weights import params_io


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


def rel_err(ours, ref) -> float:
  ours, ref = np.asarray(ours), np.asarray(ref)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.abs(ours - ref).max() / np.abs(ref).max())


def _images(shape, seed):
  rng = np.random.default_rng(seed)
  return (rng.random(shape, dtype=np.float32),
          rng.random(shape, dtype=np.float32))


@pytest.mark.slow
@pytest.mark.parametrize('net,shape', [('alex', (2, 37, 45, 3)),
                                       ('vgg', (2, 21, 27, 3))])
def test_lpips_matches_torch(net, shape):
  model = _reference(net)
  x, y = _images(shape, seed=1)
  with torch.no_grad():
    tx = torch.from_numpy(x.transpose(0, 3, 1, 2)) * 2 - 1
    ty = torch.from_numpy(y.transpose(0, 3, 1, 2)) * 2 - 1
    ref, ref_layers = (t.numpy() for t in model(tx, ty))
  assert np.all(ref > 0)

  backbone, lin = _torchvision_and_lin(model)
  variables = convert_lib.convert_lpips(backbone, lin, net)
  ours = metrics.make_lpips_fn(variables, net)(x, y)
  assert ours.shape == (shape[0],)
  assert rel_err(ours, ref) < 1e-4
  ours_layers = jax.jit(lpips_lib.LPIPS(net=net, per_layer=True).apply)(
      variables, x, y)
  assert rel_err(ours_layers, ref_layers) < 1e-4

  if net == 'alex':
    # A whole lpips.LPIPS state dict (with its ScalingLayer buffers) converts
    # to the same variables.
    whole = convert_lib.convert_lpips(model.state_dict(), None, net)
    jax.tree.map(np.testing.assert_array_equal, whole, variables)


def test_identical_images_give_zero_and_distance_is_symmetric():
  x, y = _images((2, 33, 40, 3), seed=2)
  # Random weights in LPIPS's shapes (an eager init would be slow); lin
  # weights non-negative, as in trained LPIPS.
  abstract = jax.eval_shape(lambda: metrics.LPIPS(net='alex').init(
      jax.random.key(0), x, y))
  rng = np.random.default_rng(0)
  variables = jax.tree.map(
      lambda a: np.abs(rng.standard_normal(a.shape)).astype(np.float32) * 0.1,
      abstract)
  fn = metrics.make_lpips_fn(variables, 'alex')
  np.testing.assert_array_equal(fn(x, x), np.zeros(2, np.float32))
  d_xy, d_yx = fn(x, y), fn(y, x)
  np.testing.assert_array_equal(d_xy, d_yx)
  assert np.all(np.asarray(d_xy) > 0)


def test_bad_inputs_are_named():
  with pytest.raises(ValueError, match="net='squeeze'"):
    metrics.LPIPS(net='squeeze')
  x = jnp.zeros((1, 30, 40, 3))
  with pytest.raises(ValueError, match=r'H and W >= 31; got 30x40'):
    jax.eval_shape(lambda: metrics.LPIPS(net='alex').init(
        jax.random.key(0), x, x))
  fn = metrics.make_lpips_fn({}, 'alex')
  with pytest.raises(TypeError, match='divide uint8 images by 255'):
    fn(np.zeros((1, 32, 32, 3), np.uint8), np.zeros((1, 32, 32, 3), np.uint8))


def test_convert_names_bad_keys():
  model = _reference('alex')
  backbone, lin = _torchvision_and_lin(model)
  convert = convert_lib.convert_lpips
  with pytest.raises(ValueError,
                     match=r"missing keys: \['lin3.model.1.weight'"):
    convert(backbone, {k: v for k, v in lin.items() if 'lin3' not in k}, 'alex')
  bad = dict(lin, **{'lin0.model.1.weight': torch.zeros(1, 63, 1, 1)})
  with pytest.raises(ValueError, match=r'lin0.model.1.weight \(lin\): got '
                     r'\(1, 63, 1, 1\), expected \(1, 64, 1, 1\)'):
    convert(backbone, bad, 'alex')
  with pytest.raises(ValueError,
                     match=r'unexpected keys: \[.features.1.weight'):
    convert(dict(backbone, **{'features.1.weight': torch.zeros(3)}), lin,
            'alex')
  # The AlexNet backbone is not a VGG16 one.
  with pytest.raises(ValueError, match="LPIPS\\(net='vgg'\\)"):
    convert(backbone, lin, 'vgg')


def _save_torch_files(model, folder: pathlib.Path, net: str):
  backbone, lin = _torchvision_and_lin(model)
  names = {'alex': ('alex.pth', 'alexnet-owt-7be5be79.pth'),
           'vgg': ('vgg.pth', 'vgg16-397923af.pth')}[net]
  torch.save(lin, folder / names[0])
  torch.save(backbone, folder / names[1])
  return folder / names[0], folder / names[1]


def test_load_from_cache_or_explain(tmp_path, monkeypatch):
  monkeypatch.setenv(params_io.CACHE_ENV_VAR, str(tmp_path / 'cache'))
  with pytest.raises(params_io.WeightsNotFoundError) as info:
    weights.load_lpips_params('alex')
  message = str(info.value)
  for needle in ('python -m sr_jax.weights fetch lpips_alex',
                 'lpips/weights/v0.1/alex.pth',
                 'download.pytorch.org/models/alexnet-owt-7be5be79.pth',
                 str(tmp_path / 'cache' / 'lpips_alex.npz')):
    assert needle in message

  # Giving the lin file converts it with the backbone found next to it, into
  # the cache, from where later calls load it without torch.
  model = _reference('alex', seed=3)
  lin_file, _ = _save_torch_files(model, tmp_path, 'alex')
  from_pth = weights.load_lpips_params('alex', lin_file)
  assert weights.cached_lpips_path('alex').is_file()
  cached = weights.load_lpips_params('alex')
  expected = convert_lib.convert_lpips(model.state_dict(), None,
                                               'alex')
  jax.tree.map(np.testing.assert_array_equal, from_pth, expected)
  jax.tree.map(np.testing.assert_array_equal, cached, expected)
  with pytest.raises(ValueError, match="does not hold LPIPS \\(vgg\\)"):
    weights.load_lpips_params('vgg', weights.cached_lpips_path('alex'))


def test_fetch_with_fake_download(tmp_path):
  from sr_jax.weights import FetchError  # pylint: disable=g-import-not-at-top
  model = _reference('alex', seed=4)
  served = tmp_path / 'served'
  served.mkdir()
  lin_file, backbone_file = _save_torch_files(model, served, 'alex')
  files = {lpips_lib.LIN_URLS['alex']: lin_file,
           lpips_lib.BACKBONE_URLS['alex']: backbone_file}

  def fake_download(url, f, progress):
    del progress
    data = files[url].read_bytes()
    f.write(data)
    return hashlib.sha256(data).hexdigest()

  out = tmp_path / 'out' / 'lpips_alex.npz'
  # The random backbone does not have torchvision's hash.
  with pytest.raises(FetchError, match='does not start with 7be5be79'):
    convert_lib.fetch_lpips('alex', out, download=fake_download,
                            progress=False)
  assert list(out.parent.iterdir()) == []  # No output, no temporary files.

  digest = hashlib.sha256(backbone_file.read_bytes()).hexdigest()
  path = convert_lib.fetch_lpips('alex', out, download=fake_download,
                                 backbone_sha256_prefix=digest[:8],
                                 progress=False)
  assert path == out and [p.name for p in out.parent.iterdir()] == [out.name]
  jax.tree.map(np.testing.assert_array_equal,
               weights.load_lpips_params('alex', out),
               convert_lib.convert_lpips(model.state_dict(), None,
                                                 'alex'))

  def offline(url, f, progress):
    raise OSError('network is unreachable')

  with pytest.raises(FetchError, match='(?s)Could not download .*offline'):
    convert_lib.fetch_lpips('alex', tmp_path / 'x.npz', download=offline,
                            progress=False)
  assert not (tmp_path / 'x.npz').exists()
