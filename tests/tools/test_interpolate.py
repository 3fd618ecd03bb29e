"""Network interpolation: exact endpoints, the formula, errors, the sweep."""
import csv
import json
import os
import shutil

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from sr_jax import degradations
from sr_jax import metrics
from sr_jax import models
from sr_jax.tools import interpolate
from sr_jax.weights import params_io

TINY = dict(num_feat=4, num_block=1, num_grow_ch=4, scale=4)


def _tree(seed, conv_shape=(3, 3, 2, 4)):
  rng = np.random.default_rng(seed)
  return {
      'params': {'conv': {'kernel': rng.normal(size=conv_shape).astype(
          np.float32), 'bias': rng.normal(size=conv_shape[-1:]).astype(
              np.float32)}},
      'batch_stats': {'bn': {'mean': rng.normal(size=4).astype(np.float32)}},
      'counts': {'steps': np.arange(3, dtype=np.int32)},
  }


def test_endpoints_are_exact_and_midpoints_follow_the_formula():
  a, b = _tree(0), _tree(1)
  same = np.testing.assert_array_equal
  jax.tree.map(same, interpolate.interpolate(a, b, 0.0), a)
  jax.tree.map(same, interpolate.interpolate(a, b, 1.0), b)
  mid = interpolate.interpolate(a, b, 0.3)
  kernel = mid['params']['conv']['kernel']
  assert kernel.dtype == np.float32
  np.testing.assert_array_equal(
      kernel, np.float32(0.7) * a['params']['conv']['kernel']
      + np.float32(0.3) * b['params']['conv']['kernel'])
  np.testing.assert_allclose(  # BatchNorm statistics are interpolated too.
      mid['batch_stats']['bn']['mean'],
      0.7 * a['batch_stats']['bn']['mean'].astype(np.float64)
      + 0.3 * b['batch_stats']['bn']['mean'], rtol=1e-6, atol=1e-7)
  same(mid['counts']['steps'], a['counts']['steps'])
  # By hand: 0.75 * [1, 2] + 0.25 * [3, -2] = [1.5, 1.0].
  hand = interpolate.interpolate({'w': np.array([1.0, 2.0], np.float32)},
                                 {'w': np.array([3.0, -2.0], np.float32)},
                                 0.25)
  same(hand['w'], np.array([1.5, 1.0], np.float32))


def test_mismatches_are_named():
  a = _tree(0)
  with pytest.raises(ValueError, match=r'first mismatching params: '
                     r'params/conv/bias: shape \(4,\) vs \(5,\)'):
    interpolate.interpolate(a, _tree(1, conv_shape=(3, 3, 2, 5)), 0.5)
  b = _tree(1)
  del b['batch_stats']
  with pytest.raises(ValueError, match='batch_stats/bn/mean: in A only'):
    interpolate.interpolate(a, b, 0.5, names=('A', 'B'))
  b = _tree(1)
  b['counts']['steps'] = b['counts']['steps'] + 1
  with pytest.raises(ValueError, match='counts/steps: non-float values'):
    interpolate.interpolate(a, b, 0.5)
  with pytest.raises(ValueError, match='start:stop:step'):
    interpolate.parse_alphas('1:0:0.1')
  assert interpolate.parse_alphas('0:1:0.1') == [
      round(0.1 * i, 10) for i in range(11)]


def random_like(abstract, seed):
  """Random values in the shapes of an eval_shape'd tree (no slow init)."""
  rng = np.random.default_rng(seed)

  def fill(x):
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
      return jax.random.key(seed)
    if jnp.issubdtype(x.dtype, jnp.floating):
      return jnp.asarray(0.1 * rng.standard_normal(x.shape), x.dtype)
    return jnp.zeros(x.shape, x.dtype)

  return jax.tree.map(fill, abstract)


def _save_tiny(path, seed, metadata=None, **overrides):
  module = models.RRDBNet(**dict(TINY, **overrides))
  abstract = jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
  params_io.save_params(path, random_like(abstract, seed), metadata=metadata)
  return params_io.load_params(path)


def test_cli_writes_weights_and_keeps_metadata(tmp_path, capsys):
  meta = {'arch': 'rrdbnet', 'model_kwargs': TINY, 'source': 'psnr.pth'}
  a = _save_tiny(tmp_path / 'a.npz', 0, meta)
  b = _save_tiny(tmp_path / 'b.npz', 1)
  for alpha, expected in ((0, a), (1, b)):
    out = tmp_path / f'c{alpha}.npz'
    assert interpolate.main(['--psnr', str(tmp_path / 'a.npz'), '--gan',
                             str(tmp_path / 'b.npz'), '--alpha', str(alpha),
                             '--out', str(out)]) == 0
    jax.tree.map(np.testing.assert_array_equal, params_io.load_params(out),
                 expected)
    written = params_io.load_metadata(out)
    assert {k: written[k] for k in meta} == meta
    assert written['interpolation']['alpha'] == alpha

  # A different architecture: a clear error, and no output file.
  _save_tiny(tmp_path / 'wide.npz', 2, num_feat=8)
  bad_out = tmp_path / 'bad.npz'
  assert interpolate.main(['--psnr', str(tmp_path / 'a.npz'), '--gan',
                           str(tmp_path / 'wide.npz'), '--alpha', '0.5',
                           '--out', str(bad_out)]) == 2
  err = capsys.readouterr().err
  assert 'first mismatching params: params/body_0/' in err
  assert 'wide.npz' in err and not bad_out.exists()


def _y_psnr(sr, hr, crop):
  """PSNR on BT.601 Y (0-255, not rounded), written out independently."""
  def y(img):
    img = img.astype(np.float64) / 255.0
    return 16.0 + img @ np.array([65.481, 128.553, 24.966])
  sr, hr = y(sr)[crop:-crop, crop:-crop], y(hr)[crop:-crop, crop:-crop]
  return 10.0 * np.log10(255.0 ** 2 / np.mean((sr - hr) ** 2))


@pytest.mark.slow
def test_sweep_writes_table_and_plot(tmp_path, monkeypatch, capsys):
  monkeypatch.setenv(params_io.CACHE_ENV_VAR, str(tmp_path / 'empty_cache'))
  a = _save_tiny(tmp_path / 'a.npz', 0, {'arch': 'rrdbnet',
                                         'model_kwargs': TINY})
  _save_tiny(tmp_path / 'b.npz', 1)
  hr_dir = tmp_path / 'hr'
  hr_dir.mkdir()
  rng = np.random.default_rng(0)
  images = {}
  # One size, so each sweep compiles the generator once.
  for name, (h, w) in (('img1', (40, 48)), ('img2', (40, 48))):
    # Smooth-ish content: random noise upscaled, so SR is not hopeless.
    small = rng.integers(0, 256, (h // 4, w // 4, 3), dtype=np.uint8)
    img = np.asarray(Image.fromarray(small).resize((w, h), Image.BICUBIC))
    Image.fromarray(img).save(hr_dir / f'{name}.png')
    images[name] = img
  (hr_dir / 'broken.png').write_bytes(b'truncated')  # Skipped and listed.

  args = ['--psnr', str(tmp_path / 'a.npz'), '--gan', str(tmp_path / 'b.npz'),
          '--sweep', '0:1:0.5', '--eval-dir', str(hr_dir)]
  assert interpolate.main(args + ['--out', str(tmp_path / 'no_lpips')]) == 0
  captured = capsys.readouterr()
  printed = captured.out
  assert 'skipped' in captured.err and 'broken.png' in captured.err
  assert 'Skipped' in printed and 'broken.png' in printed
  assert '2 images from' in printed
  assert '| alpha | PSNR (dB) | SSIM | LPIPS (alex) |' in printed
  assert 'LPIPS n/a' in printed and 'fetch lpips_alex' in printed
  with open(tmp_path / 'no_lpips' / 'sweep.csv', newline='') as f:
    rows = list(csv.DictReader(f))
  assert [r['alpha'] for r in rows] == ['0', '0.5', '1']
  assert all(r['lpips'] == 'n/a' for r in rows)

  # alpha 0 is model A; its PSNR, computed here without sr_jax.metrics.
  # Validation edge-pads the LR by 8 pixels and crops the output back.
  module = models.RRDBNet(**TINY)
  expected = []
  for img in images.values():
    hr = jnp.asarray(img[None], jnp.float32) / 255.0
    lr = jnp.round(jnp.clip(degradations.imresize(hr, 0.25), 0, 1) * 255) / 255
    padded = jnp.pad(lr, ((0, 0), (8, 8), (8, 8), (0, 0)), mode='edge')
    sr = np.asarray(module.apply(a, padded, train=False))[0, 32:-32, 32:-32]
    sr = np.round(np.clip(sr, 0, 1) * 255).astype(np.uint8)
    expected.append(_y_psnr(sr, img, crop=4))
  assert abs(float(rows[0]['psnr']) - np.mean(expected)) < 1e-5, (
      rows[0]['psnr'], expected)
  assert rows[0]['psnr'] != rows[2]['psnr']

  # With LPIPS weights (random, for the test): a number per alpha, and the
  # perception-distortion plot.
  lpips_path = tmp_path / 'lpips_random.npz'
  x = jnp.zeros((1, 32, 32, 3))
  params_io.save_params(lpips_path, jax.tree.map(jnp.abs, random_like(
      jax.eval_shape(lambda: metrics.LPIPS('alex').init(
          jax.random.key(0), x, x)), 3)))
  out = tmp_path / 'with_lpips'
  assert interpolate.main(args + ['--out', str(out), '--lpips-weights',
                                  str(lpips_path)]) == 0
  with open(out / 'sweep.csv', newline='') as f:
    rows_lpips = list(csv.DictReader(f))
  assert [r['psnr'] for r in rows_lpips] == [r['psnr'] for r in rows]
  assert all(float(r['lpips']) > 0 for r in rows_lpips)
  assert '| 0.5 |' in (out / 'sweep.md').read_text()
  with Image.open(out / 'sweep.png') as png:
    assert png.format == 'PNG' and png.size[0] >= 400
  assert sorted(os.listdir(out)) == ['sweep.csv', 'sweep.md', 'sweep.png']


def test_sweep_needs_an_architecture(tmp_path, capsys):
  _save_tiny(tmp_path / 'a.npz', 0)
  _save_tiny(tmp_path / 'b.npz', 1)
  (tmp_path / 'hr').mkdir()
  Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(
      tmp_path / 'hr' / 'x.png')
  args = ['--psnr', str(tmp_path / 'a.npz'), '--gan', str(tmp_path / 'b.npz'),
          '--sweep', '0,1', '--eval-dir', str(tmp_path / 'hr'), '--out',
          str(tmp_path / 'out')]
  assert interpolate.main(args) == 2
  assert '--arch rrdbnet --model-kwargs' in capsys.readouterr().err
  # Wrong kwargs are caught before any image is processed.
  assert interpolate.main(args + ['--arch', 'rrdbnet', '--model-kwargs',
                                  json.dumps(dict(TINY, num_feat=8))]) == 2
  assert 'first mismatching params' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


def test_workdir_input_uses_the_ema_generator(tmp_path):
  # Imported here: only this test builds a training run's checkpoint.
  from configs import esrgan_fft  # pylint: disable=g-import-not-at-top
  from sr_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from sr_jax.train import recipe as recipe_lib  # pylint: disable=g-import-not-at-top
  from sr_jax.train import state as ts  # pylint: disable=g-import-not-at-top
  config = esrgan_fft.get_config('runlocal')
  recipe = recipe_lib.Recipe.from_config(config)
  state = random_like(jax.eval_shape(lambda: ts.init_train_state(
      recipe, jax.random.key(0))), 0)
  workdir = tmp_path / 'run'
  ckpt = checkpoint.Checkpointer(str(workdir))
  ckpt.save_best(1, state, 20.0, config, phase='psnr')
  ckpt.wait_until_finished()
  ckpt.close()

  ema = jax.tree.map(np.asarray, ts.generator_variables(state))
  gan = jax.tree.map(lambda v: v + np.float32(1.0), ema)
  params_io.save_params(tmp_path / 'gan.npz', gan)
  out = tmp_path / 'c.npz'
  assert interpolate.main(['--psnr', str(workdir), '--gan',
                           str(tmp_path / 'gan.npz'), '--alpha', '0.5',
                           '--out', str(out)]) == 0
  jax.tree.map(lambda c, a, b: np.testing.assert_array_equal(
      c, np.float32(0.5) * a + np.float32(0.5) * b),
               params_io.load_params(out), ema, gan)
  meta = params_io.load_metadata(out)
  assert meta['arch'] == config.generator.name == 'rrdbnet'
  assert meta['model_kwargs'] == dict(config.generator.kwargs,
                                      scale=config.scale)


@pytest.mark.slow
def test_one_workdir_gives_its_warm_up_and_its_gan_generator(tmp_path, capsys):
  """--psnr W --gan W: the best of the run's first phase and of its last;
  a run with one validated phase is refused (it would mix G with itself)."""
  from configs import esrgan_fft  # pylint: disable=g-import-not-at-top
  from sr_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from sr_jax.train import recipe as recipe_lib  # pylint: disable=g-import-not-at-top
  from sr_jax.train import state as ts  # pylint: disable=g-import-not-at-top
  config = esrgan_fft.get_config('runlocal')
  recipe = recipe_lib.Recipe.from_config(config)
  abstract = jax.eval_shape(lambda: ts.init_train_state(recipe,
                                                        jax.random.key(0)))
  warm, final = random_like(abstract, 1), random_like(abstract, 2)
  workdir = tmp_path / 'run'
  saver = checkpoint.Checkpointer(str(workdir))
  saver.save_best(1, warm, 20.0, config, phase='psnr')
  saver.wait_until_finished()
  only_warm_up = tmp_path / 'only_psnr'
  shutil.copytree(workdir, only_warm_up)
  saver.save_best(2, final, 19.0, config, phase='gan')
  saver.wait_until_finished()
  saver.close()

  # Inference tools default to the final phase's best generator.
  assert checkpoint.load_generator_from_workdir(str(workdir)).phase == 'gan'
  out = tmp_path / 'c.npz'
  assert interpolate.main(['--psnr', str(workdir), '--gan', str(workdir),
                           '--alpha', '0.25', '--out', str(out)]) == 0
  err = capsys.readouterr().err
  assert "--psnr: the EMA generator of phase 'psnr' at step 1" in err
  assert "--gan: the EMA generator of phase 'gan' at step 2" in err
  a = jax.tree.map(np.asarray, ts.generator_variables(warm))
  b = jax.tree.map(np.asarray, ts.generator_variables(final))
  jax.tree.map(lambda c, x, y: np.testing.assert_allclose(
      c, np.float32(0.75) * x + np.float32(0.25) * y, rtol=1e-6),
               params_io.load_params(out), a, b)
  # A run whose GAN phase never validated: said, not mixed with itself.
  assert interpolate.main(['--psnr', str(only_warm_up), '--gan',
                           str(only_warm_up), '--alpha', '0.5', '--out',
                           str(tmp_path / 'd.npz')]) == 2
  assert "No best checkpoint of phase 'gan'" in capsys.readouterr().err
  assert interpolate.main(['--psnr', str(workdir), '--gan', str(workdir),
                           '--gan-phase', 'psnr', '--alpha', '0.5', '--out',
                           str(tmp_path / 'd.npz')]) == 2
  assert 'with itself' in capsys.readouterr().err
  assert not (tmp_path / 'd.npz').exists()
