"""Released generator weights (Real-ESRGAN, ESRGAN): fetch, convert, cache.

  python -m sr_jax.weights fetch RealESRGAN_x4plus   # -> <cache>/NAME.npz
  arch, kwargs, variables = load_pretrained('RealESRGAN_x4plus')
  sr = sr_jax.convert.build_model(arch, **kwargs).apply(variables, lr)

Each entry says where the PyTorch file is, which converter reads it, and what
the conversion must find (the architecture settings, read off the tensor
shapes), which is how a download is verified when no SHA-256 is recorded:
a checksum is only listed where it is published, never guessed.
"""
import dataclasses
import os
import pathlib
import sys
from typing import Any, Optional

from sr_jax.weights import files as convert_files
from sr_jax.weights import state_dict as convert_lib
from sr_jax.weights import download
from sr_jax.weights import params_io
from sr_jax.weights.vgg19 import FetchError

_REAL_ESRGAN = 'https://github.com/xinntao/Real-ESRGAN/releases/download'
_RRDB_23 = dict(num_feat=64, num_block=23, num_grow_ch=32)


@dataclasses.dataclass(frozen=True)
class Pretrained:
  """A released weights file.

  url: direct download link, or None where the file is only on a file
    sharing site (then `homepage` says where to get it by hand).
  arch: the sr_jax.convert converter (and generator name) for it.
  sha256: the full hex digest if published, else None (verified by
    conversion and the `expect` check instead).
  expect: model kwargs the conversion must infer (a wrong or truncated file
    fails here).
  """
  url: Optional[str]
  arch: str
  sha256: Optional[str]
  filename: str
  expect: dict[str, Any]
  homepage: str = 'https://github.com/xinntao/Real-ESRGAN'


PRETRAINED = {
    'RealESRGAN_x4plus': Pretrained(
        f'{_REAL_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth', 'rrdbnet', None,
        'RealESRGAN_x4plus.pth', dict(_RRDB_23, scale=4)),
    'RealESRNet_x4plus': Pretrained(
        f'{_REAL_ESRGAN}/v0.1.1/RealESRNet_x4plus.pth', 'rrdbnet', None,
        'RealESRNet_x4plus.pth', dict(_RRDB_23, scale=4)),
    'RealESRGAN_x2plus': Pretrained(
        f'{_REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth', 'rrdbnet', None,
        'RealESRGAN_x2plus.pth', dict(_RRDB_23, scale=2)),
    'RealESRGAN_x4plus_anime_6B': Pretrained(
        f'{_REAL_ESRGAN}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth', 'rrdbnet',
        None, 'RealESRGAN_x4plus_anime_6B.pth',
        dict(_RRDB_23, num_block=6, scale=4)),
    'realesr-general-x4v3': Pretrained(
        f'{_REAL_ESRGAN}/v0.2.5.0/realesr-general-x4v3.pth', 'srvgg', None,
        'realesr-general-x4v3.pth',
        dict(num_feat=64, num_conv=32, scale=4, act_type='prelu')),
    'realesr-animevideov3': Pretrained(
        f'{_REAL_ESRGAN}/v0.2.5.0/realesr-animevideov3.pth', 'srvgg', None,
        'realesr-animevideov3.pth',
        dict(num_feat=64, num_conv=16, scale=4, act_type='prelu')),
    # BasicSR's ESRGAN (DF2K+OST), mirrored in Real-ESRGAN's releases. The
    # '-ff704c30' in its name is BasicSR's short hash, not checked here.
    'ESRGAN_x4': Pretrained(
        f'{_REAL_ESRGAN}/v0.1.1/ESRGAN_SRx4_DF2KOST_official-ff704c30.pth',
        'rrdbnet', None, 'ESRGAN_SRx4_DF2KOST_official-ff704c30.pth',
        dict(_RRDB_23, scale=4)),
    # The original ESRGAN release (old key names) is only on Google Drive.
    'RRDB_ESRGAN_x4': Pretrained(
        None, 'rrdbnet', None, 'RRDB_ESRGAN_x4.pth', dict(_RRDB_23, scale=4),
        homepage='https://github.com/xinntao/ESRGAN (README, "Google Drive")'),
    'RRDB_PSNR_x4': Pretrained(
        None, 'rrdbnet', None, 'RRDB_PSNR_x4.pth', dict(_RRDB_23, scale=4),
        homepage='https://github.com/xinntao/ESRGAN (README, "Google Drive")'),
}


def _entry(name: str) -> Pretrained:
  if name not in PRETRAINED:
    raise ValueError(f'Unknown pretrained weights {name!r}; known: '
                     f'{sorted(PRETRAINED)} (and vgg19).')
  return PRETRAINED[name]


def cached_path(name: str) -> pathlib.Path:
  """Where fetch / convert put NAME: <cache>/NAME.npz."""
  _entry(name)
  return params_io.cache_dir() / f'{name}.npz'


def how_to_get(name: str) -> str:
  """Online and offline instructions for NAME, with the exact commands."""
  entry = _entry(name)
  where = (f'download {entry.url}' if entry.url else
           f'download {entry.filename} from {entry.homepage}')
  lines = ['Get it one of these ways:']
  if entry.url:
    lines.append(f'  * online:  python -m sr_jax.weights fetch {name}')
  lines += [
      f'  * offline: {where} by hand, then run',
      f'             python -m sr_jax.convert {entry.arch} '
      f'/path/to/{entry.filename} {cached_path(name)}',
      f'             (or: python -m sr_jax.weights convert {name} '
      f'/path/to/{entry.filename})']
  return '\n'.join(lines)


def convert_pretrained_file(name: str, src: str | os.PathLike,
                            out: Optional[str | os.PathLike] = None
                            ) -> pathlib.Path:
  """A downloaded NAME file -> converted .npz (default: the cache).

  Checks that the conversion finds NAME's architecture (entry.expect);
  raises ValueError without writing anything otherwise.
  """
  entry = _entry(name)
  out = pathlib.Path(out).expanduser() if out else cached_path(name)
  checkpoint = convert_files.load_torch_file(src)
  try:
    variables, kwargs = convert_lib.convert_with_config(entry.arch, checkpoint)
  except ValueError as e:
    raise ValueError(f'{src} is not {name} ({entry.arch}): {e}') from None
  wrong = {k: (kwargs.get(k), v) for k, v in entry.expect.items()
           if kwargs.get(k) != v}
  if wrong:
    raise ValueError(
        f'{src} converts to {entry.arch} {kwargs}, but {name} has '
        + ', '.join(f'{k}={v!r} (file: {got!r})'
                    for k, (got, v) in wrong.items())
        + ': not the expected file. Nothing was saved.')
  return convert_files.save_converted(out, entry.arch, variables, kwargs,
                                      source=entry.url or entry.filename)


def fetch_pretrained(name: str, out: Optional[str | os.PathLike] = None,
                     progress: bool = True) -> pathlib.Path:
  """Downloads, verifies and converts NAME; returns the .npz path.

  Verification: the SHA-256 where one is recorded, and always the
  architecture check of convert_pretrained_file (progress=True says which
  was done). The download goes to a temporary file that is always deleted.
  Raises FetchError (no URL, offline, bad checksum, wrong file) with the
  manual commands, or ImportError (no torch to read the .pth).
  """
  entry = _entry(name)
  if entry.url is None:
    raise FetchError(f'{name} has no direct download link.\n'
                     + how_to_get(name))
  convert_files.require_torch(f'Reading {entry.filename}')  # Before the wait.
  out = pathlib.Path(out).expanduser() if out else cached_path(name)
  suffix = '.part' + pathlib.Path(entry.filename).suffix
  with download.temporary_path(out.parent, suffix) as tmp:
    with open(tmp, 'wb') as f:
      try:
        digest = download.download_file(entry.url, f, progress)
      except download.DOWNLOAD_ERRORS as e:
        raise FetchError(f'Could not download {entry.url}: {e}.\n'
                         + how_to_get(name)) from e
    if entry.sha256 is not None and digest != entry.sha256:
      raise FetchError(
          f'Downloaded file from {entry.url} has SHA-256 {digest}, not '
          f'{entry.sha256}: corrupt or not the expected file. Nothing was '
          'saved; try again, or ' + how_to_get(name))
    try:
      out = convert_pretrained_file(name, tmp, out)
    except ValueError as e:
      raise FetchError(f'The file downloaded from {entry.url} failed the '
                       f'check: {e}\n' + how_to_get(name)) from None
  if progress:
    check = ('SHA-256 matches' if entry.sha256 else
             'no published SHA-256 recorded: verified by converting it and '
             'checking the architecture ' + ', '.join(
                 f'{k}={v}' for k, v in entry.expect.items()))
    print(f'{name}: {check}; sha256 {digest}.', file=sys.stderr)
  return out


def load_pretrained(name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
  """(arch, model_kwargs, variables) of NAME from the cache.

  Raises WeightsNotFoundError with the fetch / manual commands if absent.
  """
  path = cached_path(name)
  if not path.is_file():
    raise params_io.WeightsNotFoundError(
        f'{name} weights are not in the cache ({path}).\n' + how_to_get(name))
  return convert_files.load_converted(path)
