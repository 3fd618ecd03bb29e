"""Every shipped config builds, at each of its variants: the checks a run
makes before reading data pass (networks, phases, terms, optimizers,
degradation, evaluation)."""
import glob
import importlib.util
import os

import pytest

from sr_jax.train import recipe as recipe_lib
from sr_jax.train import checks as config_checks
from tests.helpers.repo import load_config
from tests.helpers.repo import REPO

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
      recipe_lib.Recipe.from_config(config)
    config.data.real_dir = '/data/real_lr'
  recipe = recipe_lib.Recipe.from_config(config)
  assert recipe.phases
  if variant == 'runlocal':
    assert recipe.total_steps == 2


@pytest.mark.parametrize('name', ['srgan', 'srgan_wdrn', 'srgan_denoise'])
def test_offline_demo_anchors_the_gan_phase(name):
  # Offline the VGG54 term is dropped; the adversarial term must not be
  # alone (Adam takes full steps on a lone term whatever its weight).
  assert 'pixel' not in load_config(name, None).gan.losses
  assert load_config(name, 'demo').gan.losses.pixel.weight == 1.0
