"""Trainer: exact resume, the phase switch, and 1 vs 4 devices."""
import dataclasses
import os

import jax
import numpy as np
import pytest

from tests.helpers.repo import REPO
from tests.helpers.repo import execute_notebook
from tests.helpers.repo import load_config
from tests.helpers.repo import notebook_outputs
from tests.helpers.repo import fake_devices
from tests.helpers.repo import run_python
from sr_jax import inference
from sr_jax.train import loop as train
from sr_jax.train import state as ts
from sr_jax.train import recipe as recipe_lib




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
  init = ts.init_train_state(recipe_lib.build_recipe(config), jax.random.key(0))
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
def test_gan_phase_starts_from_ema_generator():
  config = load_config('esrgan')
  recipe = recipe_lib.build_recipe(config)
  psnr, gan = recipe.phases
  state = ts.init_train_state(recipe, jax.random.key(1))
  assert set(state.opt_state) == {'generator'}  # The warm-up trains G only.
  ema = jax.tree.map(lambda p: p + 1.0, state.params['generator'])
  state = state.replace(ema_params={'generator': ema})
  started = ts.start_phase(state, gan)
  for x, y in zip(jax.tree.leaves(started.params['generator']),
                  jax.tree.leaves(ema)):
    np.testing.assert_array_equal(x, y)
  # Fresh optimizers for both networks: Adam's step counts are 0.
  assert set(started.opt_state) == {'generator', 'discriminator'}
  counts = [x for x in jax.tree.leaves(started.opt_state)
            if np.ndim(x) == 0]
  assert counts and all(int(c) == 0 for c in counts)
  # A 'continue' phase keeps the parameters as they are.
  kept = ts.start_phase(state, dataclasses.replace(gan,
                                                   start_mode='continue'))
  for x, y in zip(jax.tree.leaves(kept.params['generator']),
                  jax.tree.leaves(state.params['generator'])):
    np.testing.assert_array_equal(x, y)
  assert psnr.end == gan.start == config.psnr.steps


@pytest.mark.slow
def test_one_device_and_four_devices_give_the_same_step(random_vgg19_weights):
  result = run_python(
      [os.path.join(REPO, 'tests', 'train', 'multidevice_check.py'),
       random_vgg19_weights],
      env_extra=fake_devices(4))
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'devices=4 same as devices=1' in result.stdout, result.stdout
  # The comparison can fail: with every device fed the first device's shard
  # (unreduced gradients), it does.
  assert 'a sharding error is caught' in result.stdout, result.stdout
  # The per-sample losses stay on their shards (and the check can fail).
  assert 'no image-sized all-gather in the 4-device GAN step' in \
      result.stdout, result.stdout
  assert 'the check finds the gathers of a plain FFT loss' in result.stdout
  assert 'frequency losses on 4 shards equal the whole batch' in \
      result.stdout


def test_config_errors_name_the_setting():
  config = load_config('rrdb_psnr')
  config.psnr.steps = 0
  with pytest.raises(train.ConfigError, match='Nothing to train'):
    train.check_config(config)
  config = load_config('rrdb_psnr')
  config.scale = 3
  with pytest.raises(train.ConfigError, match='config.scale=3'):
    train.check_config(config)
