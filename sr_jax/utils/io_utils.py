"""File writing that never leaves a truncated file under the target name,
telling a full or unwritable folder from other errors, and downloading.

Tests replace `download_file` (or urllib's `urlopen`) to serve files
without a network.
"""
import contextlib
import hashlib
import os
import pathlib
import sys
import tempfile
from typing import BinaryIO, Iterator
import urllib.error
import urllib.request

from etils import epath

from sr_jax import errors


def is_remote(path: str | os.PathLike) -> bool:
  """Whether `path` is a URL of a file system other than this machine's
  (gs://, s3://, ...: any etils / fsspec path)."""
  text = os.fspath(path)
  return '://' in text and not text.startswith('file://')


def workdir_path(path: str | os.PathLike) -> str:
  """A run folder as sr_jax uses it: a remote URL unchanged (never made
  absolute against the current folder, which would turn gs://b/run into
  ./gs:/b/run), file://X as the local X, a local path made absolute."""
  text = os.fspath(path)
  if is_remote(text):
    return text.rstrip('/')
  if text.startswith('file://'):
    text = text[len('file://'):]
  return os.path.abspath(os.path.expanduser(text))


def path(name: str | os.PathLike) -> epath.Path:
  """An etils Path for a local or remote file or folder."""
  return epath.Path(name)


def umask() -> int:
  """This process's umask, read without changing it where possible (Linux:
  /proc/self/status); elsewhere set and restored at once, which a thread
  creating a file at that instant could see."""
  try:
    with open('/proc/self/status') as f:
      for line in f:
        if line.startswith('Umask:'):
          return int(line.split()[1], 8)
  except (OSError, ValueError, IndexError):
    pass
  mask = os.umask(0o022)
  os.umask(mask)
  return mask


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike) -> Iterator[BinaryIO]:
  """Yields a binary file that replaces `path` only when the block succeeds.

  The data goes to a hidden temporary file in the same folder (created if
  needed), which is renamed over `path` on success (atomic on one file
  system) and deleted on any failure: a crash, a full disk or Ctrl-C leaves
  at most a dot-file, never a truncated file that a later run would trust.
  The file gets the mode the umask gives new files (0644 under 0022).
  """
  path = pathlib.Path(path).expanduser()
  path.parent.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f'.{path.name}.',
                             suffix='.tmp')
  try:
    # mkstemp makes it 0600: give it the mode open() would (0644 under
    # umask 0022), so results are as readable as any other file written.
    with contextlib.suppress(OSError):  # A file system without modes.
      os.fchmod(fd, 0o666 & ~umask())
    with os.fdopen(fd, 'wb') as f:
      yield f
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


@contextlib.contextmanager
def temporary_path(directory: str | os.PathLike,
                   suffix: str = '') -> Iterator[str]:
  """A fresh file path in `directory`, deleted on exit whatever happens."""
  directory = pathlib.Path(directory)
  directory.mkdir(parents=True, exist_ok=True)
  fd, tmp = tempfile.mkstemp(dir=directory, prefix='.tmp-', suffix=suffix)
  os.close(fd)
  try:
    yield tmp
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)


# Re-exported: what counts as a full or unwritable folder.
WRITE_ERRNOS = errors.WRITE_ERRNOS
is_write_failure = errors.is_write_failure


def write_probe(directory: str | os.PathLike,
                size: int = 1 << 20) -> str | None:
  """Writes and deletes `size` bytes in `directory`; returns why that
  failed (e.g. 'No space left on device'), or None if it worked."""
  try:
    with temporary_path(directory, suffix='.probe') as tmp:
      with open(tmp, 'wb') as f:
        f.write(b'\0' * size)
        f.flush()
        os.fsync(f.fileno())
  except OSError as e:
    return e.strerror or str(e)
  return None


# What a failed download raises: offline, DNS, HTTP errors, a reset socket.
DOWNLOAD_ERRORS = (urllib.error.URLError, OSError)


def download_file(url: str, f: BinaryIO, progress: bool) -> str:
  """Streams url into f; returns the SHA-256 hex digest of what was written."""
  sha = hashlib.sha256()
  done = 0
  with urllib.request.urlopen(url, timeout=60) as response:
    headers = getattr(response, 'headers', None) or {}
    total = int(headers.get('Content-Length') or 0)
    while chunk := response.read(1 << 20):
      f.write(chunk)
      sha.update(chunk)
      done += len(chunk)
      if progress:
        of_total = f' / {total / 2**20:.1f}' if total else ''
        print(f'\rdownloading {url}: {done / 2**20:.1f}{of_total} MiB',
              end='', file=sys.stderr, flush=True)
  if progress:
    print(file=sys.stderr)
  return sha.hexdigest()
