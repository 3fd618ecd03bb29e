"""Faults a long run meets, injected: nothing trained is lost or corrupted,
and each ends with one clear line."""
import glob
import json
import os
import signal
import socket
import subprocess
import sys

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import REPO
from conftest import load_config
from conftest import run_python
from sr_jax import train


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
  assert 'at step 3' in message and 'l_g_' in message, message
  assert 'became non-finite' in message
  assert 'the last checkpoint is step 2' in message
  saved = _saved_states(str(workdir))
  assert sorted(saved) == [1, 2] and all(saved.values()), saved


def _psnr_config(**overrides):
  config = load_config('rrdb_psnr')
  config.psnr.steps = 3
  for k, v in overrides.items():
    config[k] = v
  return config


def test_a_second_trainer_is_refused_and_a_stale_lock_taken_over(tmp_path):
  from sr_jax import run_lock  # pylint: disable=g-import-not-at-top
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
  state = train.train_and_evaluate(changed, workdir, allow_config_change=True)
  assert int(state.step) == 3
  with open(os.path.join(workdir, 'config_changes.log')) as f:
    assert 'psnr.optimizers.generator.lr' in f.read()


@pytest.mark.slow
def test_sigterm_to_the_group_saves_and_exits_resumable(tmp_path):
  """SIGTERM to the whole process group (grain workers included): a
  checkpoint, exit 143 and no traceback; the rerun resumes and exits 0."""
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
  assert not os.path.exists(workdir / 'run.lock')  # Released.
  rerun = [a for a in args[1:] if 'psnr.steps' not in a]
  result = run_python(rerun + [f'--config.psnr.steps={max(saved) + 1}'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Resuming from step {max(saved)}' in result.stdout
