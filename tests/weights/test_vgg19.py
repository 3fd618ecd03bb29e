"""sr_jax.weights.vgg19: VGG19 lookup and conversion, `fetch vgg19` and its
failures."""
import hashlib
import io
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest

from sr_jax import weights
from sr_jax.models import vgg19 as vgg19_lib
from sr_jax.weights import __main__ as cli
from tests.helpers.files import files_under

# Every test with a weights cache of its own (tests/weights/conftest.py).
pytestmark = pytest.mark.usefixtures('isolated_cache')

FETCH_CMD = 'python -m sr_jax.weights fetch vgg19'
CONVERT_CMD = 'python -m sr_jax.weights convert vgg19'


@pytest.fixture(scope='module')
def vgg19_pth(tmp_path_factory):
  """A torchvision-layout vgg19 checkpoint with random weights (~80 MB)."""
  import torch
  gen = torch.Generator().manual_seed(0)
  state_dict, prev = {}, 3
  for name in vgg19_lib.CONV_NAMES:
    ch = 64 * 2 ** min(int(name[4]) - 1, 3)
    i = vgg19_lib.TORCHVISION_INDEX[name]
    state_dict[f'features.{i}.weight'] = torch.randn(ch, prev, 3, 3,
                                                     generator=gen)
    state_dict[f'features.{i}.bias'] = torch.randn(ch, generator=gen)
    prev = ch
  # The real file also has the classifier (~470 MB); a stub stands in for it.
  state_dict['classifier.6.bias'] = torch.zeros(1000)
  path = tmp_path_factory.mktemp('pth') / 'vgg19-random.pth'
  torch.save(state_dict, path)
  return path, state_dict


def test_missing_weights_say_how_to_get_them(isolated_cache, tmp_path):
  with pytest.raises(weights.WeightsNotFoundError) as info:
    weights.load_vgg19_params()
  assert isinstance(info.value, FileNotFoundError)
  message = str(info.value)
  for needle in (FETCH_CMD, weights.VGG19_URL, CONVERT_CMD,
                 'frozen.vgg19', str(isolated_cache)):
    assert needle in message
  with pytest.raises(weights.WeightsNotFoundError, match='fetch vgg19'):
    weights.load_vgg19_params(tmp_path / 'nope.npz')


def test_pth_is_converted_and_cached(vgg19_pth, isolated_cache, monkeypatch):
  pth, state_dict = vgg19_pth
  variables = weights.load_vgg19_params(pth)
  params = variables['params']
  assert sorted(params) == sorted(vgg19_lib.CONV_NAMES)
  np.testing.assert_array_equal(
      params['conv3_2']['kernel'],
      state_dict['features.12.weight'].numpy().transpose(2, 3, 1, 0))
  cached = isolated_cache / 'vgg19.npz'
  assert weights.cached_vgg19_path() == cached and cached.is_file()
  # Next time no path is needed, and torch is not touched.
  monkeypatch.setitem(sys.modules, 'torch', None)
  from_cache = weights.load_vgg19_params()
  np.testing.assert_array_equal(from_cache['params']['conv5_4']['bias'],
                                params['conv5_4']['bias'])
  # The environment variable is looked at before the cache.
  monkeypatch.setenv('SR_JAX_VGG19_WEIGHTS', str(isolated_cache / 'x.npz'))
  with pytest.raises(weights.WeightsNotFoundError, match='SR_JAX_VGG19'):
    weights.load_vgg19_params()


def test_pth_without_torch_says_pip_install(vgg19_pth, monkeypatch):
  monkeypatch.setitem(sys.modules, 'torch', None)  # import torch -> ImportError
  with pytest.raises(ImportError, match='pip install torch'):
    weights.load_vgg19_params(vgg19_pth[0])


def test_npz_that_is_not_vgg19_is_rejected(tmp_path):
  path = tmp_path / 'other.npz'
  weights.save_params(path, {'params': {'conv_first': {'bias': np.zeros(3)}}})
  with pytest.raises(ValueError, match='conv1_1'):
    weights.load_vgg19_params(path)


def test_cli_convert_and_where(vgg19_pth, tmp_path, capsys, isolated_cache):
  out = tmp_path / 'converted.npz'
  assert cli.main(['convert', 'vgg19', str(vgg19_pth[0]), '--out',
                   str(out)]) == 0
  assert str(out) in capsys.readouterr().out
  assert len(weights.load_vgg19_params(out)['params']) == 16
  assert cli.main(['where']) == 0
  printed = capsys.readouterr().out
  assert str(isolated_cache) in printed and 'missing' in printed


def _serve(monkeypatch, payload=None, error=None):
  """Replaces urllib's urlopen by one returning payload or raising error."""
  calls = []

  def urlopen(url, timeout=None):
    calls.append(url)
    if error is not None:
      raise error
    return io.BytesIO(payload)

  monkeypatch.setattr(urllib.request, 'urlopen', urlopen)
  return calls


def test_fetch_offline_fails_cleanly(monkeypatch, capsys, isolated_cache):
  calls = _serve(monkeypatch,
                 error=urllib.error.URLError('Name or service not known'))
  assert cli.main(['fetch', 'vgg19']) == 1
  assert calls == [weights.VGG19_URL]
  err = capsys.readouterr().err
  assert weights.VGG19_URL in err and CONVERT_CMD in err
  assert files_under(isolated_cache) == []


def test_fetch_rejects_wrong_checksum(monkeypatch, capsys, isolated_cache):
  _serve(monkeypatch, payload=b'<html>captive portal</html>' * 1000)
  assert cli.main(['fetch', 'vgg19']) == 1
  assert 'SHA-256' in capsys.readouterr().err
  assert files_under(isolated_cache) == []


def test_fetch_verifies_converts_and_caches(vgg19_pth, monkeypatch,
                                            isolated_cache):
  payload = vgg19_pth[0].read_bytes()
  _serve(monkeypatch, payload=payload)
  prefix = hashlib.sha256(payload).hexdigest()[:8]
  out = weights.fetch_vgg19(sha256_prefix=prefix, progress=False)
  assert files_under(isolated_cache) == [isolated_cache / 'vgg19.npz']
  assert out == isolated_cache / 'vgg19.npz'
  assert len(weights.load_vgg19_params()['params']) == 16
