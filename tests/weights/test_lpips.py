"""sr_jax.weights.lpips: LPIPS weights converted from the lin file and
torchvision's backbone (random here), loaded from the cache or explained,
fetched with a fake download."""
import hashlib
import pathlib

import jax
import numpy as np
import pytest
import torch

from sr_jax import weights
from sr_jax.metrics import lpips as lpips_lib
from sr_jax.weights import lpips as convert_lib
from sr_jax.weights import params_io
from tests.helpers.torch_lpips import _reference
from tests.helpers.torch_lpips import _torchvision_and_lin


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
