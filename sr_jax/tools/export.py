"""python -m sr_jax.export --weights W | --checkpoint WORKDIR --onnx OUT.onnx

Exports a generator to an ONNX file for onnxruntime and front ends such as
chaiNNer.

  --weights / --checkpoint / --which / --arch / --scale / --model-kwargs
         pick the generator as `python -m sr_jax.upscale` does (any
         registered generator: converted .npz, plain .npz with --arch,
         PyTorch .pth / .safetensors, or a training run's EMA generator).
  --onnx OUT.onnx
         input 'input': [batch, 3, height, width] float32 RGB in [0, 1]
         (NCHW, as chaiNNer, spandrel and Real-ESRGAN's ONNX files), every
         dimension dynamic, any height and width (RRDBNet x2 / x1 pad to
         their multiple inside); output 'output': [batch, 3, scale height,
         scale width] float32, unclipped (clip to [0, 1] before quantising).
         The file's metadata records arch, scale and model kwargs (see
         sr_jax/inference/onnx_backend.py for what the export rewrites).

Then onnxruntime runs the file on two random inputs of different sizes
(batch 1 and 2) and compares with the JAX generator on the same inputs;
the largest absolute difference is printed and must be <= --tolerance
(1e-4; relative to the largest output where that exceeds 1, as for
untrained networks), else the exit status is 1 (the file is kept).
--no-verify skips the check. `python -m sr_jax.upscale --backend
onnxruntime --weights OUT.onnx` upscales with the file (tiling, ensemble,
alpha, 16 bits as with JAX).

Needs onnxruntime and jax2onnx: `pip install -e .[onnx]`, then
`pip install --no-deps -r requirements-onnx.txt` (jax2onnx declares an
older orbax-checkpoint than sr_jax pins, and never imports it).
"""
import argparse
import sys
import time
from typing import Optional, Sequence

import jax
import numpy as np

from sr_jax import errors
from sr_jax.inference import generator_loading
from sr_jax.inference import onnx_backend
from sr_jax.inference import tiling
from sr_jax.utils import io_utils

try:
  onnx_backend.require('jax2onnx')
  onnx_backend.require('onnxruntime')
except ImportError as _missing:
  if __name__ == '__main__':
    print(f'error: {_missing}', file=sys.stderr)
    sys.exit(2)
  raise

# (height, width) of the two check inputs, batch 1 then 2: odd and unequal,
# so they also exercise the padding of pixel-unshuffle networks.
CHECK_SIZES = ((37, 29), (22, 41))


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m sr_jax.export',
      description='Export a generator to ONNX (NCHW float32 RGB in [0, 1], '
      'dynamic batch, height and width).',
      epilog=__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  generator_loading.add_source_flags(p)
  p.add_argument('--onnx', required=True, metavar='OUT.onnx',
                 help='the ONNX file to write')
  p.add_argument('--opset', type=int, default=onnx_backend.DEFAULT_OPSET,
                 help=f'ONNX opset (default {onnx_backend.DEFAULT_OPSET}; '
                 f'at least {onnx_backend.MIN_OPSET} for dynamic sizes)')
  p.add_argument('--no-verify', action='store_true',
                 help='skip the onnxruntime vs JAX check')
  p.add_argument('--tolerance', type=float, default=1e-4,
                 help='largest difference the check accepts (default '
                 '1e-4; absolute for outputs in [0, 1])')
  return p


def max_difference(net: onnx_backend.OnnxGenerator, module, variables,
                   scale: int, sizes=CHECK_SIZES,
                   seed: int = 0) -> list[tuple[float, float]]:
  """(max |onnxruntime - JAX|, max |JAX|) per input size, on uniform [0, 1]
  inputs, batch 1, 2, ...

  The JAX reference is the upscale path's: each image reflect-padded to the
  network's input multiple (tiling.pad_to_multiple), the generator applied,
  the output cropped back.
  """
  rng = np.random.default_rng(seed)
  multiple = generator_loading.input_multiple(module)
  apply = jax.jit(lambda v, x: module.apply(v, x, train=False))
  channels = getattr(module, 'num_in_ch', 3)
  out = []
  for batch, (h, w) in enumerate(sizes, 1):
    x = rng.random((batch, h, w, channels), dtype=np.float32)
    padded = np.stack([tiling.pad_to_multiple(i, multiple) for i in x])
    want = np.asarray(apply(variables, padded))[:, :h * scale, :w * scale]
    got = net(x)
    if got.shape != want.shape:
      raise ValueError(f'ONNX output shape {got.shape} != JAX {want.shape} '
                       f'for input {x.shape}.')
    out.append((float(np.max(np.abs(got - want))),
                float(np.max(np.abs(want)))))
  return out


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  if args.opset < onnx_backend.MIN_OPSET:
    return errors.usage(f'--opset {args.opset}: the dynamic sizes need opset '
                        f'>= {onnx_backend.MIN_OPSET}.')
  try:
    model_kwargs = generator_loading.model_kwargs_from_flags(args)
    module, variables, scale = generator_loading.load_generator_for_inference(
        weights=args.weights, checkpoint=args.checkpoint, arch=args.arch,
        model_kwargs=model_kwargs, which=args.which)
    arch = onnx_backend.arch_name(module)
    print(f'Exporting {arch} x{scale} to {args.onnx} (opset {args.opset})',
          file=sys.stderr, flush=True)
    start = time.time()
    proto = onnx_backend.export_generator(module, variables, scale, arch,
                                          opset=args.opset)
    data = proto.SerializeToString()
    with io_utils.atomic_write(args.onnx) as f:
      f.write(data)
  except (OSError, ValueError) as e:
    return errors.usage(str(e))
  print(f'Wrote {args.onnx} ({len(data) / 1e6:.1f} MB, '
        f'{time.time() - start:.1f} s).', file=sys.stderr)
  if args.no_verify:
    return 0
  try:
    # On the CPU: GPU providers may compute convolutions in TF32.
    net = onnx_backend.OnnxGenerator(args.onnx,
                                     providers=['CPUExecutionProvider'])
    diffs = max_difference(net, module, variables, scale)
  except (OSError, ValueError, RuntimeError) as e:
    return errors.usage(f'checking {args.onnx} with onnxruntime: {e}')
  print('max |onnxruntime - jax| ' + ', '.join(
      f'{b}x{h}x{w}: {d:.2e}' + (f' (outputs up to {top:.1e})' if top > 1
                                 else '')
      for b, (h, w), (d, top) in zip(
          (1, 2), CHECK_SIZES, diffs)))
  # Absolute for outputs in [0, 1]; relative to the output for networks
  # whose (e.g. untrained) outputs are far larger.
  worst = max(d / max(1.0, top) for d, top in diffs)
  if worst > args.tolerance:
    print(f'error: the ONNX model differs from the JAX generator by '
          f'{worst:.2e} > --tolerance {args.tolerance:g} (file kept).',
          file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
