"""sr_jax.train.warm_start: what a run starts from: generator.init_from (a
converted file, a .pth, a workdir's EMA generator), frozen networks and
submodules (the WDRN SRGAN critic's VGG19 trunk, loaded and never
trained), their flipped kernels on the CPU."""
import importlib.util
import os

import jax
import numpy as np
import pytest
import torch

from sr_jax import weights
from sr_jax.tools import bench
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from sr_jax.train import warm_start
from sr_jax.train.step import make_phase_step
from tests.helpers.checkpoints import _legacy_workdir
from tests.helpers.checkpoints import TINY
from tests.helpers.repo import load_config
from tests.helpers.repo import REPO
from tests.helpers.torch_nets import assert_same_variables
from tests.helpers.torch_nets import TorchRRDBNet
from tests.helpers.torch_nets import TorchSRVGG


@pytest.mark.slow
def test_vgg19_trunk_is_loaded_and_frozen(random_vgg19_weights):
  from sr_jax.weights import params_io  # pylint: disable=g-import-not-at-top
  config = load_config('srgan_wdrn')
  config.frozen.vgg19 = random_vgg19_weights
  config.psnr.steps = 0
  recipe = recipe_lib.Recipe.from_config(config)
  gan = recipe.phases[0]
  state = ts.init_train_state(recipe, jax.random.key(0), gan)
  before_load = state.params['discriminator']['trunk']
  state = warm_start.apply_frozen_submodules(recipe, state)
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
                                 recipe.settings.step))
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
  recipe = recipe_lib.Recipe.from_config(config)
  state = ts.init_train_state(recipe, jax.random.key(0))
  with pytest.raises((weights.WeightsNotFoundError, FileNotFoundError)):
    warm_start.apply_frozen_submodules(recipe, state)
  config.frozen_drop_if_missing = True
  kept = warm_start.apply_frozen_submodules(
      recipe_lib.Recipe.from_config(config), state)
  assert 'RANDOM initialisation' in capsys.readouterr().out
  jax.tree.map(np.testing.assert_array_equal, kept.params, state.params)


@pytest.mark.slow
def test_init_from_a_workdir_starts_from_its_ema_generator(tmp_path):
  ema = _legacy_workdir(str(tmp_path / 'old'))
  config = load_config('rrdb_psnr')
  config.generator.init_from = str(tmp_path / 'old')
  recipe = recipe_lib.Recipe.from_config(config)
  state = warm_start.apply_init_from(recipe,
                             ts.init_train_state(recipe, jax.random.key(0)))
  jax.tree.map(np.testing.assert_array_equal,
               jax.device_get(state.params['generator']), ema)
  jax.tree.map(np.testing.assert_array_equal,
               jax.device_get(state.ema_params['generator']), ema)
  # Parameters and EMA have buffers of their own: the step donates both
  # (one buffer donated twice fails at the first step).
  pointers = lambda tree: {x.unsafe_buffer_pointer()
                           for x in jax.tree.leaves(tree)}
  assert not pointers(state.params['generator']) & pointers(
      state.ema_params['generator'])
  config.generator.kwargs = dict(TINY, num_feat=16)  # Does not fit.
  recipe = recipe_lib.Recipe.from_config(config)
  with pytest.raises(ValueError, match='shape mismatches'):
    warm_start.apply_init_from(recipe,
                       ts.init_train_state(recipe, jax.random.key(0)))


def psnr_config(**generator):
  # Not test_train.load_config: importing sr_jax.train.loop loads TensorFlow.
  spec = importlib.util.spec_from_file_location(
      'configs_rrdb_psnr', os.path.join(REPO, 'configs', 'rrdb_psnr.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('runlocal')  # RRDBNet nf 8, 1 block, gc 4.
  config.generator.update(generator)
  return config


def init_state(config):
  from sr_jax.train import recipe as recipe_lib
  from sr_jax.train import state as ts  # pylint: disable=g-import-not-at-top
  from sr_jax.train import warm_start
  recipe = recipe_lib.Recipe.from_config(config)
  init = jax.jit(lambda rng: ts.init_train_state(recipe, rng))
  # As train.py does on a fresh start (never on resume).
  return warm_start.apply_init_from(recipe, init(jax.random.key(0)))


@pytest.mark.slow
def test_init_from_converted_file_and_pth(tmp_path):
  torch.manual_seed(3)
  src = tmp_path / 'g.pth'
  torch.save({'params_ema': TorchRRDBNet(4, nb=1).state_dict()}, src)
  npz = tmp_path / 'g.npz'
  weights.convert_file('rrdbnet', src, npz)
  expected = weights.load_converted(npz)[2]['params']
  # A jitted init, as train.py runs it, starts from exactly these params
  # (a random init would differ everywhere).
  state = init_state(psnr_config(init_from=str(npz)))
  assert int(state.step) == 0
  assert_same_variables(jax.device_get(state.params['generator']), expected)
  assert_same_variables(jax.device_get(state.ema_params['generator']),
                        expected)
  # The .pth itself works too (converted on the fly as generator.name).
  state = init_state(psnr_config(init_from=str(src)))
  assert_same_variables(jax.device_get(state.params['generator']), expected)
  # Without init_from the init is random: the test above can fail.
  random_state = init_state(psnr_config())
  with pytest.raises(AssertionError):
    assert_same_variables(jax.device_get(random_state.params['generator']),
                          expected)


@pytest.mark.slow
def test_init_from_mismatch_names_params_and_both_sides(tmp_path):
  torch.manual_seed(4)
  npz = tmp_path / 'x2.npz'
  weights.save_converted(
      npz, 'rrdbnet', weights.convert_state_dict(
          'rrdbnet', TorchRRDBNet(2, nb=2).state_dict()), {'scale': 2})
  with pytest.raises(ValueError) as info:
    init_state(psnr_config(init_from=str(npz)))
  message = str(info.value)
  for needle in (str(npz), "name='rrdbnet'", 'scale=4', "'num_block': 1",
                 'params/conv_first/kernel: file (3, 3, 12, 8) vs model '
                 '(3, 3, 3, 8)', "in the file but not in the model: "
                 "['params/body_1/"):
    assert needle in message, (needle, message)
  srvgg = tmp_path / 'srvgg.npz'
  variables, kwargs = weights.convert_with_config(
      'srvgg', TorchSRVGG().state_dict())
  weights.save_converted(srvgg, 'srvgg', variables, kwargs)
  with pytest.raises(ValueError, match="converted as 'srvgg'.*not 'rrdbnet'"):
    init_state(psnr_config(init_from=str(srvgg)))


@pytest.mark.slow  # Initialises a whole random VGG19 (not-slow budget).
def test_load_aux_gives_frozen_networks_their_flipped_kernels_on_the_cpu():
  config = bench.compare_config(gan_batch=2, gan_gt_size=32, gan_blocks=1,
                                num_feat=8)
  aux, missing = warm_start.load_aux(recipe_lib.Recipe.from_config(config),
                                     random=True)
  assert not missing
  vgg = aux['vgg19']
  np.testing.assert_array_equal(
      vgg['flipped']['conv1_2']['kernel'],
      np.asarray(vgg['params']['conv1_2']['kernel'])[::-1, ::-1]
      .swapaxes(2, 3))
