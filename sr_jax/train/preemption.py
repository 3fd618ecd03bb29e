"""Stopping a run without losing it: SIGTERM / Ctrl-C become a stop at the
next step boundary and a save (`Preemption`); a crash saves what is sound
(`SaveGuard.emergency_save`); a non-finite update stops the run before
anything of it is saved (`SaveGuard.check_finite`, `NonFiniteError`).
The exit codes `python -m sr_jax.main` gives for each are in sr_jax.errors."""
import dataclasses
import os
import signal
import sys
from typing import Any

import jax

from sr_jax import errors
from sr_jax.utils import distributed


class NonFiniteError(errors.SrJaxError, RuntimeError):
  """A loss, gradient or parameter went non-finite; nothing was saved."""
  exit_code = 3


class Preempted(Exception):
  """SIGTERM or SIGINT stopped the run after saving it; rerun to resume.
  `python -m sr_jax.main` exits with RESUMABLE_EXIT_CODE for it."""

  def __init__(self, step: int, signame: str):
    super().__init__(f'{signame} received: saved step {step}; rerun the same '
                     'command to resume.')
    self.step = step


# What `python -m sr_jax.main` returns when preempted (128 + SIGTERM), so a
# scheduler can tell "preempted, requeue" from "finished" (0). Returned only
# once the checkpoint is complete on disk.
RESUMABLE_EXIT_CODE = errors.RESUMABLE_EXIT_CODE


# A third signal aborts a save in progress at once: not 143, since nothing
# new was saved (the previous checkpoint stands).
ABORTED_EXIT_CODE = errors.ABORTED_EXIT_CODE


class Preemption:
  """Turns SIGTERM (preemption, scancel, docker stop) and a first Ctrl-C
  into a clean stop at the next step boundary, then a save.

  A second signal is acknowledged and ignored while the run finishes its
  step and its checkpoint (schedulers send SIGTERM more than once: SLURM to
  every task, then again at the grace period), except a second Ctrl-C
  before the save has started, which interrupts the step at once (the
  emergency save still runs). A third signal aborts whatever is running
  with ABORTED_EXIT_CODE, never RESUMABLE_EXIT_CODE.
  """

  def __init__(self):
    self.signame = None
    self.count = 0
    self.saving = False  # Set once the final save has started.
    self._previous = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
      try:
        self._previous[sig] = signal.signal(sig, self._handler)
      except ValueError:  # Not the main thread (e.g. notebooks): no handler.
        pass

  @property
  def requested(self) -> bool:
    return self.signame is not None

  def agreed(self, sync_point: bool) -> bool:
    """Whether to stop now. With several processes, every one must stop
    at the same step (saving is collective), and a signal may reach them
    at different steps: they agree at sync points (the logging steps,
    where every process already waits for the device), and stop if any
    was signalled; one process stops at once."""
    if jax.process_count() == 1:
      return self.requested
    if not sync_point:
      return False
    if distributed.any_process(self.requested) and self.signame is None:
      self.signame = 'SIGTERM (to another process)'
    return self.requested

  def _handler(self, signum, frame):
    del frame
    name = signal.Signals(signum).name
    self.count += 1
    if self.count == 1:
      self.signame = name
      return
    if self.count >= 3:
      print(f'\n{name} received a third time: aborting now (exit code '
            f'{ABORTED_EXIT_CODE}); a save in progress is lost, the '
            'previous checkpoint stands. Rerun the same command to resume.',
            file=sys.stderr, flush=True)
      os._exit(ABORTED_EXIT_CODE)  # pylint: disable=protected-access
    if signum == signal.SIGINT and not self.saving:
      raise KeyboardInterrupt  # Interrupt the step; the emergency save runs.
    print(f'\n{name} received again: finishing the '
          + ('checkpoint' if self.saving else 'step and its checkpoint')
          + ' first (a third signal aborts it).', file=sys.stderr,
          flush=True)

  def restore(self):
    for sig, handler in self._previous.items():
      try:
        signal.signal(sig, handler)
      except (ValueError, TypeError):
        pass


@dataclasses.dataclass
class SaveGuard:
  """What an emergency save needs: the last saved step, and the iterator
  state from before the batch of `fetch_step` was fetched (for a state that
  never consumed it)."""
  last_saved: int | None
  fetch_step: int = 0
  data_state_before: Any = None
  state_is_finite: bool = True

  def check_finite(self, state, step_metrics, max_skips: int) -> int:
    """Raises NonFiniteError (nothing is saved from then on) if an update
    went non-finite, or `max_skips` were skipped in a row; returns how many
    updates config.on_nonfinite='skip' dropped so far."""
    health = {k: int(v) for k, v in jax.device_get(state.health).items()}
    if health['first_bad_step'] < 0 and health['streak'] < max_skips:
      return health['skipped']
    self.state_is_finite = False
    names = sorted(step_metrics)
    if health['first_bad_step'] >= 0:
      bad = [n for i, n in enumerate(names) if health['bad_terms'] >> i & 1]
      what = (f'at step {health["first_bad_step"]} '
              + (f'{", ".join(bad)} became non-finite' if bad else
                 'the updated parameters became non-finite or too large '
                 '(|p| past ~1e19, where activations overflow)'))
    else:
      what = (f'{health["streak"]} updates in a row were non-finite and '
              f'skipped (config.max_nonfinite_skips={max_skips})')
    last = (f'the last checkpoint is step {self.last_saved}'
            if self.last_saved is not None else 'no checkpoint was saved')
    raise NonFiniteError(
        f'Training stopped: {what}. Nothing was saved from this state; '
        f'{last}. Lower the learning rates or loss weights and rerun to '
        "resume, or set --config.on_nonfinite=skip to drop such updates.")

  def before_fetch(self, step, train_iter):
    self.fetch_step, self.data_state_before = step, train_iter.get_state()

  def emergency_save(self, checkpointer, state, train_iter, record,
                     workdir) -> bool:
    """Saves `state` (with the run's config `record`) on a crash or
    Ctrl-C, if sound and not yet saved; returns whether its step is saved
    (now, or by the last save)."""
    if not self.state_is_finite:
      return False
    if jax.process_count() > 1:
      # Saving is collective: one process cannot save alone, and the
      # others are not here (a stop they agree on saves: Preempted).
      last = (f'step {self.last_saved}' if self.last_saved is not None
              else 'none yet')
      print(f'Process {jax.process_index()} stopped; a multi-process run '
            f'saves only together (the last checkpoint: {last}).',
            flush=True)
      return False
    saved_step = None
    try:
      health = jax.device_get(state.health)
      if int(health['first_bad_step']) >= 0:
        return False  # Never save a non-finite state.
      saved_step = int(jax.device_get(state.step))
      if saved_step == self.last_saved:
        return True
      # A state that has not consumed batch `fetch_step` goes with the
      # iterator from before that fetch; one that has, with the iterator now.
      data_state = (self.data_state_before if saved_step == self.fetch_step
                    else train_iter.get_state())
      checkpointer.save(saved_step, state, data_state, record, force=True)
      if not checkpointer.finished(saved_step):
        raise OSError('the save did not complete')
      self.last_saved = saved_step
      print(f'Interrupted: saved a checkpoint of step {saved_step} in '
            f'{workdir}; rerun the same command to resume.', flush=True)
      return True
    except Exception as save_error:  # pylint: disable=broad-except
      last = (f'the last complete checkpoint is step {self.last_saved}'
              if self.last_saved is not None else 'no checkpoint was saved')
      print(f'Could not save step {saved_step} on exit ({save_error}); '
            f'{last}.', flush=True)
      return False
