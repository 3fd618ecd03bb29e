"""Downloading a weights file: streamed, hashed, never left half-written.

Tests replace `download_file` (or urllib's `urlopen`) to serve files
without a network.
"""
import hashlib
import sys
import urllib.error
import urllib.request
from typing import BinaryIO

from sr_jax import io_utils

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


# A fresh file path, deleted on exit whatever happens, so a failed or
# interrupted fetch leaves nothing behind.
temporary_path = io_utils.temporary_path
