"""The SR benchmark sets: fetch the HR images, make the LR ones.

  python -m sr_jax.data.benchmarks fetch set5 --root data
  python -m sr_jax.data.benchmarks prepare set5 --root data   # HR by hand
  python -m sr_jax.data.benchmarks list

`fetch` downloads a set's HR images into ROOT/<Set>/HR (Set5, Set14,
BSD100, Urban100 from the eugenesiow/* Hugging Face datasets, which hold
the usual SelfExSR compilations; DIV2K's 100 validation images from ETH
Zurich; `photos10`: ten scikit-image photos, offline), then does what
`prepare` does: makes ROOT/<Set>/LR_bicubic/X<s>/
<name>x<s>.png for each --scales with MATLAB bicubic (sr_jax.degradations.
imresize, antialiased, of the HR mod-cropped to the scale, on the 8-bit
grid): BasicSR's layout, so

  python -m sr_jax.evaluate --datasets set5=ROOT/Set5/HR \\
      --lr-dirs set5=ROOT/Set5/LR_bicubic/X4 --lr-template '{}x4' ...

reads them. Without --lr-dirs, `evaluate` makes the same LR itself.

Offline, `fetch` says exactly what to download and where to put it; then
`prepare` makes the LR images from the HR folder. Nothing here runs at
training or test time.
"""
import argparse
import dataclasses
import os
import shutil
import sys
import tarfile
import tempfile
from typing import Optional, Sequence
import zipfile

import numpy as np
from PIL import Image
from skimage import data as skdata

from sr_jax import errors
from sr_jax.utils import io_utils
from sr_jax.data import image_io
from sr_jax.degradations import pipelines

_HF = 'https://huggingface.co/datasets/eugenesiow'


@dataclasses.dataclass(frozen=True)
class Benchmark:
  folder: str  # ROOT/<folder>/HR
  url: str | None  # None: written from the photos in scikit-image's wheel.
  count: int  # HR images the set has.
  homepage: str


# Ten photos shipped with scikit-image (offline; grey ones stored as RGB),
# for trying `python -m sr_jax.evaluate` without a download. chelsea and
# rocket are the demo's held-out validation photos; the others are not in
# its training set either.
PHOTOS10 = ('brick', 'cell', 'chelsea', 'coins', 'colorwheel', 'moon', 'page',
            'retina', 'rocket', 'text')


BENCHMARKS = {
    'set5': Benchmark('Set5', f'{_HF}/Set5/resolve/main/data/Set5_HR.tar.gz',
                      5, f'{_HF}/Set5'),
    'set14': Benchmark('Set14',
                       f'{_HF}/Set14/resolve/main/data/Set14_HR.tar.gz', 14,
                       f'{_HF}/Set14'),
    'bsd100': Benchmark('BSD100',
                        f'{_HF}/BSD100/resolve/main/data/BSD100_HR.tar.gz',
                        100, f'{_HF}/BSD100'),
    'urban100': Benchmark(
        'Urban100', f'{_HF}/Urban100/resolve/main/data/Urban100_HR.tar.gz',
        100, f'{_HF}/Urban100'),
    'photos10': Benchmark('Photos10', None, 10,
                          'https://scikit-image.org/docs/stable/api/'
                          'skimage.data.html'),
    'div2k_val': Benchmark(
        'DIV2K_val', 'http://data.vision.ee.ethz.ch/cvl/DIV2K/'
        'DIV2K_valid_HR.zip', 100, 'https://data.vision.ee.ethz.ch/cvl/DIV2K/'),
}


def _write_photos(target: str) -> None:
  for name in PHOTOS10:
    image = np.asarray(getattr(skdata, name)())
    if image.ndim == 2:
      image = np.repeat(image[..., None], 3, axis=2)
    with io_utils.atomic_write(os.path.join(target, f'{name}.png')) as f:
      Image.fromarray(image[..., :3].astype(np.uint8)).save(f, format='PNG')


class BenchmarkError(errors.SrJaxError, RuntimeError):
  """A set could not be fetched or prepared; the message says what to do."""


def _get(name: str) -> Benchmark:
  if name not in BENCHMARKS:
    raise BenchmarkError(f'Unknown benchmark {name!r}; known: '
                         f'{", ".join(BENCHMARKS)}.')
  return BENCHMARKS[name]


def hr_dir(root: str, name: str) -> str:
  return os.path.join(root, _get(name).folder, 'HR')


def lr_dir(root: str, name: str, scale: int) -> str:
  return os.path.join(root, _get(name).folder, 'LR_bicubic', f'X{scale}')


def _extract_images(archive: str, target: str) -> int:
  """Copies the image files of a .tar(.gz) / .zip archive, flattened, into
  `target`; returns how many."""
  os.makedirs(target, exist_ok=True)
  count = 0
  with tempfile.TemporaryDirectory() as tmp:
    if zipfile.is_zipfile(archive):
      with zipfile.ZipFile(archive) as z:
        z.extractall(tmp)
    else:
      with tarfile.open(archive) as t:
        t.extractall(tmp, filter='data')
    try:
      paths = image_io.list_images(tmp)
    except ValueError:  # No images in it.
      paths = []
    for path in paths:
      shutil.copyfile(path, os.path.join(target, os.path.basename(path)))
      count += 1
  return count


def _manual_steps(name: str, root: str) -> str:
  b = _get(name)
  return (f'Download {b.url} (or the HR images from {b.homepage}) by hand, '
          f'put its {b.count} HR images in {hr_dir(root, name)}/, then run '
          f'`python -m sr_jax.data.benchmarks prepare {name} --root {root}`.')


def fetch(name: str, root: str, scales: Sequence[int] = (2, 3, 4),
          url: str | None = None, progress: bool = True) -> str:
  """Downloads set `name`'s HR images and makes its LR images; returns the
  HR folder. url: another source (e.g. a mirror or a file:// archive)."""
  b = _get(name)
  target = hr_dir(root, name)
  if b.url is None and url is None:
    _write_photos(target)
    prepare(name, root, scales)
    return target
  with io_utils.temporary_path(root, suffix='.download') as tmp:
    try:
      with open(tmp, 'wb') as f:
        io_utils.download_file(url or b.url, f, progress)
    except io_utils.DOWNLOAD_ERRORS as e:
      raise BenchmarkError(f'Could not download {url or b.url} ({e}). '
                           + _manual_steps(name, root)) from None
    try:
      count = _extract_images(tmp, target)
    except (tarfile.TarError, zipfile.BadZipFile, OSError) as e:
      raise BenchmarkError(f'{url or b.url} is not a readable archive ({e}). '
                           + _manual_steps(name, root)) from None
  if count != b.count:
    print(f'warning: {name} should have {b.count} HR images; the archive '
          f'held {count}.', file=sys.stderr)
  prepare(name, root, scales)
  return target


def make_lr(hr: np.ndarray, scale: int) -> tuple[np.ndarray, np.ndarray]:
  """(HR mod-cropped to the scale, its MATLAB-bicubic LR), uint8."""
  h, w = hr.shape[0] - hr.shape[0] % scale, hr.shape[1] - hr.shape[1] % scale
  hr = np.ascontiguousarray(hr[:h, :w])
  return hr, pipelines.bicubic_lr_uint8(hr, scale)


def prepare(name: str, root: str, scales: Sequence[int] = (2, 3, 4)) -> None:
  """Writes ROOT/<Set>/LR_bicubic/X<s>/<name>x<s>.png for each scale."""
  source = hr_dir(root, name)
  try:
    paths = image_io.list_images(source)
  except (OSError, ValueError):
    raise BenchmarkError(f'No HR images in {source}. '
                         + _manual_steps(name, root)) from None
  for scale in scales:
    target = lr_dir(root, name, scale)
    for path in paths:
      hr = image_io.read_image(path)
      _, lr = make_lr(hr, scale)
      stem = os.path.splitext(os.path.basename(path))[0]
      with io_utils.atomic_write(
          os.path.join(target, f'{stem}x{scale}.png')) as f:
        Image.fromarray(lr).save(f, format='PNG')
    print(f'{name}: {len(paths)} LR images x{scale} in {target}',
          file=sys.stderr)


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m sr_jax.data.benchmarks',
      description='Fetch the SR benchmark sets and make their LR images.',
      epilog=__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('command', choices=('fetch', 'prepare', 'list'))
  parser.add_argument('name', nargs='?', choices=sorted(BENCHMARKS))
  parser.add_argument('--root', default='data')
  parser.add_argument('--scales', default='2,3,4',
                      help='LR scales to make (default 2,3,4)')
  parser.add_argument('--url', help='another source for the HR archive')
  args = parser.parse_args(argv)
  if args.command == 'list':
    for name, b in BENCHMARKS.items():
      print(f'{name:10s} {b.count:4d} HR images  {b.url}')
    return 0
  if args.name is None:
    parser.error(f'{args.command} needs a set name: '
                 f'{", ".join(BENCHMARKS)}')
  try:
    scales = [int(s) for s in args.scales.split(',') if s.strip()]
  except ValueError:
    parser.error(f'--scales {args.scales!r}: expected e.g. 2,3,4')
  try:
    if args.command == 'fetch':
      fetch(args.name, args.root, scales, args.url)
    else:
      prepare(args.name, args.root, scales)
  except BenchmarkError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(f'HR: {hr_dir(args.root, args.name)}; LR: '
        f'{os.path.dirname(lr_dir(args.root, args.name, 4))}/X<scale>')
  return 0


if __name__ == '__main__':
  sys.exit(main())
