"""The recipe: what a config trains, as static Python objects, parsed once.

`Recipe.from_config(config)` checks the whole config and gives the networks
(Flax modules by config entry name), the phases, each with its global step
range, trained networks, loss terms, regularisers, adversarial objective,
optimizers and schedules, the function that makes each step's training
pairs (the degradation), and each subsystem's own part of the config: the
loop's settings (`RunSettings`, with the step's `StepSettings`), the input
pipeline's `data`, the evaluations (`evaluate.EvalSettings`), what a fresh
run loads (`WarmStart`) and the `record` checkpoints keep. Nothing below
the entry point reads the config itself. The trainer, the bench and the
tests all start from it."""
import dataclasses
import json
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sr_jax import errors
from sr_jax import evaluate as eval_lib
from sr_jax import losses
from sr_jax import models
from sr_jax import optimizers as optimizers_lib
from sr_jax.train import checks

MAIN_GENERATOR = 'generator'


START_MODES = ('continue', 'ema')


@dataclasses.dataclass(frozen=True)
class Network:
  name: str  # The config entry.
  kind: str  # 'generator' or 'discriminator'.
  module: nn.Module
  input_shape: tuple[int, ...]  # A batch-of-one input, for init.
  # BatchNorm in train mode: samples interact through the network.
  mixes_samples: bool


@dataclasses.dataclass(frozen=True)
class Phase:
  name: str
  start: int  # First global step of the phase.
  end: int  # One past its last global step.
  train: tuple[str, ...]
  start_mode: str
  terms: tuple[Any, ...]  # losses.terms.WeightedTerm
  regularisers: tuple[Any, ...]  # losses.regularisers.WeightedRegulariser
  adversarial: Any  # losses.AdversarialLoss, or None without a D.
  optimizers: Mapping[str, optax.GradientTransformation]
  schedules: Mapping[str, optax.Schedule]
  net_d_iters: int
  net_d_init_iters: int

  @property
  def steps(self) -> int:
    return self.end - self.start

  def learning_rates(self, step: int) -> dict[str, float]:
    """Host-side learning rates at global `step`, for logging."""
    return {f'lr_{short_name(n)}': float(s(step - self.start))
            for n, s in self.schedules.items()}


@dataclasses.dataclass(frozen=True)
class StepSettings:
  """What the step takes from the run's config besides the recipe."""
  ema_decay: float  # The generators' EMA: see ema_decay_schedule.
  ema_update_after_step: int = 0
  ema_power: float = 0.0
  # 'skip': drop a non-finite update and count it; else record the first
  # one and let the trainer stop (guard_finite).
  on_nonfinite: str = 'stop'

  @property
  def skip_nonfinite(self) -> bool:
    return self.on_nonfinite == 'skip'

  def check(self) -> None:
    if self.on_nonfinite not in ('stop', 'skip'):
      raise errors.ConfigError(
          f'config.on_nonfinite={self.on_nonfinite!r}; '
          'use "stop" or "skip".')
    if (self.ema_update_after_step < 0 or self.ema_power < 0
        or not 0 <= self.ema_decay < 1):
      raise errors.ConfigError(
          'config.ema_decay must be in [0, 1), and '
          'config.ema_update_after_step and config.ema_power >= 0.')


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """What the loop reads from a run's config besides its networks and
  phases: the step's settings, the cadence of logs, evaluations and
  checkpoints, and the finite guard's limit."""
  seed: int
  scale: int
  batch_size: int  # Global, over every device of every process.
  log_every: int
  eval_every: int
  checkpoint_every: int
  keep_checkpoints: int
  stop_at_step: int  # 0: run every phase to its end.
  max_nonfinite_skips: int
  best_weights: str  # 'ema', 'raw' or 'better' (evaluate.BEST_WEIGHTS).
  step: StepSettings
  dtype: str = 'float32'  # config.dtype: the networks' compute dtype.
  remat: bool = False  # config.remat: per-block rematerialisation.

  @property
  def validate_raw(self) -> bool:
    """The raw generator differs from its EMA unless the decay is 0."""
    return self.step.ema_decay > 0

  def check(self, devices: int, gt_size: int) -> None:
    """ConfigError for a setting that cannot work on `devices` devices with
    HR patches of `gt_size` (config.data.gt_size)."""
    if self.batch_size % devices:
      raise errors.ConfigError(
          f'config.batch_size={self.batch_size} must be divisible by the '
          f'{devices} devices; set --config.batch_size to a multiple of '
          f'{devices}.')
    if self.scale not in (1, 2, 4, 8):
      raise errors.ConfigError(
          f'config.scale={self.scale}; use 1, 2, 4 or '
          '8.')
    if gt_size % self.scale:
      raise errors.ConfigError(
          f'config.data.gt_size={gt_size} must be a '
          f'multiple of config.scale={self.scale}.')
    self.step.check()
    if self.best_weights not in eval_lib.BEST_WEIGHTS:
      raise errors.ConfigError(
          f'config.best_weights={self.best_weights!r}; use one of '
          f'{", ".join(eval_lib.BEST_WEIGHTS)}.')
    if self.keep_checkpoints < 1:
      raise errors.ConfigError(
          f'config.keep_checkpoints={self.keep_checkpoints} would keep '
          'nothing to resume from; use 1 or more.')
    for name in ('log_every', 'eval_every', 'checkpoint_every'):
      if getattr(self, name) <= 0:
        raise errors.ConfigError(f'config.{name} must be positive.')


@dataclasses.dataclass(frozen=True)
class WarmStart:
  """What a fresh run loads before its first step (train/warm_start.py)."""
  init_from: str  # config.generator.init_from ('' for a random start).
  generator: str  # config.generator.name: a weights file's layout.
  generator_kwargs: Mapping[str, Any]  # config.generator.kwargs
  scale: int
  # config.frozen: pretrained weights files by frozen network name ('' or
  # absent: the cache).
  frozen: Mapping[str, str]
  # config.frozen_drop_if_missing (the offline demo): without a frozen
  # network's weights, drop the terms that read it.
  drop_if_missing: bool = False


@dataclasses.dataclass(frozen=True)
class Recipe:
  networks: Mapping[str, Network]
  phases: tuple[Phase, ...]  # Phases with steps > 0, in order.
  frozen: Mapping[str, Any]  # losses.terms.FrozenNetwork by name.
  # (key, batch) -> TrainingPairs: the LR input (from the batch, or made by
  # the degradation), the target and the real HR (training_pairs.py).
  training_pairs: Any = None
  # Each subsystem's part of the config (None in a recipe built by hand for
  # a step alone).
  settings: RunSettings | None = None
  data: ml_collections.ConfigDict | None = None  # config.data
  evals: eval_lib.EvalSettings | None = None
  warm: WarmStart | None = None
  # The config as JSON: what checkpoints keep and a resume compares.
  record: Mapping[str, Any] | None = None

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'Recipe':
    """Parses and checks a run's whole config, once, before any data is
    read or any file written; raises ConfigError naming the setting and
    what to do.

    Networks are the main generator, every network a phase with steps > 0
    trains, and 'discriminator' when a term of such a phase needs a critic.
    """
    settings = RunSettings(
        seed=config.seed, scale=config.scale, batch_size=config.batch_size,
        log_every=config.log_every, eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        stop_at_step=config.stop_at_step,
        max_nonfinite_skips=int(config.get('max_nonfinite_skips', 10)),
        best_weights=config.get('best_weights', 'ema'),
        step=StepSettings(
            ema_decay=config.ema_decay,
            ema_update_after_step=int(config.get('ema_update_after_step',
                                                 0)),
            ema_power=float(config.get('ema_power', 0.0)),
            on_nonfinite=config.get('on_nonfinite', 'stop')),
        dtype=config.dtype, remat=bool(config.get('remat', False)))
    settings.check(jax.device_count(), config.data.gt_size)
    frozen_paths = {k: v for k, v in config.get('frozen', {}).items()}
    degradation = config.get('degradation')
    evals = eval_lib.EvalSettings.parse(
        config.evals, config.best_metric, data=config.data,
        degradation=degradation, scale=config.scale, frozen=frozen_paths,
        num_strips=config.num_val_strips)
    training_pairs = checks.checked_training_pairs(degradation, config.data,
                                                   config.scale)
    phase_configs = _phase_configs({n: config.get(n) for n in config.phases})
    entries = {k: v for k, v in config.items() if _is_network_entry(v)}
    shapes = _Shapes(config.scale, config.data.gt_size,
                    compute_dtype(settings.dtype), settings.remat)
    networks = _networks(entries, phase_configs, shapes)
    phases, start = [], 0
    for name, cfg in phase_configs.items():
      if cfg.steps > 0:
        phases.append(_build_phase(cfg, name, start, networks, shapes.dtype))
        start = phases[-1].end
    if not phases:
      raise errors.ConfigError(
          f'Nothing to train: every phase in config.phases '
          f'{tuple(config.phases)} has 0 steps.')
    checks.check_per_sample(phases, networks, phase_configs, entries)
    g = config.generator
    return cls(
        networks=networks, phases=tuple(phases),
        frozen=_frozen_networks(phases, networks, training_pairs),
        training_pairs=training_pairs, settings=settings, data=config.data,
        evals=evals,
        warm=WarmStart(init_from=g.get('init_from', ''), generator=g.name,
                       generator_kwargs=dict(g.kwargs), scale=config.scale,
                       frozen=frozen_paths,
                       drop_if_missing=config.get('frozen_drop_if_missing',
                                                  False)),
        record=json.loads(config.to_json_best_effort()))

  @property
  def total_steps(self) -> int:
    return self.phases[-1].end if self.phases else 0

  @property
  def generator(self) -> nn.Module:
    return self.networks[MAIN_GENERATOR].module

  def phase_at(self, step: int) -> Phase:
    """The phase that runs global step `step` (the last one at the end)."""
    for p in self.phases:
      if step < p.end:
        return p
    return self.phases[-1]

  def phase_of_checkpoint(self, step: int) -> Phase:
    """The phase whose state layout a checkpoint of `step` has: the phase
    of its last completed step (the first phase at step 0)."""
    return self.phase_at(max(step - 1, 0))

  def generators(self) -> list[str]:
    return [n for n, net in self.networks.items() if net.kind == 'generator']


def short_name(network: str) -> str:
  """'g' and 'd' for the main networks (BasicSR's log names), else itself."""
  return {MAIN_GENERATOR: 'g', 'discriminator': 'd'}.get(network, network)


def compute_dtype(name: str):
  """The compute dtype of config.dtype `name`."""
  names = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
  if name not in names:
    raise errors.ConfigError(
        f'config.dtype={name!r}; use one of '
        f'{list(names)}.')
  return names[name]


def _is_network_entry(value) -> bool:
  """A top-level config entry that is a network (kind, name, kwargs)."""
  return (isinstance(value, ml_collections.ConfigDict) and 'kind' in value
          and value.kind in ('generator', 'discriminator'))


def _phase_configs(entries: Mapping[str, Any]
                   ) -> dict[str, ml_collections.ConfigDict]:
  """The entries of config.phases (`entries`: by name, None when absent),
  checked."""
  for name, entry in entries.items():
    if not isinstance(entry, ml_collections.ConfigDict):
      raise errors.ConfigError(
          f'config.phases lists {name!r} but there is no config.{name} (see '
          'config_lib.phase).')
    if entry.steps < 0:
      raise errors.ConfigError(f'config.{name}.steps must be >= 0.')
  return dict(entries)


@dataclasses.dataclass(frozen=True)
class _Shapes:
  """What every network is built for: the run's scale, HR patch size,
  compute dtype and rematerialisation."""
  scale: int
  gt_size: int
  dtype: Any
  remat: bool = False


def _networks(entries, phase_configs, shapes: _Shapes) -> dict[str, Network]:
  """The main generator, every network an active phase trains, and the
  discriminator when an active phase has an adversarial term."""
  active = [cfg for cfg in phase_configs.values() if cfg.steps > 0]
  wanted = [MAIN_GENERATOR]
  for cfg in active:
    wanted += [n for n in cfg.train if n not in wanted]
  if any(cfg.losses.get('adversarial', {}).get('weight', 0)
         for cfg in active) and 'discriminator' not in wanted:
    wanted.append('discriminator')
  networks = {}
  for name in wanted:
    if name not in entries:
      raise errors.ConfigError(
          f'config.{name} is not a network entry (with '
          'kind, name and kwargs).')
    networks[name] = _build_network(entries[name], name, shapes)
  return networks


def _build_network(entry: ml_collections.ConfigDict, name: str,
                   shapes: _Shapes) -> Network:
  """The Flax module of network entry `entry` (config.<name>: kind, name,
  kwargs), checked by an abstract init at the run's input shape."""
  kwargs = dict(entry.kwargs)
  if entry.kind not in ('generator', 'discriminator'):
    raise errors.ConfigError(
        f'config.{name}.kind={entry.kind!r}; use '
        '"generator" or "discriminator".')
  registry = (models.GENERATORS if entry.kind == 'generator'
              else models.DISCRIMINATORS)
  cls = registry.get(entry.name)
  fields = models.module_fields(cls)
  unknown = sorted(set(kwargs) - set(fields) - {'dtype'})
  if unknown:
    raise errors.ConfigError(
        f'config.{name}.kwargs has {unknown}, which {entry.name!r} does not '
        f'take (it takes {fields}). Each generator and discriminator has its '
        "own kwargs: set them with --config.generator.kwargs='{...}' when "
        'changing generator.name.')
  if entry.kind == 'generator':
    if 'scale' in fields:
      kwargs.setdefault('scale', shapes.scale)
    if shapes.remat:
      # Per-block rematerialisation (models.layers.maybe_remat), for every
      # generator that has blocks; the SR generator must.
      if 'remat' in fields:
        kwargs.setdefault('remat', True)
      elif name == MAIN_GENERATOR:
        able = [n for n in models.GENERATORS.names()
                if 'remat' in models.module_fields(models.GENERATORS.get(n))]
        raise errors.ConfigError(
            f'config.remat=True, but config.{name}.name={entry.name!r} has '
            f'no rematerialised blocks (generators with them: {able}); set '
            'config.remat=False or give the module a `remat` field '
            '(models.layers.maybe_remat).')
    module = models.get_generator(entry.name, dtype=shapes.dtype, **kwargs)
    side = (shapes.gt_size if entry.get('input', 'lr') == 'hr'
            else shapes.gt_size // shapes.scale)
  else:
    if 'input_size' in fields:
      kwargs.setdefault('input_size', shapes.gt_size)
    module = models.get_discriminator(entry.name, dtype=shapes.dtype,
                                      **kwargs)
    side = shapes.gt_size
  shape = (1, side, side, int(kwargs.get('num_in_ch', 3)))
  try:
    abstract = jax.eval_shape(
        lambda: module.init(jax.random.key(0), jnp.zeros(shape), train=False))
  except errors.ConfigError as e:
    raise errors.ConfigError(f'config.{name} ({entry.name}): {e}') from None
  return Network(name, entry.kind, module, shape,
                 mixes_samples='batch_stats' in abstract)


def frozen_submodules(network: Network) -> dict[str, str]:
  """{top-level parameter subtree: pretrained network name} of the parts
  of a network that are loaded from pretrained weights and never trained
  (a module's FROZEN_SUBMODULES, e.g. the VGG19 trunk of 'vgg19_feature')."""
  return dict(getattr(network.module, 'FROZEN_SUBMODULES', None) or {})


def _freeze(tx: optax.GradientTransformation,
            frozen: Mapping[str, str]) -> optax.GradientTransformation:
  """tx on the trainable subtrees, zero updates (and no optimizer state)
  on the frozen ones."""
  labels = lambda params: {k: 'frozen' if k in frozen else 'train'
                           for k in params}
  return optax.multi_transform({'train': tx, 'frozen': optax.set_to_zero()},
                               labels)


def _build_phase(cfg: ml_collections.ConfigDict, name: str, start: int,
                 networks: Mapping[str, Network], dtype) -> Phase:
  """Phase `name` (its entry config.<name>), from global step `start`."""
  where = f'config.{name}'
  if cfg.start not in START_MODES:
    raise errors.ConfigError(
        f'{where}.start={cfg.start!r}; use one of '
        f'{list(START_MODES)}.')
  unknown = [n for n in cfg.train if n not in networks]
  if unknown:
    raise errors.ConfigError(
        f'{where}.train names {unknown}, which are not network entries of '
        f'the config ({sorted(networks)}).')
  terms = tuple(losses.terms.build_terms(cfg.losses, dtype,
                                         f'{where}.losses'))
  discriminators = [n for n, net in networks.items()
                    if net.kind == 'discriminator']
  adversarial = None
  regularisers = dict(cfg.regularisers)
  if discriminators:
    adversarial = losses.get_adversarial_loss(cfg.adversarial_loss)
    if adversarial.gradient_penalty and 'gradient_penalty' not in regularisers:
      # gp_weight is the papers' lambda, relative to their summed D loss
      # (sr_jax.losses.adversarial: 'ragp' averages its two terms).
      regularisers['gradient_penalty'] = {
          'weight': cfg.gp_weight * adversarial.d_loss_scale}
  built_regs = tuple(losses.regularisers.build_regularisers(
      regularisers, f'{where}.regularisers'))
  gens = [n for n in cfg.train if networks[n].kind == 'generator']
  if gens and not terms:
    raise errors.ConfigError(
        f'{where} trains {gens} but has no loss term with a non-zero weight '
        f'in {where}.losses.')
  optimizers, schedules = {}, {}
  for n in cfg.train:
    if n not in cfg.optimizers:
      raise errors.ConfigError(
          f'{where}.optimizers has no entry for {n!r}, '
          'which the phase trains.')
    optimizers[n], schedules[n] = optimizers_lib.build_optimizer(
        cfg.optimizers[n], f'{where}.optimizers.{n}')
    frozen = frozen_submodules(networks[n])
    if frozen:
      optimizers[n] = _freeze(optimizers[n], frozen)
  if cfg.net_d_iters < 1 or cfg.net_d_init_iters < 0:
    raise errors.ConfigError(
        f'{where}.net_d_iters must be >= 1 and '
        'net_d_init_iters >= 0.')
  return Phase(name=name, start=start, end=start + cfg.steps,
               train=tuple(cfg.train), start_mode=cfg.start, terms=terms,
               regularisers=built_regs, adversarial=adversarial,
               optimizers=optimizers, schedules=schedules,
               net_d_iters=cfg.net_d_iters,
               net_d_init_iters=cfg.net_d_init_iters)


def _frozen_networks(phases, networks, training_pairs) -> dict[str, Any]:
  """The frozen networks (losses.terms.FrozenNetwork by name) the phases'
  terms and the degradation read; ConfigError for a term whose critic or
  networks the run does not have."""
  frozen = {}
  for p in phases:
    for t in p.terms:
      if t.term.needs_critic and p.adversarial is None:
        raise errors.ConfigError(
            f'config.{p.name}.losses.{t.key} needs a '
            'discriminator; add one to the config.')
      absent = [n for n in t.term.networks if n not in networks]
      if absent:
        raise errors.ConfigError(
            f'config.{p.name}.losses.{t.key} runs the network(s) {absent}, '
            f'which the run does not have; add a generator entry '
            f'config.{absent[0]} and list it in config.{p.name}.train.')
      for f in t.term.frozen:
        frozen.setdefault(f.name, f)
  for f in getattr(training_pairs, 'frozen', ()):
    frozen.setdefault(f.name, f)
  return frozen


def drop_terms(recipe: Recipe, missing: list[str]) -> tuple[Recipe,
                                                            list[str]]:
  """The recipe without the terms that read a missing frozen network."""
  dropped = []
  phases = []
  for p in recipe.phases:
    keep = []
    for t in p.terms:
      if any(f.name in missing for f in t.term.frozen):
        dropped.append(f'{p.name}.losses.{t.key}')
      else:
        keep.append(t)
    phases.append(dataclasses.replace(p, terms=tuple(keep)))
  frozen = {k: v for k, v in recipe.frozen.items() if k not in missing}
  return dataclasses.replace(recipe, phases=tuple(phases),
                             frozen=frozen), dropped
