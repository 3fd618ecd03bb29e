"""End-to-end runs of `python -m sr_jax.main` on each config's tiny variant."""
import glob
import os

import pytest

from tests.helpers.repo import fake_devices
from tests.helpers.repo import run_python
from sr_jax.utils import scalar_csv


pytestmark = pytest.mark.slow  # End-to-end runs.


@pytest.mark.slow
@pytest.mark.parametrize(
    'config', ['esrgan_fft', 'esrgan', 'rrdb_psnr', 'realesrgan', 'srgan',
               'srgan_denoise'])
def test_runlocal_trains_checkpoints_and_logs(config, tmp_path,
                                              random_vgg19_weights):
  workdir = tmp_path / 'run'
  result = run_python(
      ['-m', 'sr_jax.main', f'--config=configs/{config}.py:runlocal',
       f'--workdir={workdir}',
       f'--config.frozen.vgg19={random_vgg19_weights}'])
  output = result.stdout + result.stderr
  assert result.returncode == 0, output
  assert 'Done at step 2' in result.stdout, output
  assert '[eval] step 2 | EMA PSNR' in result.stdout, output
  assert 'PSNR_RGB' in result.stdout, output
  assert os.path.isdir(workdir / 'checkpoints' / '2')
  last_phase = 'psnr' if config == 'rrdb_psnr' else 'gan'
  assert os.path.isdir(workdir / 'best' / last_phase / '2')
  assert glob.glob(str(workdir / 'tensorboard' / 'events.out.tfevents.*'))
  assert glob.glob(str(workdir / 'images' / '00000002' / '*.png'))
  # The same scalars as CSV, for notebooks without a TensorBoard reader.
  scalars = scalar_csv.read_scalars(str(workdir))
  assert [s for s, _ in scalars['train/l_g_total']] == [1, 2]
  assert scalars['val/psnr'][-1][0] == 2
  # The EMA generator, then the raw one (config.best_weights picks).
  assert (f'[eval] step 2 | EMA PSNR {scalars["val/psnr"][-1][1]:.2f} dB'
          in result.stdout)
  assert (f'| raw PSNR {scalars["val/psnr_raw"][-1][1]:.2f} dB'
          in result.stdout)
  if config == 'rrdb_psnr':
    assert '[gan]' not in result.stdout
  else:
    assert '[psnr] step 1/2' in result.stdout and '[gan] step 2/2' in \
        result.stdout, output
    assert ('l_d_gp' in result.stdout) == (config == 'esrgan_fft')
    assert ('l_g_fft' in result.stdout) == (config == 'esrgan_fft')
    assert 'l_g_percep' in result.stdout
    assert ('l_g_pix' in result.stdout.split('[gan]')[1]) == (
        config not in ('srgan', 'srgan_denoise'))  # VGG54 + adversarial.
  if config == 'srgan_denoise':
    # Validation denoises: the noisy input against the clean HR, not inf.
    evals = [line for line in result.stdout.splitlines()
             if line.startswith('[eval]')]
    assert evals and all('| input PSNR' in line for line in evals), output
    assert 'inf' not in ' '.join(evals)
    assert scalars['val/psnr_bicubic'][-1][1] < 40.0  # Noise of 10-50%.


def test_missing_vgg_weights_stop_the_run_with_instructions(tmp_path):
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/esrgan_fft.py:runlocal',
       f'--workdir={tmp_path / "run"}'],
      env_extra={'SR_JAX_CACHE_DIR': str(tmp_path / 'empty_cache'),
                 'SR_JAX_VGG19_WEIGHTS': ''})
  assert result.returncode == 2, result.stdout + result.stderr
  assert 'python -m sr_jax.weights fetch vgg19' in result.stderr
  assert 'vgg19-dcbb9e9d.pth' in result.stderr
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / 'run' / 'checkpoints')


def test_missing_train_folder_is_named(tmp_path):
  missing = tmp_path / 'no_such_DIV2K_train_HR'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/rrdb_psnr.py:runlocal',
       f'--workdir={tmp_path / "run"}', f'--config.data.train_dir={missing}'])
  assert result.returncode == 2, result.stdout + result.stderr
  assert str(missing) in result.stderr
  assert 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / 'run')


def test_bad_batch_size_is_explained(tmp_path):
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/rrdb_psnr.py:runlocal',
       f'--workdir={tmp_path / "run"}', '--config.batch_size=3'],
      env_extra=fake_devices(2))
  assert result.returncode == 2, result.stdout + result.stderr
  assert 'config.batch_size=3 must be divisible by the 2 devices' in \
      result.stderr


def test_bad_degradation_settings_are_explained(tmp_path):
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/realesrgan.py:runlocal',
       f'--workdir={tmp_path / "run"}', '--config.data.gt_size=32'])
  assert result.returncode == 2, result.stdout + result.stderr
  assert "config.degradation ('realesrgan')" in result.stderr
  assert 'data.gt_size' in result.stderr and 'Traceback' not in result.stderr
  assert not os.path.exists(tmp_path / 'run')


def test_paired_folders_train_through_main(tmp_path):
  """LR/HR folders (DIV2K's X4 naming) feed the step instead of a
  degradation."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sr_jax.data import sample_images  # pylint: disable=g-import-not-at-top
  hr_dir, lr_dir = tmp_path / 'HR', tmp_path / 'LR'
  hr_dir.mkdir()
  lr_dir.mkdir()
  for i, name in enumerate(['astronaut', 'coffee']):
    hr = sample_images.load_sample(name)[:96, :128]
    Image.fromarray(hr).save(hr_dir / f'{i:04d}.png')
    lr = hr.reshape(24, 4, 32, 4, 3).mean(axis=(1, 3)).round().astype('uint8')
    Image.fromarray(lr).save(lr_dir / f'{i:04d}x4.png')
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/rrdb_psnr.py:runlocal',
       f'--workdir={tmp_path / "run"}', f'--config.data.train_dir={hr_dir}',
       f'--config.data.train_lr_dir={lr_dir}',
       "--config.data.lr_filename_tmpl={}x4",
       f'--config.data.val_dir={hr_dir}'])
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'Done at step 2' in result.stdout
  # A pair whose sizes disagree is refused, naming the file.
  Image.fromarray(lr[:20]).save(lr_dir / '0001x4.png')
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/rrdb_psnr.py:runlocal',
       f'--workdir={tmp_path / "run2"}', f'--config.data.train_dir={hr_dir}',
       f'--config.data.train_lr_dir={lr_dir}',
       "--config.data.lr_filename_tmpl={}x4"])
  assert result.returncode == 2, result.stdout + result.stderr
  assert '0001x4.png' in result.stderr and 'Traceback' not in result.stderr


def test_degradation_preview_writes_one_picture_per_pipeline(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  result = run_python(
      ['-m', 'sr_jax.tools.preview_degradations', f'--out_dir={tmp_path}',
       '--pipelines=bicubic,srrescgan,denoise', '--size=64', '--samples=2'])
  assert result.returncode == 0, result.stdout + result.stderr
  for name in ('bicubic', 'srrescgan', 'denoise'):
    with Image.open(tmp_path / f'{name}.png') as picture:
      assert picture.size == (128, 128)  # 2 draws of HR | LR, 64 px each


def test_config_mistakes_are_one_line_before_any_write(tmp_path):
  runlocal = '--config=configs/esrgan.py:runlocal'
  for args, needle in (
      ([runlocal, '--config.gan.adversarial_los=x'],
       'Did you mean gan.adversarial_loss?'),
      ([runlocal, '--config.gan.losses.ftt.weight=0.2'],
       "--config.gan.losses.ftt.weight: the config has no field 'ftt' in "
       'gan.losses. Did you mean gan.losses.fft?'),
      ([runlocal, '--config.foo=1'],
       "--config.foo: the config has no field 'foo'. The config has: "
       'batch_size,'),
      ([runlocal, '--config.gan.adversarial_loss=foo'], "'foo'"),
      ([runlocal, '--config.gan.steps=abc'], 'invalid literal'),
      (['--config=configs/nonexistent.py'],
       'cannot read configs/nonexistent.py (no such file). configs has: '),
      (['--config=configs/esrgan_ff.py'], 'Did you mean configs/esrgan_fft.py'),
      (['--config=configs/esrgan.py:dmeo'],
       "Unknown config variant 'dmeo'. Did you mean 'demo'?")):
    result = run_python(['-m', 'sr_jax.main', f'--workdir={tmp_path / "run"}']
                        + args)
    assert result.returncode == 2, (args, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('error: '), (
        args, result.stderr[-2000:])
    assert needle in lines[0], (args, lines[0])
    assert not os.path.exists(tmp_path / 'run')
