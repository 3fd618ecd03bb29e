"""sr_jax.evaluate: evaluators (named image sets, LR folders, registered
metrics, LPIPS with its weights, fixed degraded validation inputs), the
best metric, the raw or EMA generator's score, and scoring a set with
no-reference and set metrics."""
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
import pytest

from sr_jax import evaluate
from sr_jax import evaluate as eval_lib
from sr_jax import metrics
from sr_jax import models
from sr_jax.metrics import registry
from sr_jax.train import config_lib
from sr_jax.weights import params_io
from tests.helpers.repo import load_config


def _config(tmp_path, **eval_fields):
  c = config_lib.apply_variant(config_lib.base_config(), 'runlocal')
  c.evals = ml_collections.ConfigDict(
      {'val': config_lib.evaluation(**eval_fields)})
  return c


def _write(folder, name, array):
  os.makedirs(folder, exist_ok=True)
  Image.fromarray(array).save(os.path.join(folder, name))


def _numpy_psnr(a, b, crop):
  a = a.astype(np.float64)[crop:-crop, crop:-crop]
  b = b.astype(np.float64)[crop:-crop, crop:-crop]
  return 10 * np.log10(255.0 ** 2 / np.mean((a - b) ** 2))


def _evals(config):
  """The evaluations of `config`, parsed as the trainer parses them (its
  first metric picking the best checkpoints)."""
  first = next(iter(config.evals))
  return evaluate.EvalSettings.parse(
      config.evals, f'{first}/{config.evals[first].metrics[0]}',
      data=config.data,
      degradation=config.get('degradation'), scale=config.scale,
      frozen=dict(config.frozen), num_strips=config.num_val_strips)


@pytest.mark.slow
def test_lr_folder_evaluation_uses_the_given_lr(tmp_path):
  rng = np.random.default_rng(0)
  hr = {n: rng.integers(0, 256, (32, 40, 3), np.uint8) for n in ('a', 'b')}
  for n, img in hr.items():
    _write(tmp_path / 'HR', f'{n}.png', img)
    # A flat grey LR: bicubic of it is that grey everywhere.
    _write(tmp_path / 'LR', f'{n}x4.png', np.full((8, 10, 3), 77, np.uint8))
  config = _config(tmp_path, hr_dir=str(tmp_path / 'HR'),
                   lr_dir=str(tmp_path / 'LR'), lr_filename_tmpl='{}x4',
                   metrics=('psnr_rgb',), num_strips=1, max_images=0)
  (evaluator,) = evaluate.build_evaluators(_evals(config))
  assert [name for name, *_ in evaluator.images] == ['a', 'b']
  generator = models.get_generator('rrdbnet', scale=4, num_feat=8,
                                   num_block=1, num_grow_ch=4)
  variables = generator.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  values, strips = evaluator.run(evaluate.make_super_resolve_fn(generator),
                                 variables, 4)
  expected = np.mean([_numpy_psnr(np.full_like(img, 77), img, 4)
                      for img in hr.values()])
  np.testing.assert_allclose(values['psnr_rgb_bicubic'], expected, rtol=1e-6)
  assert len(strips) == 1 and strips[0][1].shape[1] == 4 * 40
  # An LR folder that does not match is named.
  os.remove(tmp_path / 'LR' / 'bx4.png')
  with pytest.raises(ValueError, match='bx4'):
    evaluate.build_evaluators(_evals(config))


@pytest.mark.slow
def test_lpips_is_a_registered_metric_with_its_weights(tmp_path):
  variables = jax.tree.map(jnp.abs, metrics.LPIPS(net='alex').init(
      jax.random.key(1), jnp.zeros((1, 32, 32, 3)), jnp.zeros((1, 32, 32, 3))))
  path = tmp_path / 'lpips_alex.npz'
  params_io.save_params(path, variables)
  config = _config(tmp_path, metrics=('lpips',))
  config.frozen.lpips_alex = str(path)
  (evaluator,) = evaluate.build_evaluators(_evals(config))
  assert metrics.METRICS.get('lpips').higher_is_better is False
  sr, hr = (np.random.default_rng(s).integers(0, 256, (40, 36, 3), np.uint8)
            for s in (1, 2))
  got = metrics.METRICS.get('lpips').fn(sr, hr, 4,
                                        variables=evaluator.aux['lpips_alex'])
  direct = metrics.make_lpips_fn(variables, 'alex')(
      sr[None].astype(np.float32) / 255, hr[None].astype(np.float32) / 255)
  np.testing.assert_allclose(got, float(direct[0]), rtol=1e-5)
  config.frozen.lpips_alex = str(tmp_path / 'missing.npz')
  with pytest.raises(FileNotFoundError, match='lpips_alex'):
    evaluate.build_evaluators(_evals(config))


def test_best_metric_names_an_evaluation_metric(tmp_path):
  config = _config(tmp_path, metrics=('psnr', 'lpips'))
  config.best_metric = 'val/lpips'
  assert evaluate.best_metric(config.evals, config.best_metric) == (
      'val', 'lpips', False)
  config.best_metric = 'psnr'  # A metric of the first evaluation.
  assert evaluate.best_metric(config.evals, config.best_metric) == (
      'val', 'psnr', True)
  config.best_metric = 'val/ssim'
  with pytest.raises(ValueError, match='val/psnr, val/lpips'):
    evaluate.best_metric(config.evals, config.best_metric)


def test_degradation_validation_set_is_fixed_noisy_inputs():
  config = load_config('srgan_denoise')
  rng = np.random.default_rng(0)
  images = [(f'im{i}', rng.integers(0, 256, (16, 12, 3), dtype=np.uint8))
            for i in range(2)]
  first = evaluate.degraded_validation_set(images, config.degradation,
                                              config.scale)
  again = evaluate.degraded_validation_set(images, config.degradation,
                                              config.scale)
  for (name, hr), (n1, target, lr), (_, _, lr2) in zip(images, first, again):
    assert n1 == name and lr.shape == hr.shape and lr.dtype == np.uint8
    np.testing.assert_array_equal(target, hr)  # Denoising: the clean HR.
    np.testing.assert_array_equal(lr, lr2)  # The same at every evaluation.
    noise = lr.astype(np.float64) - hr
    assert 10 < np.std(noise) < 130  # Sigma 25.5-127.5 (clipped at 0, 255).
  assert not np.array_equal(first[0][2] - images[0][1],
                            first[1][2] - images[1][1])  # A key per image.
  with config.unlocked():
    config.evals.val.lr_from = 'noisy'
    config.data.val_dir = ''
  with pytest.raises(ValueError, match="lr_from='noisy'"):
    evaluate.build_evaluators(_evals(config))


def test_pick_best():
  values = {'psnr': 30.0, 'psnr_raw': 30.2, 'lpips': 0.20,
            'lpips_raw': 0.25}
  assert eval_lib.pick_best(values, 'psnr', True, 'better') == (30.2, 'raw')
  assert eval_lib.pick_best(values, 'psnr', True, 'ema') == (30.0, 'ema')
  assert eval_lib.pick_best(values, 'psnr', True, 'raw') == (30.2, 'raw')
  # Lower is better for LPIPS: the EMA's 0.20 wins.
  assert eval_lib.pick_best(values, 'lpips', False, 'better') == (0.20, 'ema')
  # Without a raw score (ema_decay 0) the EMA's counts, whatever asked.
  assert eval_lib.pick_best({'psnr': 29.0}, 'psnr', True, 'raw') == (
      29.0, 'ema')
  with pytest.raises(ValueError, match='best_weights'):
    eval_lib.pick_best(values, 'psnr', True, 'newest')


def test_no_reference_and_set_metrics_in_score_set(monkeypatch):
  """A no-reference metric is scored on SR, bicubic and (for a table's
  reference row) HR; a set metric once per set."""
  entries = dict(metrics.METRICS._entries)  # pylint: disable=protected-access
  entries['mean_level'] = registry.Metric(
      lambda img, crop: float(np.mean(img[crop:-crop, crop:-crop])), True,
      kind='no_reference')
  entries['set_size'] = registry.Metric(
      lambda srs, hrs, crop: float(len(srs) * 10 + len(hrs)), True,
      kind='set')
  monkeypatch.setattr(metrics.METRICS, '_entries', entries)
  hr = np.full((8, 8, 3), 100, np.uint8)
  sr = np.full((8, 8, 3), 50, np.uint8)
  bicubic = np.full((8, 8, 3), 70, np.uint8)
  scores = eval_lib.score_set(
      [('a', hr, bicubic, sr), ('b', hr, bicubic, sr)],
      ['mean_level', 'set_size'], 2, score_hr=True)
  assert scores.means == {
      'mean_level': 50.0, 'mean_level_bicubic': 70.0, 'mean_level_hr': 100.0,
      'set_size': 22.0, 'set_size_bicubic': 22.0}
  assert scores.per_image['b'] == {'mean_level': 50.0,
                                   'mean_level_bicubic': 70.0,
                                   'mean_level_hr': 100.0}
