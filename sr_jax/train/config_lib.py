"""Shared building blocks for configs/*.py.

A run is a list of phases, `config.phases` (names in order), each a
ConfigDict `config.<name>` (see `phase`): how many steps, which networks
train, how the phase starts, its generator loss terms, its adversarial
objective and discriminator regularisers, and one optimizer per trained
network. ESRGAN's recipe is two phases:
  1. `psnr`: pixel loss only (the PSNR-oriented warm-up);
  2. `gan`: pixel + perceptual (+ FFT) + adversarial losses, starting from
     the warm-up's EMA generator (BasicSR's pretrain_network_g).
A discriminator-only warm-up or a three-stage recipe is one more phase. A
phase may have 0 steps (it is skipped). The global step runs over all.

Networks are top-level entries with a `kind` ('generator' or
'discriminator'): `config.generator` (the SR generator: validated, EMA'd,
used for inference) and `config.discriminator`; a run may add more (e.g.
a down-sampling generator) and name them in a phase's `train`.
"""
import ast
import difflib
import importlib.util
import os
from typing import Any, Sequence

import ml_collections

from sr_jax import errors
from sr_jax import models
from sr_jax.data import default_data_config
from sr_jax.degradations import default_degradation_config


def adam(lr: float, milestones: Sequence[int] = (), gamma: float = 0.5,
         **options) -> dict[str, Any]:
  """An optimizer entry: Adam (betas 0.9, 0.99 as BasicSR), MultiStepLR.

  options override the defaults or add to them (b2=0.999, name='amsgrad',
  weight_decay=..., clip_grad_norm=...).
  """
  return dict(dict(name='adam', lr=lr, b1=0.9, b2=0.99,
                   milestones=tuple(milestones), gamma=gamma,
                   clip_grad_norm=0.0), **options)


def phase(steps: int, train: Sequence[str] = ('generator',),
          start: str = 'continue', losses=None, optimizers=None,
          adversarial_loss: str = 'ragan', regularisers=None,
          gp_weight: float = 10.0, net_d_iters: int = 1,
          net_d_init_iters: int = 0) -> ml_collections.ConfigDict:
  """One training phase.

  steps: number of steps (0 = skipped).
  train: the networks updated in this phase (config entry names).
  start: 'continue' (networks as the previous phase left them) or 'ema'
    (the generator starts from the previous phase's EMA, ESRGAN's GAN phase).
    Optimizer states always start fresh.
  losses: the generator's loss terms {name: {'weight': w, options...}}
    (sr_jax.losses.terms); names are registered terms, or any name with a
    `term` option. Weight-0 entries are off.
  optimizers: {network: optimizer entry} (sr_jax.optimizers).
  adversarial_loss: the GAN objective of the `adversarial` term and of the
    discriminators' loss (sr_jax.losses.get_adversarial_loss).
  regularisers: discriminator regularisers {name: {'weight': w}}
    (sr_jax.losses.regularisers). 'ragp' and 'wgan_gp' add
    'gradient_penalty' unless listed here.
  gp_weight: their penalty's lambda as the papers write it, relative to
    the summed D loss (RaGP: AlexiaJM's --penalty 10; WGAN-GP: 10); sr_jax
    averages RaGAN's two terms, so 'ragp' adds gp_weight / 2 x the penalty
    to its averaged D loss (sr_jax.losses.adversarial).
  net_d_iters / net_d_init_iters: BasicSR's: update the generators every
    k-th step, and only the discriminators for the first n steps.
  """
  return ml_collections.ConfigDict(dict(
      steps=steps, train=tuple(train), start=start,
      losses=dict(losses or {}), optimizers=dict(optimizers or {}),
      adversarial_loss=adversarial_loss,
      regularisers=dict(regularisers or {}), gp_weight=gp_weight,
      net_d_iters=net_d_iters, net_d_init_iters=net_d_init_iters))


def evaluation(metrics: Sequence[str] = ('psnr', 'ssim', 'psnr_rgb'),
               hr_dir: str = '', lr_dir: str = '',
               lr_filename_tmpl: str = '{}', max_images: int = -1,
               max_size: int = -1, num_strips: int = -1,
               lr_from: str = 'bicubic') -> dict[str, Any]:
  """One `config.evals` entry (see base_config).

  lr_from, without lr_dir: 'bicubic' (MATLAB bicubic of the HR, BasicSR's
  validation), 'degradation' (the run's `config.degradation` applied once
  to each HR with a fixed key, the same LR at every evaluation: e.g. the
  noisy inputs of a denoising run, scored against the clean HR) or the name
  of a degradation pipeline (its options from config.degradation.<name>):
  e.g. 'srrescgan' for a run that trains on DSGAN pairs."""
  return dict(metrics=tuple(metrics), hr_dir=hr_dir, lr_dir=lr_dir,
              lr_filename_tmpl=lr_filename_tmpl, max_images=max_images,
              max_size=max_size, num_strips=num_strips, lr_from=lr_from)


def esrgan_perceptual(weight: float = 1.0, layer_weights=None,
                      criterion: str = 'l1') -> dict[str, Any]:
  """The perceptual term of ESRGAN: VGG19 conv5_4 before ReLU, L1."""
  return dict(weight=weight, layer_weights=dict(layer_weights or
                                                {'conv5_4': 1.0}),
              criterion=criterion, use_input_norm=True, range_norm=False,
              feature_scale=1.0)


def base_config() -> ml_collections.ConfigDict:
  """Every field a run reads, with ESRGAN's defaults."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.scale = 4
  c.batch_size = 16  # Global, split over all devices of all processes.
  # Compute dtype of the networks: 'float32' or 'bfloat16' (params stay f32).
  c.dtype = 'float32'
  # Activation checkpointing: recompute each generator block's activations
  # in the backward pass instead of keeping them (more compute, less
  # memory on GPU / TPU; for batches / patches that do not fit otherwise).
  # Same numbers, same parameters; generators with blocks: rrdbnet,
  # srresnet, msrresnet, srvgg (models.layers.maybe_remat).
  c.remat = False

  c.data = default_data_config()
  c.data.gt_size = 128
  # How LR inputs are made from HR patches on the accelerator (ignored for
  # paired LR/HR sources): 'bicubic', 'realesrgan', 'srrescgan', 'denoise'
  # or 'perspective', each with its options under its own name.
  c.degradation = default_degradation_config()

  c.generator = ml_collections.ConfigDict(dict(
      kind='generator',
      name='rrdbnet',
      kwargs=dict(num_feat=64, num_block=23, num_grow_ch=32),
      # BasicSR's pretrain_network_g: start the generator (and its EMA) from
      # these weights at step 0: a converted .npz (python -m
      # sr_jax.convert or python -m sr_jax.weights fetch NAME), a
      # .pth / .safetensors of the architecture `name`, or another run's
      # workdir (its final EMA
      # generator). '' = random init. Set psnr.steps=0 to go straight to
      # the GAN phase from, e.g., a PSNR-trained model.
      init_from=''))
  # Per-sample (no BatchNorm) discriminators are needed by gradient
  # penalties; BasicSR's VGG-style D has BatchNorm (use_bn=True).
  c.discriminator = ml_collections.ConfigDict(dict(
      kind='discriminator', name='vgg_style', kwargs=dict(num_feat=64)))

  # Frozen networks of the loss terms: weight files by network name
  # ('' = $SR_JAX_VGG19_WEIGHTS or the cache: python -m sr_jax.weights).
  c.frozen = ml_collections.ConfigDict(dict(
      vgg19='', lpips_vgg='', lpips_alex='', inception_fid='', dists=''))
  # Only for the offline demo: without weights, drop the terms that need
  # them with a loud warning instead of stopping. Never trains with random
  # frozen networks.
  c.frozen_drop_if_missing = False

  c.ema_decay = 0.999
  # EMA warm-up (train_step.ema_decay_schedule; traiNNer-redux's
  # ema_update_after_step / ema_power): the EMA copies the generator up to
  # global step ema_update_after_step; with ema_power p > 0 its decay then
  # warms up as min(ema_decay, 1 - (1 + e)^-p) over e updates (p = 2/3:
  # 0.99 after 1000, 0.999 after ~31.6k). 0 and 0: BasicSR's constant decay.
  c.ema_update_after_step = 0
  c.ema_power = 0.0
  # Validation scores the EMA generator ('<eval>/<metric>') and the raw one
  # ('<eval>/<metric>_raw'); a phase's best checkpoint is picked by, and
  # loads for inference, 'ema' (BasicSR's), 'raw', or 'better' (the one that
  # scored better at that validation, recorded in the checkpoint): a short
  # run's best is then never its lagging average.
  c.best_weights = 'better'
  # A non-finite loss, gradient norm or parameter: 'stop' (exit code 3,
  # nothing saved from that state) or 'skip' (drop the update, count it;
  # stop after max_nonfinite_skips in a row).
  c.on_nonfinite = 'stop'
  c.max_nonfinite_skips = 10

  c.phases = ('psnr', 'gan')
  # Phase 1: PSNR warm-up (ESRGAN paper: L1, lr 2e-4 halved every 200k).
  c.psnr = phase(
      steps=1_000_000,
      losses={'pixel': dict(weight=1.0, criterion='l1')},
      optimizers={'generator': adam(
          2e-4, milestones=(200_000, 400_000, 600_000, 800_000))})
  # Phase 2: GAN (BasicSR's ESRGAN recipe).
  gan_milestones = (50_000, 100_000, 200_000, 300_000)
  c.gan = phase(
      steps=400_000, train=('generator', 'discriminator'), start='ema',
      losses={'pixel': dict(weight=1e-2, criterion='l1'),
              'perceptual': esrgan_perceptual(1.0),
              'fft': dict(weight=0.0),
              'adversarial': dict(weight=5e-3)},
      adversarial_loss='ragan',
      optimizers={'generator': adam(1e-4, gan_milestones),
                  'discriminator': adam(1e-4, gan_milestones)})

  # Stop after this global step (0 = run to the end), e.g. to fit a time
  # slot; the run resumes from its checkpoint next time.
  c.stop_at_step = 0
  c.log_every = 100
  c.eval_every = 5_000
  c.checkpoint_every = 5_000
  c.keep_checkpoints = 3  # >= 1: the newest is what a rerun resumes.
  c.variant = ''  # Set by apply_variant: '', 'runlocal' or 'demo'.
  c.num_val_strips = 3  # LR | bicubic | SR | HR strips written per eval.
  # Evaluations by name (sr_jax.evaluate.build_evaluators): HR images
  # (hr_dir, '' = data.val_dir), LR source (lr_dir + lr_filename_tmpl, or
  # '' = MATLAB bicubic of the HR), metrics (sr_jax.metrics.METRICS, each
  # also for bicubic; psnr / ssim are on Y), strips. -1 / '' fall back to
  # data.val_max_images, data.val_max_size and num_val_strips.
  c.evals = ml_collections.ConfigDict({'val': evaluation()})
  # '<eval>/<metric>' that picks each phase's best checkpoint (a metric's
  # registration says whether lower is better).
  c.best_metric = 'val/psnr'
  return c


def network_entries(c: ml_collections.ConfigDict) -> list[str]:
  """Names of the top-level config entries that are networks."""
  return [k for k, v in c.items()
          if isinstance(v, ml_collections.ConfigDict) and 'kind' in v
          and v.kind in ('generator', 'discriminator')]


def _tiny_kwargs(entry: ml_collections.ConfigDict) -> dict[str, Any] | None:
  """The `:runlocal` size from the model's own file (TINY_KWARGS)."""
  if entry.name not in models.arch_names():
    return None  # check_config names the unknown model.
  return models.arch_spec(entry.name).tiny_kwargs


def _every_optimizer(c):
  for name in c.phases:
    for entry in c[name].optimizers.values():
      yield entry


# Variants that train on the embedded sample photos by design (the others
# say so in one line when data.train_dir is not set).
SAMPLE_PHOTO_VARIANTS = ('demo', 'runlocal', 'tiny')


def apply_variant(c: ml_collections.ConfigDict,
                  arg) -> ml_collections.ConfigDict:
  """Applies a named variant: '' (full size), 'runlocal' or 'demo'."""
  arg = arg or ''
  c.variant = arg  # Recorded: e.g. sample-photo training is expected there.
  if arg == '':
    return c
  if arg == 'runlocal':
    # Tiny models and 2 steps: what the tests run, in seconds on a CPU.
    c.batch_size = 4
    c.data.gt_size = 32
    c.data.val_max_images = 1
    c.data.val_max_size = 64
    for name in network_entries(c):
      tiny = _tiny_kwargs(c[name])
      if tiny is not None:
        c[name].kwargs = dict(c[name].kwargs, **tiny)
    # Two steps in all: one per active phase (two for a single phase).
    active = [p for p in c.phases if c[p].steps > 0]
    for p in active:
      c[p].steps = 2 if len(active) == 1 else 1
    for p in active[2:]:
      c[p].steps = 0
    for entry in _every_optimizer(c):
      if 'milestones' in entry:
        entry.milestones = (1,)
    c.log_every = 1
    c.eval_every = 2
    c.checkpoint_every = 1
    c.num_val_strips = 1
    return c
  if arg == 'demo':
    # Fits in ~10 minutes on a 2-core CPU on the embedded sample photos.
    c.batch_size = 8
    c.data.gt_size = 64
    c.data.val_max_size = 192
    c.generator.kwargs = dict(num_feat=32, num_block=2, num_grow_ch=16)
    c.discriminator.kwargs = dict(c.discriminator.kwargs, num_feat=16)
    # EMA 0.999 averages over ~1000 steps: far too slow for a run this short.
    c.ema_decay = 0.99
    c.psnr.steps = min(c.psnr.steps, 1_500)
    c.psnr.optimizers.generator.lr = 5e-4
    c.psnr.optimizers.generator.milestones = (1_000, 1_300)
    c.gan.steps = min(c.gan.steps, 200)
    for entry in c.gan.optimizers.values():
      entry.milestones = (150,)
    # 3 of the 8 embedded photos are grey and the rest warm (R > G > B):
    # without RGB permutations the generator never sees a blue sky, and its
    # colour mapping and border (zero-padding) compensation fail on one.
    c.data.use_channel_permute = True
    # No embedded photo has a saturated colour (max - min > 200 nowhere):
    # half the patches get a random hue and saturation (up to x3, clipped).
    # photos10's colorwheel (19% of it saturated): -13.9 dB against bicubic
    # without, about -4 with (transforms.jitter_colours).
    c.data.color_jitter_prob = 0.5
    # Offline the perceptual term (weight 1.0, the GAN phase's content
    # anchor) is dropped; with L1 at BasicSR's 1e-2 the adversarial term
    # alone then shifts the colours (+3..5 levels of blue on rocket in 200
    # steps). L1 at 1.0 is the anchor instead.
    if 'pixel' in c.gan.losses:
      c.gan.losses.pixel.weight = 1.0
    elif 'perceptual' in c.gan.losses:
      # SRGAN's recipe has no pixel term: offline, without its VGG54 term,
      # the adversarial term would be alone, and Adam takes full steps on
      # any lone term whatever its weight (the demo's PSNR fell from 27 to
      # 5 dB in 200 steps). L1 at 1.0 anchors it instead.
      c.gan.losses.pixel = dict(weight=1.0, criterion='l1')
    c.frozen_drop_if_missing = True
    c.log_every = 50
    c.eval_every = 500
    c.checkpoint_every = 500
    c.num_val_strips = 2
    return c
  close = difflib.get_close_matches(arg, ['runlocal', 'demo'], n=1)
  hint = f' Did you mean {close[0]!r}?' if close else ''
  raise ValueError(f'Unknown config variant {arg!r}.{hint} Use "", '
                   '"runlocal" or "demo", e.g. '
                   '--config=configs/esrgan_fft.py:runlocal.')


def _find_field(root: ml_collections.ConfigDict, dotted: str,
                flag: str = '--config.', shown: str = '') -> tuple[Any, str]:
  """(the ConfigDict holding field `dotted` ('gan.losses.fft.weight'), its
  last part); errors.UsageError naming `flag` + `dotted` (the setting as
  the user wrote it: '--config.' or '--set '), the full path and the
  closest existing field when a part of it does not exist. `shown`: the
  setting to name instead of `dotted` (a field below it)."""
  *parents, leaf = dotted.split('.')
  node = root
  for i, part in enumerate(parents + [leaf]):
    keys = list(node.keys()) if hasattr(node, 'keys') else []
    if part not in keys:
      where = '.'.join(parents[:i])
      close = difflib.get_close_matches(part, keys, n=1)
      hint = (f' Did you mean {".".join(parents[:i] + close)}?' if close
              else f' {where or "The config"} has: '
              f'{", ".join(sorted(map(str, keys)))}.' if keys else '')
      raise errors.UsageError(
          f'{flag}{shown or dotted}: the config has no field {part!r}'
          f'{f" in {where}" if where else ""}.{hint}')
    if i < len(parents):
      node = node[part]
  return node, leaf


# ------------------------------------------------------ the command line

def load_config_file(arg: str, flag: str = '--config',
                     overrides: Sequence[tuple[str, Any]] = ()
                     ) -> ml_collections.ConfigDict:
  """The config of `arg` as a command line gives it ('configs/x.py' or
  'configs/x.py:variant'): the file's get_config(variant), with
  `overrides` ((dotted field, value): apply_overrides) set. UsageError
  naming `flag`, the file (and the closest one beside it), the variant or
  the field. (`python -m sr_jax.main` reads its --config with absl's
  config_flags; the tools with this.)"""
  path, _, variant = arg.partition(':')
  module = load_config_module(path, flag)
  try:
    config = module.get_config(*([variant] if variant else []))
  except ValueError as e:  # get_config's own message (an unknown variant).
    raise errors.UsageError(f'{flag}={arg}: {errors.one_line(e)}') from None
  apply_overrides(config, overrides, flag + '.')
  return config


def load_config_module(path: str, flag: str = '--config'):
  """The config file at `path` as a module (its get_config, and VARIANTS
  in an ablation config); UsageError naming `flag` and the closest file
  when there is none."""
  if not os.path.isfile(path):
    raise errors.UsageError(missing_config_file(path, flag))
  name = 'sr_jax_config_' + os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(name, path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def missing_config_file(arg: str, flag: str = '--config') -> str:
  """'FLAG=ARG: cannot read FILE (no such file).' and the closest config
  file beside it (or the ones there)."""
  path = arg.partition(':')[0]
  folder = os.path.dirname(path) or '.'
  names = sorted(n for n in os.listdir(folder) if n.endswith('.py')
                 ) if os.path.isdir(folder) else []
  close = difflib.get_close_matches(os.path.basename(path), names, n=1)
  hint = (f' Did you mean {os.path.join(folder, close[0])}?' if close else
          f' {folder} has: {", ".join(names)}.' if names else '')
  return f'{flag}={arg}: cannot read {path} (no such file).{hint}'


def parse_value(text: str) -> Any:
  """A command-line value: a Python literal (8, 0.5, True, (40, 95),
  {'a': 1}) where it is one, else the text itself (a path, a name)."""
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text


def apply_overrides(config: ml_collections.ConfigDict,
                    overrides: Sequence[tuple[str, Any]],
                    flag: str = '--config.') -> None:
  """Sets each (dotted field, value), which must exist (UsageError with
  the closest field, naming `flag` + the field: '--config.' or '--set ').
  A loss term's or a regulariser's options (gan.losses.fft.norm) may be
  new: each refuses the options it does not have when the recipe is
  built."""
  for key, value in overrides:
    *parents, leaf = key.split('.')
    if len(parents) >= 2 and parents[-2] in ('losses', 'regularisers'):
      node = _find_field(config, '.'.join(parents), flag,
                         shown=key)[0][parents[-1]]
      if leaf not in node:
        node[leaf] = value
        continue
    node, leaf = _find_field(config, key, flag)
    if isinstance(node[leaf], str) and not isinstance(value, str):
      value = str(value)  # A name or path that reads as a number.
    try:
      node[leaf] = value
    except (TypeError, ValueError) as e:
      raise errors.UsageError(
          f'{flag}{key}={value!r}: {key} must be of type '
          f'{type(node[leaf]).__name__} ({errors.one_line(e)}).') from None


def split_config_overrides(argv: Sequence[str]
                           ) -> tuple[list[str], list[tuple[str, Any]]]:
  """(the other arguments, [(field, value)]) of a command line whose
  `--config.FIELD=VALUE` arguments override fields of its --config."""
  rest, overrides = [], []
  for arg in argv:
    if arg.startswith('--config.'):
      key, sep, text = arg[len('--config.'):].partition('=')
      if not sep:
        raise errors.UsageError(f'{arg}: expected --config.FIELD=VALUE.')
      overrides.append((key, parse_value(text)))
    else:
      rest.append(arg)
  return rest, overrides


# ----------------------------------------------------------------- ablations

ABLATION_SIZES = ('', 'tiny', 'runlocal')


def split_ablation_arg(arg, variants) -> tuple[str, str]:
  """An ablation config's arg 'VARIANT[,SIZE]' -> (variant, size):
  'rcgan,tiny' -> ('rcgan', 'tiny'); 'runlocal' -> (the first, 'runlocal')."""
  name, _, size = (arg or '').partition(',')
  if name in ABLATION_SIZES[1:]:
    name, size = '', name
  name = name or next(iter(variants))
  if name not in variants:
    raise ValueError(f'Variant {name!r}; one of {", ".join(variants)}.')
  if size not in ABLATION_SIZES:
    raise ValueError(f'Size {size!r}: use one of {ABLATION_SIZES}.')
  return name, size


def ablation_size(c: ml_collections.ConfigDict,
                  size: str) -> ml_collections.ConfigDict:
  """'' the config's full size; 'runlocal' the tests'; 'tiny' the
  notebooks' CPU size: the :demo networks on the embedded photos, 300
  warm-up and 100 GAN steps (minutes per variant)."""
  if size != 'tiny':
    return apply_variant(c, size)
  c = apply_variant(c, 'demo')
  c.psnr.steps, c.gan.steps = 300, 100
  c.eval_every = c.checkpoint_every = 100
  c.log_every = 20
  c.variant = 'tiny'
  return c
