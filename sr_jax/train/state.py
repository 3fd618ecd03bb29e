"""The recipe (what a config trains) and the train state (one pytree).

`build_recipe(config)` turns a config into static Python objects, once: the
networks (Flax modules by config entry name), the phases, each with its
global step range, trained networks, loss terms, regularisers, adversarial
objective, optimizers and schedules, and the function that makes each
step's training pairs (the degradation). The trainer, the bench and the tests
all start from it.

Everything a run needs to continue exactly lives in `TrainState`: every
network's parameters and mutable collections (BatchNorm statistics,
spectral-norm vectors), the optimizer state of each network the current
phase trains, the EMA of each generator, the global step and the PRNG key.
Checkpointing, EMA and network interpolation are pytree operations on it.
"""
import dataclasses
import os
from typing import Any, Mapping

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from sr_jax import checkpoint
from sr_jax import losses
from sr_jax import models
from sr_jax import optimizers as optimizers_lib
from sr_jax import weights
from sr_jax.models import layers
from sr_jax.train import config_lib
from sr_jax.train import pairs as training_pairs_lib

MAIN_GENERATOR = 'generator'
START_MODES = ('continue', 'ema')


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar, global step over all phases.
  params: dict[str, Any]  # Network name -> parameters.
  model_state: dict[str, Any]  # Network name -> other collections ({}).
  opt_state: dict[str, Any]  # Network trained in this phase -> optax state.
  ema_params: dict[str, Any]  # Generator name -> EMA of its parameters.
  rng: jax.Array  # Per-step keys are fold_in(rng, step).
  # The finite guard (train_step.make_phase_step), int32 scalars:
  # first_bad_step (-1: none) and bad_terms (a bit per metric, sorted by
  # name) of the first update with a non-finite loss, gradient norm or
  # parameter; streak / skipped count updates dropped by
  # config.on_nonfinite='skip' (in a row / in all).
  health: dict[str, jax.Array]


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
class Recipe:
  networks: Mapping[str, Network]
  phases: tuple[Phase, ...]  # Phases with steps > 0, in order.
  frozen: Mapping[str, Any]  # losses.terms.FrozenNetwork by name.
  # (key, batch) -> TrainingPairs: the LR input (from the batch, or made by
  # the degradation), the target and the real HR (training_pairs.py).
  training_pairs: Any = None

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


def load_aux(recipe: Recipe, config: ml_collections.ConfigDict,
             random: bool = False) -> tuple[dict[str, Any], list[str]]:
  """The frozen networks' variables by name, and the names that are missing.

  random=True: random values (benchmarks only). Otherwise weights come from
  config.frozen.<name> or the cache; a missing one raises
  WeightsNotFoundError (how to get it), unless
  config.frozen_drop_if_missing, where it is reported in the second value
  and the terms using it must be dropped (see `drop_terms`).
  """
  aux, missing = {}, []
  for i, (name, frozen) in enumerate(sorted(recipe.frozen.items())):
    if random:
      aux[name] = jax.jit(frozen.random_init)(jax.random.key(1000 + i))
      continue
    if frozen.source:
      aux[name] = checkpoint.load_trained_generator(frozen.source,
                                                    frozen.arch, name)[1]
      continue
    variables = _load_frozen(config, name)
    if variables is None:
      missing.append(name)
    else:
      aux[name] = variables
  if jax.default_backend() == 'cpu':
    # Input-gradient kernels laid out once, not every step (XLA:CPU does
    # not do it in the conv); see layers.with_flipped_kernels.
    aux = {name: layers.with_flipped_kernels(v) for name, v in aux.items()}
  return aux, missing


def _load_frozen(config: ml_collections.ConfigDict, name: str):
  """Pretrained network `name` from config.frozen.<name> or the cache; a
  missing one raises WeightsNotFoundError (how to get it), or gives None
  with config.frozen_drop_if_missing (the offline demo)."""
  path = config.frozen.get(name, '') if 'frozen' in config else ''
  try:
    return weights.load_frozen(name, path or None)
  except weights.WeightsNotFoundError:
    if not config.get('frozen_drop_if_missing', False):
      raise
    return None


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


def init_train_state(recipe: Recipe, rng: jax.Array,
                     phase: Phase | None = None,
                     loaded: tuple[str, ...] = ()) -> TrainState:
  """Random initial state (call under jit or jax.eval_shape), with the
  optimizer states of `phase` (default: the first).

  loaded: networks whose variables are zeros here because the caller fills
  them from a file next (`apply_init_from` for config.generator.init_from):
  their random initialisation is skipped, which for a 23-block RRDBNet is
  most of the compile time of the init. The other networks' values do not
  depend on it.
  """
  phase = phase or recipe.phases[0]
  keys = jax.random.split(rng, len(recipe.networks) + 1)
  params, model_state = {}, {}
  for key, (name, net) in zip(keys[1:], recipe.networks.items()):
    init = lambda key, net=net: net.module.init(
        key, jnp.zeros(net.input_shape), train=False)
    if name in loaded:
      variables = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype),
                               jax.eval_shape(init, key))
    else:
      variables = init(key)
    variables = dict(variables)
    params[name] = variables.pop('params')
    model_state[name] = variables
  return TrainState(
      step=jnp.zeros((), jnp.int32),
      params=params,
      model_state=model_state,
      opt_state={n: phase.optimizers[n].init(params[n]) for n in phase.train},
      # Copies, not the same arrays: the train step donates both trees.
      ema_params={n: jax.tree.map(jnp.copy, params[n])
                  for n in recipe.generators()},
      rng=keys[0],
      health=initial_health())


def initial_health() -> dict[str, jax.Array]:
  return {'first_bad_step': jnp.full((), -1, jnp.int32),
          'bad_terms': jnp.zeros((), jnp.int32),
          'streak': jnp.zeros((), jnp.int32),
          'skipped': jnp.zeros((), jnp.int32)}


def start_phase(state: TrainState, phase: Phase) -> TrainState:
  """Enters `phase`: fresh optimizer states for its networks and, with
  start='ema', the generators start from their EMA (ESRGAN's GAN phase)."""
  params = dict(state.params)
  if phase.start_mode == 'ema':
    for name in phase.train:
      if name in state.ema_params:
        params[name] = jax.tree.map(jnp.copy, state.ema_params[name])
  return state.replace(
      params=params,
      opt_state={n: phase.optimizers[n].init(params[n]) for n in phase.train})


def _put_like(tree, ref):
  """`tree`'s values as fresh device buffers with `ref`'s dtypes and
  shardings. Copies: parameters and EMA get buffers of their own (the step
  donates both; a restored jax.Array put twice, or a numpy view of it,
  would be one buffer)."""
  return jax.tree.map(
      lambda v, r: jax.device_put(jnp.array(v, r.dtype, copy=True),
                                  r.sharding),
      tree, ref)


def missing_init_from(config: ml_collections.ConfigDict) -> str | None:
  """Why config.generator.init_from cannot be loaded (a path that does not
  exist, with how to get a released model's file), or None. Checked before
  a new run writes anything."""
  path = config.generator.get('init_from', '')
  if not path or os.path.exists(os.path.expanduser(path)):
    return None
  for name in weights.PRETRAINED:
    if os.path.abspath(os.path.expanduser(path)) == os.path.abspath(
        weights.pretrained.cached_path(name)):
      return (f'config.generator.init_from={path} does not exist: get it '
              f'with `python -m sr_jax.weights fetch {name}` (offline: '
              f'`python -m sr_jax.weights convert {name} FILE.pth|.param`), '
              'or point --config.generator.init_from at another file.')
  return (f'config.generator.init_from={path} does not exist: give a '
          'converted .npz, a .pth / .safetensors / ncnn .param, or a '
          'training workdir.')


def apply_init_from(config: ml_collections.ConfigDict, recipe: Recipe,
                    state: TrainState) -> TrainState:
  """Starts the generator and its EMA from `config.generator.init_from`.

  BasicSR's pretrain_network_g. Called once on the host after a fresh
  `init_train_state`, never when resuming: the checkpoint holds the weights
  from then on, so the file may be moved or deleted after the first step,
  and the weights never become constants of a compiled function. Adam's
  initial moments depend only on shapes, so the optimizer state stays valid.
  Raises ValueError naming every parameter whose shape does not match.
  """
  g = config.generator
  if not g.get('init_from'):
    return state
  like = {'params': state.params[MAIN_GENERATOR],
          **state.model_state[MAIN_GENERATOR]}
  where = (f'config.generator (name={g.name!r}, kwargs={dict(g.kwargs)}, '
           f'scale={config.scale}) given as generator.init_from')
  if os.path.isdir(os.path.expanduser(g.init_from)):
    # Another run's workdir: its final phase's best (else latest) EMA
    # generator, whichever sr_jax version wrote it.
    run = checkpoint.load_final_generator(g.init_from)
    print(f'generator.init_from: {run.describe()}.', flush=True)
    loaded = weights.check_like(run.variables, like, where, g.init_from)
  else:
    loaded = weights.load_like(g.init_from, g.name, like, where,
                               **dict(g.kwargs))
  params = dict(state.params)
  params[MAIN_GENERATOR] = _put_like(loaded['params'], params[MAIN_GENERATOR])
  ema = dict(state.ema_params)
  ema[MAIN_GENERATOR] = _put_like(loaded['params'], ema[MAIN_GENERATOR])
  model_state = dict(state.model_state)
  model_state[MAIN_GENERATOR] = {
      k: _put_like(loaded[k], v)
      for k, v in state.model_state[MAIN_GENERATOR].items()}
  return state.replace(params=params, ema_params=ema, model_state=model_state)


def apply_frozen_submodules(config: ml_collections.ConfigDict, recipe: Recipe,
                            state: TrainState) -> TrainState:
  """Loads the pretrained weights of every network's frozen parts (see
  `frozen_submodules`) into a fresh state, on the host, once; from then on
  the checkpoint holds them. Weights come from config.frozen.<name> or the
  cache (python -m sr_jax.weights); without them the run stops with how to
  get them, except for the offline demo (config.frozen_drop_if_missing),
  where the part stays at its random initialisation (still frozen), loudly.
  """
  params = dict(state.params)
  for name, network in recipe.networks.items():
    for sub, weights_name in frozen_submodules(network).items():
      where = f'config.{name} ({network.module.__class__.__name__}).{sub}'
      loaded = _load_frozen(config, weights_name)
      if loaded is None:
        banner = '!' * 78
        print(f'\n{banner}\nWARNING: no {weights_name} weights; {where} '
              'stays at its RANDOM initialisation (frozen) for this demo '
              f'run. Get them with `python -m sr_jax.weights fetch '
              f'{weights_name}`.\n{banner}\n', flush=True)
        continue
      current = params[name][sub]
      # Pretrained files may hold more layers than the part uses.
      source = loaded.get('params', loaded)
      extra = [k for k in current if k not in source]
      if extra:
        raise ValueError(f'{where}: the {weights_name} weights have no '
                         f'{extra}.')
      subset = {'params': {k: source[k] for k in current}}
      source_name = (config.get('frozen', {}).get(weights_name, '')
                     or weights_name)
      checked = weights.check_like(subset, {'params': current}, where,
                                   source_name)
      params[name] = dict(params[name])
      params[name][sub] = _put_like(checked['params'], current)
  return state.replace(params=params)


def generator_variables(state: TrainState, use_ema: bool = True,
                        name: str = MAIN_GENERATOR) -> dict:
  params = state.ema_params[name] if use_ema else state.params[name]
  return {'params': params, **state.model_state[name]}
