"""sr_jax.train.checks: config mistakes are ConfigErrors that name the
setting."""
import pytest

from sr_jax.train import recipe as recipe_lib
from sr_jax.train import checks as config_checks
from sr_jax.train import loop as train
from tests.helpers.repo import load_config


def test_bad_ema_settings_are_config_errors():
  for field, value, match in (('best_weights', 'latest', 'best_weights'),
                              ('ema_power', -0.5, 'ema_power'),
                              ('ema_decay', 1.0, 'ema_decay')):
    config = load_config('rrdb_psnr')
    config[field] = value
    with pytest.raises(config_checks.ConfigError, match=match):
      recipe_lib.Recipe.from_config(config)


def test_config_errors_name_the_setting():
  config = load_config('rrdb_psnr')
  config.psnr.steps = 0
  with pytest.raises(train.ConfigError, match='Nothing to train'):
    train.check_config(config)
  config = load_config('rrdb_psnr')
  config.scale = 3
  with pytest.raises(train.ConfigError, match='config.scale=3'):
    train.check_config(config)


def test_per_sample_regularisers_refuse_batchnorm_critics():
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  config = load_config('esrgan_fft')
  train.check_config(config)  # The shipped config is per-sample.
  config.discriminator.kwargs.use_bn = True
  with pytest.raises(train.ConfigError, match=(
      r"'gradient_penalty'.*adversarial_loss='ragp'.*config.discriminator.*"
      r'BatchNorm')):
    train.check_config(config)
  config = load_config('esrgan')  # BN critic, RaGAN: fine...
  train.check_config(config)
  config.gan.regularisers = {'r1': {'weight': 1.0}}  # ...until R1 is added.
  with pytest.raises(train.ConfigError,
                     match=r'config.gan.regularisers.r1.*use_bn=False'):
    train.check_config(config)


def test_keep_checkpoints_zero_is_refused():
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  config = load_config('rrdb_psnr')
  assert config.variant == 'runlocal'
  config.keep_checkpoints = 0
  with pytest.raises(train.ConfigError, match='keep_checkpoints=0'):
    train.check_config(config)
