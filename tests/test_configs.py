"""Every shipped config builds, at each of its variants: the checks a run
makes before reading data pass (networks, phases, terms, optimizers,
degradation, evaluation)."""
import glob
import os

import pytest

from conftest import REPO
from conftest import load_config
from sr_jax import config_checks

CONFIGS = sorted(os.path.basename(p)[:-3]
                 for p in glob.glob(os.path.join(REPO, 'configs', '*.py')))


def test_the_issue_configs_are_shipped():
  assert {'srgan', 'srgan_denoise', 'srgan_wdrn', 'srrescycgan',
          'esrgan_fft'} <= set(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
@pytest.mark.parametrize('variant', ['', 'runlocal', 'demo'])
def test_config_passes_the_checks(name, variant):
  config = load_config(name, variant or None)
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
