"""The ablation configs: every variant is a valid recipe with the loss it
names, at every size. They train end to end in the notebook tests
(tests/test_notebooks.py: two variants of each config at the tiny size,
the frequency terms among them) and, at runlocal, in tests/test_sweep.py."""
import importlib.util
import os

import pytest

from sr_jax.train import recipe as recipe_lib
from tests.helpers.repo import REPO


def _module(name):
  path = os.path.join(REPO, 'configs', 'ablations', f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'ablation_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize('sizes', [
    ('runlocal',),
    # The full and tiny sizes: not-slow budget.
    pytest.param(('', 'tiny'), marks=pytest.mark.slow)])
@pytest.mark.parametrize('ablation', ['adversarial', 'frequency',
                                      'perceptual'])
def test_every_variant_builds_at_every_size(ablation, sizes):
  module = _module(ablation)
  for variant in module.VARIANTS:
    for size in sizes:
      config = module.get_config(f'{variant},{size}' if size else variant)
      recipe = recipe_lib.Recipe.from_config(config)
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
        term, weight, *norm = module.VARIANTS[variant]
        assert gan.losses[term].weight == weight
        if term == 'fft':  # The thesis's form unless the variant says.
          assert gan.losses.fft.norm == (norm or ['l2'])[0]
      else:
        assert all(gan.losses[t].weight == 0 for t in ('fft',)
                   if t in gan.losses)
  with pytest.raises(ValueError, match='one of'):
    module.get_config('nope')
