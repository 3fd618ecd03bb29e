r"""Benchmarks. Figures go in notes and issues, never in timed tests.

  python -m sr_jax.bench train --config=configs/esrgan_fft.py [--phase=gan]
      [--config.dtype=bfloat16] [--steps=20]
  python -m sr_jax.bench data --config=configs/esrgan.py [--steps=20]
      [--pipelines=bicubic,realesrgan] [--with_train]
  python -m sr_jax.bench upscale [--lr_size=512] [--tiles=128,256,512]
      [--dtypes=float32,bfloat16] [--batch_tiles=4] [--runs=3]
  python -m sr_jax.bench metrics [--metrics=psnr,niqe,...] [--images=20]
      [--size=512]

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
"""
import functools
import os
import time

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TF is imported only for TensorBoard writing; its oneDNN banner is noise.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from ml_collections import config_flags
import numpy as np

from sr_jax import data
from sr_jax import degradations
from sr_jax import metrics as sr_metrics
from sr_jax import weights
from sr_jax.data import sample_images
from sr_jax import models
from sr_jax.inference import generator_loading
from sr_jax.inference import tiling
from sr_jax import train_state as ts
from sr_jax.train_step import data_parallel_mesh
from sr_jax.train_step import jit_for_mesh
from sr_jax.train_step import make_phase_step

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


def bench_train(config, phase: str, num_steps: int) -> dict:
  """Steps/s of the jitted step of phase `phase` (a name in config.phases).

  Frozen networks (VGG19, LPIPS, ...) get random weights: speed does not
  depend on their values, and the benchmark never trains anything.
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
  state = jax.jit(functools.partial(ts.init_train_state, recipe,
                                    phase=the_phase),
                  out_shardings=replicated)(jax.random.key(0))
  state = state.replace(step=state.step + the_phase.start)
  aux, _ = ts.load_aux(recipe, config, random=True)
  aux = jax.device_put(aux, replicated)
  gt = config.data.gt_size
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
  t0 = time.perf_counter()
  for i in range(num_steps):
    state, metrics = compiled(state, batches[i % 2], aux)
  jax.block_until_ready((state, metrics))
  seconds = time.perf_counter() - t0
  steps_per_s = num_steps / seconds
  return dict(
      devices=f'{jax.device_count()} x {jax.devices()[0].device_kind}',
      phase=phase, dtype=config.dtype, batch=config.batch_size, gt_size=gt,
      generator=config.generator.name, compile_s=compile_s,
      steps_per_s=steps_per_s,
      gt_megapixels_per_s=steps_per_s * config.batch_size * gt * gt / 1e6)


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


def _print_row(result: dict) -> None:
  print(' | '.join(f'{k}: {v:.3f}' if isinstance(v, float) else f'{k}: {v}'
                   for k, v in result.items()), flush=True)


def main(argv):
  if len(argv) != 2 or argv[1] not in ('train', 'data', 'upscale',
                                       'metrics'):
    raise app.UsageError('Usage: python -m sr_jax.bench train|data '
                         '--config=... | upscale | metrics')
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
  config = _CONFIG.value
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
