"""`setup(recipe, mesh)`: what a recipe trains with on a mesh, built one way
for the trainer, the bench, the parity runs and the tests.

It loads the frozen networks the loss terms read (or random ones for
benchmarks), puts them on the mesh, and gives the jitted pieces: the
initial state of a phase (random, then `generator.init_from` and the
networks' pretrained parts loaded: a fresh run's start), its abstract
layout (what a checkpoint restores into), one step per phase and the
function that enters a phase.
"""
import dataclasses
import functools
from typing import Any, Callable

import jax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from sr_jax.train import warm_start
from sr_jax.train.step import jit_for_mesh
from sr_jax.train.step import make_phase_step


@dataclasses.dataclass
class Setup:
  """A recipe's jitted pieces on a mesh."""
  recipe: recipe_lib.Recipe  # Without the terms of dropped frozen networks.
  mesh: jax.sharding.Mesh
  aux: Any  # The frozen networks' variables, replicated on the mesh.
  # The offline demo: frozen networks without weights, and the terms
  # dropped because they read one.
  missing: tuple[str, ...] = ()
  dropped: tuple[str, ...] = ()

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  def init_fn(self, phase: recipe_lib.Phase,
              loaded: tuple[str, ...] = ()) -> Callable:
    """Jitted rng -> random TrainState with `phase`'s optimizer states,
    replicated (`loaded`: networks filled in afterwards, left zero)."""
    return jax.jit(functools.partial(ts.init_train_state, self.recipe,
                                     phase=phase, loaded=loaded),
                   out_shardings=self.replicated)

  def abstract_state(self, phase: recipe_lib.Phase, rng: jax.Array):
    """The shapes, dtypes and shardings of `phase`'s state."""
    return jax.eval_shape(self.init_fn(phase), rng)

  def initial_state(self, rng: jax.Array,
                    phase: recipe_lib.Phase | None = None) -> ts.TrainState:
    """A fresh run's state at `phase` (default: the first): random, then
    the generator from config.generator.init_from and every network's
    pretrained parts loaded (warm_start)."""
    phase = phase or self.recipe.phases[0]
    # A generator loaded from init_from is not randomly initialised first.
    loaded = ((recipe_lib.MAIN_GENERATOR,) if self.recipe.warm is not None
              and self.recipe.warm.init_from else ())
    state = self.init_fn(phase, loaded)(rng)
    if self.recipe.warm is None:  # A recipe built by hand: nothing to load.
      return state
    return warm_start.apply_frozen_submodules(
        self.recipe, warm_start.apply_init_from(self.recipe, state))

  def step(self, phase: recipe_lib.Phase) -> Callable:
    """`phase`'s jitted step (state, batch, aux) -> (state, metrics), the
    batch split over the mesh and the state donated."""
    return jit_for_mesh(
        make_phase_step(self.recipe, phase, self.recipe.settings.step),
        self.mesh)

  def start_phase(self, phase: recipe_lib.Phase) -> Callable:
    """Jitted state -> state entering `phase` (ts.start_phase), donated."""
    return jax.jit(functools.partial(ts.start_phase, phase=phase),
                   out_shardings=self.replicated, donate_argnums=0)


def setup(recipe: recipe_lib.Recipe, mesh: jax.sharding.Mesh, *,
          aux: Any = None, random_aux: bool = False) -> Setup:
  """The recipe's pieces on `mesh`, with its frozen networks: `aux` when
  given, else random (`random_aux`, benchmarks only) or loaded
  (warm_start.load_aux). Without a frozen network's weights the run stops
  with how to get them, except for the offline demo
  (config.frozen_drop_if_missing), which drops the terms that read it:
  Setup.recipe is then the recipe without them, and Setup.dropped names
  them."""
  missing, dropped = [], []
  if aux is None:
    aux, missing = warm_start.load_aux(recipe, random=random_aux)
    if missing:
      recipe, dropped = recipe_lib.drop_terms(recipe, missing)
  return Setup(recipe=recipe, mesh=mesh,
               aux=jax.device_put(aux, NamedSharding(mesh, P())),
               missing=tuple(missing), dropped=tuple(dropped))
