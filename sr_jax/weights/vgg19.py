"""ImageNet VGG19 weights for the perceptual loss: find, convert, fetch.

The weights are torchvision's `vgg19-dcbb9e9d.pth`, converted once into
`<cache>/vgg19.npz` (only `features`, ~80 MB) so training never needs torch.
"""
import logging
import os
import pathlib
from typing import Any, Optional

from sr_jax import errors
from sr_jax.weights.state_dict import convert_state_dict
from sr_jax.models import vgg19 as vgg19_lib
from sr_jax.weights import download
from sr_jax.weights import files
from sr_jax.weights import params_io

VGG19_URL = 'https://download.pytorch.org/models/vgg19-dcbb9e9d.pth'
# torchvision names files <name>-<first 8 hex digits of the SHA-256>.pth.
VGG19_SHA256_PREFIX = 'dcbb9e9d'
VGG19_ENV_VAR = 'SR_JAX_VGG19_WEIGHTS'
VGG19_CACHE_NAME = 'vgg19.npz'


class FetchError(errors.SrJaxError, RuntimeError):
  """Downloading or verifying weights failed; the message says what to do."""


def cached_vgg19_path() -> pathlib.Path:
  return params_io.cache_dir() / VGG19_CACHE_NAME


def how_to_get_vgg19() -> str:
  return (
      'Get the ImageNet VGG19 weights one of these ways:\n'
      '  * online:  python -m sr_jax.weights fetch vgg19\n'
      f'  * offline: download {VGG19_URL} by hand, then run\n'
      '             python -m sr_jax.weights convert vgg19 '
      '/path/to/vgg19-dcbb9e9d.pth\n'
      '  * or set the config field frozen.vgg19 (or the env var '
      f'{VGG19_ENV_VAR}) to a converted .npz or to the .pth itself.\n'
      f'Converted weights are cached in {cached_vgg19_path()} '
      f'(directory from ${params_io.CACHE_ENV_VAR}).')


def _require_torch():
  return files.require_torch('Converting the VGG19 .pth')


def _check_vgg19(variables: dict[str, Any], source: Any) -> dict[str, Any]:
  params = variables.get('params', {})
  missing = [name for name in vgg19_lib.CONV_NAMES if name not in params]
  if missing:
    raise ValueError(f'{source} does not hold VGG19 weights (no {missing}). '
                     + how_to_get_vgg19())
  return variables


def convert_vgg19_file(src: str | os.PathLike,
                       out: Optional[str | os.PathLike] = None) -> pathlib.Path:
  """torchvision's vgg19 .pth -> .npz (default: the cache); returns its path."""
  _require_torch()
  src = pathlib.Path(src).expanduser()
  if not src.is_file():
    raise params_io.WeightsNotFoundError(f'{src} does not exist.\n'
                                         + how_to_get_vgg19())
  state_dict = files.load_torch_file(src)  # Checks the file's CRCs.
  variables = convert_state_dict('vgg19', state_dict)
  out = pathlib.Path(out).expanduser() if out else cached_vgg19_path()
  params_io.save_params(out, variables)
  return out


def _load_file(path: str | os.PathLike, source: str) -> dict[str, Any]:
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise params_io.WeightsNotFoundError(
        f'VGG19 weights not found at {path} (from {source}).\n'
        + how_to_get_vgg19())
  if path.suffix == '.npz':
    return _check_vgg19(params_io.load_params(path), path)
  # Anything else is taken to be a torch checkpoint: convert it, and cache the
  # result so that later runs (and machines without torch) can use the .npz.
  cached = convert_vgg19_file(path, cached_vgg19_path())
  logging.info('Converted %s -> %s', path, cached)
  return params_io.load_params(cached)


def load_vgg19_params(path: Optional[str | os.PathLike] = None
                      ) -> dict[str, Any]:
  """Variables {'params': {conv1_1: ..., ..., conv5_4: ...}} for models.VGG19.

  Looks at `path` (a converted .npz or torchvision's .pth), then
  $SR_JAX_VGG19_WEIGHTS, then the cache <$SR_JAX_CACHE_DIR or
  ~/.cache/sr_jax>/vgg19.npz. Raises WeightsNotFoundError with instructions
  when there is nothing there: a random VGG would silently train nonsense.
  """
  if path:
    return _load_file(path, 'the path argument / perceptual.vgg_weights')
  if os.environ.get(VGG19_ENV_VAR):
    return _load_file(os.environ[VGG19_ENV_VAR], f'${VGG19_ENV_VAR}')
  cached = cached_vgg19_path()
  if cached.is_file():
    return _check_vgg19(params_io.load_params(cached), cached)
  raise params_io.WeightsNotFoundError(
      f'No VGG19 weights for the perceptual loss: no path given, '
      f'${VGG19_ENV_VAR} unset and no {cached}.\n' + how_to_get_vgg19())


def fetch_vgg19(out: Optional[str | os.PathLike] = None,
                url: str = VGG19_URL,
                sha256_prefix: str = VGG19_SHA256_PREFIX,
                progress: bool = True) -> pathlib.Path:
  """Downloads, verifies and converts VGG19; returns the .npz path.

  The download goes to a temporary file next to `out` that is always deleted,
  so a failed or interrupted fetch leaves nothing behind. Raises FetchError
  (offline, or wrong checksum) or ImportError (no torch).
  """
  _require_torch()  # Before spending minutes on a 548 MB download.
  out = pathlib.Path(out).expanduser() if out else cached_vgg19_path()
  with download.temporary_path(out.parent, '.pth.part') as tmp:
    with open(tmp, 'wb') as f:
      try:
        digest = download.download_file(url, f, progress)
      except download.DOWNLOAD_ERRORS as e:
        raise FetchError(
            f'Could not download {url}: {e}.\nIf this machine is offline, '
            f'download {url} elsewhere, copy it here and run\n'
            '  python -m sr_jax.weights convert vgg19 '
            '/path/to/vgg19-dcbb9e9d.pth') from e
    if not digest.startswith(sha256_prefix):
      raise FetchError(
          f'Downloaded file from {url} has SHA-256 {digest}, which does not '
          f'start with {sha256_prefix}; it is corrupt or not the expected '
          'file. Nothing was saved; try again, or download it by hand.')
    return convert_vgg19_file(tmp, out)
