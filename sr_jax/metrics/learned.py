"""What LPIPS and DISTS share: a jitted distance of two image batches
through a network's `features` and `distance` methods, and the per-image
metric on uint8 images with one jitted function per set of weights."""
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np


def make_feature_distance_fn(module, variables: Any, what: str
                             ) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """fn(x, y) -> [N] distances of `module` (with `features(x)` and
  `distance(fx, fy)` methods), `variables` bound.

  x, y: [N, H, W, 3] float in [0, 1] (uint8 is refused: divide by 255).
  x and y go through the same jitted feature function one after the other:
  half the peak memory of one pass over both, and bitwise-equal features
  for equal images, so fn(x, x) is exact and fn symmetric. Full float32
  convolutions ('highest' precision) even where the default is TF32 / bf16
  passes (GPU, TPU): a reported metric should not depend on the
  accelerator. Each new image shape compiles once.
  """

  @jax.jit
  def features(v, x):
    with jax.default_matmul_precision('highest'):
      return module.apply(v, x, method='features')

  @jax.jit
  def distance(v, fx, fy):
    with jax.default_matmul_precision('highest'):
      return module.apply(v, fx, fy, method='distance')

  def fn(x, y):
    x, y = jnp.asarray(x), jnp.asarray(y)
    if not (jnp.issubdtype(x.dtype, jnp.floating)
            and jnp.issubdtype(y.dtype, jnp.floating)):
      raise TypeError(f'{what} takes float images in [0, 1]; got {x.dtype} '
                      f'and {y.dtype} (divide uint8 images by 255).')
    if x.shape != y.shape:
      raise ValueError(f'{what} needs two batches of the same shape; got '
                       f'{x.shape} and {y.shape}.')
    return distance(variables, features(variables, x), features(variables, y))

  return fn


# (id(variables), key) -> (variables, fn): one jitted function per weights.
_CACHE: dict = {}


def image_distance(make_fn: Callable[[Any], Callable], key: str, sr, hr,
                   variables: Any) -> float:
  """make_fn(variables)'s distance of two uint8 HxWx3 images, as a float;
  the jitted function is made once per set of weights."""
  sr, hr = np.asarray(sr), np.asarray(hr)
  if sr.dtype != np.uint8 or hr.dtype != np.uint8:
    raise TypeError(f'{key} takes uint8 images; got {sr.dtype} and '
                    f'{hr.dtype}.')
  cache_key = (id(variables), key)
  if cache_key not in _CACHE or _CACHE[cache_key][0] is not variables:
    _CACHE[cache_key] = (variables, make_fn(variables))
  fn = _CACHE[cache_key][1]
  x = sr.astype(np.float32)[None] / 255.0
  y = hr.astype(np.float32)[None] / 255.0
  return float(np.asarray(fn(x, y))[0])
