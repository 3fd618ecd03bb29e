"""sr_jax.degradations.pipelines: composed degradation pipelines (shapes,
ranges, determinism, structure), and the contract every registered
degradation keeps (a new one is checked with no test to edit)."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import degradations
from sr_jax import models
from sr_jax.degradations import imresize
from sr_jax.degradations import pipelines
from tests.helpers.degradations import _hr_batch
from tests.helpers.degradations import SIZE


@functools.lru_cache(maxsize=None)
def _jitted(name, scale):
  # One compilation per pipeline for the whole file (realesrgan's is ~15 s).
  return jax.jit(degradations.get_pipeline(name, scale=scale))


def _psnr(a, b):
  return 10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b)) ** 2))


# Pipelines that run no trained network ('dsgan': tests/test_dsgan.py).
PLAIN = [n for n in degradations.PIPELINES
         if 'checkpoint' not in pipelines.PIPELINE_DEFAULTS[n]]


@pytest.mark.slow
@pytest.mark.parametrize('name', PLAIN)
def test_pipeline_jits_is_deterministic_and_in_range(name):
  scale = 1 if name == 'denoise' else 4
  fn = _jitted(name, scale)
  hr = _hr_batch()
  lr, target = fn(jax.random.key(0), hr)
  lr2, target2 = fn(jax.random.key(0), hr)
  lr3, _ = fn(jax.random.key(1), hr)
  n = hr.shape[0]
  assert lr.shape == (n, SIZE // scale, SIZE // scale, 3)
  assert target.shape == hr.shape and lr.dtype == jnp.float32
  np.testing.assert_array_equal(lr, lr2)
  np.testing.assert_array_equal(target, target2)
  assert 0.0 <= float(lr.min()) and float(lr.max()) <= 1.0
  # LR images are 8-bit images, as the files of every benchmark are.
  np.testing.assert_allclose(lr * 255, np.round(lr * 255), atol=1e-3)
  if name != 'bicubic':  # Random pipelines differ between keys.
    assert not np.array_equal(lr, lr3)


def test_bicubic_is_matlab_imresize_on_the_8bit_grid():
  hr = _hr_batch()
  lr, target = degradations.get_pipeline('bicubic', scale=2)(None, hr)
  expected = np.round(np.clip(degradations.imresize(hr, 0.5), 0, 1) * 255)
  np.testing.assert_array_equal(np.round(np.asarray(lr) * 255), expected)
  np.testing.assert_array_equal(target, hr)


@pytest.mark.slow
def test_srrescgan_gives_each_image_noise_or_jpeg():
  n = 64
  hr = np.repeat(_hr_batch(1), n, axis=0)
  lr, _ = jax.jit(degradations.get_pipeline('srrescgan', scale=4))(
      jax.random.key(3), hr)
  clean = np.round(np.clip(degradations.imresize(hr, 0.25), 0, 1) * 255) / 255
  compressed = np.round(np.asarray(degradations.jpeg(
      jnp.asarray(clean), jnp.full((n,), 30))) * 255) / 255
  is_jpeg = np.all(np.abs(np.asarray(lr) - compressed) < 1e-6, axis=(1, 2, 3))
  residual = (np.asarray(lr) - clean)[~is_jpeg]
  # Noise images: residual std is sigma 8 on the 0-255 scale (few pixels
  # clip on this mid-toned crop, and rounding adds 1/12 of a level^2).
  std = residual.std() * 255
  assert abs(std - np.sqrt(64 + 1 / 12)) < 0.4, std
  assert 20 < is_jpeg.sum() < 44, is_jpeg.sum()  # p = 0.5 of 64


def test_denoise_adds_the_requested_sigma_and_keeps_the_size():
  hr = np.full((8, 32, 32, 3), 0.5, np.float32)
  lr, target = degradations.get_pipeline(
      'denoise', scale=1, noise_range=(15, 15))(jax.random.key(0), hr)
  assert lr.shape == hr.shape
  np.testing.assert_array_equal(target, hr)
  std = float(np.std(np.asarray(lr) - hr) * 255)
  assert abs(std - np.sqrt(225 + 1 / 12)) < 0.3, std
  with pytest.raises(ValueError, match='scale 1'):
    degradations.get_pipeline('denoise', scale=4)


@pytest.mark.slow
def test_perspective_aligned_pairs_share_the_warp():
  hr = _hr_batch()
  key = jax.random.key(5)
  lr_a, target_a = degradations.get_pipeline(
      'perspective', scale=4, aligned=True)(key, hr)
  lr_u, target_u = degradations.get_pipeline(
      'perspective', scale=4, aligned=False)(key, hr)
  np.testing.assert_array_equal(lr_a, lr_u)
  np.testing.assert_array_equal(target_u, hr)
  assert not np.allclose(target_a, hr)
  # The LR is the warped HR target, bicubic-downscaled.
  expected = np.round(np.clip(degradations.imresize(target_a, 0.25), 0, 1)
                      * 255) / 255
  np.testing.assert_allclose(lr_a, expected, atol=1e-6)


@pytest.mark.slow
def test_realesrgan_with_every_random_stage_off_is_a_plain_resize():
  """Switching off blur, resize, noise, sinc and JPEG losses leaves the
  final resize to LR size (bilinear here) and a JPEG at quality 100."""
  hr = _hr_batch()
  off = dict(
      blur_sigma=(0.1, 0.1), blur_sigma2=(0.1, 0.1), sinc_prob=0.0,
      sinc_prob2=0.0, kernel_list=('iso',), kernel_prob=(1.0,),
      kernel_list2=('iso',), kernel_prob2=(1.0,), second_blur_prob=0.0,
      resize_prob=(0.0, 0.0, 1.0), resize_prob2=(0.0, 0.0, 1.0),
      gaussian_noise_prob=1.0, gaussian_noise_prob2=1.0,
      noise_range=(0.0, 0.0), noise_range2=(0.0, 0.0),
      jpeg_range=(100, 100), jpeg_range2=(100, 100), final_sinc_prob=0.0,
      resize_modes=('bilinear',))
  lr, _ = jax.jit(degradations.get_pipeline('realesrgan', scale=4, **off))(
      jax.random.key(0), hr)
  # Keep in stage 2 means "LR size" (Real-ESRGAN's second resize is relative
  # to the final size), so the chain is one bilinear resize to 16 x 16.
  expected = degradations.resize(hr, (SIZE // 4, SIZE // 4), 'bilinear')
  assert _psnr(lr, expected) > 38.0


@pytest.mark.slow
def test_realesrgan_degrades_more_than_bicubic():
  hr = _hr_batch()
  real, _ = _jitted('realesrgan', 4)(jax.random.key(0), hr)
  clean, _ = degradations.get_pipeline('bicubic', scale=4)(None, hr)
  assert _psnr(real, clean) < 35.0


@pytest.mark.slow
def test_realesrgan_kernels_follow_the_size_and_sum_rules():
  n, ksize = 256, 21
  # Wide Gaussians (sigma 3) fill any support, so the support is the size.
  kernels = np.asarray(pipelines.realesrgan_blur_kernels(
      jax.random.key(0), n, ksize, ('iso',), (1.0,), 0.0, (3.0, 3.0),
      (0.5, 4.0), (1.0, 2.0)))
  np.testing.assert_allclose(kernels.sum(axis=(1, 2)), 1.0, atol=1e-5)
  rows = np.any(kernels != 0, axis=2)
  support = rows.sum(axis=1)
  # Real-ESRGAN's sizes: every odd size 7 ... 21, centred.
  assert set(np.unique(support)) == set(range(7, 22, 2))
  first = np.argmax(rows, axis=1)
  np.testing.assert_array_equal(first, (ksize - support) // 2)
  # With sinc_prob 1 every kernel is a sinc: negative side lobes.
  sinc = np.asarray(pipelines.realesrgan_blur_kernels(
      jax.random.key(1), 16, ksize, ('iso',), (1.0,), 1.0, (3.0, 3.0),
      (0.5, 4.0), (1.0, 2.0)))
  assert (sinc.min(axis=(1, 2)) < 0).all()


def test_unknown_names_and_options_are_explained():
  with pytest.raises(ValueError, match='choose one of bicubic'):
    degradations.get_pipeline('bsrgan')
  with pytest.raises(ValueError, match="no option.*jpeg_quality.*options are"):
    degradations.get_pipeline('bicubic', jpeg_quality=30)
  with pytest.raises(ValueError, match='not a multiple of the scale 3'):
    degradations.get_pipeline('bicubic', scale=3)(None, _hr_batch())


def test_every_config_option_is_a_pipeline_option():
  config = pipelines.default_degradation_config()
  for name in degradations.PIPELINES:
    options = dict(config[name])
    assert set(options) == set(pipelines.PIPELINE_DEFAULTS[name]) - {'scale'}
    if name not in PLAIN:
      with pytest.raises(ValueError, match='checkpoint'):
        degradations.get_pipeline(name, scale=2, **options)
      options['checkpoint'] = '/some/run'
    degradations.get_pipeline(name, scale=1 if name == 'denoise' else 2,
                              **options)


@pytest.mark.slow
def test_dsgan_pipeline_is_bicubic_then_the_generator():
  module = models.get_generator('dsgan', num_feat=4, num_block=1)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  network = lambda x: module.apply(variables, x)
  fn = degradations.get_pipeline('dsgan', scale=4, checkpoint='w')
  hr = np.random.default_rng(6).random((2, 16, 16, 3), np.float32)
  lr, target = fn(None, jnp.asarray(hr), network)
  expected = np.round(np.asarray(network(imresize(hr, 0.25))) * 255) / 255
  np.testing.assert_allclose(lr, expected, atol=1e-6)
  np.testing.assert_array_equal(target, hr)
  with pytest.raises(ValueError, match="trained 'dsgan' generator"):
    fn(None, jnp.asarray(hr))


@pytest.mark.parametrize('name', degradations.DEGRADATIONS.names())
def test_degradation_contract(name):
  """Registered with defaults (an int scale among them) that are its config
  options; builds with them, or says which option to set. (Running every
  pipeline: test_pipelines.py.)"""
  assert name in degradations.PIPELINES
  defaults = degradations.DEGRADATIONS.hooks(name)['defaults']
  assert isinstance(defaults['scale'], int) and defaults['scale'] >= 1
  assert pipelines.PIPELINE_DEFAULTS[name] == defaults
  config = pipelines.default_degradation_config()
  assert set(config[name]) == set(defaults) - {'scale'}
  try:
    fn = degradations.get_pipeline(name)
  except ValueError as e:
    assert any(option in str(e) for option in defaults), e
  else:
    assert callable(fn)
