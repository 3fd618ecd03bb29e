r"""Benchmarks. Figures go in notes and issues, never in timed tests.

  python -m sr_jax.bench train --config=configs/esrgan_fft.py [--phase=gan]
      [--config.dtype=bfloat16] [--steps=20]
  python -m sr_jax.bench data --config=configs/esrgan.py [--steps=20]
      [--pipelines=bicubic,realesrgan] [--with_train]
  python -m sr_jax.bench upscale [--lr_size=512] [--tiles=128,256,512]
      [--dtypes=float32,bfloat16] [--batch_tiles=4] [--runs=3]
  python -m sr_jax.bench metrics [--metrics=psnr,niqe,...] [--images=20]
      [--size=512]
  python -m sr_jax.bench compare [--repeats=5] [--infer_size=128]
      [--infer_blocks=23] [--gan_batch=2] [--gan_gt_size=128]
      [--gan_blocks=4] [--num_feat=64]
  python -m sr_jax.bench suite [--config=configs/esrgan_fft.py] [--remat]
      [--reduced]
  python -m sr_jax.bench torch [--gan_batch=2] [--gan_gt_size=128]
      [--gan_blocks=4] [--precisions=fp32,bf16] [--steps=20]
  python -m sr_jax.bench learn [--psnr_steps=300] [--gan_steps=200]
      [--d_iters_steps=60] [--perceptual_layer=conv2_2] [--every=25]
      [--out=curves.png] [--json_out=parity.json] [--workdir=DIR]

`train` times one jitted train step of the config on synthetic batches over
all local devices: compile time, then steps/s and GT megapixels/s. The VGG19
used for the perceptual term has random weights: speed does not depend on
their values, and the benchmark never trains anything.

`data` times what feeds that step: the config's grain input pipeline (HR
patches/s delivered to the host, `config.data.*` as configured, e.g.
`--config.data.num_workers=4`), then each degradation pipeline jitted on the
current devices (LR batches/s for the config's batch and patch size). With
`--with_train` it also times the config's GAN train step and prints how many
times faster than the step each stage is: the input side should be >= 2x.

`upscale` times `python -m sr_jax.upscale`'s tiled inference of the full
RRDBNet x4 (23 blocks, random weights) on one random lr_size x lr_size image,
per tile size and dtype: compile time and LR megapixels/s (tile pad 10).

`metrics` times each registered metric (default: all) on `images` crops of
size x size of the sample photos against a noisy copy: seconds per 100
images (set metrics on the whole set). Metrics whose weights are not in
the cache (`python -m sr_jax.weights fetch ...`) are listed as skipped.

`compare` (CPU, needs torch) times sr_jax against the PyTorch reference
(`sr_jax.tools.torch_reference`, BasicSR's code) in one process on the same CPU
threads (torch.set_num_threads = the CPUs XLA's pool uses), float32,
alternating the two after a warm-up, medians of `repeats` calls:
RRDBNet x4 inference of one infer_size^2 LR image (JAX on the torch
weights, converted), and the ESRGAN GAN step of configs/esrgan.py (RRDBNet
with gan_blocks blocks, VGG-style D with BN, VGG19 conv5_4 perceptual,
RaGAN; gan_batch GT patches of gan_gt_size) against BasicSR's iteration.
Ratio = torch seconds / JAX seconds (> 1: JAX is faster).

`learn` (CPU, needs torch) trains configs/esrgan.py:runlocal's recipe
(tiny RRDBNet, VGG-style D with BN, gt 32, batch 4; PSNR phase, then GAN
from its EMA, then optionally a GAN phase with net_d_iters=2 /
net_d_init_iters=10; milestones inside each phase) with sr_jax's trainer and
with the PyTorch reference of BasicSR's SRModel / ESRGANModel and training
loop, on the same initial weights and the same batches
(`sr_jax.tools.run_parity`, what tests/tools/test_run_parity.py asserts), and
prints both loss curves side by side every `every` steps, the largest
differences per loss against the float32 drift of the PyTorch run itself (its
distance to a float64 run), the final parameter distances and both validation
PSNRs; `--out` writes a PNG of the curves, `--json_out` every step.

`suite` prints one markdown table for an accelerator (step counts chosen
to fit in 8 minutes on one H100 / H200): the GAN step of the config
(default configs/esrgan_fft.py) at batch 16 and 64 in float32 and bfloat16
(compile s, steps/s, model FLOP utilisation: the compiled step's
cost_analysis() FLOPs against the chip's dense peak, PEAK_FLOPS; n/a on
other chips; XLA's temporary memory), its PSNR step, tiled
RRDBNet x4 inference, the input pipeline against what the GAN step
consumes, and the PyTorch reference step (fp32, bf16 autocast; on CUDA, in
a subprocess run first so that the two frameworks never share the GPU).
`--remat` runs the steps with config.remat; `--reduced` is a tiny CPU
version (the tests'). `torch` is that subprocess: the reference step alone.
"""
import contextlib
import json
import os
import tempfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TF is imported only for TensorBoard writing; its oneDNN banner is noise.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

import argparse  # pylint: disable=g-import-not-at-top
import sys

from absl import logging
import jax

from sr_jax import errors
from sr_jax.tools.bench_jax import bench_degradation
from sr_jax.tools.bench_jax import bench_input
from sr_jax.tools.bench_jax import bench_metrics
from sr_jax.tools.bench_jax import bench_train
from sr_jax.tools.bench_jax import bench_upscale
from sr_jax.tools.bench_jax import build_train_step  # noqa: F401
from sr_jax.tools.bench_jax import peak_flops  # noqa: F401
from sr_jax.tools.bench_jax import PEAK_FLOPS  # noqa: F401
from sr_jax.tools.bench_jax import repo_config_file
from sr_jax.tools.bench_jax import TrainStep  # noqa: F401
from sr_jax.tools.bench_suite import bench_suite
from sr_jax.tools.bench_suite import FULL
from sr_jax.tools.bench_suite import print_row
from sr_jax.tools.bench_suite import REDUCED
from sr_jax.tools.bench_suite import suite_table
from sr_jax.tools.bench_suite import SuiteSizes  # noqa: F401
from sr_jax.tools.bench_torch import bench_compare
from sr_jax.tools.bench_torch import bench_learn
from sr_jax.tools.bench_torch import bench_torch_step
from sr_jax.tools.bench_torch import compare_config  # noqa: F401
from sr_jax.tools.bench_torch import cpu_threads
from sr_jax.tools.bench_torch import torch_available  # noqa: F401
from sr_jax.tools.bench_torch import torch_reference_module
from sr_jax.train import config_lib
from sr_jax.train import recipe as recipe_lib

COMMANDS = ('train', 'data', 'upscale', 'metrics', 'compare', 'suite',
            'torch', 'learn')


def _list(text: str) -> list[str]:
  return [x for x in text.split(',') if x]


def build_parser() -> argparse.ArgumentParser:
  """bench's flags; `--config.FIELD=VALUE` overrides a field of --config
  (split off first: config_lib.split_config_overrides)."""
  p = argparse.ArgumentParser(
      prog='python -m sr_jax.bench',
      description=__doc__.split('\n\n', 1)[0],
      formatter_class=argparse.RawDescriptionHelpFormatter,
      epilog='--config.FIELD=VALUE overrides a field of --config (as for '
      'python -m sr_jax.main).')
  p.add_argument('command', choices=COMMANDS)
  p.add_argument('--config', default=None, metavar='FILE[:VARIANT]',
                 help='config file (`train`, `data`; `suite`, `compare`: '
                 'optional).')
  p.add_argument('--phase', default=None, help="which phase's train step "
                 'to time (a name in config.phases; default the last with '
                 'steps).')
  p.add_argument('--steps', type=int, default=20,
                 help='timed steps after compilation.')
  p.add_argument('--pipelines', type=_list,
                 default=['bicubic', 'srrescgan', 'realesrgan', 'perspective'],
                 help='`data`: degradation pipelines to time.')
  _add_inference_flags(p)
  _add_comparison_flags(p)
  return p


def _add_inference_flags(p: argparse.ArgumentParser) -> None:
  """`upscale` and `metrics`."""
  p.add_argument('--lr_size', type=int, default=512,
                 help='`upscale`: LR image side.')
  p.add_argument('--tiles', type=_list, default=['128', '256', '512'],
                 help='`upscale`: tile sizes (LR pixels).')
  p.add_argument('--dtypes', type=_list, default=['float32', 'bfloat16'],
                 help='`upscale`: compute dtypes.')
  p.add_argument('--batch_tiles', type=int, default=4,
                 help='`upscale`: tiles per device call.')
  p.add_argument('--runs', type=int, default=3,
                 help='`upscale`: timed runs per setting.')
  p.add_argument('--metrics', type=_list, default=[],
                 help='`metrics`: which (default all).')
  p.add_argument('--images', type=int, default=20,
                 help='`metrics`: timed images.')
  p.add_argument('--size', type=int, default=512,
                 help='`metrics`: image side.')


def _add_comparison_flags(p: argparse.ArgumentParser) -> None:
  """`data --with_train`, `--remat`, `suite`, `compare`, `torch`, `learn`."""
  p.add_argument('--with_train', action='store_true',
                 help='`data`: also time the train step and compare.')
  p.add_argument('--remat', action='store_true',
                 help='`train` / `suite`: set config.remat (per-block '
                 'rematerialisation of the generator).')
  p.add_argument('--reduced', action='store_true',
                 help="`suite`: tiny networks, batches and step counts (a "
                 "CPU smoke run, the tests'); its figures mean nothing.")
  p.add_argument('--repeats', type=int, default=5,
                 help='`compare`: timed calls per side.')
  p.add_argument('--infer_size', type=int, default=128,
                 help='`compare`: LR image side (inference).')
  p.add_argument('--infer_blocks', type=int, default=23,
                 help='`compare`: RRDB blocks (inference).')
  p.add_argument('--gan_batch', type=int, default=2,
                 help='`compare` / `torch`: GAN step batch.')
  p.add_argument('--gan_gt_size', type=int, default=128,
                 help='`compare` / `torch`: GAN step GT patch side.')
  p.add_argument('--gan_blocks', type=int, default=4,
                 help='`compare` / `torch`: RRDB blocks in the GAN step.')
  p.add_argument('--num_feat', type=int, default=64,
                 help='`compare` / `torch`: RRDBNet features (ESRGAN: 64).')
  p.add_argument('--num_grow_ch', type=int, default=32,
                 help='`torch`: RRDBNet growth channels (ESRGAN: 32).')
  p.add_argument('--d_num_feat', type=int, default=64,
                 help='`torch`: VGG-style discriminator features.')
  p.add_argument('--precisions', type=_list, default=['fp32', 'bf16'],
                 help='`torch`: fp32 and / or bf16 (autocast).')
  p.add_argument('--torch_device', choices=('auto', 'cuda', 'cpu'),
                 default='auto', help='`torch`: auto = CUDA if torch has it, '
                 'else the CPU; cuda = skip the rows without CUDA.')
  p.add_argument('--json_out', default='', help='`torch`: also write the '
                 'rows here (JSON); `learn`: every step of both runs.')
  p.add_argument('--psnr_steps', type=int, default=300,
                 help='`learn`: PSNR phase steps.')
  p.add_argument('--gan_steps', type=int, default=200,
                 help='`learn`: GAN steps.')
  p.add_argument('--d_iters_steps', type=int, default=60,
                 help='`learn`: steps of a third phase with net_d_iters=2, '
                 'net_d_init_iters=10 (0: none).')
  p.add_argument('--perceptual_layer', default='conv2_2',
                 help='`learn`: the VGG19 layer of the perceptual term '
                 '(configs/esrgan.py: conv5_4, ~10x slower on XLA:CPU at '
                 '32 px).')
  p.add_argument('--every', type=int, default=25,
                 help='`learn`: table row every N steps.')
  p.add_argument('--out', default='',
                 help='`learn`: write a PNG of the loss curves here.')
  p.add_argument('--workdir', default='', help='`learn`: where both runs '
                 'write (default: a temporary folder).')




def _compare(args: argparse.Namespace) -> None:
  # A CPU comparison wherever it runs (before any backend starts).
  jax.config.update('jax_platforms', 'cpu')
  print(f'threads: {cpu_threads()} (XLA CPU pool = schedulable CPUs; '
        'torch.set_num_threads the same), float32, median of '
        f'{args.repeats} alternating calls; ratio = torch s / JAX s '
        '(> 1: JAX faster)', flush=True)
  for row in bench_compare(args.repeats, args.infer_size,
                           args.infer_blocks, args.gan_batch,
                           args.gan_gt_size, args.gan_blocks,
                           args.num_feat, args.config, args.overrides):
    print_row(row)


def _learn(args: argparse.Namespace) -> None:
  # float32 on the CPU on both sides (a GPU's TF32 would be a difference
  # of its own), before any backend starts.
  jax.config.update('jax_platforms', 'cpu')
  logging.set_verbosity(logging.WARNING)  # The trainer's INFO lines.
  torch_reference_module()  # UsageError without torch.
  from sr_jax.tools import run_parity  # pylint: disable=g-import-not-at-top
  if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
    # The trainer compiles the initial state again (tens of seconds).
    jax.config.update('jax_compilation_cache_dir', os.path.join(
        tempfile.gettempdir(), 'sr_jax_learn_xla_cache'))
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 1.0)
  sizes = run_parity.Sizes(
      psnr_steps=args.psnr_steps, gan_steps=args.gan_steps,
      d_iters_steps=args.d_iters_steps,
      perceptual_layer=args.perceptual_layer)
  with contextlib.ExitStack() as stack:
    workdir = args.workdir or stack.enter_context(
        tempfile.TemporaryDirectory(prefix='sr_jax_learn_'))
    print(bench_learn(sizes, workdir, args.every, args.out,
                      args.json_out)[1], flush=True)


def _torch(args: argparse.Namespace) -> None:
  rows = bench_torch_step(args.gan_batch, args.gan_gt_size,
                          args.gan_blocks, args.num_feat,
                          args.d_num_feat, True, args.precisions,
                          args.steps, args.torch_device,
                          args.num_grow_ch)
  for row in rows:
    print_row(row)
  if args.json_out:
    with open(args.json_out, 'w') as f:
      json.dump(rows, f)


def _suite(args: argparse.Namespace) -> None:
  sizes = REDUCED if args.reduced else FULL
  config_file = args.config or repo_config_file(
      'esrgan_fft', sizes.config_variant or None)
  result = bench_suite(config_file, sizes, args.overrides,
                       torch_device='auto' if args.reduced else 'cuda')
  print('\n' + suite_table(result, args.config or os.path.relpath(
      config_file)), flush=True)


def _metrics(args: argparse.Namespace) -> None:
  print(f'{args.images} images of {args.size}x{args.size}, '
        f'{jax.devices()[0].device_kind}', flush=True)
  for row in bench_metrics(args.metrics, args.images, args.size):
    print_row(row)


def _upscale(args: argparse.Namespace) -> None:
  print(f'devices: {jax.device_count()} x {jax.devices()[0].device_kind}',
        flush=True)
  for dtype in args.dtypes:
    for tile in args.tiles:
      print_row(bench_upscale(args.lr_size, int(tile), dtype,
                              args.runs, args.batch_tiles))


def _recipe(args: argparse.Namespace) -> recipe_lib.Recipe:
  """--config with its overrides, parsed (ConfigError names the field)."""
  return recipe_lib.Recipe.from_config(config_lib.load_config_file(
      args.config, overrides=args.overrides))


def _train(args: argparse.Namespace) -> None:
  recipe = _recipe(args)
  print_row(bench_train(recipe, args.phase or recipe.phases[-1].name,
                        args.steps))


def _data(args: argparse.Namespace) -> None:
  config = config_lib.load_config_file(args.config, overrides=args.overrides)
  recipe = recipe_lib.Recipe.from_config(config)
  options = config.get('degradation', {})
  print(f'devices: {jax.device_count()} x {jax.devices()[0].device_kind}',
        flush=True)
  rows = [bench_input(recipe, args.steps)]
  print_row(rows[-1])
  for name in args.pipelines:
    rows.append(bench_degradation(recipe, name, args.steps,
                                  options.get(name)))
    print_row(rows[-1])
  if args.with_train:
    phase = recipe.phases[-1].name
    train = bench_train(recipe, phase, max(2, args.steps // 4))
    print_row(train)
    for row in rows:
      ratio = row['batches_per_s'] / train['steps_per_s']
      print(f"{row['stage']}: {ratio:.1f}x the {phase} train step's "
            'consumption', flush=True)


# The commands that need no --config, and those that do.
_RUN = {'compare': _compare, 'learn': _learn, 'torch': _torch,
        'suite': _suite, 'metrics': _metrics, 'upscale': _upscale}
_RUN_WITH_CONFIG = {'train': _train, 'data': _data}


@errors.cli
def main(argv=None) -> int:
  argv = sys.argv[1:] if argv is None else list(argv)
  rest, overrides = config_lib.split_config_overrides(argv)
  args = build_parser().parse_args(rest)
  if args.command in _RUN_WITH_CONFIG and args.config is None:
    raise errors.UsageError(f'bench {args.command} needs --config=FILE, e.g. '
                            '--config=configs/esrgan_fft.py:runlocal.')
  if overrides and args.config is None:
    raise errors.UsageError('--config.FIELD=VALUE overrides need --config.')
  args.overrides = overrides + [('remat', True)] * args.remat
  if args.config is not None:  # A missing file or field: one line, now.
    config_lib.load_config_file(args.config, overrides=args.overrides)
  logging.set_verbosity(logging.WARNING)
  {**_RUN, **_RUN_WITH_CONFIG}[args.command](args)
  return 0


if __name__ == '__main__':
  sys.exit(main())
