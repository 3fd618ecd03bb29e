"""sr_jax.weights.inception: FID's InceptionV3 converted from pytorch-fid's
weights (random here), fetched, cached and explained when missing."""
import hashlib
import sys

import jax
import numpy as np
import pytest
import torch

from sr_jax import weights
from sr_jax.models import inception
from sr_jax.weights import __main__ as cli
from sr_jax.weights import inception as inception_weights


# The PyTorch Inception and its conversion: tests.helpers.torch_inception's
# fixtures (tests/conftest.py loads them).
pytestmark = pytest.mark.usefixtures('one_torch_thread')


def test_convert_names_bad_keys(inception_reference):
  model, _ = inception_reference
  sd = model.state_dict()
  with pytest.raises(ValueError, match=r"missing keys: \['Mixed_6e\."
                     r"branch7x7dbl_3\.bn\.running_var'\]"):
    weights.convert_state_dict('inception_fid', {
        k: v for k, v in sd.items()
        if k != 'Mixed_6e.branch7x7dbl_3.bn.running_var'})
  bad = dict(sd, **{'Mixed_7c.branch_pool.conv.weight':
                    torch.zeros(192, 2048, 3, 3)})
  with pytest.raises(ValueError, match=r'Mixed_7c\.branch_pool\.conv\.weight'
                     r': got \(192, 2048, 3, 3\), expected '
                     r'\(192, 2048, 1, 1\)'):
    weights.convert_state_dict('inception_fid', bad)
  aux = dict(sd, **{'AuxLogits.fc.weight': torch.zeros(1000, 768)})
  with pytest.raises(ValueError, match="torchvision's inception_v3"):
    weights.convert_state_dict('inception_fid', aux)


@pytest.mark.slow
def test_load_frozen_explains_converts_and_caches(inception_reference, tmp_path,
                                                  isolated_cache,
                                                  monkeypatch):
  model, variables = inception_reference
  with pytest.raises(weights.WeightsNotFoundError) as info:
    weights.load_frozen('inception_fid')
  for needle in ('python -m sr_jax.weights fetch inception_fid',
                 inception_weights.INCEPTION_FID_URL,
                 'python -m sr_jax.weights convert inception_fid /path/to/'
                 'pt_inception-2015-12-05-6726825d.pth',
                 'config.frozen.inception_fid',
                 str(isolated_cache / 'inception_fid.npz')):
    assert needle in str(info.value)

  pth = tmp_path / 'pt_inception.pth'
  torch.save(model.state_dict(), pth)
  loaded = weights.load_frozen('inception_fid', str(pth))
  jax.tree.map(np.testing.assert_array_equal, loaded, variables)
  cached = isolated_cache / 'inception_fid.npz'
  assert cached.is_file()
  # Later: from the cache, without torch; a converted file says its arch.
  monkeypatch.setitem(sys.modules, 'torch', None)
  jax.tree.map(np.testing.assert_array_equal,
               weights.load_frozen('inception_fid'), variables)
  arch, kwargs, _ = weights.load_converted(cached)
  assert (arch, kwargs) == ('inception_fid', {})
  assert isinstance(weights.build_model(arch), inception.InceptionV3FID)
  # Weights of another network are refused with the how-to.
  other = tmp_path / 'other.npz'
  weights.save_params(other, {'params': {'conv1_1': {'bias': np.zeros(3)}}})
  with pytest.raises(ValueError, match='(?s)missing from the file.*fetch '
                     'inception_fid'):
    weights.load_frozen('inception_fid', str(other))


@pytest.mark.slow
def test_fetch_checks_the_hash_then_converts(inception_reference, tmp_path,
                                             isolated_cache, capsys,
                                             monkeypatch):
  model, variables = inception_reference
  served = tmp_path / 'served.pth'
  torch.save(model.state_dict(), served)
  payload = served.read_bytes()
  urls = []

  def fake_download(url, f, progress):
    del progress
    urls.append(url)
    f.write(payload)
    return hashlib.sha256(payload).hexdigest()

  from sr_jax.weights import download  # pylint: disable=g-import-not-at-top
  monkeypatch.setattr(download, 'download_file', fake_download)
  # The random file does not have the real file's SHA-256: nothing saved.
  assert cli.main(['fetch', 'inception_fid']) == 1
  assert urls == [inception_weights.INCEPTION_FID_URL]
  assert 'does not start with 6726825d' in capsys.readouterr().err
  assert not isolated_cache.exists() or not any(isolated_cache.iterdir())

  import dataclasses  # pylint: disable=g-import-not-at-top
  fetcher = dataclasses.replace(
      inception_weights.INCEPTION_FID,
      sha256_prefix=hashlib.sha256(payload).hexdigest()[:8])
  out = fetcher.fetch(progress=False)
  assert sorted(p.name for p in isolated_cache.iterdir()) == [
      'inception_fid.npz'] and out == isolated_cache / 'inception_fid.npz'
  jax.tree.map(np.testing.assert_array_equal, weights.load_frozen(
      'inception_fid'), variables)

  def offline(url, f, progress):
    raise OSError('network is unreachable')

  with pytest.raises(weights.FetchError,
                     match='(?s)Could not download.*convert inception_fid'):
    fetcher.fetch(tmp_path / 'x.npz', download=offline, progress=False)
  assert not (tmp_path / 'x.npz').exists()
