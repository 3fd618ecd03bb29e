"""Learning-rate schedules by name; each counts its optimizer's updates."""
import dataclasses
from typing import Any, Callable, Mapping

import optax

from sr_jax import errors
from sr_jax.registry import Registry


@dataclasses.dataclass(frozen=True)
class Schedule:
  make: Callable[..., optax.Schedule]
  options: tuple[str, ...]  # Config fields it reads (with 'schedule').


SCHEDULES = Registry('learning-rate schedule')


def _multistep(lr, milestones=(), gamma=0.5):
  """BasicSR's MultiStepLR: lr * gamma^(number of milestones passed)."""
  return optax.piecewise_constant_schedule(
      float(lr), {int(m): float(gamma) for m in milestones})


def _cosine(lr, steps, eta_min=0.0):
  """BasicSR's CosineAnnealingRestartLR with one period of `steps`."""
  return optax.cosine_decay_schedule(float(lr), int(steps),
                                     alpha=float(eta_min) / float(lr))


SCHEDULES.register('multistep')(
    Schedule(_multistep, ('schedule', 'lr', 'milestones', 'gamma')))
SCHEDULES.register('cosine')(
    Schedule(_cosine, ('schedule', 'lr', 'steps', 'eta_min')))


def build_schedule(entry: Mapping[str, Any]) -> optax.Schedule:
  schedule = SCHEDULES.get(entry.get('schedule', 'multistep'))
  if 'lr' not in entry:
    raise errors.ConfigError('no learning rate: set lr.')
  kwargs = {k: entry[k] for k in schedule.options
            if k in entry and k != 'schedule'}
  return schedule.make(**kwargs)
