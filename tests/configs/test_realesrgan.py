"""configs/realesrgan.py:finetune: Real-ESRGAN's fine-tuning recipe is the
release's finetune_realesrgan_x4plus.yml."""

import pytest

from sr_jax.weights import pretrained
from tests.helpers.repo import load_config

RELEASE = 'RealESRGAN_x4plus'


def test_the_recipe_is_the_release_fine_tuning_yml():
  """finetune_realesrgan_x4plus.yml: no warm-up, the GAN stage of
  train_realesrgan_x4plus.yml, the generator from the release, at every
  size the full x4plus network that fits its weights."""
  full = load_config('realesrgan', None)
  for arg in ('finetune', 'finetune,runlocal'):
    c = load_config('realesrgan', arg)
    assert c.psnr.steps == 0 and c.gan.steps == (
        400_000 if arg == 'finetune' else 2)
    assert dict(c.generator.kwargs) == dict(num_feat=64, num_block=23,
                                            num_grow_ch=32)
    assert c.generator.init_from == str(pretrained.cached_path(RELEASE))
    assert c.data.use_rot is False and c.degradation.name == 'realesrgan'
  # Everything else is the training recipe's GAN stage.
  c = load_config('realesrgan', 'finetune')
  for field in ('gan', 'discriminator', 'degradation', 'data', 'batch_size',
                'ema_decay', 'scale', 'evals'):
    assert c[field] == full[field], field
  c.psnr.steps, c.generator.init_from = full.psnr.steps, ''
  assert c == full
  small = load_config('realesrgan', 'finetune,runlocal')
  assert small.variant == 'runlocal' and small.data.gt_size == 64
  assert small.discriminator.kwargs.num_feat < 64
  for arg in ('finetune,demo', 'nope', 'finetune,tiny'):
    with pytest.raises(ValueError, match='use'):
      load_config('realesrgan', arg)
