"""sr_jax.weights.dists: DISTS weights from torchvision's VGG16 and the
released alpha / beta, their fetch, load and explanations."""
import dataclasses
import hashlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import weights
from sr_jax.weights import dists as dists_weights

tnn = torch.nn


def _torchvision_vgg16(model):
  """The VGG16 of a DISTS state dict under torchvision's key names, with
  a stub classifier (the real file has one)."""
  sd = {}
  for key, value in model.state_dict().items():
    if key.startswith('stage') and not key.endswith('.filter'):
      sd['features.' + key.split('.', 1)[1]] = value
  sd['classifier.0.weight'] = torch.zeros(4, 8)
  return sd


def test_convert_torchvision_vgg16_and_bad_keys(dists_reference):
  model, variables = dists_reference
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


def test_fetch_load_and_explain(dists_reference, tmp_path, isolated_cache,
                                monkeypatch):
  model, variables = dists_reference
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
