"""End-to-end runs of `python -m sr_jax.main` (sr_jax.main) on each config's
tiny variant, and through it: NaN stops and SIGTERM saves, the patchgan
and WDRN critics, made-up components added as one file plus one
registration. (The DSGAN -> SRResCycGAN chain and the fine-tuning from the
released RealESRGAN_x4plus are in tests/configs/.)"""
import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from sr_jax import checkpoint
from sr_jax.utils import scalar_csv
from tests.helpers.repo import fake_devices
from tests.helpers.repo import REPO
from tests.helpers.repo import run_python
from tests.helpers.runs import _saved_states

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


def test_a_run_stopped_by_its_config_never_imports_tensorflow(tmp_path):
  # TensorFlow (clu's TensorBoard writer) costs about 5 s to import; only a
  # run that writes needs it (sr_jax.utils.tensorflow_cpu).
  argv = ['sr_jax.main', '--config=configs/esrgan.py:runlocal',
          f'--workdir={tmp_path / "run"}', '--config.gan.adversarial_loss=foo']
  result = run_python(['-c', (
      'import runpy, sys\n'
      f'sys.argv = {argv!r}\n'
      'try:\n'
      '  runpy.run_module("sr_jax.main", run_name="__main__")\n'
      'finally:\n'
      '  print("tensorflow imported:", "tensorflow" in sys.modules)\n')])
  assert result.returncode == 2, result.stderr[-2000:]
  assert "'foo'" in result.stderr
  assert 'tensorflow imported: False' in result.stdout, result.stdout


@pytest.mark.slow
def test_a_nan_mid_gan_stops_with_code_3_and_saves_nothing_broken(
    tmp_path, random_vgg19_weights):
  workdir = tmp_path / 'run'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/esrgan.py:runlocal',
       f'--workdir={workdir}', f'--config.frozen.vgg19={random_vgg19_weights}',
       # lr 1e30: the first GAN update makes parameters ~1e30, the next
       # inf / NaN.
       '--config.gan.optimizers.generator.lr=1e30', '--config.gan.steps=5',
       '--config.psnr.steps=1', '--config.checkpoint_every=1',
       '--config.keep_checkpoints=10', '--config.eval_every=100'])
  assert result.returncode == 3, result.stdout + result.stderr
  assert 'Traceback' not in result.stderr
  message = result.stderr.strip().splitlines()[-1]
  # Step 2 (the first GAN update) leaves parameters of ~1e30: finite, but
  # every activation overflows; the guard's squared norm catches them there,
  # so no checkpoint of step 2 exists (it would validate as garbage).
  assert 'at step 2 the updated parameters' in message, message
  assert 'too large' in message
  assert 'the last checkpoint is step 1' in message
  saved = _saved_states(str(workdir))
  assert sorted(saved) == [1] and all(saved.values()), saved


@pytest.mark.slow
def test_sigterm_to_the_group_saves_and_exits_resumable(tmp_path):
  """SIGTERM to the whole process group (grain workers included), and again
  0.4 s later, during the save (schedulers send it more than once): the
  checkpoint completes, exit 143 and no traceback; the rerun resumes and
  exits 0."""
  workdir = tmp_path / 'run'
  args = [sys.executable, '-m', 'sr_jax.main',
          '--config=configs/rrdb_psnr.py:runlocal', f'--workdir={workdir}',
          '--config.psnr.steps=100000', '--config.log_every=1',
          '--config.checkpoint_every=100000', '--config.eval_every=100000',
          '--config.data.num_workers=2']
  env = dict(os.environ, PYTHONPATH=REPO)
  proc = subprocess.Popen(args, cwd=REPO, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True,
                          start_new_session=True)
  try:
    for line in proc.stdout:
      if 'step 3/' in line:
        break
    os.killpg(proc.pid, signal.SIGTERM)
    time.sleep(0.4)
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=300)
  finally:
    if proc.poll() is None:
      os.killpg(proc.pid, signal.SIGKILL)
  assert proc.returncode == 143, err[-3000:]
  assert 'Traceback' not in err, err[-3000:]
  assert 'SIGTERM received: saved step' in err
  saved = [int(s) for s in os.listdir(workdir / 'checkpoints')
           if s.isdigit()]
  assert saved and max(saved) >= 3
  assert f'SIGTERM received: saved step {max(saved)}' in err
  assert os.path.exists(
      workdir / 'checkpoints' / str(max(saved)) / 'commit_success.txt')
  assert not checkpoint.unfinished_saves(str(workdir / 'checkpoints'))
  assert not os.path.exists(workdir / 'run.lock')  # Released.
  # The rerun also changes the worker count (2 -> 0): the data position
  # carries over.
  rerun = [a for a in args[1:] if 'psnr.steps' not in a
           and 'num_workers' not in a]
  result = run_python(rerun + [f'--config.psnr.steps={max(saved) + 1}',
                               '--config.data.num_workers=0'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert f'Resuming from step {max(saved)}' in result.stdout
  final = os.path.join(workdir, 'checkpoints', str(max(saved) + 1), 'data',
                       'metadata')
  with open(final) as f:
    assert json.load(f) == {'next_index': max(saved) + 1}


@pytest.mark.slow
def test_trains_as_the_gan_discriminator(tmp_path, random_vgg19_weights):
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/esrgan_fft.py:runlocal',
       f'--workdir={tmp_path}', f'--config.frozen.vgg19={random_vgg19_weights}',
       '--config.discriminator.name=patchgan',
       '--config.discriminator.kwargs={"num_feat": 8, "num_layers": 2}'])
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'l_d_gp' in result.stdout and 'l_g_gan' in result.stdout


NEW_FILES = {
    'sr_jax/models/tiny_upsampler.py': '''
        """A made-up generator: one conv to scale^2 * 3 maps, pixel shuffle."""
        from typing import Any
        import flax.linen as nn
        import jax.numpy as jnp
        from sr_jax.models import layers


        class TinyUpsampler(nn.Module):
          TINY_KWARGS = dict(num_feat=6)
          scale: int = 4
          num_feat: int = 16
          dtype: Any = jnp.float32

          @nn.compact
          def __call__(self, x, train=False):
            x = layers.leaky_relu(layers.Conv(self.num_feat, 3)(x))
            x = layers.Conv(3 * self.scale ** 2, 3)(x)
            return layers.pixel_shuffle(x, self.scale).astype(jnp.float32)
        ''',
    'sr_jax/losses/edge_l1.py': '''
        """A made-up term: L1 between Laplacians of sr and target."""
        import jax.numpy as jnp
        from sr_jax.losses import terms


        def laplacian(x):
          return (x[:, 1:-1, 2:] + x[:, 1:-1, :-2] + x[:, 2:, 1:-1]
                  + x[:, :-2, 1:-1] - 4 * x[:, 1:-1, 1:-1])


        @terms.register('edge_l1')
        def make(options, dtype):
          return terms.LossTerm(
              lambda ctx: jnp.mean(jnp.abs(laplacian(ctx.sr)
                                           - laplacian(ctx.target))),
              log_name='edge')
        ''',
    'sr_jax/losses/logit_l2.py': '''
        """A made-up regulariser: keeps real logits near 0."""
        import jax.numpy as jnp
        from sr_jax.losses import regularisers


        @regularisers.register('logit_l2')
        def make(options):
          return regularisers.Regulariser(
              lambda ctx: jnp.mean(jnp.square(ctx.critic(ctx.real))),
              log_name='logit_l2', per_sample=False)
        ''',
    'sr_jax/metrics/mae.py': '''
        """A made-up metric: mean absolute error in 8-bit levels."""
        import numpy as np
        from sr_jax.metrics import registry


        @registry.register('mae', higher_is_better=False)
        def mae(sr, hr, crop_border):
          c = crop_border
          a, b = (np.asarray(x, np.float64)[c:-c or None, c:-c or None]
                  for x in (sr, hr))
          return float(np.mean(np.abs(a - b)))
        ''',
    'configs/plugin.py': '''
        from sr_jax.train import config_lib


        def get_config(arg=None):
          c = config_lib.base_config()
          c.generator.name = 'tiny_upsampler'
          c.generator.kwargs = dict(num_feat=16)
          c.discriminator.kwargs = dict(num_feat=64, use_bn=False)
          c.gan.losses = {'pixel': dict(weight=1.0),
                          'edge_l1': dict(weight=0.5),
                          'adversarial': dict(weight=1e-3)}
          c.gan.regularisers = {'logit_l2': dict(weight=0.1)}
          c.evals.val.metrics = ('psnr', 'mae')
          c.best_metric = 'val/mae'
          return config_lib.apply_variant(c, arg)
        ''',
}


REGISTRATIONS = {
    'sr_jax/models/__init__.py': (
        'from sr_jax.models.tiny_upsampler import TinyUpsampler\n'
        "GENERATORS.register('tiny_upsampler')(TinyUpsampler)\n"),
    'sr_jax/losses/__init__.py': 'from sr_jax.losses import edge_l1\n'
                                 'from sr_jax.losses import logit_l2\n',
    'sr_jax/metrics/__init__.py': 'from sr_jax.metrics import mae\n',
}


@pytest.mark.slow
def test_made_up_components_train_through_main(tmp_path):
  root = tmp_path / 'repo'
  shutil.copytree(os.path.join(REPO, 'sr_jax'), root / 'sr_jax',
                  ignore=shutil.ignore_patterns('__pycache__'))
  shutil.copytree(os.path.join(REPO, 'configs'), root / 'configs',
                  ignore=shutil.ignore_patterns('__pycache__'))
  for path, text in NEW_FILES.items():
    (root / path).write_text(textwrap.dedent(text).lstrip())
  for path, line in REGISTRATIONS.items():
    with open(root / path, 'a') as f:
      f.write(line)
  env = {'PYTHONPATH': str(root)}
  result = run_python(
      ['-c', 'import sys, runpy; sys.path.insert(0, sys.argv.pop(1)); '
       "runpy.run_module('sr_jax.main', run_name='__main__')", str(root),
       '--config=configs/plugin.py:runlocal',
       f'--workdir={tmp_path / "run"}'],
      env_extra=env, cwd=str(root))
  out = result.stdout + result.stderr
  assert result.returncode == 0, out[-3000:]
  for needle in ('l_g_edge', 'l_d_logit_l2', 'l_g_pix', 'l_g_gan', 'MAE'):
    assert needle in out, (needle, out[-3000:])
  assert os.path.isdir(tmp_path / 'run' / 'best' / 'gan')


@pytest.mark.slow
def test_srgan_wdrn_runlocal_trains_with_the_gradient_penalty(
    tmp_path, random_vgg19_weights):
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/srgan_wdrn.py:runlocal',
       f'--workdir={tmp_path / "run"}',
       f'--config.frozen.vgg19={random_vgg19_weights}'])
  output = result.stdout + result.stderr
  assert result.returncode == 0, output
  assert 'Done at step 2' in result.stdout, output
  gan = result.stdout.split('[gan]')[1]
  for name in ('l_d_gp', 'l_g_gan', 'l_g_percep', 'out_d_real'):
    assert name in gan, (name, output)
  assert '[eval] step 2 | EMA PSNR' in result.stdout
