"""The generator's EMA: its warm-up, validating the raw weights too, and a
best checkpoint that keeps whichever generator validated better."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers.runs import filled_train_state
from tests.helpers.repo import load_config
from sr_jax import checkpoint as ckpt_lib
from sr_jax.train import checks as config_checks
from sr_jax.train import config_lib
from sr_jax import evaluate as eval_lib
from sr_jax.train import state as ts
from sr_jax.train import recipe as recipe_lib
from sr_jax.train.step import ema_decay_schedule
from sr_jax.train.step import make_phase_step
from sr_jax.train.step import StepSettings


def _ema_pytorch_decay(step, beta, update_after_step, power):
  """lucidrains' ema_pytorch EMA.get_current_decay (inv_gamma 1,
  min_value 0), as traiNNer-redux configures it, for its `step`-th update:
  the EMA copies the model while step <= update_after_step."""
  if step <= update_after_step:
    return 0.0
  epoch = max(step - update_after_step - 1, 0)
  if epoch <= 0:
    return 0.0
  return float(np.clip(1 - (1 + epoch) ** -power, 0.0, beta))


@pytest.mark.parametrize('after, power', [(0, 2 / 3), (100, 2 / 3),
                                          (0, 0.75), (5, 1.0)])
def test_warm_up_is_ema_pytorch_decay(after, power):
  schedule = jax.jit(ema_decay_schedule(0.999, after, power))
  steps = np.arange(1, 40_001, 37)
  got = np.asarray(jax.vmap(schedule)(jnp.asarray(steps)))
  want = np.array([_ema_pytorch_decay(k, 0.999, after, power)
                   for k in steps])
  np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
  assert got[0] == 0.0 and got.max() == np.float32(0.999)


def test_no_warm_up_is_basicsr_constant_decay():
  # A Python float, so 1 - decay is BasicSR's (computed in double).
  assert ema_decay_schedule(0.999)(jnp.int32(1)) == 0.999
  copy_until_3 = ema_decay_schedule(0.99, update_after_step=3)
  assert [float(copy_until_3(k)) for k in (1, 3, 4, 10)] == [
      0.0, 0.0, np.float32(0.99), np.float32(0.99)]
  with pytest.raises(ValueError, match='ema_power'):
    ema_decay_schedule(0.999, power=-1.0)


@pytest.mark.slow
def test_the_step_copies_then_averages():
  config = load_config('rrdb_psnr')
  config.ema_decay = 0.9
  config.ema_update_after_step = 2
  recipe = recipe_lib.build_recipe(config)
  phase = recipe.phases[0]
  step = jax.jit(make_phase_step(recipe, phase,
                                 StepSettings.from_config(config)))
  state = ts.init_train_state(recipe, jax.random.key(0))
  hr = np.random.default_rng(0).integers(
      0, 256, (config.batch_size, config.data.gt_size, config.data.gt_size,
               3), np.uint8)
  leaves = lambda tree: [np.asarray(x) for x in jax.tree.leaves(tree)]
  for _ in range(2):  # Steps 1 and 2: the EMA is a copy.
    state, _ = step(state, {'hr': hr}, {})
    for e, p in zip(leaves(state.ema_params['generator']),
                    leaves(state.params['generator'])):
      np.testing.assert_array_equal(e, p)
  before = leaves(state.ema_params['generator'])
  state, _ = step(state, {'hr': hr}, {})  # Step 3: decay 0.9.
  moved = 0
  for e, b, p in zip(leaves(state.ema_params['generator']), before,
                     leaves(state.params['generator'])):
    np.testing.assert_allclose(e, 0.9 * b + 0.1 * p, rtol=1e-6, atol=1e-7)
    moved += int(not np.array_equal(e, p))
  assert moved  # No longer a copy.


def test_pick_best():
  values = {'psnr': 30.0, 'psnr_raw': 30.2, 'lpips': 0.20,
            'lpips_raw': 0.25}
  assert eval_lib.pick_best(values, 'psnr', True, 'better') == (30.2, 'raw')
  assert eval_lib.pick_best(values, 'psnr', True, 'ema') == (30.0, 'ema')
  assert eval_lib.pick_best(values, 'psnr', True, 'raw') == (30.2, 'raw')
  # Lower is better for LPIPS: the EMA's 0.20 wins.
  assert eval_lib.pick_best(values, 'lpips', False, 'better') == (0.20, 'ema')
  # Without a raw score (ema_decay 0) the EMA's counts, whatever asked.
  assert eval_lib.pick_best({'psnr': 29.0}, 'psnr', True, 'raw') == (
      29.0, 'ema')
  with pytest.raises(ValueError, match='best_weights'):
    eval_lib.pick_best(values, 'psnr', True, 'newest')


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


def test_bad_ema_settings_are_config_errors():
  for field, value, match in (('best_weights', 'latest', 'best_weights'),
                              ('ema_power', -0.5, 'ema_power'),
                              ('ema_decay', 1.0, 'ema_decay')):
    config = load_config('rrdb_psnr')
    config[field] = value
    with pytest.raises(config_checks.ConfigError, match=match):
      config_checks.check_config(config)
