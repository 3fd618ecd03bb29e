"""sr_jax.checkpoint.generators: a workdir's generator for inference, from a
workdir written before phases too, and the best checkpoint's generator that
won (raw or EMA)."""

import jax
import numpy as np
import pytest

from sr_jax import checkpoint
from sr_jax import checkpoint as ckpt_lib
from sr_jax.train import config_lib
from tests.helpers.checkpoints import _legacy_workdir
from tests.helpers.runs import filled_train_state


@pytest.mark.slow
def test_legacy_workdir_loads_for_inference(tmp_path):
  ema = _legacy_workdir(str(tmp_path / 'old'))
  for which in ('best', 'latest'):
    loaded = checkpoint.load_generator_from_workdir(str(tmp_path / 'old'),
                                                    which)
    assert loaded.step == 3 and loaded.phase == 'gan'
    jax.tree.map(np.testing.assert_array_equal, loaded.variables['params'],
                 ema)
    sr = loaded.module.apply(loaded.variables, np.zeros((1, 5, 6, 3)))
    assert sr.shape == (1, 20, 24, 3)
  assert checkpoint.run_phases(str(tmp_path / 'old')) == ['psnr', 'gan']
  # Its single best checkpoint (step 3) is filed under the GAN phase.
  assert checkpoint.load_generator_from_workdir(
      str(tmp_path / 'old'), 'best', 'gan').step == 3
  with pytest.raises(FileNotFoundError, match="phase 'psnr'"):
    checkpoint.load_generator_from_workdir(str(tmp_path / 'old'), 'best',
                                           'psnr')


@pytest.mark.parametrize('generator', ['raw', 'ema', None])
def test_best_checkpoint_loads_the_generator_that_won(tmp_path, generator):
  config = config_lib.base_config()
  config.gan.steps = 0
  config = config_lib.apply_variant(config, 'runlocal')
  state = filled_train_state(config)
  saver = ckpt_lib.Checkpointer(str(tmp_path))
  if generator is None:  # A checkpoint from before best_weights: EMA.
    saver.save_best(1, state, 21.0, config, phase='psnr')
  else:
    saver.save_best(1, state, 21.0, config, phase='psnr',
                    generator=generator)
  saver.wait_until_finished()
  saver.close()
  loaded = ckpt_lib.load_generator_from_workdir(str(tmp_path))
  want = state.params if generator == 'raw' else state.ema_params
  for x, y in zip(jax.tree.leaves(loaded.variables['params']),
                  jax.tree.leaves(want['generator'])):
    np.testing.assert_array_equal(x, y)
  assert loaded.weights == (generator or 'ema')
  assert ('raw (non-EMA' in loaded.describe()) == (generator == 'raw')
