"""sr_jax.utils.io_utils: what atomic writes leave on disk; workdirs given as
URLs (gs://, any etils / fsspec path) are never made absolute against the
current folder."""
import os
import stat

from etils.epath import gpath
from etils.epath import testing as epath_testing
import numpy as np
import pytest

from sr_jax import checkpoint as ckpt_lib
from sr_jax import evaluate as eval_lib
from sr_jax.utils import io_utils
from sr_jax.utils import scalar_csv


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


def test_workdir_path_keeps_urls():
  assert io_utils.workdir_path('gs://bucket/run/') == 'gs://bucket/run'
  assert io_utils.workdir_path('s3://b/r') == 's3://b/r'
  assert io_utils.workdir_path('file:///tmp/x/run') == '/tmp/x/run'
  assert io_utils.workdir_path('runs/a') == os.path.abspath('runs/a')
  assert io_utils.is_remote('gs://b/r') and not io_utils.is_remote(
      'file:///tmp/r') and not io_utils.is_remote('/tmp/r')


def test_remote_workdirs_go_through_etils_paths(tmp_path, monkeypatch):
  """With epath's gs:// backend replaced by the local one (etils' own
  test mock), a gs:// workdir's files land under ./gs:/bucket/run: they
  went through etils paths, with the URL kept whole."""
  monkeypatch.chdir(tmp_path)
  # The mock replaces every backend, except that gs:// goes to TensorFlow's
  # whenever TF is installed (clu brings it).
  monkeypatch.setattr(gpath, '_is_tf_installed', lambda: False)
  url = 'gs://bucket/run'
  with epath_testing.mock_epath():
    io_utils.path(url).mkdir(parents=True)  # As the trainer does first.
    writer = scalar_csv.CsvScalarWriter(url)
    writer.write_scalars(1, {'train/l_g_pix': 0.5})
    writer.write_scalars(2, {'train/l_g_pix': 0.25})
    writer.close()
    # A second writer (a resumed run) continues the same file.
    writer = scalar_csv.CsvScalarWriter(url)
    writer.write_scalars(3, {'train/l_g_pix': 0.125})
    writer.close()
    assert scalar_csv.read_scalars(url) == {
        'train/l_g_pix': [(1, 0.5), (2, 0.25), (3, 0.125)]}
    eval_lib.save_strips(f'{url}/images/00000001',
                         [('a.png', np.zeros((4, 6, 3), np.uint8))])
  # orbax gets the URL whole (its gs:// client is not installed here).
  given = []
  monkeypatch.setattr(ckpt_lib.manager.ocp, 'CheckpointManager',
                      lambda directory, **kw: given.append(str(directory)))
  checkpointer = ckpt_lib.Checkpointer(url + '/')
  checkpointer._errors.remove()  # pylint: disable=protected-access
  assert checkpointer.workdir == url
  assert given == [f'{url}/checkpoints']
  local = tmp_path / 'gs:' / 'bucket' / 'run'
  assert (local / 'scalars.csv').read_text().count('\n') == 4
  assert (local / 'images' / '00000001' / 'a.png').exists()
