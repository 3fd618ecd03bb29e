"""sr_jax.train.state: phases start from the EMA generator (or continue)."""
import dataclasses

import jax
import numpy as np
import pytest

from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from tests.helpers.repo import load_config


@pytest.mark.slow
def test_gan_phase_starts_from_ema_generator():
  config = load_config('esrgan')
  recipe = recipe_lib.Recipe.from_config(config)
  psnr, gan = recipe.phases
  state = ts.init_train_state(recipe, jax.random.key(1))
  assert set(state.opt_state) == {'generator'}  # The warm-up trains G only.
  ema = jax.tree.map(lambda p: p + 1.0, state.params['generator'])
  state = state.replace(ema_params={'generator': ema})
  started = ts.start_phase(state, gan)
  for x, y in zip(jax.tree.leaves(started.params['generator']),
                  jax.tree.leaves(ema)):
    np.testing.assert_array_equal(x, y)
  # Fresh optimizers for both networks: Adam's step counts are 0.
  assert set(started.opt_state) == {'generator', 'discriminator'}
  counts = [x for x in jax.tree.leaves(started.opt_state)
            if np.ndim(x) == 0]
  assert counts and all(int(c) == 0 for c in counts)
  # A 'continue' phase keeps the parameters as they are.
  kept = ts.start_phase(state, dataclasses.replace(gan,
                                                   start_mode='continue'))
  for x, y in zip(jax.tree.leaves(kept.params['generator']),
                  jax.tree.leaves(state.params['generator'])):
    np.testing.assert_array_equal(x, y)
  assert psnr.end == gan.start == config.psnr.steps
