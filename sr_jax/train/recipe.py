"""The recipe: what a config trains, as static Python objects, built once.

`build_recipe(config)` gives the networks (Flax modules by config entry
name), the phases, each with its global step range, trained networks, loss
terms, regularisers, adversarial objective, optimizers and schedules, and
the function that makes each step's training pairs (the degradation). The
trainer, the bench and the tests all start from it."""
import dataclasses
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sr_jax import losses
from sr_jax import models
from sr_jax import optimizers as optimizers_lib
from sr_jax.train import config_lib
from sr_jax.train import pairs as training_pairs_lib

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

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'StepSettings':
    return cls(
        ema_decay=config.ema_decay,
        ema_update_after_step=int(config.get('ema_update_after_step', 0)),
        ema_power=float(config.get('ema_power', 0.0)),
        on_nonfinite=config.get('on_nonfinite', 'stop'))

  @property
  def skip_nonfinite(self) -> bool:
    return self.on_nonfinite == 'skip'


@dataclasses.dataclass(frozen=True)
class RunSettings:
  """What the loop reads from a run's config besides its networks and
  phases, read once (`check_config`): the step's settings, the cadence of
  logs, evaluations and checkpoints, and the finite guard's limit."""
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
  init_from: str  # config.generator.init_from ('' for a random start).
  step: StepSettings

  @classmethod
  def from_config(cls, config: ml_collections.ConfigDict) -> 'RunSettings':
    return cls(
        seed=config.seed, scale=config.scale, batch_size=config.batch_size,
        log_every=config.log_every, eval_every=config.eval_every,
        checkpoint_every=config.checkpoint_every,
        keep_checkpoints=config.keep_checkpoints,
        stop_at_step=config.stop_at_step,
        max_nonfinite_skips=int(config.get('max_nonfinite_skips', 10)),
        best_weights=config.get('best_weights', 'ema'),
        init_from=config.generator.get('init_from', ''),
        step=StepSettings.from_config(config))

  @property
  def validate_raw(self) -> bool:
    """The raw generator differs from its EMA unless the decay is 0."""
    return self.step.ema_decay > 0


@dataclasses.dataclass(frozen=True)
class Recipe:
  networks: Mapping[str, Network]
  phases: tuple[Phase, ...]  # Phases with steps > 0, in order.
  frozen: Mapping[str, Any]  # losses.terms.FrozenNetwork by name.
  # (key, batch) -> TrainingPairs: the LR input (from the batch, or made by
  # the degradation), the target and the real HR (training_pairs.py).
  training_pairs: Any = None
  # The loop's settings (check_config fills them; None in a recipe built
  # for a step alone).
  settings: RunSettings | None = None

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


def compute_dtype(config: ml_collections.ConfigDict):
  names = {'float32': jnp.float32, 'bfloat16': jnp.bfloat16}
  if config.dtype not in names:
    raise ValueError(f'config.dtype={config.dtype!r}; use one of '
                     f'{list(names)}.')
  return names[config.dtype]


def build_network(config: ml_collections.ConfigDict, name: str) -> Network:
  """The Flax module of config entry `name` (kind, name, kwargs)."""
  entry = config[name]
  dtype = compute_dtype(config)
  kwargs = dict(entry.kwargs)
  gt = config.data.gt_size
  if entry.kind == 'generator':
    cls = models.GENERATORS.get(entry.name)
    if 'scale' in models.module_fields(cls):
      kwargs.setdefault('scale', config.scale)
    if config.get('remat', False):
      # Per-block rematerialisation (models.layers.maybe_remat), for every
      # generator that has blocks; the SR generator must.
      if 'remat' in models.module_fields(cls):
        kwargs.setdefault('remat', True)
      elif name == MAIN_GENERATOR:
        able = [n for n in models.GENERATORS.names()
                if 'remat' in models.module_fields(models.GENERATORS.get(n))]
        raise ValueError(
            f'config.remat=True, but config.{name}.name={entry.name!r} has '
            f'no rematerialised blocks (generators with them: {able}); set '
            'config.remat=False or give the module a `remat` field '
            '(models.layers.maybe_remat).')
    module = models.get_generator(entry.name, dtype=dtype, **kwargs)
    side = gt if entry.get('input', 'lr') == 'hr' else gt // config.scale
  elif entry.kind == 'discriminator':
    cls = models.DISCRIMINATORS.get(entry.name)
    if 'input_size' in models.module_fields(cls):
      kwargs.setdefault('input_size', gt)
    module = models.get_discriminator(entry.name, dtype=dtype, **kwargs)
    side = gt
  else:
    raise ValueError(f'config.{name}.kind={entry.kind!r}; use "generator" or '
                     '"discriminator".')
  shape = (1, side, side, int(kwargs.get('num_in_ch', 3)))
  abstract = jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros(shape), train=False))
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


def _build_phase(config, name: str, start: int, networks) -> Phase:
  cfg = config[name]
  where = f'config.{name}'
  dtype = compute_dtype(config)
  if cfg.start not in START_MODES:
    raise ValueError(f'{where}.start={cfg.start!r}; use one of '
                     f'{list(START_MODES)}.')
  unknown = [n for n in cfg.train if n not in networks]
  if unknown:
    raise ValueError(f'{where}.train names {unknown}, which are not network '
                     f'entries of the config ({sorted(networks)}).')
  terms = tuple(losses.terms.build_terms(cfg.losses, dtype,
                                         f'{where}.losses'))
  discriminators = [n for n, net in networks.items()
                    if net.kind == 'discriminator']
  adversarial = None
  regularisers = dict(cfg.regularisers)
  if discriminators:
    adversarial = losses.get_adversarial_loss(cfg.adversarial_loss)
    if adversarial.gradient_penalty and 'gradient_penalty' not in regularisers:
      regularisers['gradient_penalty'] = {'weight': cfg.gp_weight}
  built_regs = tuple(losses.regularisers.build_regularisers(
      regularisers, f'{where}.regularisers'))
  gens = [n for n in cfg.train if networks[n].kind == 'generator']
  if gens and not terms:
    raise ValueError(f'{where} trains {gens} but has no loss term with a '
                     f'non-zero weight in {where}.losses.')
  optimizers, schedules = {}, {}
  for n in cfg.train:
    if n not in cfg.optimizers:
      raise ValueError(f'{where}.optimizers has no entry for {n!r}, which '
                       'the phase trains.')
    optimizers[n], schedules[n] = optimizers_lib.build_optimizer(
        cfg.optimizers[n], f'{where}.optimizers.{n}')
    frozen = frozen_submodules(networks[n])
    if frozen:
      optimizers[n] = _freeze(optimizers[n], frozen)
  if cfg.net_d_iters < 1 or cfg.net_d_init_iters < 0:
    raise ValueError(f'{where}.net_d_iters must be >= 1 and '
                     'net_d_init_iters >= 0.')
  return Phase(name=name, start=start, end=start + cfg.steps,
               train=tuple(cfg.train), start_mode=cfg.start, terms=terms,
               regularisers=built_regs, adversarial=adversarial,
               optimizers=optimizers, schedules=schedules,
               net_d_iters=cfg.net_d_iters,
               net_d_init_iters=cfg.net_d_init_iters)


def build_recipe(config: ml_collections.ConfigDict,
                 training_pairs=None) -> Recipe:
  """Networks and phases of `config`; raises ValueError naming the setting.

  training_pairs: the config's `training_pairs.make_training_pairs`, when
  the caller has built (and checked) it already.

  Networks are the main generator, every network a phase with steps > 0
  trains, and 'discriminator' when a term of such a phase needs a critic.
  """
  for name in config.phases:
    if name not in config or not isinstance(config[name],
                                            ml_collections.ConfigDict):
      raise ValueError(f'config.phases lists {name!r} but there is no '
                       f'config.{name} (see config_lib.phase).')
    if config[name].steps < 0:
      raise ValueError(f'config.{name}.steps must be >= 0.')
  active = [n for n in config.phases if config[n].steps > 0]
  entries = set(config_lib.network_entries(config))
  wanted = [MAIN_GENERATOR]
  for name in active:
    wanted += [n for n in config[name].train if n not in wanted]
  networks = {}
  for name in wanted:
    if name not in entries:
      raise ValueError(f'config.{name} is not a network entry (with kind, '
                       'name and kwargs).')
    networks[name] = build_network(config, name)
  if any(config[n].losses.get('adversarial', {}).get('weight', 0)
         for n in active) and 'discriminator' not in networks:
    networks['discriminator'] = build_network(config, 'discriminator')
  phases, start = [], 0
  for name in active:
    phases.append(_build_phase(config, name, start, networks))
    start = phases[-1].end
  frozen = {}
  for p in phases:
    for t in p.terms:
      if t.term.needs_critic and p.adversarial is None:
        raise ValueError(f'config.{p.name}.losses.{t.key} needs a '
                         'discriminator; add one to the config.')
      absent = [n for n in t.term.networks if n not in networks]
      if absent:
        raise ValueError(
            f'config.{p.name}.losses.{t.key} runs the network(s) {absent}, '
            f'which the run does not have; add a generator entry '
            f'config.{absent[0]} and list it in config.{p.name}.train.')
      for f in t.term.frozen:
        frozen.setdefault(f.name, f)
  training_pairs = (training_pairs or
                    training_pairs_lib.make_training_pairs(config))
  for f in getattr(training_pairs, 'frozen', ()):
    frozen.setdefault(f.name, f)
  return Recipe(networks=networks, phases=tuple(phases), frozen=frozen,
                training_pairs=training_pairs)


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
