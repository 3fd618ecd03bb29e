"""Tiny model sizes, and variables with the right shapes drawn in numpy
(without compiling the initialisers)."""
import math

import jax
import jax.numpy as jnp
import numpy as np

TINY_RRDB = dict(num_feat=8, num_block=1, num_grow_ch=4)


TINY_SRRESNET = dict(num_feat=8, num_block=1)


def abstract_variables(module, *shape, **kwargs):
  return jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros(shape), **kwargs))


def random_variables(module, *shape, seed=0, **kwargs):
  """Random variables with the right shapes, without compiling the init.

  Random init under jit is slow to compile on CPU (threefry per parameter);
  shapes from eval_shape plus numpy noise test the same forward pass.
  """
  rng = np.random.default_rng(seed)

  def fill(path, leaf):
    if path[-1].key == 'var':  # BatchNorm variance must be positive.
      return rng.uniform(0.5, 1.5, leaf.shape).astype(np.float32)
    return (0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(
      fill, abstract_variables(module, *shape, **kwargs))


def count(tree):
  return sum(math.prod(x.shape) for x in jax.tree.leaves(tree))


def image(*shape, seed=1):
  return jnp.asarray(np.random.default_rng(seed).uniform(0, 1, shape),
                     jnp.float32)
