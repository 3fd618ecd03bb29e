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

Used by tests/test_run_parity.py and `python -m sr_jax.bench learn`.
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
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
import ml_collections
import numpy as np
import torch

from sr_jax import data
from sr_jax import evaluate as eval_lib
from sr_jax import metrics as sr_metrics
from sr_jax import weights as convert
from sr_jax.inference.pre_pad import apply_pre_padded
from sr_jax.inference.pre_pad import DEFAULT_PRE_PAD
from sr_jax.tools import torch_reference as tr
from sr_jax.train import checks as config_checks
from sr_jax.train import loop as train
from sr_jax.train import state as ts
from sr_jax.train.step import data_parallel_mesh
from sr_jax.utils import scalar_csv
from sr_jax.weights import params_io

# Per-step curves compared (sr_jax's log names; BasicSR's l_pix of the
# PSNR run is l_g_pix, its l_d_real + l_d_fake is l_d).
LOSSES = ('l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d', 'out_d_real',
          'out_d_fake')
LEARNING_RATES = ('lr_g', 'lr_d')
NETWORKS = ('generator', 'generator_ema', 'discriminator')
# How far sr_jax may be from the float32 PyTorch run, in units of that
# run's own float32 drift (its distance to the float64 run); `check` says
# how each is used. Measured at the default Sizes over seeds 0-8 (the
# largest of each): per-phase geometric mean 3.6, single step 71, final
# parameters 2.6, validation PSNR 0.0007 dB. Deliberate semantic changes
# (same order): EMA decay 0.995 on one side 7187 / 254672 / 2108 / 1.49 dB;
# D's RaGAN not detached 76 / 200 / 3.9 / 0.0002 dB; skipped G updates not
# moving the schedule (the bug fixed in train_step) 11.2 / 86 / 18 / 0.012
# dB; GAN milestones one iteration late 2.9 / 56 / 1.9 / 0.003 dB, caught
# by the learning rates.
PHASE_FACTOR = 8.0
STEP_FACTOR = 300.0
PARAM_FACTOR = 5.0
PSNR_DB = 0.01
ULPS = 64


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
  tests/test_torch_reference.py. `d_iters_steps` > 0 adds a third phase
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


# ------------------------------------------------------ the torch side --


def _adam_options(entry, where: str) -> dict[str, Any]:
  """An sr_jax optimizer entry as torch.optim.Adam + MultiStepLR options;
  ValueError for anything the reference does not model."""
  entry = dict(entry)
  unsupported = {
      'name': entry.get('name', 'adam') != 'adam',
      'schedule': entry.get('schedule', 'multistep') != 'multistep',
      'clip_grad_norm': bool(entry.get('clip_grad_norm', 0.0)),
      'weight_clip': bool(entry.get('weight_clip', 0.0)),
      'weight_decay': bool(entry.get('weight_decay', 0.0)),
      'eps': float(entry.get('eps', 1e-8)) != 1e-8}
  bad = [k for k, v in unsupported.items() if v]
  if bad:
    raise ValueError(f'{where}: the BasicSR reference models Adam with '
                     f'MultiStepLR only; not {bad}.')
  return dict(lr=float(entry['lr']),
              betas=(float(entry.get('b1', 0.9)), float(entry.get('b2',
                                                                  0.99))),
              milestones=tuple(int(m) for m in entry.get('milestones', ())),
              gamma=float(entry.get('gamma', 0.5)))


def torch_phases(config: ml_collections.ConfigDict) -> list[tr.RunPhase]:
  """The config's phases as BasicSR runs (torch_reference.RunPhase);
  ValueError naming a setting BasicSR's SRModel / ESRGANModel do not
  have."""
  phases = []
  for name in config.phases:
    cfg = config[name]
    if not cfg.steps:
      continue
    where = f'config.{name}'
    losses = {k: dict(v) for k, v in cfg.losses.items() if v.get('weight')}
    if cfg.regularisers:
      raise ValueError(f'{where}.regularisers: not in BasicSR\'s ESRGAN.')
    pixel = losses.pop('pixel', None)
    if pixel is None or pixel.get('criterion', 'l1') != 'l1':
      raise ValueError(f'{where}.losses.pixel: the reference needs an L1 '
                       'pixel term.')
    g = _adam_options(cfg.optimizers.generator, f'{where}.optimizers.'
                      'generator')
    if tuple(cfg.train) == ('generator',):
      if losses:
        raise ValueError(f'{where}.losses: SRModel runs the pixel term '
                         f'only, not {sorted(losses)}.')
      phases.append(tr.RunPhase('sr', cfg.steps, cfg.start, dict(
          g, pixel_weight=float(pixel['weight']))))
      continue
    if sorted(cfg.train) != ['discriminator', 'generator']:
      raise ValueError(f'{where}.train={cfg.train}: the reference trains G '
                       'alone (SRModel) or G and D (ESRGANModel).')
    if cfg.adversarial_loss != 'ragan_basicsr':
      raise ValueError(f'{where}.adversarial_loss={cfg.adversarial_loss!r}:'
                       " BasicSR's ESRGAN is 'ragan_basicsr'.")
    percep = losses.pop('perceptual', {'weight': 0.0})
    adversarial = losses.pop('adversarial', {'weight': 0.0})
    if losses:
      raise ValueError(f'{where}.losses: ESRGANModel has no {sorted(losses)}.')
    if percep['weight'] and (
        percep.get('criterion', 'l1') != 'l1' or
        float(percep.get('feature_scale', 1.0)) != 1.0 or
        not percep.get('use_input_norm', True) or
        percep.get('range_norm', False)):
      raise ValueError(f'{where}.losses.perceptual: the reference is '
                       "BasicSR's (l1, input norm, no range norm, scale 1).")
    d = _adam_options(cfg.optimizers.discriminator,
                      f'{where}.optimizers.discriminator')
    phases.append(tr.RunPhase('esrgan', cfg.steps, cfg.start, dict(
        lr_g=g['lr'], lr_d=d['lr'], betas=g['betas'], betas_d=d['betas'],
        milestones=g['milestones'], gamma=g['gamma'],
        milestones_d=d['milestones'], gamma_d=d['gamma'],
        pixel_weight=float(pixel['weight']),
        perceptual_weight=float(percep['weight']),
        layer_weights=dict(percep.get('layer_weights', {'conv5_4': 1.0})),
        gan_weight=float(adversarial['weight']),
        net_d_iters=int(cfg.net_d_iters),
        net_d_init_iters=int(cfg.net_d_init_iters))))
  return phases


def torch_networks(config: ml_collections.ConfigDict):
  """The config's generator and discriminator as the PyTorch reference
  modules (weights to be loaded)."""
  g, d = config.generator, config.discriminator
  if g.name != 'rrdbnet' or d.name != 'vgg_style':
    raise ValueError('The reference has rrdbnet / vgg_style only; got '
                     f'{g.name} / {d.name}.')
  gk, dk = dict(g.kwargs), dict(d.kwargs)
  net_g = tr.RRDBNet(3, 3, config.scale, gk.get('num_feat', 64),
                     gk.get('num_block', 23), gk.get('num_grow_ch', 32))
  net_d = tr.VGGStyleDiscriminator(3, dk.get('num_feat', 64),
                                   config.data.gt_size,
                                   dk.get('use_bn', True))
  return net_g, net_d


def random_vgg19(seed: int = 0) -> tr.VGGFeatureExtractor:
  """VGG19 (to conv5_4) with Kaiming-normal conv weights (fan-in, ReLU
  gain): features stay O(1) through the 16 convs, so a perceptual term on
  random weights is not ~1e-7 (what default initialisations give)."""
  torch.manual_seed(seed)
  vgg = tr.VGGFeatureExtractor(('conv5_4',)).eval()
  for m in vgg.features:
    if isinstance(m, torch.nn.Conv2d):
      torch.nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
  return vgg


def write_vgg19(vgg: tr.VGGFeatureExtractor, path: str) -> str:
  """Saves the reference VGG19's weights as sr_jax's frozen 'vgg19' file."""
  params_io.save_params(path, convert.convert_state_dict(
      'vgg19', vgg.state_dict()))
  return path


def perceptual_extractor(config, vgg: tr.VGGFeatureExtractor
                         ) -> tr.VGGFeatureExtractor:
  """BasicSR's VGGFeatureExtractor for the layers the config's perceptual
  terms read, with `vgg`'s weights."""
  layers = set()
  for name in config.phases:
    term = config[name].losses.get('perceptual', {})
    if term.get('weight'):
      layers.update(term.get('layer_weights', {'conv5_4': 1.0}))
  extractor = tr.VGGFeatureExtractor(sorted(layers) or ('conv5_4',)).eval()
  wanted = extractor.state_dict()
  extractor.load_state_dict({k: v for k, v in vgg.state_dict().items()
                             if k in wanted})
  return extractor


def _nchw(x) -> torch.Tensor:
  return torch.from_numpy(np.ascontiguousarray(
      np.asarray(x, np.float32).transpose(0, 3, 1, 2)))


def _nhwc(t: torch.Tensor) -> np.ndarray:
  return t.detach().numpy().transpose(0, 2, 3, 1)


# ---------------------------------------------------------- both sides --


@dataclasses.dataclass
class Start:
  """What both sides start from."""
  config: ml_collections.ConfigDict
  recipe: Any
  state: Any  # The trainer's initial TrainState.
  torch_g: dict  # State dicts of the initial G and D.
  torch_d: dict
  vgg: tr.VGGFeatureExtractor  # The perceptual term's VGG19 (both sides).
  batches: list  # (lr [B, h, w, 3], target [B, H, W, 3]) float32, per step.


def initial_state(config, recipe):
  """The trainer's initial state, made as `train._train` makes it."""
  replicated = NamedSharding(data_parallel_mesh(), P())
  init = jax.jit(functools.partial(ts.init_train_state, recipe,
                                   phase=recipe.phases[0]),
                 out_shardings=replicated)
  return ts.apply_frozen_submodules(
      config, recipe, ts.apply_init_from(config, recipe,
                                         init(jax.random.key(config.seed))))


def training_batches(config, recipe, state) -> list:
  """Each step's (LR, target) as the trainer computes them: the input
  pipeline iterated as `train._train` does (one iterator over all phases,
  the batch keys it keeps), LR and target from `recipe.training_pairs`
  with the step's key fold_in(fold_in(rng, step), 1)."""
  it = iter(data.make_train_dataset(
      config.data, global_batch_size=config.batch_size, seed=config.seed,
      process_index=0, process_count=1, scale=config.scale))
  keys = data.batch_keys(config.data)
  pairs = jax.jit(recipe.training_pairs)
  batches = []
  for step in range(recipe.total_steps):
    batch = {k: np.asarray(v) for k, v in next(it).items() if k in keys}
    key = jax.random.fold_in(jax.random.fold_in(state.rng, step), 1)
    lr, target, real = jax.device_get(pairs(key, batch, {}))
    if not np.array_equal(target, real):
      raise ValueError('The reference trains D on the target: the config '
                       'must not sharpen or warp it (usm_sharpen_gt, ...).')
    batches.append((lr, target))
  return batches


def prepare(config: ml_collections.ConfigDict, vgg: tr.VGGFeatureExtractor
            ) -> Start:
  """Initial state, its PyTorch copy and the batches of every step."""
  recipe = config_checks.check_config(config)
  state = initial_state(config, recipe)
  net_g, net_d = torch_networks(config)
  g = jax.device_get(ts.generator_variables(state, use_ema=False))
  d = jax.device_get({'params': state.params['discriminator'],
                      **state.model_state['discriminator']})
  return Start(config=config, recipe=recipe, state=state,
               torch_g=tr.torch_state_dict('rrdbnet', g, net_g),
               torch_d=tr.torch_state_dict('vgg_style', d, net_d),
               vgg=perceptual_extractor(config, vgg),
               batches=training_batches(config, recipe, state))


def run_torch(start: Start, dtype: torch.dtype = torch.float32,
              on_iter: Callable | None = None) -> tr.RunResult:
  """The BasicSR run on `start`, in `dtype` (float64: the envelope run;
  the batches and weights are float32 values either way)."""
  net_g, net_d = torch_networks(start.config)
  net_g.load_state_dict(start.torch_g)
  net_d.load_state_dict(start.torch_d)
  vgg = copy.deepcopy(start.vgg)
  net_g, net_d, vgg = net_g.to(dtype), net_d.to(dtype), vgg.to(dtype)
  batches = ((_nchw(lr).to(dtype), _nchw(target).to(dtype))
             for lr, target in start.batches)
  return tr.train_run(net_g, net_d, vgg, torch_phases(start.config),
                      batches, start.config.ema_decay, on_iter)


def torch_curves(result: tr.RunResult) -> dict[str, np.ndarray]:
  """{name: per-global-step values} of a torch run (NaN where BasicSR
  logged nothing: G's losses on iterations without a G update)."""
  total = sum(len(logs) for logs in result.logs)
  out = {k: np.full(total, np.nan) for k in LOSSES + LEARNING_RATES}
  step = 0
  for logs in result.logs:
    for log in logs:
      log = dict(log)
      if 'l_pix' in log:
        log['l_g_pix'] = log.pop('l_pix')
      if 'l_d_real' in log:
        log['l_d'] = log['l_d_real'] + log['l_d_fake']
      for k in out:
        if k in log:
          out[k][step] = log[k]
      step += 1
  return out


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


def torch_params(result: tr.RunResult) -> dict[str, Any]:
  """The torch run's final G, EMA G and D parameters as sr_jax params."""
  g = lambda net: convert.convert_state_dict('rrdbnet',
                                             net.state_dict())['params']
  return {'generator': g(result.net_g),
          'generator_ema': g(result.net_g_ema),
          'discriminator': convert.convert_state_dict(
              'vgg_style', result.net_d.state_dict())['params']}


def jax_params(state) -> dict[str, Any]:
  state = jax.device_get(state)
  return {'generator': state.params['generator'],
          'generator_ema': state.ema_params['generator'],
          'discriminator': state.params['discriminator']}


def validation_psnr(config, recipe, jax_ema_variables,
                    torch_generators: dict[str, torch.nn.Module]
                    ) -> dict[str, float]:
  """Mean PSNR (on Y, crop_border = scale) over the config's first
  evaluation's images of: the JAX EMA generator through the evaluator's
  own super-resolve function ('jax'), and each torch generator (by name)
  on the LR inputs that function made, with the same edge pre-pad
  (DEFAULT_PRE_PAD LR pixels), clipping and rounding."""
  evaluator = eval_lib.build_evaluators(config)[0]
  super_resolve = eval_lib.make_super_resolve_fn(recipe.generator)
  psnr = sr_metrics.METRICS.get('psnr').fn

  def torch_sr(net, x):
    with torch.no_grad():
      return jnp.asarray(_nhwc(net(_nchw(np.asarray(x)))))

  scores = {name: [] for name in ['jax', *torch_generators]}
  for _, hr, *lr_given in evaluator.images:
    lr_in = lr_given[0][None] if lr_given else None
    lr, _, sr = jax.device_get(super_resolve(jax_ema_variables, hr[None],
                                             lr_in))
    outputs = {'jax': sr}
    for name, net in torch_generators.items():
      net.eval()
      outputs[name] = np.asarray(apply_pre_padded(
          functools.partial(torch_sr, net), jnp.asarray(lr), config.scale,
          DEFAULT_PRE_PAD))
    for name, image in outputs.items():
      scores[name].append(psnr(eval_lib.to_uint8(image[0]), hr,
                               config.scale))
  return {k: float(np.mean(v)) for k, v in scores.items()}


@dataclasses.dataclass
class Result:
  """Both runs (and the envelope run) of `run`."""
  phases: list[tuple[str, int, int]]  # (name, first step, last step), 1-based.
  scale: int
  jax: dict[str, np.ndarray]  # Per-step curves (index = global step - 1).
  torch: dict[str, np.ndarray]
  envelope: dict[str, np.ndarray] | None  # The float64 run's curves.
  distances: dict[str, float]  # sr_jax vs torch, final parameters.
  envelope_distances: dict[str, float] | None  # torch vs its float64 run.
  # 'trainer' (val/psnr: the EMA G), 'jax' (the same, recomputed), 'torch'
  # (its EMA G), 'torch_raw' (its G), 'trainer_raw' (val/psnr_raw, when
  # the trainer logs it).
  psnr: dict[str, float]
  seconds: dict[str, float]

  @property
  def steps(self) -> np.ndarray:
    return np.arange(1, len(self.torch['l_g_pix']) + 1)

  def phase_at(self, step: int) -> str:
    return next(n for n, a, b in self.phases if a <= step <= b)

  def to_json(self) -> dict:
    curves = lambda c: None if c is None else {
        k: [None if not np.isfinite(x) else float(x) for x in v]
        for k, v in c.items()}
    return dict(phases=self.phases, scale=self.scale,
                jax=curves(self.jax), torch=curves(self.torch),
                envelope=curves(self.envelope), distances=self.distances,
                envelope_distances=self.envelope_distances, psnr=self.psnr,
                seconds=self.seconds)

  @classmethod
  def from_json(cls, d: dict) -> 'Result':
    curves = lambda c: None if c is None else {
        k: np.array([np.nan if x is None else x for x in v], np.float64)
        for k, v in c.items()}
    return cls(phases=[tuple(p) for p in d['phases']], scale=d['scale'],
               jax=curves(d['jax']), torch=curves(d['torch']),
               envelope=curves(d['envelope']), distances=d['distances'],
               envelope_distances=d['envelope_distances'], psnr=d['psnr'],
               seconds=d['seconds'])


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
  start = prepare(config, vgg)
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
  psnr = validation_psnr(config, start.recipe,
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


# ------------------------------------------------------- the comparison --


def running_max(x: np.ndarray, phases) -> np.ndarray:
  """max over the phase's steps <= t, NaN-skipping (0 before the first
  value); it starts again with each phase (a loss's weight may change)."""
  out = np.zeros_like(x)
  for _, a, b in phases:
    out[a - 1:b] = np.maximum.accumulate(np.nan_to_num(x[a - 1:b], nan=0.0))
  return out


def differences(result: Result) -> dict[str, dict[str, np.ndarray]]:
  """Per loss: |sr_jax - torch| ('diff'), |float64 - torch| ('env', its
  running max over the phase 'envelope'), each step; NaN where a side
  logged nothing."""
  out = {}
  for k in LOSSES:
    entry = {'diff': np.abs(result.jax[k] - result.torch[k])}
    if result.envelope is not None:
      entry['env'] = np.abs(result.envelope[k] - result.torch[k])
      entry['envelope'] = running_max(entry['env'], result.phases)
    out[k] = entry
  return out


def scale_of(result: Result, name: str) -> np.ndarray:
  """The size a loss's values have at each step: |torch|, but at least its
  median over the phase (logits cross zero; a difference of 1e-5 in a
  logit of 0.001 is no larger than in one of 1)."""
  values = np.abs(result.torch[name])
  floor = np.zeros_like(values)
  for _, a, b in result.phases:
    part = values[a - 1:b]
    if np.any(np.isfinite(part)):
      floor[a - 1:b] = np.nanmedian(part)
  return np.maximum(values, floor)


def _floor(result: Result, name: str) -> np.ndarray:
  """ULPS float32 ulps of the loss's size: the rounding of the logged
  values themselves, below which no difference means anything."""
  return ULPS * float(np.finfo(np.float32).eps) * scale_of(result, name)


def phase_ratios(result: Result) -> dict[tuple[str, str], float]:
  """{(loss, phase): geometric mean over the phase's steps of
  (|sr_jax - torch| + floor) / (|torch float64 - torch| + floor)}: how
  far sr_jax is from BasicSR, in units of BasicSR's own float32 drift."""
  out = {}
  for k in LOSSES:
    diff = np.abs(result.jax[k] - result.torch[k])
    env = np.abs(result.envelope[k] - result.torch[k])
    floor = _floor(result, k)
    for name, a, b in result.phases:
      part = slice(a - 1, b)
      ok = np.isfinite(diff[part]) & np.isfinite(env[part])
      if ok.any():
        out[k, name] = float(np.exp(np.mean(np.log(
            (diff[part][ok] + floor[part][ok]) /
            (env[part][ok] + floor[part][ok])))))
  return out


def step_ratios(result: Result) -> dict[str, np.ndarray]:
  """Per loss and step: (|sr_jax - torch| - floor) / envelope(t), with
  envelope(t) the running max of |torch float64 - torch| (float32 drift
  only grows); 0 where the difference is within the floor."""
  out = {}
  for k, d in differences(result).items():
    excess = d['diff'] - _floor(result, k)
    with np.errstate(divide='ignore', invalid='ignore'):
      out[k] = np.where(excess > 0, excess / d['envelope'], 0.0)
  return out


def check(result: Result) -> list[str]:
  """What breaks the parity (empty: none). Against the float32 drift of
  the PyTorch run itself (its distance to the float64 run):

  * every loss, every phase: geometric mean over the phase of
    (|sr_jax - torch| + floor) / (|float64 - torch| + floor) <=
    PHASE_FACTOR (floor: ULPS ulps of the loss's size);
  * every loss, every step: |sr_jax - torch| <= STEP_FACTOR x the running
    max (over the phase so far) of |float64 - torch| + floor (no single
    step off);
  * the learning rates sr_jax logs equal BasicSR's at every step;
  * final generator, EMA and discriminator: relative L2 distance <=
    PARAM_FACTOR x the float64 run's;
  * validation PSNR: the trainer's and the torch EMA's within PSNR_DB.
  """
  problems = []
  for (k, phase), ratio in phase_ratios(result).items():
    if not ratio <= PHASE_FACTOR:
      problems.append(f'{k} over phase {phase}: sr_jax is {ratio:.3g}x '
                      f'farther from torch than torch from float64 (> '
                      f'{PHASE_FACTOR:g})')
  diffs = differences(result)
  for k, ratio in step_ratios(result).items():
    bad = np.nonzero(ratio > STEP_FACTOR)[0]
    if bad.size:
      s = int(bad[0])
      problems.append(
          f'{k} at step {s + 1} ({result.phase_at(s + 1)}): sr_jax '
          f'{result.jax[k][s]:.7g}, torch {result.torch[k][s]:.7g}, |diff| '
          f'{diffs[k]["diff"][s]:.3g} > {STEP_FACTOR:g} x envelope '
          f'{diffs[k]["envelope"][s]:.3g} (+ {ULPS:g} ulp); {bad.size} such '
          'steps')
  for k in LEARNING_RATES:
    both = np.isfinite(result.torch[k]) & np.isfinite(result.jax[k])
    bad = np.nonzero(both & ~np.isclose(result.jax[k], result.torch[k],
                                        rtol=1e-6, atol=0))[0]
    if bad.size:
      s = int(bad[0])
      problems.append(f'{k} at step {s + 1}: sr_jax logs {result.jax[k][s]:g}'
                      f', BasicSR uses {result.torch[k][s]:g}')
  for n, dist in result.distances.items():
    bound = PARAM_FACTOR * result.envelope_distances[n]
    if not dist <= bound:
      problems.append(f'final {n}: relative distance {dist:.3g} > '
                      f'{PARAM_FACTOR:g} x float64 envelope '
                      f'{result.envelope_distances[n]:.3g}')
  for ours, theirs in (('trainer', 'torch'), ('trainer_raw', 'torch_raw')):
    if ours not in result.psnr:
      continue
    gap = abs(result.psnr[ours] - result.psnr[theirs])
    if not gap <= PSNR_DB:
      problems.append(f'val PSNR ({ours}): sr_jax {result.psnr[ours]:.4f} '
                      f'dB, {theirs} {result.psnr[theirs]:.4f} dB')
  return problems


def summary(result: Result) -> dict[str, dict[str, float]]:
  """Per loss: the largest relative difference (|diff| / scale_of) of
  sr_jax from torch ('<phase>_rel') and of torch from its float64 run
  ('<phase>_env_rel'), over the whole run ('run') and per phase; the
  largest per-step ratio of `check` ('step_ratio') and per-phase ratios
  ('<phase>_ratio')."""
  out = {}
  steps = step_ratios(result) if result.envelope is not None else {}
  phases = phase_ratios(result) if result.envelope is not None else {}
  for k, d in differences(result).items():
    scale = scale_of(result, k)
    row = {}
    if k in steps:
      row['step_ratio'] = float(np.nanmax(steps[k]))
    for name, a, b in [('run', 1, len(scale))] + result.phases:
      part = slice(a - 1, b)
      rel = d['diff'][part] / scale[part]
      if not np.any(np.isfinite(rel)):
        continue
      row[f'{name}_rel'] = float(np.nanmax(rel))
      if 'env' in d:
        row[f'{name}_env_rel'] = float(np.nanmax(d['env'][part] /
                                                 scale[part]))
      if (k, name) in phases:
        row[f'{name}_ratio'] = phases[k, name]
    out[k] = row
  return out


def table(result: Result, every: int = 25,
          names: Sequence[str] = LOSSES) -> str:
  """Markdown: each `every`-th step (and each phase's first and last),
  per loss sr_jax, torch and their difference."""
  marks = {1}
  for _, a, b in result.phases:
    marks.update((a, b))
  marks.update(range(every, len(result.steps) + 1, every))
  head = ['step', 'phase']
  for k in names:
    head += [f'{k} sr_jax', f'{k} torch', 'diff']
  lines = ['| ' + ' | '.join(head) + ' |',
           '|' + ' --- |' * len(head)]
  for s in sorted(marks):
    row = [str(s), result.phase_at(s)]
    for k in names:
      a, b = result.jax[k][s - 1], result.torch[k][s - 1]
      if not np.isfinite(b):
        row += ['-', '-', '-']
        continue
      row += [f'{a:.6g}', f'{b:.6g}', f'{a - b:+.2g}']
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines)


def plot(result: Result, path: str) -> str:
  """A PNG of the loss curves (sr_jax and torch per loss, top) and of
  |sr_jax - torch| against the envelope (bottom, log scale)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  diffs = differences(result)
  fig, axes = plt.subplots(2, len(LOSSES), figsize=(4 * len(LOSSES), 6.5),
                           sharex=True)
  steps = result.steps
  for i, k in enumerate(LOSSES):
    top, bottom = axes[0, i], axes[1, i]
    top.plot(steps, result.torch[k], lw=1.6, label='torch (BasicSR)')
    top.plot(steps, result.jax[k], lw=0.8, ls='--', label='sr_jax')
    top.set_title(k)
    bottom.semilogy(steps, diffs[k]['diff'], lw=0.8, label='|sr_jax - torch|')
    if 'envelope' in diffs[k]:
      bottom.semilogy(steps, np.where(diffs[k]['envelope'] > 0,
                                      diffs[k]['envelope'], np.nan),
                      lw=0.8, label='envelope: running max |torch - torch '
                                    'float64|')
    for _, a, _ in result.phases[1:]:
      top.axvline(a, color='grey', lw=0.5)
      bottom.axvline(a, color='grey', lw=0.5)
    bottom.set_xlabel('step')
  axes[0, 0].legend(fontsize=8)
  axes[1, 0].legend(fontsize=8)
  fig.suptitle('sr_jax trainer vs BasicSR (PyTorch) on the same start and '
               'batches; grey lines: phase starts')
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path


def format_report(result: Result, every: int = 25) -> str:
  """The table, the per-loss summary, distances, PSNRs and `check`."""
  lines = [table(result, every), '',
           'per loss: max |sr_jax - torch| / size [max |torch - torch '
           'float64| / size] per phase; geometric-mean ratio over the phase '
           '(check: <= %g); max single-step ratio (check: <= %g)' % (
               PHASE_FACTOR, STEP_FACTOR)]
  for k, row in summary(result).items():
    parts = []
    for name in [p[0] for p in result.phases]:
      if f'{name}_rel' in row:
        env = row.get(f'{name}_env_rel')
        ratio = row.get(f'{name}_ratio')
        parts.append(f'{name} {row[f"{name}_rel"]:.2e}' +
                     (f' [{env:.2e}]' if env is not None else '') +
                     (f' x{ratio:.2f}' if ratio is not None else ''))
    if 'step_ratio' in row:
      parts.append(f'max step ratio {row["step_ratio"]:.1f}')
    lines.append(f'  {k}: ' + ', '.join(parts))
  lines.append('final parameters, relative L2 distance sr_jax - torch '
               '[torch - torch float64] (check: <= %g x):' % PARAM_FACTOR)
  for n, dist in result.distances.items():
    env = (result.envelope_distances or {}).get(n)
    lines.append(f'  {n}: {dist:.3e}' +
                 (f' [{env:.3e}]' if env is not None else ''))
  p = result.psnr
  lines.append(f'validation PSNR (Y, crop {result.scale}; check: within '
               f'{PSNR_DB:g} dB): EMA generator: trainer val/psnr '
               f'{p["trainer"]:.4f} dB (recomputed {p["jax"]:.4f}), torch '
               f'{p["torch"]:.4f} dB (diff {p["trainer"] - p["torch"]:+.4f})')
  if 'trainer_raw' in p:
    lines.append(f'  raw generator: trainer val/psnr_raw '
                 f'{p["trainer_raw"]:.4f} dB, torch {p["torch_raw"]:.4f} dB '
                 f'(diff {p["trainer_raw"] - p["torch_raw"]:+.4f})')
  lines.append('seconds: ' + ', '.join(f'{k} {v:.1f}'
                                       for k, v in result.seconds.items()))
  if result.envelope is not None:
    problems = check(result)
    lines.append('parity check: ' + ('OK' if not problems else
                                     'FAILED\n  ' + '\n  '.join(problems)))
  return '\n'.join(lines)


__all__ = ['LOSSES', 'PARAM_FACTOR', 'PHASE_FACTOR', 'PSNR_DB', 'Result',
           'STEP_FACTOR', 'Sizes', 'check', 'format_report', 'parity_config',
           'phase_ratios', 'plot', 'run', 'step_ratios', 'summary', 'table',
           'torch_phases']
