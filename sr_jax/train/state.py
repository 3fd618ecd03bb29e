"""The train state: everything a run needs to continue exactly, one pytree.

`TrainState` holds every network's parameters and mutable collections
(BatchNorm statistics, spectral-norm vectors), the optimizer state of each
network the current phase trains, the EMA of each generator, the global
step, the PRNG key and the finite guard's record. Checkpointing, EMA and
network interpolation are pytree operations on it."""
from typing import Any

import flax
import jax
import jax.numpy as jnp

from sr_jax.train.recipe import MAIN_GENERATOR
from sr_jax.train.recipe import Phase
from sr_jax.train.recipe import Recipe


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar, global step over all phases.
  params: dict[str, Any]  # Network name -> parameters.
  model_state: dict[str, Any]  # Network name -> other collections ({}).
  opt_state: dict[str, Any]  # Network trained in this phase -> optax state.
  ema_params: dict[str, Any]  # Generator name -> EMA of its parameters.
  rng: jax.Array  # Per-step keys are fold_in(rng, step).
  # The finite guard (sr_jax.train.step.guard_finite), int32 scalars:
  # first_bad_step (-1: none) and bad_terms (a bit per metric, sorted by
  # name) of the first update with a non-finite loss, gradient norm or
  # parameter; streak / skipped count updates dropped by
  # config.on_nonfinite='skip' (in a row / in all).
  health: dict[str, jax.Array]


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


def generator_variables(state: TrainState, use_ema: bool = True,
                        name: str = MAIN_GENERATOR) -> dict:
  params = state.ema_params[name] if use_ema else state.params[name]
  return {'params': params, **state.model_state[name]}
