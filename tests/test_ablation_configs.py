"""The ablation configs: every variant is a valid recipe with the loss it
names, at every size; :runlocal trains end to end (tests/test_sweep.py and
the test below)."""
import importlib.util
import os

import pytest

from conftest import REPO
from conftest import run_python
from sr_jax import config_checks


def _module(name):
  path = os.path.join(REPO, 'configs', 'ablations', f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'ablation_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('ablation', ['adversarial', 'frequency',
                                      'perceptual'])
def test_every_variant_builds_at_every_size(ablation):
  module = _module(ablation)
  for variant in module.VARIANTS:
    for size in ('', 'tiny', 'runlocal'):
      config = module.get_config(f'{variant},{size}' if size else variant)
      recipe = config_checks.check_config(config)
      assert recipe.phases[-1].name == 'gan'
      gan = config.gan
      if ablation == 'adversarial':
        assert gan.adversarial_loss == module.VARIANTS[variant]
      elif ablation == 'perceptual':
        term, _ = module.VARIANTS[variant]
        assert gan.losses[term].weight == 1.0
        assert {t.term.log_name for t in recipe.phases[-1].terms
                if t.weight} >= {'pix', 'gan'}
      elif module.VARIANTS[variant] is not None:
        term, weight = module.VARIANTS[variant]
        assert gan.losses[term].weight == weight
      else:
        assert all(gan.losses[t].weight == 0 for t in ('fft',)
                   if t in gan.losses)
  with pytest.raises(ValueError, match='one of'):
    module.get_config('nope')


@pytest.mark.slow
def test_frequency_runlocal_trains_with_each_term(tmp_path,
                                                  random_vgg19_weights):
  for variant in ('spectral_0.3', 'ffl_0.5'):
    result = run_python(
        ['-m', 'sr_jax.main',
         f'--config=configs/ablations/frequency.py:{variant},runlocal',
         f'--workdir={tmp_path / variant}',
         f'--config.frozen.vgg19={random_vgg19_weights}'])
    assert result.returncode == 0, result.stderr[-2000:]
    term = {'spectral': 'spectral', 'ffl': 'focal_frequency',
            'fft': 'fft'}[variant.split('_')[0]]
    assert f'l_g_{term}' in result.stdout, result.stdout[-2000:]
