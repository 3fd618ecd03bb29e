"""Checkpoints written for the tests: tiny states (random arrays, so a
damaged file hits array data), a workdir of three, one flipped bit, and a
workdir as sr_jax wrote it before phases."""
import glob
import os

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import orbax.checkpoint as ocp

from sr_jax import checkpoint
from sr_jax import models

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


def _tiny_state(value=1):
  """Random (incompressible) arrays: a damaged file hits array data."""
  w = np.random.default_rng(value).standard_normal((64, 64))
  return {'params': {'w': w.astype(np.float32),
                     'b': np.arange(16, dtype=np.float32) * value},
          'step': np.int32(value), 'rng': jax.random.key(value)}


def _three_checkpoints(workdir):
  config = ml_collections.ConfigDict({'phases': ('psnr',),
                                      'psnr': {'steps': 10}})
  saver = checkpoint.Checkpointer(workdir, keep=5)
  for step in (1, 2, 3):
    saver.save(step, _tiny_state(step), {'next_index': step}, config,
               metrics={'val/psnr': 20.0 + step})
  saver.wait_until_finished()
  saver.close()


def _biggest_array_file(step_dir):
  files = glob.glob(os.path.join(step_dir, 'state', 'ocdbt.process_0', 'd',
                                 '*'))
  return max(files, key=os.path.getsize)


def _flip_a_bit(step_dir):
  path = _biggest_array_file(step_dir)
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0x04
  open(path, 'wb').write(bytes(data))
