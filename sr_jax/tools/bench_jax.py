"""The JAX benchmarks of `python -m sr_jax.bench` (sr_jax/tools/bench.py):
one train step (`train`), the input pipeline and the degradations (`data`),
tiled RRDBNet x4 inference (`upscale`) and the metrics (`metrics`), plus
what the other benchmark modules share: the FLOP peaks and the configs of
this checkout.
"""
import dataclasses
import functools
import os
import time
from typing import Any, Mapping

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import numpy as np

from sr_jax import errors
from sr_jax import data
from sr_jax import degradations
from sr_jax import metrics as sr_metrics
from sr_jax import models
from sr_jax import weights
from sr_jax.data import sample_images
from sr_jax.inference import generator_loading
from sr_jax.inference import tiling
from sr_jax.train import config_lib
from sr_jax.train import recipe as recipe_lib
from sr_jax.train.setup import setup
from sr_jax.train.step import data_parallel_mesh


def repo_config_file(name: str, variant: str | None = None) -> str:
  """configs/<name>.py[:variant] of this checkout, as --config takes it."""
  path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
      os.path.abspath(__file__)))), 'configs', f'{name}.py')
  if not os.path.exists(path):
    raise errors.UsageError(f'{path} does not exist (sr_jax installed without '
                            'its configs?): pass --config=PATH.')
  return path + (f':{variant}' if variant else '')


def repo_config(name: str, variant: str | None = None):
  """configs/<name>.py of this checkout: get_config(variant)."""
  return config_lib.load_config_file(repo_config_file(name, variant))


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
  recipe: recipe_lib.Recipe
  phase: str
  compiled: object
  state: object
  batches: list
  aux: dict
  compile_s: float
  flops: float | None  # Per device and step (XLA's cost analysis).
  temp_bytes: int | None  # Per device (XLA's memory analysis).


def build_train_step(recipe: recipe_lib.Recipe, phase: str,
                     cache: dict | None = None) -> TrainStep:
  """The jitted step of phase `phase` (a phase of `recipe` with steps),
  compiled for synthetic uint8 batches sharded over all local devices.

  Frozen networks (VGG19, LPIPS, ...) get random weights: speed does not
  depend on their values, and the benchmark never trains anything. `cache`
  (a dict the caller keeps) reuses the initial state and frozen networks
  across calls with the same parameter shapes: initialisation compiles
  slowly, and a state does not depend on the dtype or the batch.
  """
  names = [p.name for p in recipe.phases]
  if phase not in names:
    raise errors.UsageError(f'This config has no phase {phase!r} with steps; '
                         f'it has {names}.')
  the_phase = recipe.phases[names.index(phase)]
  mesh = data_parallel_mesh()
  cache = {} if cache is None else cache
  aux_key = ('aux', tuple(sorted(recipe.frozen)), jax.device_count())
  # The trainer's setup, with random frozen networks (cached: made once).
  pieces = setup(recipe, mesh, aux=cache.get(aux_key), random_aux=True)
  cache[aux_key] = pieces.aux
  shapes = jax.tree.map(lambda a: (a.shape, str(a.dtype)),
                        pieces.abstract_state(the_phase, jax.random.key(0)))
  key = ('state', phase, repr(shapes), jax.device_count())
  if key not in cache:
    state = pieces.init_fn(the_phase)(jax.random.key(0))
    cache[key] = state.replace(step=state.step + the_phase.start)
  # The step donates its state: each caller gets buffers of its own.
  state = jax.tree.map(jnp.copy, cache[key])
  aux = pieces.aux
  rng = np.random.default_rng(0)
  batch_sharding = NamedSharding(mesh, P('data'))
  spec = data.batch_spec(recipe.data, recipe.settings.batch_size,
                         recipe.settings.scale)
  batches = [{k: jax.device_put(rng.integers(0, 256, v.shape, np.uint8),
                                batch_sharding) for k, v in spec.items()}
             for _ in range(2)]

  jitted = pieces.step(the_phase)
  t0 = time.perf_counter()
  compiled = jitted.lower(state, batches[0], aux).compile()
  compile_s = time.perf_counter() - t0
  state, metrics = compiled(state, batches[0], aux)  # Warm-up.
  jax.block_until_ready((state, metrics))
  return TrainStep(recipe=recipe, phase=phase, compiled=compiled,
                   state=state, batches=batches, aux=aux,
                   compile_s=compile_s, flops=_flops(compiled),
                   temp_bytes=_temp_bytes(compiled))


def bench_train(recipe: recipe_lib.Recipe, phase: str, num_steps: int,
                cache: dict | None = None) -> dict:
  """Steps/s of the jitted step of phase `phase` (a phase of `recipe`),
  its compile time, FLOPs and model FLOP utilisation (`mfu`, None on chips
  without a known peak; with config.remat the FLOPs include the
  recomputation). `cache`: see build_train_step."""
  step = build_train_step(recipe, phase, cache)
  settings = recipe.settings
  state = step.state
  t0 = time.perf_counter()
  for i in range(num_steps):
    state, metrics = step.compiled(state, step.batches[i % 2], step.aux)
  jax.block_until_ready((state, metrics))
  seconds = time.perf_counter() - t0
  steps_per_s = num_steps / seconds
  gt = recipe.data.gt_size
  kind = jax.devices()[0].device_kind
  peak = peak_flops(kind, settings.dtype)
  mfu = (step.flops * steps_per_s / peak if step.flops and peak else None)
  return dict(
      devices=f'{jax.device_count()} x {kind}',
      phase=phase, dtype=settings.dtype, batch=settings.batch_size,
      gt_size=gt, generator=recipe.warm.generator, remat=settings.remat,
      compile_s=step.compile_s, steps_per_s=steps_per_s,
      gt_megapixels_per_s=steps_per_s * settings.batch_size * gt * gt / 1e6,
      tflop_per_step=step.flops / 1e12 if step.flops else None, mfu=mfu,
      temp_gib=step.temp_bytes / 2**30 if step.temp_bytes else None)


def bench_input(recipe: recipe_lib.Recipe, num_batches: int) -> dict:
  """HR patches/s delivered by the recipe's grain pipeline on this host."""
  settings = recipe.settings
  ds = data.make_train_dataset(
      recipe.data, global_batch_size=settings.batch_size, seed=settings.seed,
      process_index=jax.process_index(), process_count=jax.process_count(),
      scale=settings.scale)
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
              workers=int(recipe.data.get('num_workers', 0)),
              first_batch_s=first_s, batches_per_s=num_batches / seconds,
              hr_patches_per_s=patches / seconds)


def bench_degradation(recipe: recipe_lib.Recipe, name: str, num_batches: int,
                      options: Mapping[str, Any] | None = None) -> dict:
  """LR batches/s of degradation pipeline `name` (with `options`, its
  config.degradation.<name> entry) at the recipe's batch, patch size and
  scale, jitted over all devices."""
  batch = recipe.settings.batch_size
  fn = degradations.get_pipeline(
      name, scale=recipe.settings.scale if name != 'denoise' else 1,
      **dict(options or {}))
  mesh = data_parallel_mesh()
  batch_sharding = NamedSharding(mesh, P('data'))
  gt = recipe.data.gt_size
  rng = np.random.default_rng(0)
  hr = jax.device_put(
      rng.integers(0, 256, (batch, gt, gt, 3), np.uint8),
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
  return dict(stage=f'degradation {name}', batch=batch,
              gt_size=gt, compile_s=compile_s,
              batches_per_s=num_batches / seconds,
              hr_patches_per_s=num_batches * batch / seconds)


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
