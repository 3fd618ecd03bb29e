"""Generator loss terms as data: one registered function per idea.

A training phase lists its terms by name with a weight and options:

  losses={'pixel': {'weight': 1e-2, 'criterion': 'l1'},
          'perceptual': {'weight': 1.0, 'layer_weights': {'conv5_4': 1.0}},
          'adversarial': {'weight': 5e-3}}

Each name is looked up in `LOSS_TERMS` (or, when the entry has a `term`
option, that name: two pixel terms can be `{'pix_y': {'term': 'pixel',
...}}`). A registered maker turns the options into a `LossTerm`: a pure
function of one `LossContext`, plus the frozen networks it reads from
`context.aux` (weights loaded once by the trainer, passed to the jitted step
as one replicated pytree). The step sums `weight * term(context)` and logs
each as `l_g_<log_name>`.

Adding a term: write `sr_jax/losses/<name>.py` with

  @terms.register('name')
  def make(options, dtype):
    return terms.LossTerm(lambda ctx: ..., log_name='name')

and import it in `sr_jax/losses/__init__.py`. Nothing else changes.
"""
import dataclasses
from typing import Any, Callable, Mapping

import jax

from sr_jax import errors
from sr_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class FrozenNetwork:
  """A pretrained network a term reads, never trained.

  name: the key of its variables in `LossContext.aux`, and the name its
    weights are loaded by (`sr_jax.weights.FROZEN_NETWORKS`); terms that
    use the same network share one copy.
  random_init: key -> variables with random values, for benchmarks and
    tests only (speed does not depend on the values); never used to train.
  source / arch: set for a trained generator loaded from a workdir or a
    weights file (sr_jax.train.warm_start.load_aux) rather than by name.
  """
  name: str
  random_init: Callable[[jax.Array], Any]
  # A trained generator of this run's registry instead of a registered
  # pretrained network: its workdir or weights file, and its name (the
  # `dsgan` degradation's generator).
  source: str = ''
  arch: str = ''


@dataclasses.dataclass(frozen=True)
class LossContext:
  """Everything a generator loss term may read, float32 NHWC in [0, 1].

  sr: G(lr), the main generator's output (differentiable).
  target: what pixel / perceptual terms aim at (the HR, or its USM-sharpened
    version with Real-ESRGAN's `usm_sharpen_gt`).
  real: the HR the discriminator sees as real.
  lr: the generator input.
  key: a PRNG key for this step (fold it in, never reuse it as is).
  aux: the frozen networks' variables, by FrozenNetwork.name.
  apply: (network name, x) -> output, for any network of the run with its
    current parameters (differentiable for the networks being trained):
    a cycle loss runs another generator on `sr` with it.
  critic: (x, discriminator name) -> logits of a discriminator held fixed
    (None in phases without a discriminator).
  adversarial: the phase's GAN objective (`adversarial_loss`, an
    `sr_jax.losses.AdversarialLoss` with d_loss / g_loss), or None.
  """
  sr: jax.Array
  target: jax.Array
  real: jax.Array
  lr: jax.Array
  key: jax.Array
  aux: Mapping[str, Any]
  apply: Callable[[str, jax.Array], jax.Array]
  critic: Callable[..., jax.Array] | None = None
  adversarial: Any = None


@dataclasses.dataclass(frozen=True)
class LossTerm:
  """fn(context) -> scalar float32, before its weight."""
  fn: Callable[[LossContext], jax.Array]
  log_name: str
  frozen: tuple[FrozenNetwork, ...] = ()
  # Whether fn calls context.critic (the phase must have a discriminator).
  needs_critic: bool = False
  # Networks of the run fn calls through context.apply (config entries).
  networks: tuple[str, ...] = ()


LOSS_TERMS = Registry('generator loss term')


def register(name: str):
  """Decorator for a maker `(options: dict, dtype) -> LossTerm`."""
  return LOSS_TERMS.register(name)


# Options every entry may carry; the maker gets the rest.
COMMON_OPTIONS = ('weight', 'term')


@dataclasses.dataclass(frozen=True)
class WeightedTerm:
  key: str  # The entry's name in the config.
  weight: float
  term: LossTerm


def build_terms(losses: Mapping[str, Mapping[str, Any]], dtype,
                where: str = 'losses') -> list[WeightedTerm]:
  """Makes the weighted terms of one phase's `losses` config.

  Entries with weight 0 are left out. Raises ConfigError naming the entry
  (`where.key`) for an unknown term or options the maker rejects.
  """
  built = []
  for key, entry in losses.items():
    entry = dict(entry)
    weight = float(entry.get('weight', 1.0))
    if weight == 0:
      continue
    name = entry.get('term', key)
    options = {k: v for k, v in entry.items() if k not in COMMON_OPTIONS}
    try:
      term = LOSS_TERMS.get(name)(options, dtype)
    except errors.ConfigError as e:
      raise errors.ConfigError(f'{where}.{key} ({name}): {e}') from None
    built.append(WeightedTerm(key, weight, term))
  return built


def unknown_options(options: Mapping[str, Any], known) -> None:
  """Raises ConfigError for options a maker does not take."""
  extra = sorted(set(options) - set(known))
  if extra:
    raise errors.ConfigError(
        f'unknown option(s) {extra}; it takes {sorted(known)} '
        f'(plus {list(COMMON_OPTIONS)}).')
