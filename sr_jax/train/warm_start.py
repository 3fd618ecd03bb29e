"""What a fresh run loads before its first step: the frozen networks the loss
terms read (`load_aux`), the generator's starting weights
(`config.generator.init_from`: a weights file or another run's workdir) and
the pretrained parts of networks (`apply_frozen_submodules`). All on the
host, once; from then on the checkpoint holds them. The settings are the
recipe's `warm` part (recipe.WarmStart)."""
import os
from typing import Any

import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax import inference
from sr_jax import weights
from sr_jax.models import layers
from sr_jax.train.recipe import frozen_submodules
from sr_jax.train.recipe import MAIN_GENERATOR
from sr_jax.train.recipe import Recipe
from sr_jax.train.recipe import WarmStart
from sr_jax.train.state import TrainState


def load_aux(recipe: Recipe,
             random: bool = False) -> tuple[dict[str, Any], list[str]]:
  """The frozen networks' variables by name, and the names that are missing.

  random=True: random values (benchmarks only). Otherwise weights come from
  config.frozen.<name> (recipe.warm.frozen) or the cache; a missing one
  raises WeightsNotFoundError (how to get it), unless
  config.frozen_drop_if_missing, where it is reported in the second value
  and the terms using it must be dropped (see `drop_terms`).
  """
  aux, missing = {}, []
  for i, (name, frozen) in enumerate(sorted(recipe.frozen.items())):
    if random:
      aux[name] = jax.jit(frozen.random_init)(jax.random.key(1000 + i))
      continue
    if frozen.source:
      aux[name] = inference.load_generator_of(frozen.source, frozen.arch,
                                              name).variables
      continue
    variables = _load_frozen(recipe.warm, name)
    if variables is None:
      missing.append(name)
    else:
      aux[name] = variables
  if jax.default_backend() == 'cpu':
    # Input-gradient kernels laid out once, not every step (XLA:CPU does
    # not do it in the conv); see layers.with_flipped_kernels.
    aux = {name: layers.with_flipped_kernels(v) for name, v in aux.items()}
  return aux, missing


def _load_frozen(warm: WarmStart, name: str):
  """Pretrained network `name` from config.frozen.<name> or the cache; a
  missing one raises WeightsNotFoundError (how to get it), or gives None
  with config.frozen_drop_if_missing (the offline demo)."""
  try:
    return weights.load_frozen(name, warm.frozen.get(name, '') or None)
  except weights.WeightsNotFoundError:
    if not warm.drop_if_missing:
      raise
    return None


def _put_like(tree, ref):
  """`tree`'s values as fresh device buffers with `ref`'s dtypes and
  shardings. Copies: parameters and EMA get buffers of their own (the step
  donates both; a restored jax.Array put twice, or a numpy view of it,
  would be one buffer)."""
  return jax.tree.map(
      lambda v, r: jax.device_put(jnp.array(v, r.dtype, copy=True),
                                  r.sharding),
      tree, ref)


def missing_init_from(path: str) -> str | None:
  """Why config.generator.init_from `path` cannot be loaded (a path that
  does not exist, with how to get a released model's file), or None.
  Checked before a new run writes anything."""
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


def apply_init_from(recipe: Recipe, state: TrainState) -> TrainState:
  """Starts the generator and its EMA from config.generator.init_from
  (recipe.warm.init_from).

  BasicSR's pretrain_network_g. Called once on the host after a fresh
  `init_train_state`, never when resuming: the checkpoint holds the weights
  from then on, so the file may be moved or deleted after the first step,
  and the weights never become constants of a compiled function. Adam's
  initial moments depend only on shapes, so the optimizer state stays valid.
  Raises ValueError naming every parameter whose shape does not match.
  """
  warm = recipe.warm
  if not warm.init_from:
    return state
  like = {'params': state.params[MAIN_GENERATOR],
          **state.model_state[MAIN_GENERATOR]}
  where = (f'config.generator (name={warm.generator!r}, kwargs='
           f'{dict(warm.generator_kwargs)}, scale={warm.scale}) given as '
           'generator.init_from')
  if os.path.isdir(os.path.expanduser(warm.init_from)):
    # Another run's workdir: its final phase's best (else latest) EMA
    # generator, whichever sr_jax version wrote it.
    run = inference.load_generator(warm.init_from, which='final')
    print(f'generator.init_from: {run.describe()}.', flush=True)
    loaded = weights.check_like(run.variables, like, where, warm.init_from)
  else:
    loaded = weights.load_like(warm.init_from, warm.generator, like, where,
                               **dict(warm.generator_kwargs))
  params = dict(state.params)
  params[MAIN_GENERATOR] = _put_like(loaded['params'], params[MAIN_GENERATOR])
  ema = dict(state.ema_params)
  ema[MAIN_GENERATOR] = _put_like(loaded['params'], ema[MAIN_GENERATOR])
  model_state = dict(state.model_state)
  model_state[MAIN_GENERATOR] = {
      k: _put_like(loaded[k], v)
      for k, v in state.model_state[MAIN_GENERATOR].items()}
  return state.replace(params=params, ema_params=ema, model_state=model_state)


def apply_frozen_submodules(recipe: Recipe, state: TrainState) -> TrainState:
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
      loaded = _load_frozen(recipe.warm, weights_name)
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
        raise errors.ConfigError(
            f'{where}: the {weights_name} weights have '
            f'no {extra}.')
      subset = {'params': {k: source[k] for k in current}}
      source_name = recipe.warm.frozen.get(weights_name, '') or weights_name
      checked = weights.check_like(subset, {'params': current}, where,
                                   source_name)
      params[name] = dict(params[name])
      params[name][sub] = _put_like(checked['params'], current)
  return state.replace(params=params)
