"""Faults a long run meets, injected: nothing trained is lost or corrupted,
and each ends with one clear line."""
import gc
import glob
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time

import jax
import ml_collections
import numpy as np
import orbax.checkpoint as ocp
from PIL import Image
import pytest

from tests.helpers.repo import REPO
from tests.helpers.repo import load_config
from tests.helpers.repo import fake_devices
from tests.helpers.repo import run_python
from sr_jax import checkpoint
from sr_jax.checkpoint import __main__ as checkpoints
from sr_jax.train import loop as train
from sr_jax.train import preemption as train_preemption
from sr_jax import upscale


def _gan_config(vgg, **overrides):
  config = load_config('esrgan')
  config.psnr.steps = 1
  config.gan.steps = 6
  config.log_every = 100
  config.eval_every = 100
  config.checkpoint_every = 1
  config.keep_checkpoints = 10
  config.frozen.vgg19 = vgg
  # lr 1e30: the first GAN update makes parameters ~1e30, the next inf/NaN.
  config.gan.optimizers.generator.lr = 1e30
  for k, v in overrides.items():
    config[k] = v
  return config


def _saved_states(workdir):
  """{step: all leaves finite} of every checkpoint in the workdir."""
  result = {}
  for path in sorted(glob.glob(os.path.join(workdir, 'checkpoints', '*'))):
    step = int(os.path.basename(path))
    tree = ocp.StandardCheckpointer().restore(os.path.join(path, 'state'))
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree)
              if jax.numpy.issubdtype(x.dtype, jax.numpy.floating)]
    result[step] = all(np.all(np.isfinite(x)) for x in leaves)
  return result


@pytest.mark.slow
def test_skip_drops_non_finite_updates_then_stops(tmp_path,
                                                 random_vgg19_weights):
  workdir = str(tmp_path / 'run')
  config = _gan_config(random_vgg19_weights, on_nonfinite='skip',
                       max_nonfinite_skips=2)
  with pytest.raises(train.NonFiniteError, match='2 updates in a row'):
    train.train_and_evaluate(config, workdir)
  saved = _saved_states(workdir)
  assert saved and all(saved.values()), saved


@pytest.mark.slow
def test_a_nan_mid_gan_stops_with_code_3_and_saves_nothing_broken(
    tmp_path, random_vgg19_weights):
  workdir = tmp_path / 'run'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/esrgan.py:runlocal',
       f'--workdir={workdir}', f'--config.frozen.vgg19={random_vgg19_weights}',
       # lr 1e30: the first GAN update makes parameters ~1e30, the next
       # inf / NaN.
       '--config.gan.optimizers.generator.lr=1e30', '--config.gan.steps=5',
       '--config.psnr.steps=1', '--config.checkpoint_every=1',
       '--config.keep_checkpoints=10', '--config.eval_every=100'])
  assert result.returncode == 3, result.stdout + result.stderr
  assert 'Traceback' not in result.stderr
  message = result.stderr.strip().splitlines()[-1]
  # Step 2 (the first GAN update) leaves parameters of ~1e30: finite, but
  # every activation overflows; the guard's squared norm catches them there,
  # so no checkpoint of step 2 exists (it would validate as garbage).
  assert 'at step 2 the updated parameters' in message, message
  assert 'too large' in message
  assert 'the last checkpoint is step 1' in message
  saved = _saved_states(str(workdir))
  assert sorted(saved) == [1] and all(saved.values()), saved


def _psnr_config(**overrides):
  config = load_config('rrdb_psnr')
  config.psnr.steps = 3
  for k, v in overrides.items():
    config[k] = v
  return config


def test_a_second_trainer_is_refused_and_a_stale_lock_taken_over(tmp_path):
  from sr_jax.utils import run_lock  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'run')
  os.makedirs(workdir)
  with run_lock.RunLock(workdir):  # A running trainer (this process).
    with pytest.raises(run_lock.WorkdirBusyError,
                       match=f'pid {os.getpid()}'):
      run_lock.RunLock(workdir).acquire()
    assert not os.path.isdir(os.path.join(workdir, 'checkpoints'))
  assert not os.path.exists(os.path.join(workdir, 'run.lock'))  # Released.
  # A lock left by a process that is gone is taken over.
  dead = run_python(['-c', 'import os; print(os.getpid())'])
  with open(os.path.join(workdir, 'run.lock'), 'w') as f:
    json.dump({'host': socket.gethostname(), 'pid': int(dead.stdout),
               'started': 'earlier'}, f)
  with run_lock.RunLock(workdir) as lock:
    assert lock.held
  # Another host's lock is never taken over.
  with open(os.path.join(workdir, 'run.lock'), 'w') as f:
    json.dump({'host': 'elsewhere', 'pid': 1, 'started': 'earlier'}, f)
  with pytest.raises(run_lock.WorkdirBusyError, match='elsewhere'):
    run_lock.RunLock(workdir).acquire()


@pytest.mark.slow
def test_resume_with_another_config_is_refused_unless_allowed(tmp_path):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(_psnr_config(stop_at_step=1), workdir)
  changed = _psnr_config()
  changed.psnr.optimizers.generator.lr = 1e-3
  with pytest.raises(train.ConfigError,
                     match=r'psnr.optimizers.generator.lr: 0.0002 -> 0.001'):
    train.train_and_evaluate(changed, workdir)
  # Cadence and the last phase's length are not changes.
  train.train_and_evaluate(_psnr_config(stop_at_step=2, log_every=5),
                           workdir)
  # Allowed, but the train state no longer fits: refused, and nothing is
  # logged as a change the run resumed with.
  wider = _psnr_config()
  wider.generator.kwargs.num_feat *= 2
  with pytest.raises(checkpoint.CheckpointMismatchError):
    train.train_and_evaluate(wider, workdir, allow_config_change=True)
  assert not os.path.exists(os.path.join(workdir, 'config_changes.log'))
  state = train.train_and_evaluate(changed, workdir, allow_config_change=True)
  assert int(state.step) == 3
  with open(os.path.join(workdir, 'config_changes.log')) as f:
    assert 'psnr.optimizers.generator.lr' in f.read()


@pytest.mark.slow
def test_sigterm_to_the_group_saves_and_exits_resumable(tmp_path):
  """SIGTERM to the whole process group (grain workers included), and again
  0.4 s later, during the save (schedulers send it more than once): the
  checkpoint completes, exit 143 and no traceback; the rerun resumes and
  exits 0."""
  workdir = tmp_path / 'run'
  args = [sys.executable, '-m', 'sr_jax.main',
          '--config=configs/rrdb_psnr.py:runlocal', f'--workdir={workdir}',
          '--config.psnr.steps=100000', '--config.log_every=1',
          '--config.checkpoint_every=100000', '--config.eval_every=100000',
          '--config.data.num_workers=2']
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  try:
    for line in proc.stdout:
      if 'step 3/' in line:
        break
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.4)
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
  assert proc.returncode == 143, err[-3000:]
  assert 'Traceback' not in err, err[-3000:]
  assert 'SIGTERM received: saved step' in err
  saved = [int(s) for s in os.listdir(workdir / 'checkpoints')
           if s.isdigit()]
  assert saved and max(saved) >= 3
  assert f'SIGTERM received: saved step {max(saved)}' in err
  assert os.path.exists(
      workdir / 'checkpoints' / str(max(saved)) / 'commit_success.txt')
  assert not checkpoint.unfinished_saves(str(workdir / 'checkpoints'))
  assert not os.path.exists(workdir / 'run.lock')  # Released.
  # The rerun also changes the worker count (2 -> 0): the data position
  # carries over.
  rerun = [a for a in args[1:] if 'psnr.steps' not in a
           and 'num_workers' not in a]
  result = run_python(rerun + [f'--config.psnr.steps={max(saved) + 1}',
                               '--config.data.num_workers=0'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Resuming from step {max(saved)}' in result.stdout
  final = os.path.join(workdir, 'checkpoints', str(max(saved) + 1), 'data',
                       'metadata')
  with open(final) as f:
    assert json.load(f) == {'next_index': max(saved) + 1}


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


def _tiny_state(value=1):
  """Random (incompressible) arrays: a damaged file hits array data."""
  w = np.random.default_rng(value).standard_normal((64, 64))
  return {'params': {'w': w.astype(np.float32),
                     'b': np.arange(16, dtype=np.float32) * value},
          'step': np.int32(value), 'rng': jax.random.key(value)}


def _abstract(state):
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  return {'only': jax.tree.map(
      lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=device),
      state)}


def _three_checkpoints(workdir):
  config = ml_collections.ConfigDict({'phases': ('psnr',),
                                      'psnr': {'steps': 10}})
  saver = checkpoint.Checkpointer(workdir, keep=5)
  for step in (1, 2, 3):
    saver.save(step, _tiny_state(step), {'next_index': step}, config,
               metrics={'val/psnr': 20.0 + step})
  saver.wait_until_finished()
  saver.close()


def _biggest_array_file(step_dir):
  files = glob.glob(os.path.join(step_dir, 'state', 'ocdbt.process_0', 'd',
                                 '*'))
  return max(files, key=os.path.getsize)


def _truncate(step_dir):
  path = _biggest_array_file(step_dir)
  with open(path, 'r+b') as f:
    f.truncate(os.path.getsize(path) // 2)


def _flip_a_bit(step_dir):
  path = _biggest_array_file(step_dir)
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0x04
  open(path, 'wb').write(bytes(data))


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


def test_a_flipped_bit_fails_its_checksum_and_the_listing_says_so(
    tmp_path, capsys):
  state = _tiny_state(3)
  record = checkpoint.checksum_record(state, {'next_index': 3})
  flipped = jax.tree.map(lambda x: x, state)
  flipped['params']['w'] = state['params']['w'].copy()
  flipped['params']['w'].view(np.uint32)[5, 7] ^= 1  # One bit.
  with pytest.raises(checkpoint.CorruptCheckpointError,
                     match='params/w'):
    checkpoint.verify(record, flipped, {'next_index': 3})
  with pytest.raises(checkpoint.CorruptCheckpointError, match='iterator'):
    checkpoint.verify(record, state, {'next_index': 4})
  checkpoint.verify(record, state, {'next_index': 3})  # Intact.
  # In a workdir, the listing names the broken checkpoint and exits 1.
  workdir = str(tmp_path / 'run')
  _three_checkpoints(workdir)
  _flip_a_bit(os.path.join(workdir, 'checkpoints', '2'))
  assert checkpoints.main([workdir]) == 1
  out = capsys.readouterr().out
  line = [x for x in out.splitlines() if x.split()[:1] == ['2']][0]
  assert 'CORRUPT' in line, out
  assert '1 corrupt' in out


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


@pytest.mark.slow
def test_a_write_error_mid_run_stops_in_one_line_and_loses_nothing(
    tmp_path, capfd):
  """A real write error (a file-size limit, like a full disk for orbax):
  CheckpointWriteError naming the last complete checkpoint, which stays
  intact, and the rerun resumes from it. An unwritable workdir is refused
  before training."""
  workdir = str(tmp_path / 'run')
  longer = _psnr_config(checkpoint_every=2, eval_every=100)
  longer.psnr.steps = 4
  train.train_and_evaluate(_psnr_config(checkpoint_every=2, eval_every=100,
                                        stop_at_step=2), workdir)
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  try:
    # Every array file of a checkpoint is bigger than 50 kB.
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard))
    with pytest.raises(checkpoint.CheckpointWriteError) as error:
      train.train_and_evaluate(longer, workdir)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    with pytest.raises(train.ConfigError, match='Cannot write to --workdir'):
      train.train_and_evaluate(_psnr_config(), str(tmp_path / 'other'))
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)
  assert 'step 4' in str(error.value)
  assert 'The last complete checkpoint, step 2, is intact' in str(error.value)
  out, err = capfd.readouterr()
  assert 'Traceback' not in out + err, (out + err)[-3000:]
  assert 'Interrupted: saved' not in out
  state = train.train_and_evaluate(longer, workdir)
  assert int(state.step) == 4
  assert 'Resuming from step 2' in capfd.readouterr().out


@pytest.mark.slow
def test_a_workdir_trained_on_4_devices_upscales_and_resumes_on_1(tmp_path):
  workdir = tmp_path / 'run'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/rrdb_psnr.py:runlocal',
       f'--workdir={workdir}', '--config.psnr.steps=2'],
      env_extra=fake_devices(4))
  assert result.returncode == 0, result.stderr[-3000:]
  assert jax.device_count() == 1
  Image.fromarray(np.full((12, 10, 3), 128, np.uint8)).save(tmp_path / 'a.png')
  out = tmp_path / 'a_x4.png'
  assert upscale.main([str(tmp_path / 'a.png'), '-o', str(out),
                       '--checkpoint', str(workdir)]) == 0
  assert Image.open(out).size == (40, 48)
  config = _psnr_config()  # 3 steps: one more, on one device.
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == 3
