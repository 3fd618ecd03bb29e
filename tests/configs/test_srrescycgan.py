"""configs/srrescycgan.py is the SRResCGAN paper's recipe (SRResCycGAN), and
it trains (through `python -m sr_jax.main`) on the pairs of a
configs/dsgan.py run."""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import inference
from sr_jax.degradations import imresize
from tests.helpers.repo import load_config
from tests.helpers.repo import run_python


def test_srrescycgan_is_the_papers_recipe():
  c = load_config('srrescycgan', None)
  assert c.generator.name == 'srrescgan' and c.generator.kwargs.depth == 5
  assert (c.generator_lr.kind, c.generator_lr.name) == ('generator', 'dsgan')
  assert c.discriminator.name == 'vgg_style'
  weights = {k: v.weight for k, v in c.gan.losses.items()}
  # The paper's weights in sr_jax's [0, 1] units (the released code's
  # images are in [0, 255]: every weight / 255, the GAN term scale-free).
  assert weights == {'perceptual': 1.0, 'adversarial': 1 / 255, 'tv': 1.0,
                     'pixel': 10.0, 'cycle': 10.0, 'down_pixel': 10.0}
  assert c.gan.adversarial_loss == 'ragan'
  assert set(c.gan.train) == {'generator', 'generator_lr', 'discriminator'}
  for entry in c.gan.optimizers.values():
    assert entry.name == 'amsgrad' and entry.gamma == 0.5
    assert tuple(entry.milestones) == (5_000, 10_000, 20_000, 30_000)
  assert c.batch_size == 16 and c.data.dataset_repeat == 3
  assert c.degradation.mixup_prob > 0


@pytest.mark.slow
def test_dsgan_then_srrescycgan_on_its_pairs_then_make_lr(
    tmp_path, random_vgg19_weights, random_lpips_alex_weights):
  """configs/dsgan.py trains (no SR validation: checkpoints by step);
  SRResCycGAN trains on its pairs made in the step; make_lr writes the
  same pairs."""
  dsgan = tmp_path / 'dsgan'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/dsgan.py:runlocal',
       f'--workdir={dsgan}',
       f'--config.frozen.lpips_alex={random_lpips_alex_weights}'])
  output = result.stdout + result.stderr
  assert result.returncode == 0, output
  assert 'Done at step 2' in result.stdout, output
  for name in ('l_g_low_freq', 'l_g_gan', 'l_g_lpips', 'l_d'):
    assert name in result.stdout, (name, output)
  assert '[eval]' not in result.stdout
  assert (dsgan / 'checkpoints' / '2').is_dir()
  assert not (dsgan / 'best').exists()

  cyc = tmp_path / 'cyc'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/srrescycgan.py:runlocal',
       f'--workdir={cyc}', f'--config.frozen.vgg19={random_vgg19_weights}',
       '--config.degradation.name=dsgan',
       f'--config.degradation.dsgan.checkpoint={dsgan}'])
  output = result.stdout + result.stderr
  assert result.returncode == 0, output
  assert 'Done at step 2' in result.stdout, output
  assert "degradation_dsgan: the EMA generator of phase 'gan' at step 2" in (
      result.stdout)
  for name in ('l_g_cycle', 'l_g_down_pix', 'l_g_tv', 'l_g_percep',
               'l_g_gan', 'grad_norm_generator_lr', 'lr_generator_lr'):
    assert name in result.stdout, (name, output)
  assert '[eval] step 2 | EMA PSNR' in result.stdout

  hr_dir, lr_dir = tmp_path / 'hr', tmp_path / 'lr'
  hr_dir.mkdir()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  hr = np.random.default_rng(7).integers(0, 256, (34, 41, 3), np.uint8)
  Image.fromarray(hr).save(hr_dir / 'x.png')
  result = run_python(['-m', 'sr_jax.data.make_lr', '--dsgan', str(dsgan),
                       '--input', str(hr_dir), '--output', str(lr_dir)])
  assert result.returncode == 0, result.stdout + result.stderr
  written = np.asarray(Image.open(lr_dir / 'x.png'))
  assert written.shape == (8, 10, 3)  # 32 x 40 after the mod crop.
  loaded = inference.load_generator_of(str(dsgan), 'dsgan', 'test')
  module, variables = loaded.module, loaded.variables
  cropped = hr[:32, :40][None] / 255.0
  expected = np.round(np.asarray(module.apply(
      variables, imresize(jnp.asarray(cropped, jnp.float32), 0.25)))[0]
                      * 255)
  assert np.abs(written.astype(int) - expected).max() <= 1
  # Not a super-resolution model: inference says what to use instead.
  with pytest.raises(ValueError, match='sr_jax.data.make_lr --dsgan'):
    inference.load_generator_for_inference(checkpoint=str(dsgan),
                                           which='latest')
