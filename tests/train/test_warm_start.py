"""The WDRN SRGAN's critic: the vgg19_feature discriminator's trunk is
loaded from the pretrained VGG19 file and never trained, the head trains;
weight clipping against its definition (RMSprop, the original WGAN's
critic optimizer: tests/test_trainer_design.py); srgan_wdrn trains through
main."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers.repo import load_config
from tests.helpers.repo import run_python
from sr_jax import optimizers
from sr_jax.train import state as ts
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import warm_start
from sr_jax.train.step import make_phase_step
from sr_jax.train.step import StepSettings


@pytest.mark.slow
def test_vgg19_trunk_is_loaded_and_frozen(random_vgg19_weights):
  from sr_jax.weights import params_io  # pylint: disable=g-import-not-at-top
  config = load_config('srgan_wdrn')
  config.frozen.vgg19 = random_vgg19_weights
  config.psnr.steps = 0
  recipe = recipe_lib.build_recipe(config)
  gan = recipe.phases[0]
  state = ts.init_train_state(recipe, jax.random.key(0), gan)
  before_load = state.params['discriminator']['trunk']
  state = warm_start.apply_frozen_submodules(config, recipe, state)
  trunk = state.params['discriminator']['trunk']
  pretrained = params_io.load_params(random_vgg19_weights)['params']
  assert set(trunk) == {'conv1_1', 'conv1_2', 'conv2_1', 'conv2_2'}
  for name, layer in trunk.items():
    np.testing.assert_array_equal(layer['kernel'],
                                  pretrained[name]['kernel'])
    assert not np.array_equal(layer['kernel'], before_load[name]['kernel'])
  # No optimizer state for the frozen part: it is not trained at all.
  opt_leaves = sum(x.size for x in jax.tree.leaves(
      state.opt_state['discriminator']))
  head = sum(x.size for x in jax.tree.leaves(
      state.params['discriminator']['head']))
  assert opt_leaves < 3 * head + 10
  step = jax.jit(make_phase_step(recipe, gan,
                                 StepSettings.from_config(config)))
  batch = {'hr': np.random.default_rng(0).integers(
      0, 256, (4, 32, 32, 3), np.uint8)}
  start = jax.tree.map(np.asarray, state.params['discriminator'])
  for _ in range(2):
    state, metrics = step(state, batch, {'vgg19': {'params': pretrained}})
  assert float(metrics['l_d_gp']) > 0
  after = state.params['discriminator']
  jax.tree.map(np.testing.assert_array_equal, after['trunk'], start['trunk'])
  assert not np.allclose(after['head']['dense']['kernel'],
                         start['head']['dense']['kernel'])


@pytest.mark.slow
def test_missing_trunk_weights_stop_the_run_or_warn_in_the_demo(tmp_path,
                                                                 capsys):
  from sr_jax import weights  # pylint: disable=g-import-not-at-top
  config = load_config('srgan_wdrn')
  config.frozen.vgg19 = str(tmp_path / 'none.npz')
  config.psnr.steps = 0
  recipe = recipe_lib.build_recipe(config)
  state = ts.init_train_state(recipe, jax.random.key(0))
  with pytest.raises((weights.WeightsNotFoundError, FileNotFoundError)):
    warm_start.apply_frozen_submodules(config, recipe, state)
  config.frozen_drop_if_missing = True
  kept = warm_start.apply_frozen_submodules(config, recipe, state)
  assert 'RANDOM initialisation' in capsys.readouterr().out
  jax.tree.map(np.testing.assert_array_equal, kept.params, state.params)


def test_weight_clip_bounds_the_parameters_after_each_update():
  tx, _ = optimizers.build_optimizer(dict(name='adam', lr=0.5,
                                          weight_clip=0.01))
  params = {'w': jnp.array([0.005, -0.5, 0.3, 0.0])}
  state = tx.init(params)
  grads = {'w': jnp.array([-1.0, 1.0, -1.0, 1e-3])}
  updates, state = tx.update(grads, state, params)
  new = np.asarray(params['w'] + updates['w'])
  np.testing.assert_allclose(new, [0.01, -0.01, 0.01, -0.01], atol=1e-7)
  with pytest.raises(ValueError, match='weight_clip'):
    optimizers.build_optimizer(dict(name='adam', lr=0.5, weight_clip=-1))


@pytest.mark.slow
def test_srgan_wdrn_runlocal_trains_with_the_gradient_penalty(
    tmp_path, random_vgg19_weights):
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/srgan_wdrn.py:runlocal',
       f'--workdir={tmp_path / "run"}',
       f'--config.frozen.vgg19={random_vgg19_weights}'])
  output = result.stdout + result.stderr
  assert result.returncode == 0, output
  assert 'Done at step 2' in result.stdout, output
  gan = result.stdout.split('[gan]')[1]
  for name in ('l_d_gp', 'l_g_gan', 'l_g_percep', 'out_d_real'):
    assert name in gan, (name, output)
  assert '[eval] step 2 | EMA PSNR' in result.stdout
