"""sr_jax.train.loop: whole training runs: exact resume and interruption,
the trained workdir (its EMA generator, the upscale notebook), faults a long
run meets (non-finite updates, a changed config, write errors, 4 devices
then 1), refusals before any write, file:// workdirs, missing frozen
weights."""
import os
import resource
import signal

import jax
import numpy as np
from PIL import Image
import pytest

from sr_jax import checkpoint
from sr_jax import checkpoint as ckpt_lib
from sr_jax import inference
from sr_jax import upscale
from sr_jax.train import loop as train
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from tests.helpers.checkpoints import _legacy_workdir
from tests.helpers.repo import execute_notebook
from tests.helpers.repo import fake_devices
from tests.helpers.repo import load_config
from tests.helpers.repo import notebook_outputs
from tests.helpers.repo import run_python
from tests.helpers.runs import _saved_states

RELEASE = 'RealESRGAN_x4plus'  # configs/realesrgan.py:finetune's generator.


def _two_phase_config(vgg_weights):
  config = load_config('esrgan_fft')
  config.psnr.steps = 2
  config.gan.steps = 2
  config.log_every = 1
  config.eval_every = 100  # Evaluate only at the end of each run.
  config.checkpoint_every = 100
  config.frozen.vgg19 = vgg_weights
  return config


def _leaves(state):
  state = state.replace(rng=jax.random.key_data(state.rng))
  return jax.tree_util.tree_leaves_with_path(jax.device_get(state))


@pytest.fixture(scope='module')
def straight_run(tmp_path_factory, random_vgg19_weights):
  """A 4-step run (2 warm-up + 2 GAN) without interruption."""
  workdir = str(tmp_path_factory.mktemp('straight'))
  state = train.train_and_evaluate(_two_phase_config(random_vgg19_weights),
                                   workdir)
  return state, workdir


@pytest.mark.slow
def test_resume_is_bitwise_identical(straight_run, tmp_path,
                                     random_vgg19_weights):
  straight, _ = straight_run
  # Stop in the warm-up, then right after the switch to GAN, then finish.
  workdir = str(tmp_path / 'resumed')
  for stop in (1, 3, 0):
    config = _two_phase_config(random_vgg19_weights)
    config.stop_at_step = stop
    resumed = train.train_and_evaluate(config, workdir)
  assert int(resumed.step) == int(straight.step) == 4
  a, b = _leaves(straight), _leaves(resumed)
  assert [p for p, _ in a] == [p for p, _ in b]
  for (path, x), (_, y) in zip(a, b):
    assert np.array_equal(np.asarray(x), np.asarray(y)), \
        jax.tree_util.keystr(path)
  # Both phases really trained: D and G moved away from their start.
  config = _two_phase_config(random_vgg19_weights)
  init = ts.init_train_state(recipe_lib.Recipe.from_config(config),
                             jax.random.key(0))
  for network in ('generator', 'discriminator'):
    moved = jax.tree.map(
        lambda u, v: bool(np.any(np.asarray(u) != np.asarray(v))),
        straight.params[network], init.params[network])
    assert all(jax.tree.leaves(moved)), network


@pytest.mark.slow
def test_interrupt_saves_and_resumes_exactly(straight_run, tmp_path,
                                            random_vgg19_weights, monkeypatch):
  """Ctrl-C after a batch was fetched but before its step ran: the emergency
  checkpoint must pair the state with the iterator from before that fetch."""
  straight, _ = straight_run
  workdir = str(tmp_path / 'interrupted')
  real_put = jax.make_array_from_process_local_data
  calls = []

  def put_then_interrupt(*args, **kwargs):
    calls.append(1)
    if len(calls) == 3:  # The batch of the third step (a GAN step).
      raise KeyboardInterrupt
    return real_put(*args, **kwargs)

  monkeypatch.setattr(jax, 'make_array_from_process_local_data',
                      put_then_interrupt)
  with pytest.raises(KeyboardInterrupt) as interrupt:
    train.train_and_evaluate(_two_phase_config(random_vgg19_weights), workdir)
  assert interrupt.value.sr_jax_saved  # `python -m sr_jax.main`: exit 143.
  monkeypatch.setattr(jax, 'make_array_from_process_local_data', real_put)
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '2'))
  resumed = train.train_and_evaluate(_two_phase_config(random_vgg19_weights),
                                     workdir)
  for (path, x), (_, y) in zip(_leaves(straight), _leaves(resumed)):
    assert np.array_equal(np.asarray(x), np.asarray(y)), \
        jax.tree_util.keystr(path)


@pytest.mark.slow
def test_load_generator_returns_the_ema_weights(straight_run):
  straight, workdir = straight_run
  loaded = inference.load_generator(workdir, which='latest')
  generator, variables = loaded.module, loaded.variables
  loaded_config = loaded.run.config
  assert loaded_config.psnr.steps == 2 and generator.scale == 4
  for x, y in zip(jax.tree.leaves(variables['params']),
                  jax.tree.leaves(straight.ema_params['generator'])):
    np.testing.assert_array_equal(x, y)
  sr = generator.apply(variables, np.zeros((1, 5, 7, 3), np.float32))
  assert sr.shape == (1, 20, 28, 3)
  with pytest.raises(FileNotFoundError, match='no_run_here'):
    inference.load_generator(os.path.join(workdir, 'no_run_here'))


@pytest.mark.slow
def test_upscale_notebook_runs_on_a_trained_workdir(straight_run):
  _, workdir = straight_run
  notebook = execute_notebook('upscale_with_trained_model.ipynb',
                              {'SR_JAX_WORKDIR': workdir})
  text = ''.join(o.get('text', '') for o in notebook_outputs(notebook,
                                                              'stream'))
  assert 'rrdbnet x4' in text and 'bicubic  PSNR' in text
  assert any('image/png' in o.get('data', {})
             for o in notebook_outputs(notebook))


@pytest.mark.slow
def test_legacy_workdir_resume_is_refused_with_how_to_continue(tmp_path):
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  _legacy_workdir(str(tmp_path / 'old'))
  config = load_config('rrdb_psnr')
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match='generator.init_from='):
    train.train_and_evaluate(config, str(tmp_path / 'old'))


def _gan_config(vgg, **overrides):
  config = load_config('esrgan')
  config.psnr.steps = 1
  config.gan.steps = 6
  config.log_every = 100
  config.eval_every = 100
  config.checkpoint_every = 1
  config.keep_checkpoints = 10
  config.frozen.vgg19 = vgg
  # lr 1e30: the first GAN update makes parameters ~1e30, the next inf/NaN.
  config.gan.optimizers.generator.lr = 1e30
  for k, v in overrides.items():
    config[k] = v
  return config


@pytest.mark.slow
def test_skip_drops_non_finite_updates_then_stops(tmp_path,
                                                 random_vgg19_weights):
  workdir = str(tmp_path / 'run')
  config = _gan_config(random_vgg19_weights, on_nonfinite='skip',
                       max_nonfinite_skips=2)
  with pytest.raises(train.NonFiniteError, match='2 updates in a row'):
    train.train_and_evaluate(config, workdir)
  saved = _saved_states(workdir)
  assert saved and all(saved.values()), saved


def _psnr_config(**overrides):
  config = load_config('rrdb_psnr')
  config.psnr.steps = 3
  for k, v in overrides.items():
    config[k] = v
  return config


@pytest.mark.slow
def test_resume_with_another_config_is_refused_unless_allowed(tmp_path):
  workdir = str(tmp_path / 'run')
  train.train_and_evaluate(_psnr_config(stop_at_step=1), workdir)
  changed = _psnr_config()
  changed.psnr.optimizers.generator.lr = 1e-3
  with pytest.raises(train.ConfigError,
                     match=r'psnr.optimizers.generator.lr: 0.0002 -> 0.001'):
    train.train_and_evaluate(changed, workdir)
  # Cadence and the last phase's length are not changes.
  train.train_and_evaluate(_psnr_config(stop_at_step=2, log_every=5),
                           workdir)
  # Allowed, but the train state no longer fits: refused, and nothing is
  # logged as a change the run resumed with.
  wider = _psnr_config()
  wider.generator.kwargs.num_feat *= 2
  with pytest.raises(checkpoint.CheckpointMismatchError):
    train.train_and_evaluate(wider, workdir, allow_config_change=True)
  assert not os.path.exists(os.path.join(workdir, 'config_changes.log'))
  state = train.train_and_evaluate(changed, workdir, allow_config_change=True)
  assert int(state.step) == 3
  with open(os.path.join(workdir, 'config_changes.log')) as f:
    assert 'psnr.optimizers.generator.lr' in f.read()


@pytest.mark.slow
def test_a_write_error_mid_run_stops_in_one_line_and_loses_nothing(
    tmp_path, capfd):
  """A real write error (a file-size limit, like a full disk for orbax):
  CheckpointWriteError naming the last complete checkpoint, which stays
  intact, and the rerun resumes from it. An unwritable workdir is refused
  before training."""
  workdir = str(tmp_path / 'run')
  longer = _psnr_config(checkpoint_every=2, eval_every=100)
  longer.psnr.steps = 4
  train.train_and_evaluate(_psnr_config(checkpoint_every=2, eval_every=100,
                                        stop_at_step=2), workdir)
  soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
  previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
  try:
    # Every array file of a checkpoint is bigger than 50 kB.
    resource.setrlimit(resource.RLIMIT_FSIZE, (50_000, hard))
    with pytest.raises(checkpoint.CheckpointWriteError) as error:
      train.train_and_evaluate(longer, workdir)
    resource.setrlimit(resource.RLIMIT_FSIZE, (0, hard))
    with pytest.raises(train.ConfigError, match='Cannot write to --workdir'):
      train.train_and_evaluate(_psnr_config(), str(tmp_path / 'other'))
  finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    signal.signal(signal.SIGXFSZ, previous)
  assert 'step 4' in str(error.value)
  assert 'The last complete checkpoint, step 2, is intact' in str(error.value)
  out, err = capfd.readouterr()
  assert 'Traceback' not in out + err, (out + err)[-3000:]
  assert 'Interrupted: saved' not in out
  state = train.train_and_evaluate(longer, workdir)
  assert int(state.step) == 4
  assert 'Resuming from step 2' in capfd.readouterr().out


@pytest.mark.slow
def test_a_workdir_trained_on_4_devices_upscales_and_resumes_on_1(tmp_path):
  workdir = tmp_path / 'run'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/rrdb_psnr.py:runlocal',
       f'--workdir={workdir}', '--config.psnr.steps=2'],
      env_extra=fake_devices(4))
  assert result.returncode == 0, result.stderr[-3000:]
  assert jax.device_count() == 1
  Image.fromarray(np.full((12, 10, 3), 128, np.uint8)).save(tmp_path / 'a.png')
  out = tmp_path / 'a_x4.png'
  assert upscale.main([str(tmp_path / 'a.png'), '-o', str(out),
                       '--checkpoint', str(workdir)]) == 0
  assert Image.open(out).size == (40, 48)
  config = _psnr_config()  # 3 steps: one more, on one device.
  state = train.train_and_evaluate(config, str(workdir))
  assert int(state.step) == 3


@pytest.mark.parametrize('release', [True, False])
def test_a_missing_init_from_stops_a_new_run_before_any_write(
    tmp_path, monkeypatch, release):
  config = load_config('rrdb_psnr')
  missing = tmp_path / 'cache' / f'{RELEASE}.npz'
  config.generator.init_from = str(missing)
  workdir = tmp_path / 'run'
  if release:  # The cache path of a released model names its fetch.
    monkeypatch.setenv('SR_JAX_CACHE_DIR', str(missing.parent))
  with pytest.raises(train.ConfigError, match='does not exist') as error:
    train.train_and_evaluate(config, str(workdir))
  assert (f'python -m sr_jax.weights fetch {RELEASE}' in str(error.value)
          ) == release
  assert not workdir.exists()


def test_missing_frozen_weights_stop_or_are_dropped_loudly(tmp_path,
                                                          monkeypatch,
                                                          capsys):
  from sr_jax.train.setup import setup  # pylint: disable=g-import-not-at-top
  from sr_jax.train.step import data_parallel_mesh  # pylint: disable=g-import-not-at-top
  from sr_jax import weights  # pylint: disable=g-import-not-at-top
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('SR_JAX_CACHE_DIR', str(tmp_path / 'empty'))
  monkeypatch.setenv('SR_JAX_VGG19_WEIGHTS', '')
  config = load_config('esrgan')
  config.gan.losses.lpips = {'weight': 0.5, 'net': 'vgg'}
  recipe = recipe_lib.Recipe.from_config(config)
  assert set(recipe.frozen) == {'vgg19', 'lpips_vgg'}
  mesh = data_parallel_mesh()
  with pytest.raises(weights.WeightsNotFoundError, match='fetch'):
    setup(recipe, mesh)
  config.frozen_drop_if_missing = True  # The offline demo only.
  recipe = recipe_lib.Recipe.from_config(config)
  pieces = setup(recipe, mesh)
  train._say_dropped(pieces)  # pylint: disable=protected-access
  kept, aux = pieces.recipe, pieces.aux
  assert aux == {} and kept.frozen == {}
  assert [t.key for t in kept.phases[-1].terms] == [
      t.key for t in recipe.phases[-1].terms
      if t.key not in ('perceptual', 'lpips')]
  out = capsys.readouterr().out
  assert 'DISABLED' in out and 'gan.losses.perceptual' in out


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
