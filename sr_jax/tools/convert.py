"""python -m sr_jax.convert ARCH SRC OUT: PyTorch / ncnn weights ->
sr_jax .npz.

  python -m sr_jax.convert rrdbnet RealESRGAN_x4plus.pth x4plus.npz
  python -m sr_jax.convert rrdbnet realesrgan-x4plus.param x4plus.npz
  python -m sr_jax.convert srvgg realesr-general-x4v3.pth general.npz
  python -m sr_jax.convert rrdbnet net_g_400000.pth g.npz --key params
  python -m sr_jax.convert srvgg relu_model.safetensors m.npz \
      --kwarg act_type=relu

The .npz records ARCH and the model kwargs read off the shapes, so
`sr_jax.convert.load_converted(OUT)` knows what to build. Reading .pth needs
torch; .safetensors and ncnn .param / .bin pairs (sr_jax.weights.ncnn: the
graph is checked and gives every setting) do not.
"""
import argparse
import json
import sys
from typing import Any, Optional, Sequence

from sr_jax import errors
from sr_jax.weights import files
from sr_jax.weights import ncnn
from sr_jax.weights import state_dict


def _kwarg(text: str) -> tuple[str, Any]:
  name, sep, value = text.partition('=')
  if not sep or not name:
    raise argparse.ArgumentTypeError(f'expected NAME=VALUE, got {text!r}')
  try:
    return name, json.loads(value)  # 1 -> int, true -> bool, ...
  except json.JSONDecodeError:
    return name, value  # relu -> 'relu'


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m sr_jax.convert',
      description='Convert PyTorch weights (.pth/.pt/.ckpt or .safetensors) '
                  'or an ncnn model (.param, its .bin beside it) into an '
                  'sr_jax .npz that records the model it is for.')
  parser.add_argument('arch', choices=state_dict.SUPPORTED_ARCHS,
                      help='the PyTorch architecture (see sr_jax.convert)')
  parser.add_argument('src', help='PyTorch / safetensors weights file, or '
                      'ncnn .param')
  parser.add_argument('out', help='output .npz')
  parser.add_argument(
      '--key', default=None,
      help="checkpoint entry holding the weights (default: the first of "
           "'params_ema', 'params', 'state_dict', else the file itself); "
           "e.g. --key params for BasicSR's non-EMA weights")
  parser.add_argument(
      '--kwarg', type=_kwarg, action='append', default=[], metavar='NAME=VALUE',
      help='model setting that cannot be read off the shapes, e.g. '
           'act_type=relu (srvgg) or num_in_ch=1 (rrdbnet); repeatable')
  return parser


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  try:
    out, kwargs = files.convert_file(args.arch, args.src, args.out,
                                     key=args.key, **dict(args.kwarg))
  except (ImportError, ValueError, OSError) as e:
    print(f'error: {errors.one_line(e)}', file=sys.stderr)
    return 2
  print(f'{args.src} -> {out}: {args.arch} {json.dumps(kwargs)}')
  if ncnn.is_ncnn_param(args.src):
    resize = ncnn.final_resize(ncnn.read_param(args.src))
    if resize:
      print(f'note: {args.src} ends with a {resize.kind} resize by '
            f'{resize.scale:g}, not kept in {out} (the x{kwargs["scale"]} '
            'network): python -m sr_jax.upscale ... --outscale '
            f'{kwargs["scale"] * resize.scale:g} --outscale-filter cubic '
            'gives the file\'s output.', file=sys.stderr)
  return 0


if __name__ == '__main__':
  sys.exit(main())
