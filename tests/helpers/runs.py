"""Tiny generators and training runs made without training (or compiling
their initialisation)."""
import glob
import os

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp

from sr_jax import models
from sr_jax.weights import params_io


def random_variables(module, seed=0):
  """Variables of a generator `module` drawn in numpy (no per-leaf XLA
  compiles): conv kernels N(0, 1/fan_in) so activations stay O(1) through
  any depth and outputs near [0, 1], and biases, PReLU slopes and BN
  statistics visibly non-trivial, so a truncated receptive field shows in
  the output."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(module.init, jax.random.key(0),
                          jnp.zeros((1, 16, 16, module.num_in_ch)))

  def draw(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      fan_in = int(np.prod(leaf.shape[:-1]))
      return rng.normal(0, fan_in ** -0.5, leaf.shape).astype(np.float32)
    offset = {'var': 1.0, 'scale': 1.0, 'negative_slope': 0.2}.get(name, 0.0)
    return (offset + 0.1 * np.abs(rng.normal(size=leaf.shape))).astype(
        np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def filled_train_state(config, std=1.0):
  """config's TrainState with N(0, std) values in every float leaf (the
  EMA distinct from the generator), made without compiling the real
  init."""
  from sr_jax.train import recipe as recipe_lib
  from sr_jax.train import state as ts  # pylint: disable=g-import-not-at-top
  abstract = jax.eval_shape(lambda: ts.init_train_state(
      recipe_lib.Recipe.from_config(config), jax.random.key(0)))
  rng = np.random.default_rng(0)

  def fill(leaf):
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      return jax.random.key(0)
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
      return jnp.zeros(leaf.shape, leaf.dtype)
    return jnp.asarray(std * rng.normal(size=leaf.shape), leaf.dtype)

  return jax.tree.map(fill, abstract)


def save_tiny_run(workdir, std=1.0):
  """A training workdir holding one best checkpoint (phase psnr, step 3)
  of a tiny x2 rrdbnet run, its state filled with N(0, std) values without
  compiling the real init; returns that state."""
  from sr_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from sr_jax.train import config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config()
  config.gan.steps = 0
  config = config_lib.apply_variant(config, 'runlocal')
  config.scale = 2
  state = filled_train_state(config, std)
  saver = checkpoint.Checkpointer(str(workdir))
  saver.save_best(3, state, 21.0, config, phase='psnr')
  saver.wait_until_finished()
  saver.close()
  return state


def _saved_states(workdir):
  """{step: all leaves finite} of every checkpoint in the workdir."""
  result = {}
  for path in sorted(glob.glob(os.path.join(workdir, 'checkpoints', '*'))):
    step = int(os.path.basename(path))
    tree = ocp.StandardCheckpointer().restore(os.path.join(path, 'state'))
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree)
              if jax.numpy.issubdtype(x.dtype, jax.numpy.floating)]
    result[step] = all(np.all(np.isfinite(x)) for x in leaves)
  return result


def write_weights(tmp_path, arch, **kwargs):
  module = models.get_generator(arch, **kwargs)
  variables = random_variables(module)
  path = tmp_path / f'{arch}.npz'
  params_io.save_params(path, variables)
  return module, variables, str(path)
