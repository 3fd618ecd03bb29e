"""sr_jax.utils.io_utils: what atomic writes leave on disk."""
import os
import stat

import pytest

from sr_jax.utils import io_utils


@pytest.mark.parametrize('mask, mode', [(0o022, 0o644), (0o077, 0o600),
                                        (0o002, 0o664)])
def test_atomic_write_gives_the_mode_the_umask_gives(tmp_path, mask, mode):
  """Under umask 0022 a written result is 0644 (mkstemp alone: 0600, so
  upscaled images, .onnx and .npz files were unreadable to others), as a
  file made with open() next to it."""
  old = os.umask(mask)
  try:
    with io_utils.atomic_write(tmp_path / 'out.png') as f:
      f.write(b'data')
    with open(tmp_path / 'plain', 'wb'):
      pass
  finally:
    os.umask(old)
  assert stat.S_IMODE(os.stat(tmp_path / 'out.png').st_mode) == mode
  assert stat.S_IMODE(os.stat(tmp_path / 'plain').st_mode) == mode
  assert (tmp_path / 'out.png').read_bytes() == b'data'
  assert sorted(os.listdir(tmp_path)) == ['out.png', 'plain']


def test_umask_is_read_without_changing_it():
  old = os.umask(0o027)
  try:
    assert io_utils.umask() == 0o027
    assert os.umask(0o027) == 0o027  # Unchanged.
  finally:
    os.umask(old)
