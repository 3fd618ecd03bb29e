"""Discriminator regularisers: registered functions with their own weights.

A phase lists them by name with a weight and options:

  regularisers={'gradient_penalty': {'weight': 10.0}}    # WGAN-GP / RaGP
  regularisers={'r1': {'weight': 5.0}}                   # gamma / 2 = 5

Each is a pure function of a `RegulariserContext` (the critic being
trained, the real and fake batches, a key), added to the discriminator's
loss as `weight * fn(context)` and logged as `l_d_<log_name>`.

`per_sample` says that the function assumes samples do not interact through
the critic: it takes the input gradient of the summed outputs as every
sample's own gradient. A discriminator with BatchNorm in train mode mixes
samples, so the trainer's config check refuses that combination.

Adding one: write `sr_jax/losses/<name>.py` with
`@regularisers.register('name')` on a maker `(options) -> Regulariser`, and
import it in `sr_jax/losses/__init__.py`.
"""
import dataclasses
from typing import Any, Callable, Mapping

import jax

from sr_jax import errors
from sr_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class RegulariserContext:
  """critic: x [N, H, W, C] -> logits, differentiable in the critic's
  parameters (so the regulariser's own gradient reaches them).
  real, fake: [N, H, W, C] float32 batches; fake is a constant.
  key: a PRNG key for this regulariser and step."""
  critic: Callable[[jax.Array], jax.Array]
  real: jax.Array
  fake: jax.Array
  key: jax.Array


@dataclasses.dataclass(frozen=True)
class Regulariser:
  fn: Callable[[RegulariserContext], jax.Array]
  log_name: str
  per_sample: bool


REGULARISERS = Registry('discriminator regulariser')


def register(name: str):
  """Decorator for a maker `(options: dict) -> Regulariser`."""
  return REGULARISERS.register(name)


@dataclasses.dataclass(frozen=True)
class WeightedRegulariser:
  key: str
  weight: float
  regulariser: Regulariser


def build_regularisers(entries: Mapping[str, Mapping[str, Any]],
                       where: str = 'regularisers'
                       ) -> list[WeightedRegulariser]:
  """Makes one phase's regularisers; weight-0 entries are left out."""
  built = []
  for key, entry in entries.items():
    entry = dict(entry)
    weight = float(entry.pop('weight', 1.0))
    name = entry.pop('regulariser', key)
    if weight == 0:
      continue
    try:
      regulariser = REGULARISERS.get(name)(entry)
    except errors.ConfigError as e:
      raise errors.ConfigError(f'{where}.{key} ({name}): {e}') from None
    built.append(WeightedRegulariser(key, weight, regulariser))
  return built


def input_gradients(critic: Callable[[jax.Array], jax.Array],
                    x: jax.Array) -> jax.Array:
  """d sum(critic(x)) / dx: each sample's own input gradient, provided the
  critic is per-sample (what `per_sample=True` regularisers assume)."""
  return jax.grad(lambda v: critic(v).astype(jax.numpy.float32).sum())(x)
