"""Workdirs written before phases: they load for inference and as
generator.init_from, and resuming one is refused with how to continue."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from tests.helpers.repo import load_config
from sr_jax import checkpoint
from sr_jax import models
from sr_jax.train import state as ts
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import warm_start

TINY = dict(num_feat=8, num_block=1, num_grow_ch=4)




def _legacy_workdir(path) -> dict:
  """A workdir as sr_jax wrote it before phases: a TrainState with g_/d_
  fields, best/<step>/ without a phase folder, the old config layout."""
  generator = models.get_generator('rrdbnet', scale=4, **TINY)
  params = generator.init(jax.random.key(3), jnp.zeros((1, 8, 8, 3)))[
      'params']
  ema = jax.tree.map(lambda p: p + 0.5, params)
  state = dict(step=jnp.asarray(3, jnp.int32), g_params=params,
               g_batch_stats={}, g_opt_state={'count': jnp.zeros(())},
               ema_params=ema, d_params={'w': jnp.ones(3)}, d_batch_stats={},
               d_opt_state={'count': jnp.zeros(())},
               rng=jax.random.key_data(jax.random.key(0)))
  config = dict(
      scale=4, dtype='float32', batch_size=4,
      generator=dict(name='rrdbnet', kwargs=TINY, init_from=''),
      discriminator=dict(name='vgg_style', kwargs=dict(num_feat=4)),
      psnr=dict(steps=2, pixel_loss='l1', lr=2e-4),
      gan=dict(steps=2, pixel_weight=1e-2, adversarial_loss='ragp'),
      perceptual=dict(vgg_weights=''), data=dict(gt_size=32))
  for sub, names in (('checkpoints', ('state', 'data', 'config')),
                     ('best', ('state', 'config'))):
    manager = ocp.CheckpointManager(
        os.path.join(path, sub),
        options=ocp.CheckpointManagerOptions(create=True),
        item_names=names)
    items = dict(state=ocp.args.StandardSave(state),
                 config=ocp.args.JsonSave(config))
    if 'data' in names:
      items['data'] = ocp.args.JsonSave({'next_index': 3})
    manager.save(3, args=ocp.args.Composite(**items))
    manager.wait_until_finished()
    manager.close()
  return jax.device_get(ema)


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


@pytest.mark.slow
def test_legacy_workdir_resume_is_refused_with_how_to_continue(tmp_path):
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  _legacy_workdir(str(tmp_path / 'old'))
  config = load_config('rrdb_psnr')
  with pytest.raises(checkpoint.CheckpointMismatchError,
                     match='generator.init_from='):
    train.train_and_evaluate(config, str(tmp_path / 'old'))


@pytest.mark.slow
def test_init_from_a_workdir_starts_from_its_ema_generator(tmp_path):
  ema = _legacy_workdir(str(tmp_path / 'old'))
  config = load_config('rrdb_psnr')
  config.generator.init_from = str(tmp_path / 'old')
  recipe = recipe_lib.build_recipe(config)
  state = warm_start.apply_init_from(config, recipe,
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
  recipe = recipe_lib.build_recipe(config)
  with pytest.raises(ValueError, match='shape mismatches'):
    warm_start.apply_init_from(config, recipe,
                       ts.init_train_state(recipe, jax.random.key(0)))
