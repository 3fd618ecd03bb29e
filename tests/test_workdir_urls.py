"""Workdirs given as URLs: file:// trains and loads; gs:// (any etils /
fsspec path) is never made absolute against the current folder."""
import os

from etils.epath import gpath
from etils.epath import testing as epath_testing
import numpy as np
import pytest

from tests.helpers.repo import load_config
from sr_jax import checkpoint as ckpt_lib
from sr_jax import evaluate as eval_lib
from sr_jax.utils import io_utils
from sr_jax.utils import scalar_csv
from sr_jax.train import loop as train


def test_workdir_path_keeps_urls():
  assert io_utils.workdir_path('gs://bucket/run/') == 'gs://bucket/run'
  assert io_utils.workdir_path('s3://b/r') == 's3://b/r'
  assert io_utils.workdir_path('file:///tmp/x/run') == '/tmp/x/run'
  assert io_utils.workdir_path('runs/a') == os.path.abspath('runs/a')
  assert io_utils.is_remote('gs://b/r') and not io_utils.is_remote(
      'file:///tmp/r') and not io_utils.is_remote('/tmp/r')


@pytest.mark.slow
def test_a_file_url_workdir_trains_resumes_and_loads(tmp_path,
                                                      monkeypatch):
  monkeypatch.chdir(tmp_path)
  url = f'file://{tmp_path}/runs/a'
  config = load_config('rrdb_psnr')
  state = train.train_and_evaluate(config, url)
  assert int(state.step) == 2
  run = tmp_path / 'runs' / 'a'
  assert (run / 'checkpoints' / '2' / 'commit_success.txt').exists()
  assert (run / 'scalars.csv').exists() and (run / 'images').is_dir()
  assert not (tmp_path / 'file:').exists()
  # Resumes from it (nothing left to do) and loads from it by URL.
  config = load_config('rrdb_psnr')
  config.psnr.steps = 3
  assert int(train.train_and_evaluate(config, url).step) == 3
  loaded = ckpt_lib.load_generator_from_workdir(url, 'latest')
  assert loaded.step == 3
  assert [s.step for s in ckpt_lib.inspect_workdir(url)
          if 'checkpoints' in s.directory] == [1, 2, 3]


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
