"""configs/srrescycgan.py is the SRResCGAN paper's recipe (SRResCycGAN)."""
from tests.helpers.repo import load_config


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
