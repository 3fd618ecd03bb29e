"""Optimizers and learning-rate schedules by name, from config entries.

  optimizers={'generator': dict(name='adam', lr=1e-4, b1=0.9, b2=0.99,
                                milestones=(50_000, 100_000), gamma=0.5)}

Every entry takes `name` (a registered optimizer: 'adam', 'adamw', 'amsgrad',
'rmsprop'), the schedule's fields (`schedule`, default 'multistep' with `lr`,
`milestones`, `gamma`: BasicSR's MultiStepLR), `clip_grad_norm` (0 = off; clips
the global gradient norm first), `weight_clip` (0 = off; after each update
every parameter is clipped to [-c, c], the original WGAN's Lipschitz constraint
on the critic) and the optimizer's own options (betas, eps, weight_decay).
Adding an optimizer: one file here with `@register('name')` on `(schedule,
**options) -> GradientTransformation`, imported below.
"""
import inspect
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import optax

from sr_jax import errors
from sr_jax.optimizers.registry import OPTIMIZERS
from sr_jax.optimizers.registry import register
from sr_jax.optimizers.schedules import SCHEDULES
from sr_jax.optimizers.schedules import build_schedule
# Registrations (each module registers on import).
from sr_jax.optimizers import adam  # pylint: disable=unused-import,g-bad-import-order
from sr_jax.optimizers import adamw  # pylint: disable=unused-import
from sr_jax.optimizers import amsgrad  # pylint: disable=unused-import
from sr_jax.optimizers import rmsprop  # pylint: disable=unused-import

_COMMON = ('name', 'clip_grad_norm', 'weight_clip')


def build_optimizer(entry: Mapping[str, Any], where: str = 'optimizer'
                    ) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(transformation, schedule) for one optimizer config entry.

  Raises ConfigError naming `where` for unknown names or options.
  """
  entry = dict(entry)
  name = entry.get('name', 'adam')
  try:
    schedule_keys = SCHEDULES.get(entry.get('schedule', 'multistep')).options
    options = {k: v for k, v in entry.items()
               if k not in _COMMON and k not in schedule_keys}
    make = OPTIMIZERS.get(name)
    schedule = build_schedule(entry)
    try:
      inspect.signature(make).bind(schedule, **options)
    except TypeError as e:  # An option the optimizer does not take.
      raise errors.ConfigError(str(e)) from None
  except errors.ConfigError as e:
    raise errors.ConfigError(f'{where} ({name}): {e}') from None
  tx = make(schedule, **options)
  clip = float(entry.get('clip_grad_norm', 0.0) or 0.0)
  if clip > 0:
    tx = optax.chain(optax.clip_by_global_norm(clip), tx)
  weight_clip = float(entry.get('weight_clip', 0.0) or 0.0)
  if weight_clip < 0:
    raise errors.ConfigError(
        f'{where}.weight_clip={weight_clip}; use 0 (off) or a '
        'positive bound such as 0.01.')
  if weight_clip > 0:
    tx = optax.chain(tx, clip_parameters(weight_clip))
  return tx, schedule


def clip_parameters(bound: float) -> optax.GradientTransformation:
  """Turns updates u into clip(p + u, -bound, bound) - p: the parameters
  after the update lie in [-bound, bound] (WGAN, Arjovsky et al. 2017)."""

  def update(updates, state, params=None):
    if params is None:
      raise ValueError('weight_clip needs the parameters in update().')
    updates = jax.tree.map(
        lambda u, p: jnp.clip(p + u, -bound, bound) - p, updates, params)
    return updates, state

  return optax.GradientTransformation(lambda params: optax.EmptyState(),
                                      update)


__all__ = ['OPTIMIZERS', 'SCHEDULES', 'build_optimizer', 'build_schedule',
           'clip_parameters', 'register']
