"""inference.load_generator: the one loader, and `W:phase` as every command
spells a workdir's phase (the checkpoint reading itself is tested with real
runs in test_train.py, test_interpolate.py and test_faults.py)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from sr_jax import checkpoint
from sr_jax import inference
from sr_jax import models
from sr_jax.inference import generator_loading


def test_split_source_takes_a_phase_only_where_the_path_does_not_exist(
    tmp_path):
  assert inference.split_source('runs/a:gan') == ('runs/a', 'gan')
  assert inference.split_source(tmp_path) == (str(tmp_path), None)
  odd = tmp_path / 'w:gan'  # A folder whose name has a colon: the folder.
  odd.mkdir()
  assert inference.split_source(odd) == (str(odd), None)
  for spec in ('runs/a:', 'runs/a:2x', ':gan', 'x4.pth'):
    assert inference.split_source(spec) == (spec, None), spec


@pytest.fixture()
def fake_run(monkeypatch, tmp_path):
  """A workdir whose checkpoint reader is recorded, not run: each call's
  (which, phase, step); 'best' raises like a run that never validated
  when `no_best` is set."""
  calls, state = [], {'no_best': False}
  module = models.get_generator('srvgg', scale=2, **models.SRVGGNetCompact
                                .TINY_KWARGS)
  variables = jax.jit(module.init)(jax.random.key(0),
                                   jnp.zeros((1, 8, 8, 3)))

  def reader(workdir, which='best', phase=None, step=None):
    calls.append((workdir, which, phase, step))
    if (which == 'best' and state['no_best'] and phase is None
        and step is None):
      raise FileNotFoundError(f'No best checkpoints in {workdir}/best')
    return checkpoint.LoadedGenerator(
        module, variables, ml_collections.ConfigDict({'scale': 2}), 7,
        phase or 'gan', f'{workdir}/checkpoints')

  monkeypatch.setattr(generator_loading.checkpoint_lib,
                      'load_generator_from_workdir', reader)
  workdir = tmp_path / 'run'
  workdir.mkdir()
  return str(workdir), calls, state


def test_a_workdir_phase_is_spelt_w_colon_phase_everywhere(fake_run):
  workdir, calls, _ = fake_run
  loaded = inference.load_generator(f'{workdir}:psnr')
  assert calls == [(workdir, 'best', 'psnr', None)]
  assert loaded.scale == 2 and loaded.arch == 'srvgg'
  assert loaded.source == workdir and loaded.run.step == 7
  # The upscale / export / evaluate loader takes the same spelling.
  module, variables, scale = inference.load_generator_for_inference(
      checkpoint=f'{workdir}:psnr')
  assert calls[-1] == (workdir, 'best', 'psnr', None) and scale == 2
  out = module.apply(variables, np.zeros((1, 4, 6, 3), np.float32))
  assert out.shape == (1, 8, 12, 3)
  with pytest.raises(ValueError, match="names phase 'psnr'"):
    inference.load_generator(f'{workdir}:psnr', phase='gan')


def test_final_is_the_best_checkpoint_else_the_newest(fake_run):
  workdir, calls, state = fake_run
  inference.load_generator(workdir)
  assert calls == [(workdir, 'best', None, None)]
  state['no_best'] = True
  calls.clear()
  inference.load_generator(workdir)
  assert calls == [(workdir, 'best', None, None),
                   (workdir, 'latest', None, None)]
  calls.clear()
  with pytest.raises(FileNotFoundError, match='No best checkpoints'):
    inference.load_generator(workdir, which='best')
  inference.load_generator(workdir, step=3)
  assert calls[-1] == (workdir, 'best', None, 3)


def test_a_weights_file_takes_no_phase_and_a_kind_is_checked(fake_run,
                                                             tmp_path):
  workdir, _, _ = fake_run
  with pytest.raises(ValueError, match='--phase / --step pick a checkpoint'):
    inference.load_generator(tmp_path / 'x4.npz', phase='gan')
  with pytest.raises(ValueError, match='which='):
    inference.load_generator(workdir, which='newest')
  with pytest.raises(ValueError, match="trained a 'srvgg' generator, not a "
                     "'dsgan' one"):
    inference.load_generator_of(workdir, 'dsgan', '--dsgan')
  with pytest.raises(FileNotFoundError, match='neither a workdir nor'):
    inference.load_generator_of(str(tmp_path / 'none'), 'dsgan', '--dsgan')


def test_a_checkpoint_that_is_not_a_run_is_read_as_a_workdir(tmp_path):
  """--checkpoint goes to the workdir reader even when the folder is
  missing, so the message is about a run, not about a weights file."""
  missing = str(tmp_path / 'no_run_here')
  with pytest.raises(FileNotFoundError, match='No best checkpoints in .*'
                     'no_run_here/best'):
    inference.load_generator_for_inference(checkpoint=missing)
  with pytest.raises(FileNotFoundError, match='No best checkpoints in .*'
                     'no_run_here/best'):
    inference.load_generator_for_inference(checkpoint=f'{missing}:gan')
