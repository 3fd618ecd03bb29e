"""One trainer per workdir: an exclusive lock file, stale when its process
is gone.

`W/run.lock` holds the host, pid and start time of the trainer that owns
W. A second trainer on W is refused with a message naming the first; a lock
left by a process that no longer exists (a crash, kill -9) on this host is
taken over with a warning. Made with O_CREAT | O_EXCL, so two trainers
started at once cannot both get it.
"""
import json
import logging
import os
import socket
import time

from sr_jax import errors


class WorkdirBusyError(errors.SrJaxError, RuntimeError):
  """Another trainer runs in this workdir; the message names it."""


def _alive(pid: int) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    return True  # Exists, owned by someone else.
  return True


class RunLock:
  """Context manager: `with RunLock(workdir): train...`."""

  def __init__(self, workdir: str):
    self.path = os.path.join(os.path.abspath(workdir), 'run.lock')
    self.info = {'host': socket.gethostname(), 'pid': os.getpid(),
                 'started': time.strftime('%Y-%m-%d %H:%M:%S %Z')}
    self.held = False

  def _read(self) -> dict | None:
    try:
      with open(self.path) as f:
        return json.load(f)
    except (OSError, ValueError):
      return None

  def acquire(self) -> None:
    for _ in range(3):
      try:
        fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
      except FileExistsError:
        other = self._read()
        if other is None:
          # Being written right now, or garbage: stale only when old.
          try:
            age = time.time() - os.path.getmtime(self.path)
          except OSError:
            continue  # Gone meanwhile: try again.
          if age < 10:
            time.sleep(0.5)
            continue
        elif other.get('host') != self.info['host'] or _alive(
            int(other.get('pid', -1))):
          raise WorkdirBusyError(
              f'{os.path.dirname(self.path)} is in use by another trainer '
              f'(pid {other.get("pid")} on {other.get("host")}, started '
              f'{other.get("started")}): wait for it or stop it, or use '
              'another --workdir. If that process is gone (its machine '
              f'died), delete {self.path}.') from None
        logging.warning('Taking over the stale lock %s (%s).', self.path,
                        other)
        try:
          os.remove(self.path)
        except FileNotFoundError:
          pass
        continue
      with os.fdopen(fd, 'w') as f:
        json.dump(self.info, f)
      self.held = True
      return
    raise WorkdirBusyError(f'Could not take the lock {self.path}; is '
                           'another trainer starting in this workdir?')

  def release(self) -> None:
    if self.held and (self._read() or {}).get('pid') == self.info['pid']:
      try:
        os.remove(self.path)
      except FileNotFoundError:
        pass
    self.held = False

  def __enter__(self):
    self.acquire()
    return self

  def __exit__(self, *exc):
    self.release()
