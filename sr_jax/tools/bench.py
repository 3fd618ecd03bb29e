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
(`sr_jax.tools.run_parity`, what tests/test_run_parity.py asserts), and prints
both loss curves side by side every `every` steps, the largest differences
per loss against the float32 drift of the PyTorch run itself (its distance
to a float64 run), the final parameter distances and both validation
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

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import jax
from ml_collections import config_flags

from sr_jax import errors
from sr_jax.tools.bench_jax import bench_degradation
from sr_jax.tools.bench_jax import bench_input
from sr_jax.tools.bench_jax import bench_metrics
from sr_jax.tools.bench_jax import bench_train
from sr_jax.tools.bench_jax import bench_upscale
from sr_jax.tools.bench_jax import build_train_step  # noqa: F401
from sr_jax.tools.bench_jax import peak_flops  # noqa: F401
from sr_jax.tools.bench_jax import PEAK_FLOPS  # noqa: F401
from sr_jax.tools.bench_jax import repo_config
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
from sr_jax.train import recipe as recipe_lib

_CONFIG = config_flags.DEFINE_config_file('config', None, 'Config file.',
                                          lock_config=True)
_PHASE = flags.DEFINE_string('phase', None, 'Which phase\'s train step to '
                             'time (a name in config.phases; default the '
                             'last with steps).')
_STEPS = flags.DEFINE_integer('steps', 20, 'Timed steps after compilation.')
_PIPELINES = flags.DEFINE_list(
    'pipelines', ['bicubic', 'srrescgan', 'realesrgan', 'perspective'],
    '`data`: degradation pipelines to time.')
_LR_SIZE = flags.DEFINE_integer('lr_size', 512, '`upscale`: LR image side.')
_TILES = flags.DEFINE_list('tiles', ['128', '256', '512'],
                           '`upscale`: tile sizes (LR pixels).')
_DTYPES = flags.DEFINE_list('dtypes', ['float32', 'bfloat16'],
                            '`upscale`: compute dtypes.')
_BATCH_TILES = flags.DEFINE_integer('batch_tiles', 4,
                                    '`upscale`: tiles per device call.')
_RUNS = flags.DEFINE_integer('runs', 3, '`upscale`: timed runs per setting.')
_METRICS = flags.DEFINE_list('metrics', [], '`metrics`: which (default all).')
_IMAGES = flags.DEFINE_integer('images', 20, '`metrics`: timed images.')
_SIZE = flags.DEFINE_integer('size', 512, '`metrics`: image side.')
_WITH_TRAIN = flags.DEFINE_bool(
    'with_train', False, '`data`: also time the train step and compare.')
_REMAT = flags.DEFINE_bool(
    'remat', False, '`train` / `suite`: set config.remat (per-block '
    'rematerialisation of the generator).')
_REDUCED = flags.DEFINE_bool(
    'reduced', False, '`suite`: tiny networks, batches and step counts '
    '(a CPU smoke run, the tests\'); its figures mean nothing.')
_REPEATS = flags.DEFINE_integer('repeats', 5,
                                '`compare`: timed calls per side.')
_INFER_SIZE = flags.DEFINE_integer('infer_size', 128,
                                   '`compare`: LR image side (inference).')
_INFER_BLOCKS = flags.DEFINE_integer('infer_blocks', 23,
                                     '`compare`: RRDB blocks (inference).')
_GAN_BATCH = flags.DEFINE_integer('gan_batch', 2,
                                  '`compare` / `torch`: GAN step batch.')
_GAN_GT_SIZE = flags.DEFINE_integer(
    'gan_gt_size', 128, '`compare` / `torch`: GAN step GT patch side.')
_GAN_BLOCKS = flags.DEFINE_integer(
    'gan_blocks', 4, '`compare` / `torch`: RRDB blocks in the GAN step.')
_NUM_FEAT = flags.DEFINE_integer(
    'num_feat', 64, '`compare` / `torch`: RRDBNet features (ESRGAN: 64).')
_NUM_GROW_CH = flags.DEFINE_integer(
    'num_grow_ch', 32, '`torch`: RRDBNet growth channels (ESRGAN: 32).')
_D_NUM_FEAT = flags.DEFINE_integer(
    'd_num_feat', 64, '`torch`: VGG-style discriminator features.')
_PRECISIONS = flags.DEFINE_list('precisions', ['fp32', 'bf16'],
                                '`torch`: fp32 and / or bf16 (autocast).')
_TORCH_DEVICE = flags.DEFINE_enum(
    'torch_device', 'auto', ['auto', 'cuda', 'cpu'],
    '`torch`: auto = CUDA if torch has it, else the CPU; cuda = skip the '
    'rows without CUDA.')
_JSON_OUT = flags.DEFINE_string(
    'json_out', '', '`torch`: also write the rows here (JSON); `learn`: '
    'every step of both runs.')
_PSNR_STEPS = flags.DEFINE_integer('psnr_steps', 300,
                                   '`learn`: PSNR phase steps.')
_GAN_STEPS = flags.DEFINE_integer('gan_steps', 200, '`learn`: GAN steps.')
_D_ITERS_STEPS = flags.DEFINE_integer(
    'd_iters_steps', 60, '`learn`: steps of a third phase with '
    'net_d_iters=2, net_d_init_iters=10 (0: none).')
_PERCEPTUAL_LAYER = flags.DEFINE_string(
    'perceptual_layer', 'conv2_2', '`learn`: the VGG19 layer of the '
    'perceptual term (configs/esrgan.py: conv5_4, ~10x slower on XLA:CPU '
    'at 32 px).')
_EVERY = flags.DEFINE_integer('every', 25, '`learn`: table row every N '
                              'steps.')
_OUT = flags.DEFINE_string('out', '', '`learn`: write a PNG of the loss '
                           'curves here.')
_WORKDIR = flags.DEFINE_string('workdir', '', '`learn`: where both runs '
                               'write (default: a temporary folder).')

COMMANDS = ('train', 'data', 'upscale', 'metrics', 'compare', 'suite',
            'torch', 'learn')


def _with_remat(config):
  if _REMAT.value:
    with config.unlocked():
      config.remat = True
  return config


def _compare() -> None:
  # A CPU comparison wherever it runs (before any backend starts).
  jax.config.update('jax_platforms', 'cpu')
  print(f'threads: {cpu_threads()} (XLA CPU pool = schedulable CPUs; '
        'torch.set_num_threads the same), float32, median of '
        f'{_REPEATS.value} alternating calls; ratio = torch s / JAX s '
        '(> 1: JAX faster)', flush=True)
  for row in bench_compare(_REPEATS.value, _INFER_SIZE.value,
                           _INFER_BLOCKS.value, _GAN_BATCH.value,
                           _GAN_GT_SIZE.value, _GAN_BLOCKS.value,
                           _NUM_FEAT.value, _CONFIG.value):
    print_row(row)


def _learn() -> None:
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
      psnr_steps=_PSNR_STEPS.value, gan_steps=_GAN_STEPS.value,
      d_iters_steps=_D_ITERS_STEPS.value,
      perceptual_layer=_PERCEPTUAL_LAYER.value)
  with contextlib.ExitStack() as stack:
    workdir = _WORKDIR.value or stack.enter_context(
        tempfile.TemporaryDirectory(prefix='sr_jax_learn_'))
    print(bench_learn(sizes, workdir, _EVERY.value, _OUT.value,
                      _JSON_OUT.value)[1], flush=True)


def _torch() -> None:
  rows = bench_torch_step(_GAN_BATCH.value, _GAN_GT_SIZE.value,
                          _GAN_BLOCKS.value, _NUM_FEAT.value,
                          _D_NUM_FEAT.value, True, _PRECISIONS.value,
                          _STEPS.value, _TORCH_DEVICE.value,
                          _NUM_GROW_CH.value)
  for row in rows:
    print_row(row)
  if _JSON_OUT.value:
    with open(_JSON_OUT.value, 'w') as f:
      json.dump(rows, f)


def _suite() -> None:
  sizes = REDUCED if _REDUCED.value else FULL
  config = _CONFIG.value or repo_config('esrgan_fft',
                                        sizes.config_variant or None)
  config = _with_remat(config)
  name = ('--config' if _CONFIG.value else 'configs/esrgan_fft.py' +
          (f':{sizes.config_variant}' if sizes.config_variant else ''))
  result = bench_suite(config, sizes, remat=bool(config.get('remat')),
                       torch_device='auto' if _REDUCED.value else 'cuda')
  print('\n' + suite_table(result, name), flush=True)


def _metrics() -> None:
  print(f'{_IMAGES.value} images of {_SIZE.value}x{_SIZE.value}, '
        f'{jax.devices()[0].device_kind}', flush=True)
  for row in bench_metrics(_METRICS.value, _IMAGES.value, _SIZE.value):
    print_row(row)


def _upscale() -> None:
  print(f'devices: {jax.device_count()} x {jax.devices()[0].device_kind}',
        flush=True)
  for dtype in _DTYPES.value:
    for tile in _TILES.value:
      print_row(bench_upscale(_LR_SIZE.value, int(tile), dtype,
                              _RUNS.value, _BATCH_TILES.value))


def _train() -> None:
  config = _with_remat(_CONFIG.value)
  phase = _PHASE.value or recipe_lib.build_recipe(config).phases[-1].name
  print_row(bench_train(config, phase, _STEPS.value))


def _data() -> None:
  config = _with_remat(_CONFIG.value)
  print(f'devices: {jax.device_count()} x {jax.devices()[0].device_kind}',
        flush=True)
  rows = [bench_input(config, _STEPS.value)]
  print_row(rows[-1])
  for name in _PIPELINES.value:
    rows.append(bench_degradation(config, name, _STEPS.value))
    print_row(rows[-1])
  if _WITH_TRAIN.value:
    phase = recipe_lib.build_recipe(config).phases[-1].name
    train = bench_train(config, phase, max(2, _STEPS.value // 4))
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
def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError('Usage: python -m sr_jax.bench train|data '
                         '--config=... | upscale | metrics | compare | suite '
                         '| torch | learn')
  if argv[1] in _RUN:
    _RUN[argv[1]]()
    return
  if _CONFIG.value is None:
    raise app.UsageError('--config is required.')
  _RUN_WITH_CONFIG[argv[1]]()


if __name__ == '__main__':
  app.run(main)
