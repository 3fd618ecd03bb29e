"""Whole-run parity: sr_jax's trainer against BasicSR's, on the same start.

`run(config, workdir)` trains a two- (or three-) phase ESRGAN recipe twice:
once with sr_jax's real trainer (`sr_jax.train.loop.train_and_evaluate`, every
step logged to W/scalars.csv) and once with the PyTorch reference of
BasicSR's models and training loop (`sr_jax.tools.torch_reference.train_run`:
SRModel for the PSNR phase, then ESRGANModel from its EMA generator), on

* the same initial weights: the trainer's own initial state
  (`ts.init_train_state` of the config's seed, jitted as the trainer does),
  converted to the PyTorch modules (`torch_reference.torch_state_dict`);
* the same batches: the HR patches of sr_jax's input pipeline, iterated as
  the trainer iterates it (one iterator over all phases), and the LR inputs
  sr_jax's degradation makes of them with the step's key
  (`recipe.training_pairs`);
* the same frozen VGG19: random weights (Kaiming-normal, so its features
  are O(1) and the perceptual term matters), written to the file the
  config's `frozen.vgg19` names.

It also trains the PyTorch run again in float64 (networks, batches,
optimizers), the nearest thing to the exact run: its distance to the
float32 PyTorch run, step by step, is how far float32 rounding alone moves
BasicSR's trajectory, the envelope sr_jax's distance is held to (`check`).
Float32 drift starts at the rounding of one step and grows (Adam turns
rounding-level gradient components into full-size steps, the RaGAN game
amplifies differences); a semantic difference jumps out of it at once.
(Two float32 PyTorch runs, one with its initial weights moved by an ulp,
or on other convolution kernels, stay ~100x closer to each other than
either is to the float64 run in the PSNR phase: they round alike
everywhere else, so they make no envelope for another framework.)

When the drift takes off is chance: sr_jax's may start tens of steps
before the float64 run's, most of all at the start of the GAN phase (a
fresh D, Adam on rounding-level gradients; sr_jax's reductions also
accumulate in float32 where torch's CPU BatchNorm accumulates in float64).
So `check` holds each phase's geometric mean of the step-by-step ratio to
a small factor, and every single step to a loose one.

Returns per-step curves of both sides (and of the envelope run), the
relative L2 distances of the final generator, its EMA and the
discriminator, and the validation PSNR of the trainer's final evaluation
against the PyTorch EMA generator's on the same LR inputs (the
evaluator's edge pre-pad included), scored by the same PSNR.

Used by tests/tools/test_run_parity.py and `python -m sr_jax.bench learn`. The
comparison (Result, `check`, the reports) is torch-free, in
sr_jax/tools/run_parity_report.py, and the PyTorch side (the config as
BasicSR runs it) in sr_jax/tools/run_parity_torch.py; their names are
re-exported here.
Needs torch; the JAX side runs on the CPU (a GPU's TF32 convolutions would
be a difference of their own).
"""
from concurrent import futures
import contextlib
import copy
import dataclasses
import functools
import os
import time
from typing import Any, Callable

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import torch

from sr_jax import data
from sr_jax import evaluate as eval_lib
from sr_jax import metrics as sr_metrics
from sr_jax.inference.pre_pad import apply_pre_padded
from sr_jax.inference.pre_pad import DEFAULT_PRE_PAD
from sr_jax.tools import torch_reference as tr
from sr_jax.tools.run_parity_report import check
from sr_jax.tools.run_parity_report import differences  # noqa: F401
from sr_jax.tools.run_parity_report import format_report
from sr_jax.tools.run_parity_report import LEARNING_RATES
from sr_jax.tools.run_parity_report import LOSSES
from sr_jax.tools.run_parity_report import NETWORKS
from sr_jax.tools.run_parity_report import PARAM_FACTOR
from sr_jax.tools.run_parity_report import phase_ratios
from sr_jax.tools.run_parity_report import PHASE_FACTOR
from sr_jax.tools.run_parity_report import plot
from sr_jax.tools.run_parity_report import PSNR_DB
from sr_jax.tools.run_parity_report import Result
from sr_jax.tools.run_parity_report import running_max  # noqa: F401
from sr_jax.tools.run_parity_report import scale_of  # noqa: F401
from sr_jax.tools.run_parity_report import step_ratios
from sr_jax.tools.run_parity_report import STEP_FACTOR
from sr_jax.tools.run_parity_report import summary
from sr_jax.tools.run_parity_report import table
from sr_jax.tools.run_parity_report import ULPS  # noqa: F401
from sr_jax.tools.run_parity_torch import basicsr_options
from sr_jax.tools.run_parity_torch import BasicSROptions
from sr_jax.tools.run_parity_torch import nchw
from sr_jax.tools.run_parity_torch import nhwc
from sr_jax.tools.run_parity_torch import perceptual_extractor
from sr_jax.tools.run_parity_torch import random_vgg19
from sr_jax.tools.run_parity_torch import torch_curves
from sr_jax.tools.run_parity_torch import torch_networks
from sr_jax.tools.run_parity_torch import torch_params
from sr_jax.tools.run_parity_torch import torch_phases
from sr_jax.tools.run_parity_torch import write_vgg19
from sr_jax.train import loop as train
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from sr_jax.train.setup import setup
from sr_jax.train.step import data_parallel_mesh
from sr_jax.train.step import step_keys
from sr_jax.utils import scalar_csv


@dataclasses.dataclass(frozen=True)
class Sizes:
  """What `run` trains: configs/esrgan.py's recipe (its loss weights, Adam
  betas, RaGAN in BasicSR's detached form) at a CPU size.

  ema_decay 0.99: BasicSR's 0.999 averages over ~1000 iterations, so after
  300 PSNR steps its EMA would still be 74% the random initialisation
  (the :demo config says the same). perceptual_layer: configs/esrgan.py's
  conv5_4 on a 32 px patch runs VGG19's conv5 block on 2x2 maps, where
  XLA:CPU's convolution runs at ~1 GFLOP/s (a 3x3 512 -> 512 conv on
  [2, 2, 2, 512] takes ~40 ms, on 4x4 maps ~2.5 ms): the GAN step takes
  1.06 s at conv5_4 against 39 ms at conv2_2 (batch 4, 2-core CPU); the
  conv5_4 term itself is checked step by step in
  tests/tools/test_torch_reference.py. `d_iters_steps` > 0 adds a third phase
  ('gan_d_iters', start 'continue') with BasicSR's net_d_iters /
  net_d_init_iters and a milestone inside it.
  """
  psnr_steps: int = 300
  psnr_lr: float = 2e-4
  psnr_milestones: tuple[int, ...] = (150, 250)
  gan_steps: int = 200
  gan_milestones: tuple[int, ...] = (100,)
  d_iters_steps: int = 60
  net_d_iters: int = 2
  net_d_init_iters: int = 10
  d_iters_milestones: tuple[int, ...] = (30,)
  batch_size: int = 4
  gt_size: int = 32
  perceptual_layer: str = 'conv2_2'
  ema_decay: float = 0.99
  val_images: int = 2
  val_size: int = 64
  seed: int = 0

  @property
  def total_steps(self) -> int:
    return self.psnr_steps + self.gan_steps + self.d_iters_steps


def parity_config(esrgan: ml_collections.ConfigDict, sizes: Sizes,
                  vgg19_path: str) -> ml_collections.ConfigDict:
  """configs/esrgan.py's config (`esrgan`, its :runlocal variant: tiny
  RRDBNet and VGG-style D with BatchNorm) set to `sizes`, with BasicSR's
  RaGAN (`ragan_basicsr`), every step logged and one evaluation (and
  checkpoint) at the end."""
  c = copy.deepcopy(esrgan)
  with c.unlocked():
    c.seed = sizes.seed
    c.batch_size = sizes.batch_size
    c.data.gt_size = sizes.gt_size
    c.data.val_max_images = sizes.val_images
    c.data.val_max_size = sizes.val_size
    c.ema_decay = sizes.ema_decay
    c.frozen.vgg19 = vgg19_path
    c.psnr.steps = sizes.psnr_steps
    c.psnr.optimizers.generator.lr = sizes.psnr_lr
    c.psnr.optimizers.generator.milestones = tuple(sizes.psnr_milestones)
    c.gan.steps = sizes.gan_steps
    c.gan.adversarial_loss = 'ragan_basicsr'
    c.gan.losses.perceptual.layer_weights = {sizes.perceptual_layer: 1.0}
    for entry in c.gan.optimizers.values():
      entry.milestones = tuple(sizes.gan_milestones)
    phases = ['psnr', 'gan']
    if sizes.d_iters_steps:
      c.gan_d_iters = copy.deepcopy(c.gan)
      c.gan_d_iters.steps = sizes.d_iters_steps
      c.gan_d_iters.start = 'continue'
      c.gan_d_iters.net_d_iters = sizes.net_d_iters
      c.gan_d_iters.net_d_init_iters = sizes.net_d_init_iters
      for entry in c.gan_d_iters.optimizers.values():
        entry.milestones = tuple(sizes.d_iters_milestones)
      phases.append('gan_d_iters')
    c.phases = tuple(phases)
    c.log_every = 1
    c.eval_every = c.checkpoint_every = sizes.total_steps
    c.keep_checkpoints = 1
    c.num_val_strips = 0
  return c


# ---------------------------------------------------------- both sides --


@dataclasses.dataclass
class Start:
  """What both sides start from."""
  options: BasicSROptions  # The config as the PyTorch reference runs it.
  recipe: Any
  state: Any  # The trainer's initial TrainState.
  torch_g: dict  # State dicts of the initial G and D.
  torch_d: dict
  vgg: tr.VGGFeatureExtractor  # The perceptual term's VGG19 (both sides).
  batches: list  # (lr [B, h, w, 3], target [B, H, W, 3]) float32, per step.


def initial_state(recipe):
  """The trainer's initial state, made as the trainer makes it (setup)."""
  return setup(recipe, data_parallel_mesh(), aux={}).initial_state(
      jax.random.key(recipe.settings.seed))


def training_batches(recipe, state) -> list:
  """Each step's (LR, target) as the trainer computes them: the input
  pipeline iterated as `train._train` does (one iterator over all phases,
  the batch keys it keeps), LR and target from `recipe.training_pairs`
  with the step's pairs key, step_keys(rng, step).pairs."""
  it = iter(data.make_train_dataset(
      recipe.data, global_batch_size=recipe.settings.batch_size,
      seed=recipe.settings.seed, process_index=0, process_count=1,
      scale=recipe.settings.scale))
  keys = data.batch_keys(recipe.data)
  pairs = jax.jit(recipe.training_pairs)
  batches = []
  for step in range(recipe.total_steps):
    batch = {k: np.asarray(v) for k, v in next(it).items() if k in keys}
    key = step_keys(state.rng, step).pairs
    lr, target, real = jax.device_get(pairs(key, batch, {}))
    if not np.array_equal(target, real):
      raise ValueError('The reference trains D on the target: the config '
                       'must not sharpen or warp it (usm_sharpen_gt, ...).')
    batches.append((lr, target))
  return batches


def prepare(recipe: recipe_lib.Recipe, options: BasicSROptions,
            vgg: tr.VGGFeatureExtractor) -> Start:
  """Initial state, its PyTorch copy and the batches of every step."""
  state = initial_state(recipe)
  net_g, net_d = torch_networks(options)
  g = jax.device_get(ts.generator_variables(state, use_ema=False))
  d = jax.device_get({'params': state.params['discriminator'],
                      **state.model_state['discriminator']})
  return Start(options=options, recipe=recipe, state=state,
               torch_g=tr.torch_state_dict('rrdbnet', g, net_g),
               torch_d=tr.torch_state_dict('vgg_style', d, net_d),
               vgg=perceptual_extractor(options, vgg),
               batches=training_batches(recipe, state))


def run_torch(start: Start, dtype: torch.dtype = torch.float32,
              on_iter: Callable | None = None) -> tr.RunResult:
  """The BasicSR run on `start`, in `dtype` (float64: the envelope run;
  the batches and weights are float32 values either way)."""
  net_g, net_d = torch_networks(start.options)
  net_g.load_state_dict(start.torch_g)
  net_d.load_state_dict(start.torch_d)
  vgg = copy.deepcopy(start.vgg)
  net_g, net_d, vgg = net_g.to(dtype), net_d.to(dtype), vgg.to(dtype)
  batches = ((nchw(lr).to(dtype), nchw(target).to(dtype))
             for lr, target in start.batches)
  return tr.train_run(net_g, net_d, vgg, list(start.options.phases),
                      batches, start.options.ema_decay, on_iter)


def jax_curves(workdir: str, total: int) -> tuple[dict, dict]:
  """({name: per-step values}, {tag: final value}) from W/scalars.csv."""
  scalars = scalar_csv.read_scalars(workdir)
  out = {k: np.full(total, np.nan) for k in LOSSES + LEARNING_RATES}
  for k in out:
    for step, value in scalars.get(f'train/{k}', []):
      out[k][step - 1] = value
  final = {tag: values[-1][1] for tag, values in scalars.items() if values}
  return out, final


def _flat(tree) -> np.ndarray:
  return np.concatenate([np.ravel(np.asarray(x, np.float64))
                         for x in jax.tree.leaves(tree)])


def relative_distance(a, b) -> float:
  """||a - b|| / ||b|| over all leaves of two pytrees of one structure."""
  fa, fb = _flat(a), _flat(b)
  return float(np.linalg.norm(fa - fb) / np.linalg.norm(fb))


def jax_params(state) -> dict[str, Any]:
  state = jax.device_get(state)
  return {'generator': state.params['generator'],
          'generator_ema': state.ema_params['generator'],
          'discriminator': state.params['discriminator']}


def validation_psnr(recipe, jax_ema_variables,
                    torch_generators: dict[str, torch.nn.Module]
                    ) -> dict[str, float]:
  """Mean PSNR (on Y, crop_border = scale) over the config's first
  evaluation's images of: the JAX EMA generator through the evaluator's
  own super-resolve function ('jax'), and each torch generator (by name)
  on the LR inputs that function made, with the same edge pre-pad
  (DEFAULT_PRE_PAD LR pixels), clipping and rounding."""
  evaluator = eval_lib.build_evaluators(recipe.evals)[0]
  scale = recipe.settings.scale
  super_resolve = eval_lib.make_super_resolve_fn(recipe.generator)
  psnr = sr_metrics.METRICS.get('psnr').fn

  def torch_sr(net, x):
    with torch.no_grad():
      return jnp.asarray(nhwc(net(nchw(np.asarray(x)))))

  scores = {name: [] for name in ['jax', *torch_generators]}
  for _, hr, *lr_given in evaluator.images:
    lr_in = lr_given[0][None] if lr_given else None
    lr, _, sr = jax.device_get(super_resolve(jax_ema_variables, hr[None],
                                             lr_in))
    outputs = {'jax': sr}
    for name, net in torch_generators.items():
      net.eval()
      outputs[name] = np.asarray(apply_pre_padded(
          functools.partial(torch_sr, net), jnp.asarray(lr), scale,
          DEFAULT_PRE_PAD))
    for name, image in outputs.items():
      scores[name].append(psnr(eval_lib.to_uint8(image[0]), hr,
                               scale))
  return {k: float(np.mean(v)) for k, v in scores.items()}

def _torch_runs(start: Start, envelope: bool, log) -> tuple:
  """(float32 run, float64 run or None, seconds), on one torch thread."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)  # Tiny networks: more threads only contend.
  seconds = {}
  try:
    t0 = time.perf_counter()
    reference = run_torch(start)
    seconds['torch'] = time.perf_counter() - t0
    log(f'torch run: {seconds["torch"]:.1f} s')
    envelope_run = None
    if envelope:
      t0 = time.perf_counter()
      envelope_run = run_torch(start, torch.float64)
      seconds['torch_float64'] = time.perf_counter() - t0
      log(f'torch float64 run: {seconds["torch_float64"]:.1f} s')
  finally:
    torch.set_num_threads(threads)
  return reference, envelope_run, seconds


def run(config: ml_collections.ConfigDict, workdir: str,
        envelope: bool = True, vgg_seed: int = 0, concurrent: bool = True,
        trainer_log: str = '',
        log: Callable[[str], None] = lambda message: None) -> Result:
  """Both sides (and the float64 envelope run) on `config` (a
  `parity_config`); the VGG19 weights file goes in `workdir`, the
  trainer's run in workdir/sr_jax. The PyTorch runs (one thread) go in a
  thread beside the trainer when `concurrent` (they share nothing).
  trainer_log: a file for the trainer's console output (its progress
  lines); '' leaves it on stdout."""
  seconds = {}
  t_start = time.perf_counter()
  os.makedirs(workdir, exist_ok=True)
  vgg = random_vgg19(vgg_seed)
  config = copy.deepcopy(config)
  with config.unlocked():
    config.frozen.vgg19 = write_vgg19(vgg, os.path.join(workdir,
                                                        'vgg19_random.npz'))
  t0 = time.perf_counter()
  start = prepare(recipe_lib.Recipe.from_config(config),
                  basicsr_options(config), vgg)
  seconds['prepare'] = time.perf_counter() - t0
  log(f'prepared {len(start.batches)} batches in {seconds["prepare"]:.1f} s')

  def trainer():
    t0 = time.perf_counter()
    with contextlib.ExitStack() as stack:
      if trainer_log:
        stack.enter_context(contextlib.redirect_stdout(
            stack.enter_context(open(trainer_log, 'w'))))
      state = train.train_and_evaluate(config,
                                       os.path.join(workdir, 'sr_jax'))
    seconds['sr_jax'] = time.perf_counter() - t0
    log(f'sr_jax trainer: {seconds["sr_jax"]:.1f} s')
    return state

  if concurrent:
    # The trainer stays on the main thread (its signal handlers).
    with futures.ThreadPoolExecutor(1) as pool:
      torch_side = pool.submit(_torch_runs, start, envelope, log)
      final_state = trainer()
      reference, envelope_run, torch_seconds = torch_side.result()
  else:
    reference, envelope_run, torch_seconds = _torch_runs(start, envelope,
                                                         log)
    final_state = trainer()
  seconds.update(torch_seconds)

  total = start.recipe.total_steps
  jax_values, final = jax_curves(os.path.join(workdir, 'sr_jax'), total)
  reference_params = torch_params(reference)
  final_params = jax_params(final_state)
  distances = {n: relative_distance(final_params[n], reference_params[n])
               for n in NETWORKS}
  envelope_distances = None
  if envelope_run is not None:
    envelope_params = torch_params(envelope_run)
    envelope_distances = {
        n: relative_distance(reference_params[n], envelope_params[n])
        for n in NETWORKS}
  psnr = validation_psnr(start.recipe,
                         ts.generator_variables(final_state),
                         {'torch': reference.net_g_ema,
                          'torch_raw': reference.net_g})
  psnr['trainer'] = final.get('val/psnr', float('nan'))
  if 'val/psnr_raw' in final:  # Trainers that also validate the raw G.
    psnr['trainer_raw'] = final['val/psnr_raw']
  seconds['total'] = time.perf_counter() - t_start
  return Result(
      phases=[(p.name, p.start + 1, p.end) for p in start.recipe.phases],
      scale=config.scale, jax=jax_values,
      torch=torch_curves(reference),
      envelope=(None if envelope_run is None else
                torch_curves(envelope_run)),
      distances=distances, envelope_distances=envelope_distances,
      psnr=psnr, seconds=seconds)


__all__ = ['LOSSES', 'PARAM_FACTOR', 'PHASE_FACTOR', 'PSNR_DB', 'Result',
           'STEP_FACTOR', 'Sizes', 'check', 'format_report', 'parity_config',
           'phase_ratios', 'plot', 'run', 'step_ratios', 'summary', 'table',
           'torch_phases', 'basicsr_options']
