"""The benchmarks of `python -m sr_jax.bench` (sr_jax/tools/bench.py) that
run the PyTorch reference (sr_jax.tools.torch_reference, BasicSR's code):
`compare` (sr_jax against it on the same CPU threads), `torch` (its GAN
step alone) and `learn` (both trainers on the same start,
sr_jax.tools.run_parity). torch is imported only when one of them runs.
"""
import functools
import importlib.util
import json
import os
import statistics
import sys
import time
from typing import Any, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import errors
from sr_jax import models
from sr_jax import weights
from sr_jax.tools.bench_jax import build_train_step
from sr_jax.tools.bench_jax import repo_config
from sr_jax.tools.bench_jax import repo_config_file
from sr_jax.train import config_lib
from sr_jax.train import recipe as recipe_lib


def torch_available() -> bool:
  return importlib.util.find_spec('torch') is not None


def torch_reference_module():
  """sr_jax.tools.torch_reference (imports torch; only `compare`, `torch` and
  `learn`)."""
  if not torch_available():
    raise errors.UsageError('This benchmark needs PyTorch: pip install torch '
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
                   num_feat: int, config_file: str | None = None,
                   overrides: Sequence[tuple[str, Any]] = ()):
  """configs/esrgan.py (BasicSR's ESRGAN recipe, what the torch reference
  step is; or `config_file` with `overrides`) at the `compare` sizes."""
  config = config_lib.load_config_file(
      config_file or repo_config_file('esrgan'), overrides=overrides)
  config.batch_size = gan_batch
  config.data.gt_size = gan_gt_size
  config.generator.kwargs = dict(config.generator.kwargs,
                                 num_block=gan_blocks, num_feat=num_feat)
  config.dtype = 'float32'
  return config


def bench_compare(repeats: int, infer_size: int, infer_blocks: int,
                  gan_batch: int, gan_gt_size: int, gan_blocks: int,
                  num_feat: int = 64, config_file: str | None = None,
                  overrides: Sequence[tuple[str, Any]] = ()) -> list[dict]:
  """Seconds per call of sr_jax and the PyTorch reference, float32, on the
  CPU threads JAX uses. JAX must be on the CPU (`compare` sees to it).

  The GAN step is configs/esrgan.py's (or `config_file`'s: like for like only
  with RaGAN and a BN discriminator, as BasicSR's) as `bench train` builds
  it, so it also makes its LR on the device (MATLAB bicubic, cheap next to
  the networks) and checks finiteness; the torch step is given its LR.
  """
  tr = torch_reference_module()
  import torch  # pylint: disable=g-import-not-at-top
  threads = cpu_threads()
  torch.set_num_threads(threads)
  torch.manual_seed(0)
  rows = []

  # RRDBNet x4 inference, the same weights on both sides.
  net = tr.RRDBNet(num_feat=num_feat, num_block=infer_blocks).eval()
  variables = weights.convert_state_dict('rrdbnet', net.state_dict())
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
  recipe = recipe_lib.Recipe.from_config(compare_config(
      gan_batch, gan_gt_size, gan_blocks, num_feat, config_file, overrides))
  step = build_train_step(recipe, 'gan')
  d = recipe.networks['discriminator'].module
  net_g, net_d, vgg = tr.esrgan_networks(
      num_block=gan_blocks, num_feat=num_feat,
      num_grow_ch=getattr(recipe.generator, 'num_grow_ch', 32),
      d_num_feat=getattr(d, 'num_feat', 64), gt_size=gan_gt_size,
      use_bn=getattr(d, 'use_bn', True))
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
  tr = torch_reference_module()
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
  torch_reference_module()  # UsageError without torch.
  from sr_jax.tools import run_parity  # pylint: disable=g-import-not-at-top
  config = run_parity.parity_config(repo_config('esrgan', 'runlocal'),
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
