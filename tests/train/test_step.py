"""The train step's random streams and settings: the keys are the ones
every run so far has drawn (resumed runs and checkpoints depend on them),
and the settings are the config's fields with their defaults."""
import jax
import ml_collections
import numpy as np
import pytest

from sr_jax.train import config_lib
from sr_jax.train.step import make_phase_step
from sr_jax.train.step import step_keys
from sr_jax.train.step import StepSettings


def test_step_keys_are_the_fold_in_streams():
  rng, step = jax.random.key(3), 17
  data = jax.random.key_data
  root = jax.random.fold_in(rng, step)
  keys = step_keys(rng, jax.numpy.int32(step))
  np.testing.assert_array_equal(data(keys.root), data(root))
  np.testing.assert_array_equal(data(keys.pairs),
                                data(jax.random.fold_in(root, 1)))
  np.testing.assert_array_equal(data(keys.g_terms),
                                data(jax.random.fold_in(root, 2)))
  for i in (0, 1):
    d = jax.random.fold_in(root, 100 + i)
    np.testing.assert_array_equal(data(keys.d_regularisers(i)), data(d))
    for k in (0, 2):
      np.testing.assert_array_equal(data(keys.regulariser(i, k)),
                                    data(jax.random.fold_in(d, k)))


def test_step_settings_read_the_config_and_its_defaults():
  config = config_lib.base_config()
  assert StepSettings.from_config(config) == StepSettings(
      ema_decay=config.ema_decay)
  config.ema_update_after_step, config.ema_power = 5, 0.5
  config.on_nonfinite = 'skip'
  settings = StepSettings.from_config(config)
  assert (settings.ema_update_after_step, settings.ema_power,
          settings.skip_nonfinite) == (5, 0.5, True)
  # Configs without the optional fields (older ones) get today's defaults.
  bare = StepSettings.from_config(ml_collections.ConfigDict({'ema_decay': 0.9}))
  assert bare == StepSettings(0.9, 0, 0.0, 'stop')
  assert not bare.skip_nonfinite
  with pytest.raises(ValueError, match='ema_power'):
    make_phase_step(None, None, StepSettings(0.999, ema_power=-1.0))


def test_the_loop_reads_its_settings_once_from_the_checked_config():
  from tests.helpers.repo import load_config  # pylint: disable=g-import-not-at-top
  from sr_jax.train import checks  # pylint: disable=g-import-not-at-top
  config = load_config('esrgan_fft')
  config.stop_at_step, config.seed = 3, 11
  settings = checks.check_config(config).settings
  assert (settings.seed, settings.scale, settings.batch_size,
          settings.log_every, settings.eval_every, settings.checkpoint_every,
          settings.keep_checkpoints, settings.stop_at_step) == (
              11, config.scale, config.batch_size, config.log_every,
              config.eval_every, config.checkpoint_every,
              config.keep_checkpoints, 3)
  assert settings.step == StepSettings.from_config(config)
  assert settings.validate_raw == (config.ema_decay > 0)
  assert settings.best_weights == config.best_weights
  # Configs of checkpoints older than the optional fields: their defaults.
  del config['max_nonfinite_skips'], config['best_weights']
  settings = checks.check_config(config).settings
  assert (settings.max_nonfinite_skips, settings.best_weights) == (10, 'ema')
