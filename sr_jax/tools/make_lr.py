r"""Writes LR training images from HR ones with a trained DSGAN, offline.

SRResCycGAN and DSGAN's own ESRGAN-FS train on pairs made by a DSGAN
generator (configs/dsgan.py): the MATLAB-bicubic x1/scale LR of each HR
image, then the generator's learned real-world degradation. sr_jax can make
them on the fly (`--config.degradation.name=dsgan`); this tool writes them
to disk instead, for a paired folder (data.train_lr_dir) or other tools:

  python -m sr_jax.data.make_lr --dsgan W --input DIV2K_train_HR \
      --output DIV2K_train_LR_dsgan

W is a configs/dsgan.py workdir (its best checkpoint, else the newest) or a
weights file of the `dsgan` generator (an sr_jax .npz, or DSGAN's released
.pth / .tar). HR images whose sides are not multiples of --scale are
cropped at the bottom / right to the nearest multiple (BasicSR's mod crop),
and the LR keeps the HR's relative path as a PNG. Files are written under a
temporary name and renamed, so an interrupted run leaves no half image; a
rerun skips LR files that exist (--overwrite redoes them). --seed makes the
output reproducible (the pipeline is deterministic; the seed is there for
stochastic degradations).

This entry point sits in sr_jax.data by its documented command name but
loads a trained network, so it imports sr_jax.checkpoint: the one import of
a higher layer from sr_jax.data, declared in .importlinter.
"""
import argparse
from collections.abc import Sequence
import os
import sys
import time

import jax
import numpy as np
from PIL import Image

from sr_jax import inference
from sr_jax import errors
from sr_jax.data import image_io
from sr_jax.degradations import pipelines
from sr_jax.utils import io_utils


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m sr_jax.data.make_lr',
      description=__doc__.split('\n\n')[0],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--dsgan', required=True, metavar='W',
                 help='configs/dsgan.py workdir or dsgan weights file')
  p.add_argument('--input', required=True, help='folder of HR images')
  p.add_argument('--output', required=True, help='folder for the LR PNGs')
  p.add_argument('--scale', type=int, default=4, help='down-scaling factor')
  p.add_argument('--seed', type=int, default=0)
  p.add_argument('--overwrite', action='store_true',
                 help='redo LR files that already exist')
  return p


def lr_name(hr_path: str, input_root: str) -> str:
  """The LR file's path relative to --output: the HR's, as .png."""
  rel = os.path.relpath(hr_path, input_root)
  return os.path.splitext(rel)[0] + '.png'


def make_degrade_fn(module, variables: dict, scale: int):
  """Jitted fn(key, hr uint8 [H, W, 3]) -> LR uint8 [H/s, W/s, 3], with the
  DSGAN generator `module` (applied at LR size, after the bicubic)."""
  degrade = pipelines.get_pipeline('dsgan', scale=scale, checkpoint='given')
  network = lambda x: module.apply(variables, x, train=False)

  @jax.jit
  def run(key, hr_uint8):
    hr = hr_uint8[None].astype(np.float32) / 255.0
    lr, _ = degrade(key, hr, network)
    return (lr[0] * 255.0 + 0.5).astype(np.uint8)

  return run


@errors.cli
def main(argv: Sequence[str] | None = None) -> int:
  args = _parser().parse_args(argv)
  if args.scale < 1:
    print(f'error: --scale={args.scale}; use 1 or more.', file=sys.stderr)
    return 2
  try:
    paths = image_io.list_images(args.input)
    dsgan = inference.load_generator_of(args.dsgan, 'dsgan', '--dsgan')
    module, variables = dsgan.module, dsgan.variables
  except (FileNotFoundError, NotADirectoryError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  if getattr(module, 'downscale', 1) != 1:
    module = module.clone(downscale=1)  # The pipeline does the bicubic.
  run = make_degrade_fn(module, variables, args.scale)
  key = jax.random.key(args.seed)
  written = skipped = 0
  start = time.time()
  for i, path in enumerate(paths):
    out = os.path.join(args.output, lr_name(path, args.input))
    if os.path.exists(out) and not args.overwrite:
      skipped += 1
      continue
    try:
      hr = image_io.read_image(path)
    except ValueError as e:
      print(f'skipped {path}: {e}', file=sys.stderr)
      continue
    h, w = (hr.shape[0] // args.scale * args.scale,
            hr.shape[1] // args.scale * args.scale)
    if h == 0 or w == 0:
      print(f'skipped {path}: smaller than --scale {args.scale}.',
            file=sys.stderr)
      continue
    lr = np.asarray(run(jax.random.fold_in(key, i), hr[:h, :w]))
    os.makedirs(os.path.dirname(out) or '.', exist_ok=True)
    with io_utils.atomic_write(out) as f:
      Image.fromarray(lr).save(f, format='PNG')
    written += 1
    print(f'[{i + 1}/{len(paths)}] {out} ({w}x{h} -> {lr.shape[1]}x'
          f'{lr.shape[0]})', flush=True)
  print(f'Done: {written} written, {skipped} already there, in '
        f'{time.time() - start:.0f}s ({args.output}).', flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(main())
