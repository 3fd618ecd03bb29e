"""One trainer per workdir: an exclusive lock, stale when its process is
gone.

`W/run.lock` holds the host, pid and start time of the trainer that owns
W, and that trainer holds an `fcntl.flock` on it for as long as it runs.
The kernel drops the flock when the process dies (a crash, kill -9), so
the lock is stale exactly when it can be flock-ed: taking it over is one
atomic step, and of several trainers started at once against a stale lock
only one gets it. A second trainer on W is refused with a message naming
the first.

A lock written by an older sr_jax (the JSON alone, no flock) counts as
held while its pid lives on this host; another host's lock is never taken
over. Where the file system has no flock, the JSON and the pid alone
decide, as they did before.
"""
import errno
import json
import logging
import os
import socket
import time

try:
  import fcntl
except ImportError:  # Not a POSIX system: the pid alone decides.
  fcntl = None

from sr_jax import errors

# Written into the JSON: its owner holds an flock on the file while alive.
_FLOCK = 'flock'


class WorkdirBusyError(errors.SrJaxError, RuntimeError):
  """Another trainer runs in this workdir; the message names it."""


def _alive(pid: int) -> bool:
  if pid <= 0:
    return False  # No pid: kill(0 or -1) would name a group of processes.
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Exists, owned by someone else.
  return True


def _flock(fd: int) -> bool | None:
  """Takes an exclusive flock on fd without waiting: True when taken,
  False when another open file holds it, None when flock is unsupported."""
  if fcntl is None:
    return None
  try:
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
  except BlockingIOError:
    return False
  except OSError as e:
    if e.errno in (errno.EAGAIN, errno.EACCES):
      return False
    if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS,
                   errno.EINVAL):
      return None
    raise
  return True


def _pid(info: dict) -> int:
  try:
    return int(info.get('pid', -1))
  except (TypeError, ValueError):
    return -1


class RunLock:
  """Context manager: `with RunLock(workdir): train...`."""

  def __init__(self, workdir: str):
    self.path = os.path.join(os.path.abspath(workdir), 'run.lock')
    self.info = {'host': socket.gethostname(), 'pid': os.getpid(),
                 'started': time.strftime('%Y-%m-%d %H:%M:%S %Z'),
                 'lock': _FLOCK}
    self.held = False
    self._fd = None

  def _read(self) -> dict | None:
    try:
      with open(self.path) as f:
        other = json.load(f)
    except (OSError, ValueError):
      return None
    return other if isinstance(other, dict) else None

  def _busy(self, other: dict | None,
            holder_gone: bool = False) -> WorkdirBusyError:
    other = other or {}
    gone = (' Its pid is gone, but a process it started still holds the '
            'lock: stop that one.') if holder_gone else ''
    return WorkdirBusyError(
        f'{os.path.dirname(self.path)} is in use by another trainer '
        f'(pid {other.get("pid")} on {other.get("host")}, started '
        f'{other.get("started")}): wait for it or stop it, or use '
        f'another --workdir.{gone} If that process is gone (its machine '
        f'died), delete {self.path}.')

  def _owner_alive(self, other: dict, flocked: bool | None) -> bool:
    """Whether the owner named in the file still runs, given that this
    process holds the file's flock (flocked True) or has no flock (None)."""
    if other.get('host') != self.info['host']:
      return True  # Cannot tell: never taken over.
    if flocked and (other.get('lock') == _FLOCK
                    or _pid(other) == self.info['pid']):
      return False  # It would hold the flock: it is gone.
    return _alive(_pid(other))

  def acquire(self) -> None:
    for _ in range(20):
      try:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        created = True
      except FileExistsError:
        try:
          fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
          continue  # Released meanwhile: create it.
        created = False
      try:
        flocked = _flock(fd)
        if flocked is False:
          raise self._busy_held()
        # Released (deleted) between open and flock: open the new one.
        try:
          if not os.path.samestat(os.fstat(fd), os.stat(self.path)):
            continue
        except FileNotFoundError:
          continue
        text = os.pread(fd, 1 << 16, 0)
        try:
          other = json.loads(text) if text.strip() else None
        except ValueError:
          other = None
        if not isinstance(other, dict):
          other = None
        if other is not None:
          if self._owner_alive(other, flocked):
            raise self._busy(other)
          logging.warning('Taking over the stale lock %s (%s).', self.path,
                          other)
        elif flocked is None and not created and time.time() - os.fstat(
            fd).st_mtime < 10:
          # No flock: an older sr_jax may be writing it right now.
          time.sleep(0.5)
          continue
        elif text.strip():
          logging.warning('Taking over the unreadable lock %s.', self.path)
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(self.info).encode(), 0)
        self._fd, fd = fd, None
        self.held = True
        return
      finally:
        if fd is not None:
          os.close(fd)
    raise WorkdirBusyError(f'Could not take the lock {self.path}; is '
                           'another trainer starting in this workdir?')

  def _busy_held(self) -> WorkdirBusyError:
    """The error for a lock whose flock another process holds."""
    for _ in range(50):
      other = self._read()
      gone = bool(other) and other.get('host') == self.info['host'] and (
          not _alive(_pid(other)))
      if other and not gone:
        break
      # Its owner may be writing its JSON over the stale one right now.
      time.sleep(0.01)
    return self._busy(other, holder_gone=gone)

  def release(self) -> None:
    if self.held and self._fd is not None:
      try:
        # Deleted while still flock-ed: one that opened it meanwhile sees
        # another file under the name, and opens again.
        if os.path.samestat(os.fstat(self._fd), os.stat(self.path)):
          os.remove(self.path)
      except FileNotFoundError:
        pass
      finally:
        os.close(self._fd)
        self._fd = None
    self.held = False

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()
