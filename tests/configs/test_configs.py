"""Every shipped config builds, at each of its variants: the checks a run
makes before reading data pass (networks, phases, terms, optimizers,
degradation, evaluation)."""
import glob
import importlib.util
import os

import pytest

from tests.helpers.repo import REPO
from tests.helpers.repo import load_config
from sr_jax.train import checks as config_checks

CONFIGS = sorted(os.path.basename(p)[:-3]
                 for p in glob.glob(os.path.join(REPO, 'configs', '*.py')))


def _recipe_args(name):
  """'RECIPE,SIZE' args of a config with recipes besides its default one
  (its `SIZES`: {recipe: sizes}, e.g. realesrgan's 'finetune')."""
  path = os.path.join(REPO, 'configs', f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return [(f'{recipe},{size}' if size else recipe, size)
          for recipe, sizes in getattr(module, 'SIZES', {}).items()
          if recipe for size in sizes]


# (config, arg, the variant it sets): every config at each size, and each
# recipe variant at each of its sizes.
CASES = [(name, size, size) for name in CONFIGS
         for size in ('', 'runlocal', 'demo')] + [
             (name, arg, size) for name in CONFIGS
             for arg, size in _recipe_args(name)]


def test_the_issue_configs_are_shipped():
  assert {'srgan', 'srgan_denoise', 'srgan_wdrn', 'srrescycgan',
          'esrgan_fft'} <= set(CONFIGS)


def test_recipe_variants_are_covered():
  assert ('realesrgan', 'finetune,runlocal', 'runlocal') in CASES
  assert ('realesrgan', 'finetune', '') in CASES


@pytest.mark.parametrize('name,arg,variant', CASES)
def test_config_passes_the_checks(name, arg, variant):
  config = load_config(name, arg or None)
  assert config.variant == variant
  if (config.degradation.target == 'lr' and not config.degradation.real_domain
      and not config.data.real_dir):
    # Full-size DSGAN: the real LR domain is the user's folder (checked
    # here without reading it).
    with pytest.raises(config_checks.ConfigError, match='data.real_dir'):
      config_checks.check_config(config)
    config.data.real_dir = '/data/real_lr'
  recipe = config_checks.check_config(config)
  assert recipe.phases
  if variant == 'runlocal':
    assert recipe.total_steps == 2


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


@pytest.mark.parametrize('name', ['srgan', 'srgan_wdrn', 'srgan_denoise'])
def test_offline_demo_anchors_the_gan_phase(name):
  # Offline the VGG54 term is dropped; the adversarial term must not be
  # alone (Adam takes full steps on a lone term whatever its weight).
  assert 'pixel' not in load_config(name, None).gan.losses
  assert load_config(name, 'demo').gan.losses.pixel.weight == 1.0
