"""sr_jax.checkpoint.manager: faults injected into saves and restores
(interrupted saves, corrupt newest checkpoints, full disks, failed
asynchronous writes): nothing saved is lost or corrupted, and each ends with
one clear line; lower-is-better best checkpoints."""
import gc
import glob
import os
import resource
import signal

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
import pytest

from sr_jax import checkpoint
from sr_jax.train import config_lib
from tests.helpers.checkpoints import _biggest_array_file
from tests.helpers.checkpoints import _flip_a_bit
from tests.helpers.checkpoints import _three_checkpoints
from tests.helpers.checkpoints import _tiny_state


def test_an_interrupted_save_is_reported_not_silently_dropped(tmp_path,
                                                              capsys):
  """A kill during the only save leaves `<step>.orbax-checkpoint-tmp`: the
  rerun says it starts from step 0, and why."""
  unfinished = tmp_path / 'checkpoints' / '41.orbax-checkpoint-tmp-1234'
  (unfinished / 'state').mkdir(parents=True)
  checkpointer = checkpoint.Checkpointer(str(tmp_path))
  try:
    assert checkpointer.restore_latest(lambda step: {}) is None
  finally:
    checkpointer.close()
  out = capsys.readouterr().out
  assert 'the save of step 41' in out and 'starting from step 0' in out


# ------------------------------------------------------- verified checkpoints


def _abstract(state):
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return {'only': jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      state)}


def _truncate(step_dir):
  path = _biggest_array_file(step_dir)
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _delete_metadata(step_dir):
  os.remove(os.path.join(step_dir, 'state', '_METADATA'))


def _empty_data_state(step_dir):
  open(os.path.join(step_dir, 'data', 'metadata'), 'w').close()


def test_a_step_written_before_a_fallback_is_replaced_not_refused(
    tmp_path, capsys):
  """runlocal, step 2 corrupt: the rerun falls back to 1, trains step 2
  again and saves it where best/psnr/2 (and, had it survived, checkpoints/2)
  already is; orbax refuses a step it holds, for ever."""
  workdir = str(tmp_path / 'run')
  config = ml_collections.ConfigDict({'phases': ('psnr',),
                                      'psnr': {'steps': 2}})
  first = checkpoint.Checkpointer(workdir)
  first.save(2, _tiny_state(2), {'next_index': 2}, config)
  first.save_best(2, _tiny_state(2), 20.0, config, phase='psnr')
  first.wait_until_finished()
  first.close()
  again = checkpoint.Checkpointer(workdir)
  again.save(2, _tiny_state(3), {'next_index': 2}, config)
  again.save_best(2, _tiny_state(3), 21.0, config, phase='psnr')
  again.wait_until_finished()
  again.close()
  out = capsys.readouterr().out
  assert 'best/psnr/2 was written before this run resumed' in out, out
  assert 'checkpoints/2 was written before' in out
  for folder in ('checkpoints/2', 'best/psnr/2'):
    restored = ocp.StandardCheckpointer().restore(
        os.path.join(workdir, folder, 'state'))
    np.testing.assert_array_equal(restored['params']['w'],
                                  _tiny_state(3)['params']['w'])


@pytest.mark.parametrize('corrupt', [_truncate, _flip_a_bit,
                                     _delete_metadata, _empty_data_state])
@pytest.mark.slow
def test_a_corrupt_newest_checkpoint_is_moved_aside_and_the_previous_used(
    tmp_path, capsys, corrupt):
  workdir = str(tmp_path / 'run')
  _three_checkpoints(workdir)
  corrupt(os.path.join(workdir, 'checkpoints', '3'))
  saver = checkpoint.Checkpointer(workdir, keep=5)
  seen = []
  restored = saver.restore_latest(
      lambda step: _abstract(_tiny_state()),
      lambda step, saved: seen.append(step))
  saver.close()
  assert restored.step == 2 and restored.data_state == {'next_index': 2}
  np.testing.assert_array_equal(restored.state['params']['w'],
                                _tiny_state(2)['params']['w'])
  out = capsys.readouterr().out
  assert 'Traceback' not in out
  warning = [line for line in out.splitlines() if 'is corrupt' in line]
  assert len(warning) == 1 and 'checkpoints/3' in warning[0], out
  aside = glob.glob(os.path.join(workdir, 'corrupt_checkpoints', '3-*'))
  assert len(aside) == 1  # Moved, never deleted.
  assert os.path.isfile(os.path.join(aside[0], 'CORRUPT.txt'))
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == ['1',
                                                                      '2']
  # The listing: two intact, one moved aside.
  statuses = checkpoint.inspect_workdir(workdir)
  assert [(c.step, c.intact, c.finite) for c in statuses] == [
      (1, True, True), (2, True, True), (3, False, None)]
  assert statuses[1].metrics == {'val/psnr': 22.0}


def test_a_full_disk_is_refused_before_writing(tmp_path, monkeypatch):
  workdir = str(tmp_path / 'run')
  _three_checkpoints(workdir)
  saver = checkpoint.Checkpointer(workdir, keep=5)
  real = os.statvfs(workdir)

  class Full:
    f_bavail, f_frsize = 10, real.f_frsize

  monkeypatch.setattr(os, 'statvfs', lambda path: Full())
  with pytest.raises(checkpoint.CheckpointWriteError,
                     match=r'step 4 .*No space left on device.*The last '
                     r'complete checkpoint, step 3, is intact'):
    saver.save(4, _tiny_state(4), {'next_index': 4}, {})
  saver.close()
  assert sorted(os.listdir(os.path.join(workdir, 'checkpoints'))) == [
      '1', '2', '3']


def test_a_failed_write_names_its_own_step_and_the_last_complete_one(
    tmp_path, caplog, monkeypatch):
  """Saves are asynchronous: step 1's failed write surfaces when step 2 is
  saved, and must be reported as step 1's; the free-space check of step 2
  must see step 1 complete, even when its save was still finalizing."""
  config = ml_collections.ConfigDict({'phases': ('psnr',),
                                      'psnr': {'steps': 10}})
  saver = checkpoint.Checkpointer(str(tmp_path / 'run'), keep=5)
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  try:
    resource.setrlimit(resource.RLIMIT_FSIZE, (8_000, hard))  # w: 16 kB.
    saver.save(1, _tiny_state(1), {'next_index': 1}, config)
    with pytest.raises(checkpoint.CheckpointWriteError) as error:
      saver.save(2, _tiny_state(2), {'next_index': 2}, config)
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)
  message = str(error.value)
  assert 'checkpoint of step 1' in message, message
  assert 'File too large' in message and 'No checkpoint' in message
  saver.close()
  gc.collect()  # orbax's abandoned futures: no echo of each array's error.
  assert not [r for r in caplog.records if 'never retrieved' in r.message]

  saver = checkpoint.Checkpointer(str(tmp_path / 'other'), keep=5)
  saver.save(1, _tiny_state(1), {'next_index': 1}, config)
  monkeypatch.setattr(checkpoint.manager.os, 'statvfs', lambda path: type(
      'Full', (), {'f_bavail': 1, 'f_frsize': 4096})())
  with pytest.raises(checkpoint.CheckpointWriteError) as error:
    saver.save(2, _tiny_state(2), {'next_index': 2}, config)
  saver.close()
  assert 'step 2' in str(error.value)
  assert 'The last complete checkpoint, step 1, is intact' in str(error.value)


def _config(tmp_path, **eval_fields):
  c = config_lib.apply_variant(config_lib.base_config(), 'runlocal')
  c.evals = ml_collections.ConfigDict(
      {'val': config_lib.evaluation(**eval_fields)})
  return c


def test_lower_is_better_keeps_the_lowest(tmp_path):
  state = {'w': jnp.ones(2)}
  config = _config(tmp_path)
  saver = checkpoint.Checkpointer(str(tmp_path / 'run'))
  for step, value in ((1, 0.5), (2, 0.3), (3, 0.4)):
    saver.save_best(step, state, value, config, phase='gan', mode='min')
  saver.wait_until_finished()
  saver.close()
  assert os.listdir(tmp_path / 'run' / 'best' / 'gan') == ['2']
