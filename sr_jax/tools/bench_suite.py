"""`python -m sr_jax.bench suite` (sr_jax/tools/bench.py): one markdown
table for an accelerator, and the one-line rows every benchmark prints.
"""
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import time
from typing import Any, Sequence

import jax

from sr_jax.tools.bench_jax import bench_input
from sr_jax.tools.bench_jax import bench_train
from sr_jax.tools.bench_jax import bench_upscale
from sr_jax.tools.bench_torch import torch_available
from sr_jax.train import config_lib
from sr_jax.train import recipe as recipe_lib


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


def _torch_rows_in_subprocess(recipe: recipe_lib.Recipe, sizes: SuiteSizes,
                              device: str) -> list[dict]:
  """bench_torch_step at the suite's first batch and the recipe's network
  sizes, in a fresh process (run before JAX takes the GPU: each framework
  gets it whole, and their CUDA libraries never meet in one process)."""
  if not torch_available():
    return [dict(stage='torch ESRGAN step', skipped='torch not installed')]
  g = recipe.generator
  d = recipe.networks['discriminator'].module
  with tempfile.TemporaryDirectory() as tmp:
    out = os.path.join(tmp, 'rows.json')
    args = [sys.executable, '-m', 'sr_jax.tools.bench', 'torch',
            f'--gan_batch={sizes.batches[0]}',
            f'--gan_gt_size={recipe.data.gt_size}',
            f'--gan_blocks={getattr(g, "num_block", 23)}',
            f'--num_feat={getattr(g, "num_feat", 64)}',
            f'--num_grow_ch={getattr(g, "num_grow_ch", 32)}',
            f'--d_num_feat={getattr(d, "num_feat", 64)}',
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


def _suite_recipe(config_file: str, overrides, batch: int,
                  dtype: str = 'float32', phase: str = '',
                  drop_terms: Sequence[str] = ()) -> recipe_lib.Recipe:
  """The recipe of `config_file` with `overrides`, at `batch` and `dtype`,
  without `phase`'s loss terms `drop_terms` (weight 0)."""
  config = config_lib.load_config_file(config_file, overrides=[
      *overrides, ('batch_size', batch), ('dtype', dtype)])
  for term in drop_terms:
    if phase and term in config[phase].losses:
      config[phase].losses[term].weight = 0.0
  return recipe_lib.Recipe.from_config(config)


def bench_suite(config_file: str, sizes: SuiteSizes,
                overrides: Sequence[tuple[str, Any]] = (),
                torch_device: str = 'cuda') -> dict:
  """Every row of the `suite` table, as dicts by section. `config_file` is
  the GAN config (configs/esrgan_fft.py[:VARIANT]) and `overrides` its
  (field, value) changes (config_lib.apply_overrides); the torch rows run
  first."""
  t_start = time.perf_counter()
  first = _suite_recipe(config_file, overrides, sizes.batches[0])
  torch_rows = _torch_rows_in_subprocess(first, sizes, torch_device)
  for row in torch_rows:
    print_row(row)
  cache = {}
  steps = []
  for phase, batch, dtype in (
      [('gan', b, d) for b in sizes.batches
       for d in ('float32', 'bfloat16')] +
      [('psnr', sizes.batches[0], 'float32')]):
    recipe = _suite_recipe(config_file, overrides, batch, dtype, phase,
                           sizes.drop_terms)
    steps.append(bench_train(recipe, phase, sizes.gan_steps
                             if phase == 'gan' else sizes.psnr_steps, cache))
    print_row(steps[-1])
  upscale = []
  for dtype in ('float32', 'bfloat16'):
    upscale.append(bench_upscale(
        sizes.upscale_lr_size, sizes.upscale_tile, dtype, sizes.upscale_runs,
        sizes.upscale_batch_tiles, sizes.upscale_blocks))
    print_row(upscale[-1])
  data_row = bench_input(first, sizes.input_batches)
  gan = [r for r in steps if r['phase'] == 'gan']
  hungriest = max(gan, key=lambda r: r['steps_per_s'] * r['batch'])
  data_row['gan_step_patches_per_s'] = (hungriest['steps_per_s'] *
                                        hungriest['batch'])
  data_row['gan_step'] = f"batch {hungriest['batch']} {hungriest['dtype']}"
  print_row(data_row)
  return dict(steps=steps, upscale=upscale, data=data_row,
              torch=torch_rows, remat=first.settings.remat,
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


def print_row(result: dict) -> None:
  print(' | '.join(f'{k}: {_number(v)}' if isinstance(v, float)
                   else f'{k}: {v}' for k, v in result.items()), flush=True)
