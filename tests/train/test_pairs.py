"""sr_jax.train.pairs: the training pairs the step makes from a batch: paired
LR or the config's pipeline, USM-sharpened targets, mixup, and DSGAN's
down-sampling generator (trained, or from a weights file)."""
import jax
import numpy as np
import pytest

from sr_jax import degradations
from sr_jax import inference
from sr_jax.degradations import imresize
from sr_jax.weights import params_io
from tests.helpers.degradations import _hr_batch
from tests.helpers.repo import load_config
from tests.helpers.weights_files import save_tiny_dsgan


def _dsgan_config(**degradation):
  config = load_config('dsgan')
  for key, value in degradation.items():
    config.degradation[key] = value
  return config


@pytest.mark.slow
def test_pairs_of_a_down_sampling_generator():
  from sr_jax.train import pairs as training_pairs  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  hr = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
  real = rng.integers(0, 256, (3, 8, 8, 3), np.uint8)
  config = _dsgan_config(real_domain='')
  config.data.gt_size = 32
  with pytest.raises(ValueError, match='data.real_dir'):
    training_pairs.make_training_pairs(config.degradation, config.scale)
  pairs = training_pairs.make_training_pairs(config.degradation, config.scale,
                                             real_dir='/unused/here')
  lr, target, d_real = pairs(jax.random.key(0), {'hr': hr, 'real': real})
  np.testing.assert_array_equal(target, lr)  # Aims at its own input.
  np.testing.assert_allclose(lr, np.round(imresize(hr / 255.0, 0.25) * 255)
                             / 255.0, atol=1e-6)
  np.testing.assert_allclose(d_real, real / 255.0, atol=1e-7)
  # A synthetic real domain: sensor noise on the bicubic LR of the OTHER
  # images of the batch (rolled by one), so no pair is aligned.
  config = _dsgan_config()
  pairs = training_pairs.make_training_pairs(config.degradation, config.scale)
  lr, _, d_real = pairs(jax.random.key(0), {'hr': hr})
  noise = np.asarray(d_real) - np.roll(np.asarray(lr), 1, axis=0)
  assert 5 / 255 < noise.std() < 11 / 255  # Sigma 8, clipped, 8-bit.
  with pytest.raises(ValueError, match="target='x'"):
    config = _dsgan_config(target='x')
    training_pairs.make_training_pairs(config.degradation, config.scale)


def _runlocal_degradation(**degradation):
  """(config.degradation, config.scale) of esrgan:runlocal, changed."""
  from tests.helpers.repo import load_config  # pylint: disable=g-import-not-at-top
  config = load_config('esrgan')
  for key, value in degradation.items():
    config.degradation[key] = value
  return config.degradation, config.scale


@pytest.mark.slow
def test_training_pairs_use_paired_lr_or_the_config_pipeline():
  from sr_jax.train.step import make_training_pairs  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  hr = rng.integers(0, 256, (2, 32, 32, 3), np.uint8)
  lr = rng.integers(0, 256, (2, 8, 8, 3), np.uint8)
  pairs = make_training_pairs(*_runlocal_degradation())
  got_lr, target, real = pairs(jax.random.key(0), {'hr': hr, 'lr': lr})
  np.testing.assert_array_equal(got_lr, lr / np.float32(255))
  np.testing.assert_array_equal(target, hr / np.float32(255))
  np.testing.assert_array_equal(real, hr / np.float32(255))
  got_lr, _, _ = pairs(jax.random.key(0), {'hr': hr})
  expected, _ = degradations.get_pipeline('bicubic', scale=4)(
      None, hr / np.float32(255))
  np.testing.assert_array_equal(got_lr, expected)
  noisy = make_training_pairs(*_runlocal_degradation(name='srrescgan'))
  got_lr, _, _ = noisy(jax.random.key(0), {'hr': hr})
  assert not np.array_equal(got_lr, expected)


def test_usm_sharpened_targets_feed_lr_and_losses_but_not_the_critic():
  from sr_jax.train.step import make_training_pairs  # pylint: disable=g-import-not-at-top
  hr = np.round(_hr_batch(2) * 255).astype(np.uint8)
  pairs = make_training_pairs(*_runlocal_degradation(usm_sharpen_gt=True))
  lr, target, real = pairs(jax.random.key(0), {'hr': hr})
  plain = hr / np.float32(255)
  sharp = degradations.usm_sharpen(plain)
  np.testing.assert_array_equal(real, plain)
  np.testing.assert_allclose(target, sharp, atol=1e-6)
  expected, _ = degradations.get_pipeline('bicubic', scale=4)(None, sharp)
  np.testing.assert_allclose(lr, expected, atol=1e-6)
  assert not np.allclose(target, plain, atol=1e-3)


@pytest.mark.slow
def test_training_pairs_mixup_mixes_lr_and_hr_alike():
  from sr_jax.train.step import make_training_pairs  # pylint: disable=g-import-not-at-top
  # Constant images per sample: bicubic keeps them, so mixing weights can be
  # read off LR and HR and must agree.
  values = np.array([0, 60, 120, 240], np.uint8)
  hr = np.broadcast_to(values[:, None, None, None], (4, 32, 32, 3)).copy()
  pairs = make_training_pairs(*_runlocal_degradation(mixup_prob=1.0))
  lr, mixed_hr, mixed_real = pairs(jax.random.key(3), {'hr': hr})
  np.testing.assert_array_equal(mixed_hr, mixed_real)
  np.testing.assert_allclose(np.asarray(lr)[:, 0, 0, 0],
                             np.asarray(mixed_hr)[:, 0, 0, 0], atol=1 / 255)
  assert not np.allclose(np.asarray(mixed_hr)[:, 0, 0, 0], values / 255)


def test_the_dsgan_degradation_reads_a_weights_file(tmp_path):
  from sr_jax.train import pairs as training_pairs  # pylint: disable=g-import-not-at-top
  from sr_jax.train import recipe as recipe_lib  # pylint: disable=g-import-not-at-top
  from sr_jax.train import warm_start  # pylint: disable=g-import-not-at-top
  weights = save_tiny_dsgan(tmp_path / 'tiny.npz')
  config = load_config('srrescycgan')
  config.degradation.name = 'dsgan'
  config.degradation.dsgan.checkpoint = str(weights)
  pairs = training_pairs.make_training_pairs(config.degradation, config.scale)
  recipe = recipe_lib.Recipe(networks={}, phases=(),
                             frozen={f.name: f for f in pairs.frozen})
  aux, missing = warm_start.load_aux(recipe)
  assert not missing and list(aux) == ['degradation_dsgan']
  assert aux['degradation_dsgan']['params'].keys() == (
      params_io.load_params(weights)['params'].keys())
  # One saved with its bicubic step (downscale=4) loads as well.
  module = inference.load_generator_of(
      str(save_tiny_dsgan(tmp_path / 'x4.npz', downscale=4)), 'dsgan',
      'test').module
  assert module.downscale == 4
