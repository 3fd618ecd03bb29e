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
import copy
import dataclasses
import functools
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TF is imported only for TensorBoard writing; its oneDNN banner is noise.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import config_flags
import numpy as np

from sr_jax import data
from sr_jax import degradations
from sr_jax import errors
from sr_jax import metrics as sr_metrics
from sr_jax import models
from sr_jax import weights
from sr_jax import weights as convert
from sr_jax.data import sample_images
from sr_jax.inference import generator_loading
from sr_jax.inference import tiling
from sr_jax.train import state as ts
from sr_jax.train.step import data_parallel_mesh
from sr_jax.train.step import jit_for_mesh
from sr_jax.train.step import make_phase_step

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


# Peak dense FLOP/s per device (datasheets, without sparsity), for model
# FLOP utilisation: (name, substrings of jax's device_kind, all needed;
# bf16, f32). f32 is the TF32 tensor-core peak on NVIDIA chips, which XLA
# uses for float32 convolutions and matmuls at its default precision, and
# the bf16 peak on TPUs, whose default precision multiplies float32 in one
# bf16 pass. First match wins.
PEAK_FLOPS = (
    ('H200', ('h200',), 989e12, 495e12),
    ('H100 PCIe', ('h100', 'pcie'), 756e12, 378e12),
    ('H100 SXM', ('h100', 'hbm3'), 989e12, 495e12),  # 'NVIDIA H100 80GB HBM3'
    ('H100 SXM', ('h100', 'sxm'), 989e12, 495e12),
    ('A100', ('a100',), 312e12, 156e12),
    ('TPU v4', ('tpu v4',), 275e12, 275e12),
    ('TPU v5e', ('tpu v5 lite',), 197e12, 197e12),
    ('TPU v5e', ('tpu v5e',), 197e12, 197e12),
    ('TPU v5p', ('tpu v5',), 459e12, 459e12),  # 'TPU v5' or 'TPU v5p'.
    ('TPU v6e', ('tpu v6',), 918e12, 918e12),  # 'TPU v6 lite' / 'TPU v6e'.
)


def peak_flops(device_kind: str, dtype: str) -> float | None:
  """Peak dense FLOP/s of one device of this kind for `dtype` ('float32' or
  'bfloat16'), or None for a kind not in PEAK_FLOPS (CPUs, ...)."""
  kind = device_kind.lower()
  for _, needed, bf16, f32 in PEAK_FLOPS:
    if all(n in kind for n in needed):
      return bf16 if dtype == 'bfloat16' else f32
  return None


def _temp_bytes(compiled) -> int | None:
  """XLA's temporary buffers of a compiled program (activations kept for
  the backward pass, workspaces), per device: what config.remat shrinks."""
  try:
    return int(compiled.memory_analysis().temp_size_in_bytes)
  except Exception:  # pylint: disable=broad-except  # Backend without it.
    return None


def _flops(compiled) -> float | None:
  """FLOPs of one call of a compiled program (per device), from XLA."""
  try:
    cost = compiled.cost_analysis()
  except Exception:  # pylint: disable=broad-except  # Backend without it.
    return None
  if isinstance(cost, (list, tuple)):
    cost = cost[0] if cost else {}
  flops = (cost or {}).get('flops')
  return float(flops) if flops and flops > 0 else None


@dataclasses.dataclass
class TrainStep:
  """A compiled train step with its inputs, ready to call:
  `state, metrics = step.compiled(step.state, step.batches[i % 2], step.aux)`.
  """
  config: object
  phase: str
  compiled: object
  state: object
  batches: list
  aux: dict
  compile_s: float
  flops: float | None  # Per device and step (XLA's cost analysis).
  temp_bytes: int | None  # Per device (XLA's memory analysis).


def build_train_step(config, phase: str, cache: dict | None = None
                     ) -> TrainStep:
  """The jitted step of phase `phase` (a name in config.phases), compiled
  for synthetic uint8 batches sharded over all local devices.

  Frozen networks (VGG19, LPIPS, ...) get random weights: speed does not
  depend on their values, and the benchmark never trains anything. `cache`
  (a dict the caller keeps) reuses the initial state and frozen networks
  across calls with the same parameter shapes: initialisation compiles
  slowly, and a state does not depend on the dtype or the batch.
  """
  recipe = ts.build_recipe(config)
  names = [p.name for p in recipe.phases]
  if phase not in names:
    raise app.UsageError(f'This config has no phase {phase!r} with steps; '
                         f'it has {names}.')
  the_phase = recipe.phases[names.index(phase)]
  mesh = data_parallel_mesh()
  replicated = NamedSharding(mesh, P())
  batch_sharding = NamedSharding(mesh, P('data'))
  init = functools.partial(ts.init_train_state, recipe, phase=the_phase)
  cache = {} if cache is None else cache
  shapes = jax.tree.map(lambda a: (a.shape, str(a.dtype)),
                        jax.eval_shape(init, jax.random.key(0)))
  key = ('state', phase, repr(shapes), jax.device_count())
  if key not in cache:
    state = jax.jit(init, out_shardings=replicated)(jax.random.key(0))
    cache[key] = state.replace(step=state.step + the_phase.start)
  # The step donates its state: each caller gets buffers of its own.
  state = jax.tree.map(jnp.copy, cache[key])
  aux_key = ('aux', tuple(sorted(recipe.frozen)), jax.device_count())
  if aux_key not in cache:
    aux, _ = ts.load_aux(recipe, config, random=True)
    cache[aux_key] = jax.device_put(aux, replicated)
  aux = cache[aux_key]
  rng = np.random.default_rng(0)
  spec = data.batch_spec(config.data, config.batch_size, config.scale)
  batches = [{k: jax.device_put(rng.integers(0, 256, v.shape, np.uint8),
                                batch_sharding) for k, v in spec.items()}
             for _ in range(2)]

  jitted = jit_for_mesh(make_phase_step(config, recipe, the_phase), mesh)
  t0 = time.perf_counter()
  compiled = jitted.lower(state, batches[0], aux).compile()
  compile_s = time.perf_counter() - t0
  state, metrics = compiled(state, batches[0], aux)  # Warm-up.
  jax.block_until_ready((state, metrics))
  return TrainStep(config=config, phase=phase, compiled=compiled,
                   state=state, batches=batches, aux=aux,
                   compile_s=compile_s, flops=_flops(compiled),
                   temp_bytes=_temp_bytes(compiled))


def bench_train(config, phase: str, num_steps: int,
                cache: dict | None = None) -> dict:
  """Steps/s of the jitted step of phase `phase` (a name in config.phases),
  its compile time, FLOPs and model FLOP utilisation (`mfu`, None on chips
  without a known peak; with config.remat the FLOPs include the
  recomputation). `cache`: see build_train_step."""
  step = build_train_step(config, phase, cache)
  state = step.state
  t0 = time.perf_counter()
  for i in range(num_steps):
    state, metrics = step.compiled(state, step.batches[i % 2], step.aux)
  jax.block_until_ready((state, metrics))
  seconds = time.perf_counter() - t0
  steps_per_s = num_steps / seconds
  gt = config.data.gt_size
  kind = jax.devices()[0].device_kind
  peak = peak_flops(kind, config.dtype)
  mfu = (step.flops * steps_per_s / peak if step.flops and peak else None)
  return dict(
      devices=f'{jax.device_count()} x {kind}',
      phase=phase, dtype=config.dtype, batch=config.batch_size, gt_size=gt,
      generator=config.generator.name, remat=bool(config.get('remat')),
      compile_s=step.compile_s, steps_per_s=steps_per_s,
      gt_megapixels_per_s=steps_per_s * config.batch_size * gt * gt / 1e6,
      tflop_per_step=step.flops / 1e12 if step.flops else None, mfu=mfu,
      temp_gib=step.temp_bytes / 2**30 if step.temp_bytes else None)


def bench_input(config, num_batches: int) -> dict:
  """HR patches/s delivered by the config's grain pipeline on this host."""
  ds = data.make_train_dataset(
      config.data, global_batch_size=config.batch_size, seed=config.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      scale=config.scale)
  it = iter(ds)
  t0 = time.perf_counter()
  batch = next(it)  # Includes building the index, decoding a cache, workers.
  first_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(num_batches):
    batch = next(it)
  seconds = time.perf_counter() - t0
  patches = num_batches * batch['hr'].shape[0]
  return dict(stage='input', batch=batch['hr'].shape[0],
              gt_size=batch['hr'].shape[1],
              workers=int(config.data.get('num_workers', 0)),
              first_batch_s=first_s, batches_per_s=num_batches / seconds,
              hr_patches_per_s=patches / seconds)


def bench_degradation(config, name: str, num_batches: int) -> dict:
  """LR batches/s of one degradation pipeline, jitted over all devices."""
  options = dict(config.degradation.get(name, {}))
  fn = degradations.get_pipeline(name, scale=config.scale if name != 'denoise'
                                 else 1, **options)
  mesh = data_parallel_mesh()
  batch_sharding = NamedSharding(mesh, P('data'))
  gt = config.data.gt_size
  rng = np.random.default_rng(0)
  hr = jax.device_put(
      rng.integers(0, 256, (config.batch_size, gt, gt, 3), np.uint8),
      batch_sharding)

  @jax.jit
  def degrade(key, hr_uint8):
    return fn(key, hr_uint8.astype(np.float32) / 255.0)[0]

  t0 = time.perf_counter()
  compiled = degrade.lower(jax.random.key(0), hr).compile()
  compile_s = time.perf_counter() - t0
  jax.block_until_ready(compiled(jax.random.key(0), hr))
  t0 = time.perf_counter()
  for i in range(num_batches):
    lr = compiled(jax.random.key(i), hr)
  jax.block_until_ready(lr)
  seconds = time.perf_counter() - t0
  return dict(stage=f'degradation {name}', batch=config.batch_size,
              gt_size=gt, compile_s=compile_s,
              batches_per_s=num_batches / seconds,
              hr_patches_per_s=num_batches * config.batch_size / seconds)


def bench_upscale(lr_size: int, tile: int, dtype: str, num_runs: int,
                  batch_tiles: int = 4, num_block: int = 23) -> dict:
  """LR megapixels/s of tiled RRDBNet x4 inference on one image."""
  module = models.get_generator('rrdbnet', scale=4, num_block=num_block,
                                dtype=jnp.dtype(dtype))
  variables = jax.jit(module.init)(
      jax.random.key(0), np.zeros((1, 16, 16, 3), np.float32), train=False)
  run_batch = generator_loading.make_run_batch(module, variables)
  image = np.random.default_rng(0).random((lr_size, lr_size, 3), np.float32)
  upscale = functools.partial(tiling.upscale_tiled, run_batch, image, 4,
                              tile=tile, tile_pad=10, batch_tiles=batch_tiles)
  t0 = time.perf_counter()
  upscale()  # Compiles (once per window shape), then runs.
  first_s = time.perf_counter() - t0
  t0 = time.perf_counter()
  for _ in range(num_runs):
    out = upscale()
  seconds = (time.perf_counter() - t0) / num_runs
  assert out.shape == (4 * lr_size, 4 * lr_size, 3)
  return dict(stage='upscale rrdbnet x4', dtype=dtype, lr_size=lr_size,
              tile=tile, batch_tiles=batch_tiles, first_run_s=first_s,
              seconds_per_image=seconds,
              lr_megapixels_per_s=lr_size * lr_size / seconds / 1e6)


def bench_metrics(names, num_images: int, size: int) -> list[dict]:
  """Seconds per 100 size x size images of each registered metric."""
  rng = np.random.default_rng(0)
  photos = [image for _, image in sample_images.train_images()
            if min(image.shape[:2]) >= size] or [
                np.asarray(rng.integers(0, 256, (size, size, 3)), np.uint8)]
  hr = []
  for i in range(num_images):
    photo = photos[i % len(photos)]
    y = rng.integers(0, photo.shape[0] - size + 1)
    x = rng.integers(0, photo.shape[1] - size + 1)
    hr.append(np.ascontiguousarray(photo[y:y + size, x:x + size]))
  sr = [np.clip(h.astype(np.int16) + rng.integers(-8, 9, h.shape), 0, 255
                ).astype(np.uint8) for h in hr]
  rows = []
  for name in names or sr_metrics.METRICS.names():
    metric = sr_metrics.METRICS.get(name)
    kw = {}
    if metric.frozen:
      try:
        kw['variables'] = weights.load_frozen(metric.frozen)
      except weights.WeightsNotFoundError:
        rows.append(dict(metric=name, skipped=f'no {metric.frozen} weights'))
        continue
    crop = 4
    if metric.kind == 'set':
      metric.fn(sr[:2], hr[:2], crop, **kw)  # Compiles.
      start = time.perf_counter()
      metric.fn(sr, hr, crop, **kw)
    else:
      inputs = [(s,) if metric.kind == 'no_reference' else (s, h)
                for s, h in zip(sr, hr)]
      metric.fn(*inputs[0], crop, **kw)  # Compiles.
      start = time.perf_counter()
      for args in inputs:
        metric.fn(*args, crop, **kw)
    seconds = time.perf_counter() - start
    rows.append(dict(metric=name, kind=metric.kind,
                     seconds_per_100_images=seconds * 100 / num_images))
  return rows


# ------------------------------------------------ PyTorch reference --


def torch_available() -> bool:
  return importlib.util.find_spec('torch') is not None


def _torch_reference():
  """sr_jax.tools.torch_reference (imports torch; only `compare`, `torch` and
  `learn`)."""
  if not torch_available():
    raise app.UsageError('This benchmark needs PyTorch: pip install torch '
                         '(or pip install -e .[test]).')
  from sr_jax.tools import torch_reference  # pylint: disable=g-import-not-at-top
  return torch_reference


def cpu_threads() -> int:
  """The CPUs XLA's CPU client runs its thread pool on (the schedulable
  ones), the count `compare` gives torch.set_num_threads."""
  try:
    return len(os.sched_getaffinity(0))
  except AttributeError:  # Not Linux.
    return os.cpu_count() or 1


def _alternate(fns: dict, repeats: int) -> dict:
  """Median seconds per call of each (blocking) fn, called in turn after a
  warm-up call each, the order flipped every repeat (neither side always
  runs first after the other's threads)."""
  for fn in fns.values():
    fn()
  times = {name: [] for name in fns}
  order = list(fns)
  for r in range(repeats):
    for name in (order if r % 2 == 0 else order[::-1]):
      t0 = time.perf_counter()
      fns[name]()
      times[name].append(time.perf_counter() - t0)
  return {name: statistics.median(t) for name, t in times.items()}


def compare_config(gan_batch: int, gan_gt_size: int, gan_blocks: int,
                   num_feat: int, config=None):
  """configs/esrgan.py (BasicSR's ESRGAN recipe, what the torch reference
  step is) at the `compare` sizes."""
  config = copy.deepcopy(config or _repo_config('esrgan'))
  config.batch_size = gan_batch
  config.data.gt_size = gan_gt_size
  config.generator.kwargs = dict(config.generator.kwargs,
                                 num_block=gan_blocks, num_feat=num_feat)
  config.dtype = 'float32'
  return config


def bench_compare(repeats: int, infer_size: int, infer_blocks: int,
                  gan_batch: int, gan_gt_size: int, gan_blocks: int,
                  num_feat: int = 64, config=None) -> list[dict]:
  """Seconds per call of sr_jax and the PyTorch reference, float32, on the
  CPU threads JAX uses. JAX must be on the CPU (`compare` sees to it).

  The GAN step is configs/esrgan.py's (or `config`'s: like for like only
  with RaGAN and a BN discriminator, as BasicSR's) as `bench train` builds
  it, so it also makes its LR on the device (MATLAB bicubic, cheap next to
  the networks) and checks finiteness; the torch step is given its LR.
  """
  tr = _torch_reference()
  import torch  # pylint: disable=g-import-not-at-top
  threads = cpu_threads()
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  rows = []

  # RRDBNet x4 inference, the same weights on both sides.
  net = tr.RRDBNet(num_feat=num_feat, num_block=infer_blocks).eval()
  variables = convert.convert_state_dict('rrdbnet', net.state_dict())
  module = models.get_generator('rrdbnet', scale=4, num_feat=num_feat,
                                num_block=infer_blocks)
  image = np.random.default_rng(0).random((1, infer_size, infer_size, 3),
                                          np.float32)
  x_jax = jnp.asarray(image)
  x_torch = torch.from_numpy(image.transpose(0, 3, 1, 2).copy())
  apply = jax.jit(functools.partial(module.apply, train=False))
  out = {}

  def run_jax():
    out['jax'] = jax.block_until_ready(apply(variables, x_jax))

  def run_torch():
    with torch.no_grad():
      out['torch'] = net(x_torch)

  seconds = _alternate({'torch': run_torch, 'jax': run_jax}, repeats)
  diff = float(np.abs(np.asarray(out['jax']) - out['torch'].numpy()
                      .transpose(0, 2, 3, 1)).max())
  rows.append(dict(
      stage=f'RRDBNet x4 inference ({infer_blocks} blocks, 1 x '
            f'{infer_size}^2 LR)', threads=threads,
      torch_s=seconds['torch'], jax_s=seconds['jax'],
      ratio=seconds['torch'] / seconds['jax'], max_abs_diff=diff))

  # The ESRGAN GAN step.
  config = compare_config(gan_batch, gan_gt_size, gan_blocks, num_feat,
                          config)
  step = build_train_step(config, 'gan')
  d_kwargs = config.discriminator.kwargs
  net_g, net_d, vgg = tr.esrgan_networks(
      num_block=gan_blocks, num_feat=num_feat,
      num_grow_ch=config.generator.kwargs.get('num_grow_ch', 32),
      d_num_feat=d_kwargs.get('num_feat', 64), gt_size=gan_gt_size,
      use_bn=d_kwargs.get('use_bn', True))
  torch_step = tr.make_esrgan_gan_step(net_g, net_d, vgg, 'fp32')
  gt = torch.rand(gan_batch, 3, gan_gt_size, gan_gt_size)
  lq = torch.rand(gan_batch, 3, gan_gt_size // 4, gan_gt_size // 4)
  carry = {'state': step.state, 'i': 0}

  def run_jax_step():
    carry['state'], metrics = step.compiled(
        carry['state'], step.batches[carry['i'] % 2], step.aux)
    carry['i'] += 1
    jax.block_until_ready((carry['state'], metrics))

  seconds = _alternate({'torch': lambda: torch_step(lq, gt),
                        'jax': run_jax_step}, repeats)
  rows.append(dict(
      stage=f'ESRGAN GAN step ({gan_blocks} blocks, batch {gan_batch}, '
            f'{gan_gt_size} px GT)', threads=threads,
      torch_s=seconds['torch'], jax_s=seconds['jax'],
      ratio=seconds['torch'] / seconds['jax'],
      jax_compile_s=step.compile_s))
  return rows


def bench_torch_step(batch: int, gt_size: int, num_block: int,
                     num_feat: int, d_num_feat: int, use_bn: bool,
                     precisions, num_steps: int, device: str = 'auto',
                     num_grow_ch: int = 32) -> list[dict]:
  """Steps/s of the PyTorch reference ESRGAN GAN step (BasicSR's), per
  precision, on CUDA (device 'cuda' or 'auto' with CUDA) or the CPU."""
  tr = _torch_reference()
  import torch  # pylint: disable=g-import-not-at-top
  has_cuda = torch.cuda.is_available()
  where = 'cuda' if has_cuda and device != 'cpu' else 'cpu'
  rows = []
  for precision in precisions:
    row = dict(stage='torch ESRGAN step', device=where, precision=precision,
               batch=batch, gt_size=gt_size, num_block=num_block,
               torch=torch.__version__)
    if device == 'cuda' and not has_cuda:
      rows.append(dict(row, skipped='torch has no CUDA here (a CPU step at '
                       'this size takes minutes; `compare` times the CPU)'))
      continue
    if where == 'cuda':
      torch.backends.cudnn.benchmark = True  # As BasicSR's train.py.
    torch.manual_seed(0)
    net_g, net_d, vgg = tr.esrgan_networks(
        num_block=num_block, num_feat=num_feat, num_grow_ch=num_grow_ch,
        d_num_feat=d_num_feat, gt_size=gt_size, use_bn=use_bn, device=where)
    step = tr.make_esrgan_gan_step(net_g, net_d, vgg, precision)
    gt = torch.rand(batch, 3, gt_size, gt_size, device=where)
    lq = torch.rand(batch, 3, gt_size // 4, gt_size // 4, device=where)
    sync = torch.cuda.synchronize if where == 'cuda' else lambda: None
    t0 = time.perf_counter()
    for _ in range(2):  # cuDNN's algorithm search, allocator warm-up.
      losses = step(lq, gt)
    sync()
    first_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(num_steps):
      losses = step(lq, gt)
    sync()
    seconds = time.perf_counter() - t0
    if not all(bool(torch.isfinite(v)) for v in losses.values()):
      raise RuntimeError(f'torch reference step: non-finite losses {losses}')
    rows.append(dict(row, first_steps_s=first_s,
                     steps_per_s=num_steps / seconds))
    del net_g, net_d, vgg, step
    if where == 'cuda':
      torch.cuda.empty_cache()
  return rows


def bench_learn(sizes, workdir: str, every: int = 25, out: str = '',
                json_out: str = '') -> tuple[object, str]:
  """`learn`: sr_jax's trainer and BasicSR's (PyTorch) on the same start
  (sr_jax.tools.run_parity); returns (result, the printed report)."""
  _torch_reference()  # UsageError without torch.
  from sr_jax.tools import run_parity  # pylint: disable=g-import-not-at-top
  config = run_parity.parity_config(_repo_config('esrgan', 'runlocal'),
                                    sizes, '')
  # Progress on stderr; the trainer's own lines go to its log file.
  result = run_parity.run(
      config, workdir, trainer_log=os.path.join(workdir, 'trainer.log'),
      log=lambda m: print(m, file=sys.stderr, flush=True))
  report = run_parity.format_report(result, every)
  if out:
    report += f'\ncurves: {run_parity.plot(result, out)}'
  if json_out:
    with open(json_out, 'w') as f:
      json.dump(result.to_json(), f)
  return result, report


# ------------------------------------------------------------- suite --


def _repo_config(name: str, arg=None):
  """configs/<name>.py of this checkout: get_config(arg)."""
  path = os.path.join(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__))), 'configs', f'{name}.py')
  if not os.path.exists(path):
    raise app.UsageError(f'{path} does not exist (sr_jax installed without '
                         'its configs?): pass --config=PATH.')
  spec = importlib.util.spec_from_file_location(f'configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


@dataclasses.dataclass(frozen=True)
class SuiteSizes:
  """What `suite` runs; FULL is sized for 8 minutes on one H100 / H200."""
  batches: tuple[int, ...] = (16, 64)
  gan_steps: int = 20
  psnr_steps: int = 50
  upscale_lr_size: int = 512
  upscale_tile: int = 256
  upscale_batch_tiles: int = 4
  upscale_blocks: int = 23
  upscale_runs: int = 3
  input_batches: int = 50
  torch_steps: int = 10
  config_variant: str = ''  # The config's variant ('runlocal': tiny nets).
  # Generator loss terms left out (weight 0) of the JAX steps.
  drop_terms: tuple[str, ...] = ()


FULL = SuiteSizes()
# The tests' CPU smoke run: tiny networks, and no VGG19 perceptual term in
# the JAX steps (its compile is most of a CPU's time on the table).
REDUCED = SuiteSizes(batches=(2,), gan_steps=1, psnr_steps=2,
                     upscale_lr_size=24, upscale_tile=16,
                     upscale_batch_tiles=2, upscale_blocks=1, upscale_runs=1,
                     input_batches=2, torch_steps=1,
                     config_variant='runlocal', drop_terms=('perceptual',))


def _torch_rows_in_subprocess(config, sizes: SuiteSizes,
                              device: str) -> list[dict]:
  """bench_torch_step at the suite's first batch, in a fresh process (run
  before JAX takes the GPU: each framework gets it whole, and their CUDA
  libraries never meet in one process)."""
  if not torch_available():
    return [dict(stage='torch ESRGAN step', skipped='torch not installed')]
  g, d = config.generator.kwargs, config.discriminator.kwargs
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, 'rows.json')
    args = [sys.executable, '-m', 'sr_jax.tools.bench', 'torch',
            f'--gan_batch={sizes.batches[0]}',
            f'--gan_gt_size={config.data.gt_size}',
            f'--gan_blocks={g.get("num_block", 23)}',
            f'--num_feat={g.get("num_feat", 64)}',
            f'--num_grow_ch={g.get("num_grow_ch", 32)}',
            f'--d_num_feat={d.get("num_feat", 64)}',
            f'--steps={sizes.torch_steps}', f'--torch_device={device}',
            f'--json_out={out}']
    done = subprocess.run(args, capture_output=True, text=True, check=False)
    if done.returncode != 0 or not os.path.exists(out):
      tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
      return [dict(stage='torch ESRGAN step',
                   skipped=f'failed (exit {done.returncode}): '
                           + ' / '.join(tail))]
    with open(out) as f:
      return json.load(f)


def bench_suite(config, sizes: SuiteSizes, remat: bool = False,
                torch_device: str = 'cuda') -> dict:
  """Every row of the `suite` table, as dicts by section. `config` is the
  GAN config (configs/esrgan_fft.py); the torch rows run first."""
  t_start = time.perf_counter()
  torch_rows = _torch_rows_in_subprocess(config, sizes, torch_device)
  for row in torch_rows:
    _print_row(row)
  cache = {}
  steps = []
  for phase, batch, dtype in (
      [('gan', b, d) for b in sizes.batches
       for d in ('float32', 'bfloat16')] +
      [('psnr', sizes.batches[0], 'float32')]):
    c = copy.deepcopy(config)
    with c.unlocked():
      c.batch_size, c.dtype, c.remat = batch, dtype, remat
      for term in sizes.drop_terms:
        if term in c[phase].losses:
          c[phase].losses[term].weight = 0.0
    steps.append(bench_train(c, phase, sizes.gan_steps if phase == 'gan'
                             else sizes.psnr_steps, cache))
    _print_row(steps[-1])
  upscale = []
  for dtype in ('float32', 'bfloat16'):
    upscale.append(bench_upscale(
        sizes.upscale_lr_size, sizes.upscale_tile, dtype, sizes.upscale_runs,
        sizes.upscale_batch_tiles, sizes.upscale_blocks))
    _print_row(upscale[-1])
  c = copy.deepcopy(config)
  with c.unlocked():
    c.batch_size = sizes.batches[0]
  data_row = bench_input(c, sizes.input_batches)
  gan = [r for r in steps if r['phase'] == 'gan']
  hungriest = max(gan, key=lambda r: r['steps_per_s'] * r['batch'])
  data_row['gan_step_patches_per_s'] = (hungriest['steps_per_s'] *
                                        hungriest['batch'])
  data_row['gan_step'] = f"batch {hungriest['batch']} {hungriest['dtype']}"
  _print_row(data_row)
  return dict(steps=steps, upscale=upscale, data=data_row,
              torch=torch_rows, remat=remat,
              devices=f'{jax.device_count()} x {jax.devices()[0].device_kind}',
              seconds=time.perf_counter() - t_start)


def suite_table(result: dict, config_name: str) -> str:
  """The markdown table of bench_suite's result."""
  lines = [
      f"Devices: {result['devices']}; config: {config_name}"
      f"{' with config.remat' if result['remat'] else ''}; "
      f"suite took {result['seconds']:.0f} s.", '',
      '| benchmark | batch | dtype | compile s | speed | GFLOP/step | MFU | '
      'temp GiB |',
      '| --- | --- | --- | --- | --- | --- | --- | --- |']
  for r in result['steps']:
    mfu = f"{100 * r['mfu']:.1f}%" if r['mfu'] is not None else 'n/a'
    gflop = (f"{r['tflop_per_step'] * 1e3:.5g}" if r['tflop_per_step']
             else 'n/a')
    temp = f"{r['temp_gib']:.3g}" if r['temp_gib'] else 'n/a'
    lines.append(
        f"| {r['phase'].upper()} step ({r['generator']}, "
        f"{r['gt_size']} px GT) | {r['batch']} | {r['dtype']} | "
        f"{r['compile_s']:.1f} | {r['steps_per_s']:.2f} steps/s | "
        f"{gflop} | {mfu} | {temp} |")
  for r in result['upscale']:
    lines.append(
        f"| upscale RRDBNet x4 (tiled, LR {r['lr_size']}^2, tile "
        f"{r['tile']}) | {r['batch_tiles']} tiles | {r['dtype']} | "
        f"{r['first_run_s']:.1f} (first run) | "
        f"{r['lr_megapixels_per_s']:.3f} LR Mpx/s | - | - | - |")
  d = result['data']
  lines.append(
      f"| input pipeline (grain, {d['workers']} workers) | {d['batch']} | "
      f"uint8 | {d['first_batch_s']:.1f} (first batch) | "
      f"{d['hr_patches_per_s']:.1f} HR patches/s = "
      f"{d['hr_patches_per_s'] / d['gan_step_patches_per_s']:.1f}x the GAN "
      f"step's {d['gan_step_patches_per_s']:.1f} ({d['gan_step']}) | - | - "
      '| - |')
  for r in result['torch']:
    name = f"torch ESRGAN step ({r.get('device', '?')})"
    if 'skipped' in r:
      lines.append(f"| {name} | - | {r.get('precision', '-')} | - | "
                   f"skipped: {r['skipped']} | - | - | - |")
      continue
    dtype = {'fp32': 'float32', 'bf16': 'bf16 autocast'}[r['precision']]
    lines.append(
        f"| {name}, {r['num_block']} blocks, {r['gt_size']} px GT | "
        f"{r['batch']} | {dtype} | {r['first_steps_s']:.1f} (2 steps) | "
        f"{r['steps_per_s']:.2f} steps/s | - | - | - |")
  lines += [
      '',
      'MFU: XLA cost_analysis() FLOPs of the compiled step (per device) x '
      'steps/s / the dense peak of the chip (bench.PEAK_FLOPS; f32 = TF32 '
      'on NVIDIA); n/a on unknown chips. temp: XLA\'s temporary buffers '
      'per device (activations kept for the backward pass).'
      + (' With config.remat the FLOPs include the recomputation.'
         if result['remat'] else ''),
      'The torch row is BasicSR\'s ESRGAN iteration (RaGAN, VGG-style D with '
      'BN, no FFT term or gradient penalty): `compare` is the like-for-like '
      'ratio.']
  return '\n'.join(lines)


def _number(v: float) -> str:
  return f'{v:.3f}' if v == 0 or abs(v) >= 1 else f'{v:.4g}'


def _print_row(result: dict) -> None:
  print(' | '.join(f'{k}: {_number(v)}' if isinstance(v, float)
                   else f'{k}: {v}' for k, v in result.items()), flush=True)


COMMANDS = ('train', 'data', 'upscale', 'metrics', 'compare', 'suite',
            'torch', 'learn')


def _with_remat(config):
  if _REMAT.value:
    with config.unlocked():
      config.remat = True
  return config


@errors.cli
def main(argv):
  if len(argv) != 2 or argv[1] not in COMMANDS:
    raise app.UsageError('Usage: python -m sr_jax.bench train|data '
                         '--config=... | upscale | metrics | compare | suite '
                         '| torch | learn')
  if argv[1] == 'compare':
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
      _print_row(row)
    return
  if argv[1] == 'learn':
    # float32 on the CPU on both sides (a GPU's TF32 would be a difference
    # of its own), before any backend starts.
    jax.config.update('jax_platforms', 'cpu')
    logging.set_verbosity(logging.WARNING)  # The trainer's INFO lines.
    _torch_reference()  # UsageError without torch.
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
    return
  if argv[1] == 'torch':
    rows = bench_torch_step(_GAN_BATCH.value, _GAN_GT_SIZE.value,
                            _GAN_BLOCKS.value, _NUM_FEAT.value,
                            _D_NUM_FEAT.value, True, _PRECISIONS.value,
                            _STEPS.value, _TORCH_DEVICE.value,
                            _NUM_GROW_CH.value)
    for row in rows:
      _print_row(row)
    if _JSON_OUT.value:
      with open(_JSON_OUT.value, 'w') as f:
        json.dump(rows, f)
    return
  if argv[1] == 'suite':
    sizes = REDUCED if _REDUCED.value else FULL
    config = _CONFIG.value or _repo_config('esrgan_fft',
                                           sizes.config_variant or None)
    config = _with_remat(config)
    name = ('--config' if _CONFIG.value else 'configs/esrgan_fft.py' +
            (f':{sizes.config_variant}' if sizes.config_variant else ''))
    result = bench_suite(config, sizes, remat=bool(config.get('remat')),
                         torch_device='auto' if _REDUCED.value else 'cuda')
    print('\n' + suite_table(result, name), flush=True)
    return
  if argv[1] == 'metrics':
    print(f'{_IMAGES.value} images of {_SIZE.value}x{_SIZE.value}, '
          f'{jax.devices()[0].device_kind}', flush=True)
    for row in bench_metrics(_METRICS.value, _IMAGES.value, _SIZE.value):
      _print_row(row)
    return
  if argv[1] == 'upscale':
    print(f'devices: {jax.device_count()} x {jax.devices()[0].device_kind}',
          flush=True)
    for dtype in _DTYPES.value:
      for tile in _TILES.value:
        _print_row(bench_upscale(_LR_SIZE.value, int(tile), dtype,
                                 _RUNS.value, _BATCH_TILES.value))
    return
  if _CONFIG.value is None:
    raise app.UsageError('--config is required.')
  config = _with_remat(_CONFIG.value)
  if argv[1] == 'train':
    phase = _PHASE.value or ts.build_recipe(config).phases[-1].name
    _print_row(bench_train(config, phase, _STEPS.value))
    return
  print(f'devices: {jax.device_count()} x {jax.devices()[0].device_kind}',
        flush=True)
  rows = [bench_input(config, _STEPS.value)]
  _print_row(rows[-1])
  for name in _PIPELINES.value:
    rows.append(bench_degradation(config, name, _STEPS.value))
    _print_row(rows[-1])
  if _WITH_TRAIN.value:
    phase = ts.build_recipe(config).phases[-1].name
    train = bench_train(config, phase, max(2, _STEPS.value // 4))
    _print_row(train)
    for row in rows:
      ratio = row['batches_per_s'] / train['steps_per_s']
      print(f"{row['stage']}: {ratio:.1f}x the {phase} train step's "
            'consumption', flush=True)


if __name__ == '__main__':
  app.run(main)
