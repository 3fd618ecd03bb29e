"""Files and folders the tests make."""
import os

import pytest


def unwritable_folder(path, how: str):
  """`path` made a place no file can be written under: a regular file
  (`how='under_a_file'`: ENOTDIR, for root too) or a folder of mode 0555
  (`'read_only'`; skipped as root, who writes anyway)."""
  if how == 'read_only' and os.geteuid() == 0:
    pytest.skip('root writes into read-only folders')
  if how == 'under_a_file':
    path.write_bytes(b'')
  else:
    path.mkdir()
    path.chmod(0o555)
  return path
