"""python -m sr_jax.evaluate: tables that say what the images measure, a
bicubic row, LR folders by name, skipped files and metrics listed."""
import csv
import errno

import numpy as np
from PIL import Image
import pytest
from skimage import data as skdata

from sr_jax import errors
from sr_jax import metrics
from sr_jax import models
from sr_jax.evaluate import cli
from sr_jax.evaluate import image_sets
from sr_jax.weights import files
from sr_jax.weights import params_io
from tests.helpers.files import unwritable_folder
from tests.helpers.runs import random_variables
from tests.helpers.runs import save_tiny_run


@pytest.fixture(scope='module')
def tiny_x2(tmp_path_factory):
  """A plain .npz of a tiny RRDBNet x2 with random weights."""
  path = str(tmp_path_factory.mktemp('weights') / 'tiny_x2.npz')
  module = models.RRDBNet(scale=2, num_feat=4, num_block=1, num_grow_ch=4)
  params_io.save_params(path, random_variables(module))
  return path


@pytest.fixture(scope='module')
def hr_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp('hr')
  for name in ('astronaut', 'chelsea', 'coffee'):
    Image.fromarray(getattr(skdata, name)()[:41, :58]).save(
        folder / f'{name}.png')
  return folder


def _read_csv(path):
  with open(path) as f:
    return list(csv.DictReader(f))


def test_tables_agree_with_the_saved_images(tmp_path, tiny_x2, hr_dir):
  out = tmp_path / 'out'
  code = cli.main(['--weights', tiny_x2, '--arch', 'rrdbnet',
                   '--datasets', f'mini={hr_dir}', '--metrics',
                   'psnr,ssim,psnr_rgb,spectrum', '--save-images',
                   '--out', str(out)])
  assert code == 0
  rows = _read_csv(out / 'results.csv')
  assert [r['model'] for r in rows] == ['bicubic x2', 'tiny_x2']
  assert all(r['images'] == '3' for r in rows)
  per_image = _read_csv(out / 'per_image.csv')
  model_rows = [r for r in per_image if r['model'] == 'tiny_x2']
  assert len(model_rows) == 3
  # Each reported value is the metric of the saved SR image against the HR
  # (mod-cropped to the scale, border of 2 cropped).
  for row in model_rows:
    sr = np.asarray(Image.open(out / 'images' / 'tiny_x2' / 'mini' /
                               f'{row["image"]}.png'))
    hr = np.asarray(Image.open(hr_dir / f'{row["image"]}.png'))[:40, :58]
    assert sr.shape == hr.shape
    assert float(row['psnr']) == pytest.approx(
        metrics.psnr(sr, hr, crop_border=2, test_y_channel=True), abs=1e-9)
    assert float(row['psnr_rgb']) == pytest.approx(
        metrics.psnr(sr, hr, crop_border=2), abs=1e-9)
  mean = np.mean([float(r['psnr']) for r in model_rows])
  assert float(rows[1]['psnr']) == pytest.approx(mean, abs=1e-9)
  # The bicubic row is bicubic up-sampling of the same LR: much better than
  # a random network.
  assert float(rows[0]['psnr']) > float(rows[1]['psnr']) + 5
  assert float(rows[0]['spectrum']) >= 0
  text = (out / 'results.md').read_text()
  assert '| mini | bicubic x2 | 3 |' in text and 'PSNR ↑' in text
  assert 'SPECTRUM ↓' in text
  assert (out / 'spectra_mini.png').stat().st_size > 1000


def test_lr_folders_by_name_and_skipped_files(tmp_path, tiny_x2, hr_dir):
  """BasicSR's '{}x2' LR names; a broken HR file and an HR without LR are
  skipped and listed (exit 1), the rest evaluated."""
  hr = tmp_path / 'hr'
  lr = tmp_path / 'lr'
  hr.mkdir()
  lr.mkdir()
  for name in ('astronaut', 'chelsea'):
    image = np.asarray(Image.open(hr_dir / f'{name}.png'))[:40, :58]
    Image.fromarray(image).save(hr / f'{name}.png')
    Image.fromarray(image[::2, ::2]).save(lr / f'{name}x2.png')
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(hr / 'orphan.png')
  (hr / 'broken.png').write_bytes(b'not a png')
  out = tmp_path / 'out'
  code = cli.main(['--weights', tiny_x2, '--arch', 'rrdbnet', '--datasets',
                   f'pairs={hr}', '--lr-dirs', f'pairs={lr}',
                   '--lr-template', '{}x2', '--out', str(out)])
  assert code == 1
  rows = _read_csv(out / 'results.csv')
  assert [r['images'] for r in rows] == ['2', '2']
  text = (out / 'results.md').read_text()
  assert 'broken.png' in text and 'orphan.png' in text
  assert 'no LR file orphanx2' in text
  # The bicubic row up-samples the given LR (nearest-decimated here), not
  # a bicubic down-scaling of the HR.
  given = np.asarray(Image.open(lr / 'astronaut x2.png'.replace(' ', '')))
  up = image_sets.bicubic_up(given, 2)
  want = metrics.psnr(up, np.asarray(Image.open(hr / 'astronaut.png')),
                      crop_border=2, test_y_channel=True)
  per_image = _read_csv(out / 'per_image.csv')
  got = [r for r in per_image if r['model'] == 'bicubic x2'
         and r['image'] == 'astronaut'][0]
  assert float(got['psnr']) == pytest.approx(want, abs=1e-9)


def test_bad_arguments_and_missing_metric_weights(tmp_path, tiny_x2, hr_dir,
                                                  capsys, monkeypatch):
  assert cli.main(['--weights', tiny_x2, '--arch', 'rrdbnet', '--datasets',
                   f'm={hr_dir}', '--metrics', 'psnr,ssmi']) == 2
  err = capsys.readouterr().err
  assert err.count('error:') == 1 and "Did you mean 'ssim'" in err
  assert cli.main(['--datasets', f'm={hr_dir}']) == 2
  assert 'at least one model' in capsys.readouterr().err
  # LPIPS without weights: reported, the other metrics still computed.
  monkeypatch.setenv('SR_JAX_CACHE_DIR', str(tmp_path / 'empty_cache'))
  out = tmp_path / 'out'
  code = cli.main(['--weights', tiny_x2, '--arch', 'rrdbnet', '--datasets',
                   f'm={hr_dir}', '--metrics', 'psnr,lpips', '--out',
                   str(out)])
  assert code == 1
  assert 'error: metric lpips skipped' in capsys.readouterr().err
  rows = _read_csv(out / 'results.csv')
  assert rows[1]['psnr'] and not rows[1]['lpips']
  assert 'lpips: not computed' in (out / 'results.md').read_text()
  per_image = _read_csv(out / 'per_image.csv')
  assert set(per_image[0]) == {'model', 'dataset', 'image', 'psnr'}
  assert all(float(r['psnr']) > 0 for r in per_image)


def test_model_labels_keep_a_workdirs_whole_name(tmp_path):
  (tmp_path / 'fft_0.3').mkdir()
  used = set()
  assert cli._label(str(tmp_path / 'fft_0.3'), used) == 'fft_0.3'
  assert cli._label(str(tmp_path / 'esrgan.npz'), used) == 'esrgan'
  assert cli._label(str(tmp_path / 'esrgan.pth'), used) == 'esrgan-2'
  assert cli._label(str(tmp_path / 'fft_0.3'), used, ':gan') == 'fft_0.3:gan'


@pytest.mark.slow
def test_each_model_runs_with_its_sources_pre_pad(tmp_path, tiny_x2, capsys):
  """Without --pre-pad a model is scored as it is run: a plain .npz (not
  known to be released) and a training run pre-padded 8, as sr_jax's
  validation; the same weights converted from a release 0, as
  Real-ESRGAN's inference. --pre-pad N is every model's. The saved images
  are the network on the edge-replicated LR (numpy reference)."""
  module = models.RRDBNet(scale=2, num_feat=4, num_block=1, num_grow_ch=4)
  variables = params_io.load_params(tiny_x2)
  released = tmp_path / 'released.npz'
  files.save_converted(released, 'rrdbnet', variables,
                       dict(scale=2, num_feat=4, num_block=1, num_grow_ch=4),
                       source='released.pth')
  # LR sizes that x2 RRDBNet's pixel-unshuffle takes with any even pad.
  hr_dir = tmp_path / 'hr'
  hr_dir.mkdir()
  Image.fromarray(skdata.astronaut()[100:140, 180:240]).save(
      hr_dir / 'astronaut.png')
  name, _, lr = image_sets.load_image_set(hr_dir, None, 2, '{}', 1).images[0]
  assert lr.shape == (20, 30, 3)

  def reference(pad):
    x = np.pad(lr / 255.0, ((pad, pad), (pad, pad), (0, 0)), mode='edge')
    sr = np.asarray(module.apply(variables, x[None].astype(np.float32)))[0]
    sr = sr[2 * pad:sr.shape[0] - 2 * pad, 2 * pad:sr.shape[1] - 2 * pad]
    return np.round(np.clip(sr, 0, 1) * 255)

  def saved(out, label):
    return np.asarray(Image.open(out / 'images' / label / 'mini' /
                                 f'{name}.png'), np.float64)

  assert np.abs(reference(8) - reference(0)).max() > 2  # Tellable apart.
  run = tmp_path / 'run'
  save_tiny_run(run, std=0.1)
  out = tmp_path / 'defaults'
  assert cli.main(['--weights', tiny_x2, '--weights', str(released),
                   '--checkpoint', str(run), '--arch', 'rrdbnet',
                   '--datasets', f'mini={hr_dir}', '--max-images', '1',
                   '--save-images', '--out', str(out)]) == 0
  assert np.abs(saved(out, 'tiny_x2') - reference(8)).max() <= 1
  assert np.abs(saved(out, 'released') - reference(0)).max() <= 1
  err = capsys.readouterr().err
  assert 'tiny_x2: pre-pad 8 (' in err and 'released: pre-pad 0 (' in err
  assert 'run: pre-pad 8 (an sr_jax training run' in err
  note = (out / 'results.md').read_text()
  assert "each model's default" in note
  assert '0 for released (released weights' in note
  assert '8 for run, tiny_x2 (sr_jax runs' in note
  out = tmp_path / 'given'
  assert cli.main(['--weights', str(released), '--datasets',
                   f'mini={hr_dir}', '--max-images', '1', '--pre-pad', '3',
                   '--save-images', '--out', str(out)]) == 0
  assert np.abs(saved(out, 'released') - reference(3)).max() <= 1
  assert 'Pre-pad 3 LR pixels for every model (--pre-pad)' in (
      out / 'results.md').read_text()


def test_an_image_too_small_for_the_crop_is_left_out_of_the_mean(
    tmp_path, tiny_x2, capsys):
  """A 4x4 HR (2x2 LR) leaves nothing after the x2 border crop: PSNR skips
  it, with a note naming it, and averages the other images."""
  hr = tmp_path / 'hr'
  hr.mkdir()
  rng = np.random.default_rng(3)
  for name, size in (('a', 12), ('b', 12), ('tiny', 4)):
    Image.fromarray(rng.integers(0, 256, (size, size, 3), np.uint8)).save(
        hr / f'{name}.png')
  out = tmp_path / 'out'
  code = cli.main(['--weights', tiny_x2, '--arch', 'rrdbnet', '--datasets',
                   f'mini={hr}', '--metrics', 'psnr', '--out', str(out)])
  assert code == 1  # Something was skipped.
  rows = _read_csv(out / 'results.csv')
  per_image = _read_csv(out / 'per_image.csv')
  for row in rows:
    scored = [float(r['psnr']) for r in per_image
              if r['model'] == row['model'] and r['image'] != 'tiny']
    assert len(scored) == 2
    assert float(row['psnr']) == pytest.approx(np.mean(scored), abs=1e-9)
  assert [r['psnr'] for r in per_image if r['image'] == 'tiny'] == ['', '']
  text = (out / 'results.md').read_text()
  assert 'psnr skipped image tiny (psnr: crop_border=2 leaves nothing' in text
  assert 'over the other 2 image(s)' in text
  assert 'skipped image tiny' in capsys.readouterr().err


@pytest.mark.parametrize('how', ['under_a_file', 'read_only'])
def test_unwritable_out_fails_before_the_models_load(tmp_path, hr_dir, capsys,
                                                     monkeypatch, how):
  """--out below a regular file (ENOTDIR, as root too) or in a read-only
  folder (chmod; skipped as root, who writes anyway): one error line, exit
  2, before any model loads."""
  base = unwritable_folder(tmp_path / 'base', how)
  monkeypatch.setattr(cli, 'load_models',
                      lambda args: pytest.fail('models were loaded'))
  try:
    code = cli.main(['--weights', 'w.npz', '--datasets', f'm={hr_dir}',
                     '--out', str(base / 'results')])
  finally:
    if how == 'read_only':
      base.chmod(0o755)
  err = capsys.readouterr().err
  assert code == 2
  assert err.count('error:') == 1
  assert f'--out {base / "results"}: cannot write to this folder' in err


@pytest.mark.parametrize('fault', ['full_disk', 'folder_in_the_way'])
def test_a_failed_table_write_is_one_line_naming_the_file(
    tmp_path, capsys, monkeypatch, fault):
  """The disk fills while results.csv is written (an OSError without a file
  name), or a folder stands where it goes: one `error:` line naming it,
  exit 2, no traceback."""
  out = tmp_path / 'out'
  if fault == 'full_disk':
    class FullDisk:
      def writerow(self, row):
        raise OSError(errno.ENOSPC, 'No space left on device')

    monkeypatch.setattr(cli.csv, 'writer', lambda f: FullDisk())
  else:
    (out / 'results.csv').mkdir(parents=True)
  rows = [{'dataset': 'm', 'model': 'x', 'images': 1, 'values': {'psnr': 1}}]
  code = errors.cli(cli.write_tables)(str(out), ['psnr'], rows, [])
  err = capsys.readouterr().err
  assert code == 2
  assert err.count('error:') == 1 and err.count('\n') == 1
  assert f'error: cannot write {out / "results.csv"}: ' in err
  if fault == 'full_disk':
    assert 'No space left on device. Free space' in err


@pytest.mark.parametrize('flags,says', [
    (['--datasets', 'm={missing}'], "--datasets m={missing}: the folder "
     "'{missing}' is missing"),
    (['--datasets', 'm={file}'], "--datasets m={file}: the folder '{file}' "
     'is a file'),
    (['--datasets', 'm={hr}', '--lr-dirs', 'm={missing}'],
     "--lr-dirs m={missing}: the folder '{missing}' is missing"),
])
def test_a_missing_folder_names_the_evaluate_flag(tmp_path, hr_dir, capsys,
                                                  monkeypatch, flags, says):
  """Not training's train_dir / val_dir: the flag, the name and the folder,
  before any model loads."""
  where = dict(missing=tmp_path / 'nowhere', file=tmp_path / 'f.png',
               hr=hr_dir)
  (tmp_path / 'f.png').write_bytes(b'')
  monkeypatch.setattr(cli, 'load_models',
                      lambda args: pytest.fail('models were loaded'))
  code = cli.main(['--weights', 'w.npz', '--out', str(tmp_path / 'out')]
                  + [f.format(**where) for f in flags])
  err = capsys.readouterr().err
  assert code == 2 and err.count('error:') == 1
  assert says.format(**where) in err
  assert 'train_dir' not in err
  # The library says which folder, never a setting of training.
  with pytest.raises(FileNotFoundError, match="LR folder '.*nowhere'"):
    image_sets.load_image_set(str(hr_dir), str(where['missing']), 2)
