"""sr_jax.train.preemption: a second signal waits for the save, a third
aborts; a second Ctrl-C interrupts the step."""
import signal

import pytest

from sr_jax.train import loop as train
from sr_jax.train import preemption as train_preemption


def test_a_second_signal_waits_for_the_save_and_a_third_aborts(
    monkeypatch, capsys):
  preemption = train_preemption.Preemption()
  exits = []
  monkeypatch.setattr(train_preemption.os, '_exit', exits.append)
  try:
    preemption._handler(signal.SIGTERM, None)
    assert preemption.requested
    preemption.saving = True
    preemption._handler(signal.SIGTERM, None)  # Acknowledged, ignored.
    assert 'SIGTERM received again: finishing the checkpoint first' in (
        capsys.readouterr().err)
    assert not exits
    preemption._handler(signal.SIGTERM, None)
    assert exits == [train.ABORTED_EXIT_CODE] != [train.RESUMABLE_EXIT_CODE]
  finally:
    preemption.restore()
  # Ctrl-C twice before the save starts: the second interrupts the step.
  preemption = train_preemption.Preemption()
  try:
    preemption._handler(signal.SIGINT, None)
    with pytest.raises(KeyboardInterrupt):
      preemption._handler(signal.SIGINT, None)
  finally:
    preemption.restore()
