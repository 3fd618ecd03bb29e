"""sr_jax.utils.run_lock: one trainer per workdir, stale locks taken over
once."""
import json
import os
import socket
import threading

import pytest

from sr_jax.utils import run_lock
from tests.helpers.repo import run_python


def _dead_pid() -> int:
  pid = os.fork()
  if pid == 0:
    os._exit(0)
  os.waitpid(pid, 0)
  return pid


def _write_lock(workdir, **info):
  with open(os.path.join(workdir, 'run.lock'), 'w') as f:
    json.dump(dict({'host': socket.gethostname(), 'started': 'earlier'},
                   **info), f)


def test_trainers_started_together_on_a_stale_lock_get_it_once(tmp_path):
  """8 acquirers (each its own open file, as 8 processes would be) start
  at a barrier against a dead pid's lock: exactly one gets it, the others
  are refused naming it. (Before: read -> remove -> create let several in.)
  """
  n = 8
  for round_ in range(6):  # The old code let several in by round 3.
    workdir = str(tmp_path / str(round_))
    os.makedirs(workdir)
    _write_lock(workdir, pid=_dead_pid())
    start, done = threading.Barrier(n, timeout=20), threading.Barrier(
        n, timeout=20)
    won, refused = [], []

    def attempt(start=start, done=done, won=won, refused=refused,
                workdir=workdir):
      lock = run_lock.RunLock(workdir)
      start.wait()
      try:
        lock.acquire()
        won.append(lock)
      except run_lock.WorkdirBusyError as e:
        refused.append(str(e))
      done.wait()  # Hold it until every one has tried.

    threads = [threading.Thread(target=attempt) for _ in range(n)]
    for t in threads:
      t.start()
    for t in threads:
      t.join()
    assert len(won) == 1, f'round {round_}: {len(won)} got the lock'
    assert len(refused) == n - 1
    assert all(f'pid {os.getpid()}' in m for m in refused), refused[:1]
    won[0].release()
    assert not os.path.exists(os.path.join(workdir, 'run.lock'))


def test_a_flock_lock_nobody_holds_is_stale_even_if_its_pid_lives(tmp_path):
  """The lock of a trainer that held an flock is stale once no one holds
  it, though its pid now names another live process; an older sr_jax's
  lock (the JSON alone) of a live pid is still refused."""
  workdir = str(tmp_path)
  live = os.getppid()
  _write_lock(workdir, pid=live, lock='flock')
  with run_lock.RunLock(workdir) as lock:
    assert lock.held
    with open(lock.path) as f:
      assert json.load(f)['pid'] == os.getpid()
  _write_lock(workdir, pid=live)  # Written by an older sr_jax.
  try:
    run_lock.RunLock(workdir).acquire()
  except run_lock.WorkdirBusyError as e:
    assert f'pid {live}' in str(e)
  else:
    raise AssertionError('a live older-version lock was taken over')


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
