"""DISTS (Ding et al. 2020, "Image Quality Assessment: Unifying Structure
and Texture Similarity"), as DISTS_pytorch 0.1 computes it.

  variables = weights.load_frozen('dists')   # sr_jax.weights
  d = dists(sr, hr, variables)               # uint8 HxWx3; lower is better

For x, y [N, H, W, 3] in [0, 1]:
  1. Features at six stages: the input itself (stage 0, not normalised) and
     torchvision VGG16's relu1_2, relu2_2, relu3_3, relu4_3, relu5_3 on the
     ImageNet-normalised input, with each 2x2 max-pool replaced by an L2
     pool: sqrt(conv(f^2, hanning) + 1e-12), a depthwise 3x3 filter (the
     outer product of [1/2, 1, 1/2], normalised to sum 1), stride 2, pad 1.
  2. Per stage and channel, over space: means mx, my, variances vx, vy and
     covariance cxy = mean(x y) - mx my; the texture term (of the means)
     S1 = (2 mx my + c1) / (mx^2 + my^2 + c1) and the structure term
     S2 = (2 cxy + c2) / (vx + vy + c2), c1 = c2 = 1e-6.
  3. DISTS = 1 - sum over the 3 + 64 + 128 + 256 + 512 + 512 = 1475 channels
     of (alpha S1 + beta S2) / (sum alpha + sum beta).

alpha and beta are the learned weights DISTS_pytorch ships (weights.pt);
they are in this package (data/dists_alpha_beta.npz; source and license in
data/dists_alpha_beta.NOTICE), so only the VGG16 weights need fetching:
`python -m sr_jax.weights fetch dists` (torchvision's vgg16-397923af.pth,
the file LPIPS (vgg) also uses).
"""
import pathlib
import re
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax.metrics import learned
from sr_jax.metrics import registry
from sr_jax.models import torch_layout as core
from sr_jax.models import vgg16 as vgg16_lib
from sr_jax.models import vgg19 as vgg19_lib
from sr_jax.models.layers import Conv

# Channels of the six stages (input, relu1_2 ... relu5_3).
CHANNELS = (3, 64, 128, 256, 512, 512)
STAGE_LAYERS = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3')
C1 = C2 = 1e-6
L2_POOL_EPS = 1e-12
# DISTS_pytorch's L2pooling(filter_size=5): np.hanning(5)[1:-1] =
# [0.5, 1, 0.5], outer product, normalised to sum 1 (exact in float32).
_HANNING = np.array([0.5, 1.0, 0.5])
L2_POOL_FILTER = np.outer(_HANNING, _HANNING) / np.outer(_HANNING,
                                                         _HANNING).sum()
# Same ImageNet statistics as torchvision / VGG19's perceptual loss.
IMAGENET_MEAN = vgg19_lib.IMAGENET_MEAN
IMAGENET_STD = vgg19_lib.IMAGENET_STD

ALPHA_BETA_FILE = pathlib.Path(__file__).parent / 'data' / \
    'dists_alpha_beta.npz'


def released_alpha_beta() -> dict[str, np.ndarray]:
  """{'alpha': [1475], 'beta': [1475]} float32: DISTS_pytorch 0.1's
  weights.pt, shipped as package data (data/dists_alpha_beta.NOTICE)."""
  with np.load(ALPHA_BETA_FILE, allow_pickle=False) as data:
    return {name: np.array(data[name], np.float32) for name in ('alpha',
                                                                'beta')}


def l2_pool(x: jax.Array) -> jax.Array:
  """DISTS's L2pooling: [N, H, W, C] -> [N, ceil(H/2), ceil(W/2), C]."""
  c = x.shape[-1]
  kernel = jnp.broadcast_to(
      jnp.asarray(L2_POOL_FILTER, x.dtype)[:, :, None, None], (3, 3, 1, c))
  y = jax.lax.conv_general_dilated(
      x * x, kernel, window_strides=(2, 2), padding=((1, 1), (1, 1)),
      dimension_numbers=('NHWC', 'HWIO', 'NHWC'), feature_group_count=c)
  return jnp.sqrt(y + L2_POOL_EPS)


def _block_channels(conv_name: str) -> int:
  # VGG16's blocks: 64, 128, 256, 512, 512 channels ('conv3_2' -> 256).
  return CHANNELS[int(conv_name[4])]


class L2PoolVGG16(nn.Module):
  """VGG16 `features` up to relu5_3 with L2 pooling between the blocks:
  x (ImageNet-normalised) -> [relu1_2, relu2_2, relu3_3, relu4_3, relu5_3].
  Parameters 'conv1_1'..'conv5_3' as in models.vgg16.VGG16."""
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> list[jax.Array]:
    outs = []
    block = 1
    for name in vgg16_lib.CONV_NAMES:
      if int(name[4]) != block:  # A new block: pool the previous one.
        x = l2_pool(x)
        block = int(name[4])
      x = nn.relu(Conv(_block_channels(name), 3, dtype=self.dtype,
                       param_dtype=self.param_dtype, name=name)(x))
      if f'relu{name[4:]}' in STAGE_LAYERS:
        outs.append(x.astype(jnp.float32))
    return outs


class DISTS(nn.Module):
  """DISTS distance: x, y [N, H, W, 3] float in [0, 1] -> [N] float32.

  Variables: {'params': {'vgg': {'conv1_1'..'conv5_3': {'kernel', 'bias'}},
  'alpha': [1475], 'beta': [1475]}} (convert_torch; the frozen network
  'dists'). `__call__` runs the backbone once on [x; y]; it equals
  `distance(features(x), features(y))`, which make_dists_fn uses.
  """
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def setup(self):
    self.vgg = L2PoolVGG16(dtype=self.dtype, param_dtype=self.param_dtype)
    init = lambda key, shape, dtype: 0.1 + 0.01 * jax.random.normal(
        key, shape, dtype)  # DISTS_pytorch's normal_(0.1, 0.01).
    self.alpha = self.param('alpha', init, (sum(CHANNELS),),
                            self.param_dtype)
    self.beta = self.param('beta', init, (sum(CHANNELS),), self.param_dtype)

  def features(self, x: jax.Array) -> list[jax.Array]:
    """x [N, H, W, 3] in [0, 1] -> the six stages' [N, h, w, C] features."""
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'DISTS expects [N, H, W, 3] images; got {x.shape}.')
    x = x.astype(jnp.float32)
    h = (x - jnp.array(IMAGENET_MEAN)) / jnp.array(IMAGENET_STD)
    return [x] + self.vgg(h.astype(self.dtype))

  def distance(self, fx: list[jax.Array], fy: list[jax.Array]) -> jax.Array:
    """Features of x and y (from `features`) -> [N] DISTS."""
    s1, s2 = [], []
    for a, b in zip(fx, fy):
      mx = jnp.mean(a, axis=(1, 2))
      my = jnp.mean(b, axis=(1, 2))
      vx = jnp.mean((a - mx[:, None, None]) ** 2, axis=(1, 2))
      vy = jnp.mean((b - my[:, None, None]) ** 2, axis=(1, 2))
      cxy = jnp.mean(a * b, axis=(1, 2)) - mx * my
      s1.append((2 * mx * my + C1) / (mx ** 2 + my ** 2 + C1))
      s2.append((2 * cxy + C2) / (vx + vy + C2))
    total = jnp.sum(self.alpha) + jnp.sum(self.beta)
    alpha, beta = self.alpha / total, self.beta / total
    return 1 - (jnp.concatenate(s1, -1) @ alpha
                + jnp.concatenate(s2, -1) @ beta)

  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    if x.shape != y.shape:
      raise ValueError(f'DISTS needs two batches of the same shape; got '
                       f'{x.shape} and {y.shape}.')
    n = x.shape[0]
    feats = self.features(jnp.concatenate([x, y]))
    return self.distance([f[:n] for f in feats], [f[n:] for f in feats])


def make_dists_fn(variables: Any
                  ) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """fn(x, y) -> [N] float32 DISTS distances, with `variables` bound.

  x, y: [N, H, W, 3] float in [0, 1]; see
  learned.make_feature_distance_fn (as make_lpips_fn).
  """
  return learned.make_feature_distance_fn(DISTS(), variables, 'DISTS')


def dists(sr: np.ndarray, hr: np.ndarray, variables: Any) -> float:
  """DISTS of two uint8 HxWx3 RGB images (whole images, as DISTS_pytorch
  computes it; no resize). Lower is better: 0 for identical images."""
  return learned.image_distance(make_dists_fn, 'dists', sr, hr, variables)


@registry.register('dists', higher_is_better=False, frozen='dists')
def dists_metric(sr, hr, crop_border, variables) -> float:
  """DISTS on the whole image (no border crop, as for LPIPS)."""
  del crop_border
  return dists(sr, hr, variables)


# ------------------------------------------------------------ conversion --

_CONV_AT = {i: name for name, i in vgg16_lib.TORCHVISION_INDEX.items()}
# torchvision 'features.3.weight' or DISTS_pytorch 'stage1.2.weight' (which
# keeps torchvision's index): the VGG16 conv at that index.
_CONV_KEY = re.compile(r'^(?:features|stage\d)\.(\d+)\.(weight|bias)$')
_FILTER_KEY = re.compile(r'^stage\d\.(\d+)\.filter$')
_ALPHA_BETA_SHAPE = (1, sum(CHANNELS), 1, 1)


def convert_torch(sd: core.StateDict, **kwargs) -> core.Converted:
  """A DISTS_pytorch `DISTS().state_dict()` (keys 'stage{s}.{i}.weight',
  'alpha', 'beta' [1, 1475, 1, 1], buffers 'mean', 'std',
  'stage{s}.{i}.filter') or torchvision's vgg16 ('features.{i}.weight';
  'classifier.*' ignored) -> DISTS variables.

  Without 'alpha' and 'beta' (torchvision's file) the released ones are
  used (released_alpha_beta). The buffers, when present, must be DISTS's
  constants. Raises ValueError naming missing, unexpected and mis-shaped
  keys (PyTorch names and layouts).
  """
  if kwargs:
    raise ValueError(f'dists conversion takes no options; got {kwargs}.')
  flat, torch_key, unexpected, problems = {}, {}, [], []
  if 'alpha' not in sd and 'beta' not in sd:
    sd = dict(sd, **{k: v.reshape(_ALPHA_BETA_SHAPE)
                     for k, v in released_alpha_beta().items()})
  for key, array in sd.items():
    array = np.asarray(array)
    if key.startswith('classifier.') or key.endswith('.num_batches_tracked'):
      continue
    if key in ('mean', 'std'):
      expected = IMAGENET_MEAN if key == 'mean' else IMAGENET_STD
      if not np.allclose(array.ravel(), expected, atol=1e-6):
        problems.append(f'{key} is {array.ravel().tolist()}, not '
                        f'{list(expected)}')
      continue
    if m := _FILTER_KEY.match(key):
      channels = array.shape[0] if array.ndim == 4 else -1
      if array.shape[1:] != (1, 3, 3) or not np.allclose(
          array, L2_POOL_FILTER[None, None], atol=1e-7):
        problems.append(f'{key} (shape {array.shape}) is not the L2 pooling '
                        f'filter of {channels} channels')
      continue
    if key in ('alpha', 'beta'):
      path, shape = ('params', key), _ALPHA_BETA_SHAPE
      if array.shape != shape:
        problems.append(f'{key}: got {array.shape}, expected {shape}')
        continue
      array = array.reshape(-1)
    elif (m := _CONV_KEY.match(key)) and int(m.group(1)) in _CONV_AT:
      leaf = 'kernel' if m.group(2) == 'weight' else 'bias'
      path = ('params', 'vgg', _CONV_AT[int(m.group(1))], leaf)
      array = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
    else:
      unexpected.append(key)
      continue
    flat[path] = array
    torch_key[path] = key

  like = _template()
  missing = sorted(_torch_name(p) for p in like if p not in flat)
  mismatched = [
      f'{torch_key[p]}: got {_torch_shape(flat[p].shape)}, expected '
      f'{_torch_shape(shape)}'
      for p, shape in like.items()
      if p in flat and flat[p].shape != tuple(shape)]
  problems += core.key_problems(missing, unexpected, mismatched)
  if problems:
    raise ValueError('State dict does not match DISTS (torchvision vgg16 '
                     'features + alpha / beta); ' + '; '.join(problems) + '.')
  return core.nest({p: flat[p] for p in like}), {}


def _template() -> dict[tuple[str, ...], tuple[int, ...]]:
  """{('params', ..., leaf): shape} of DISTS, computed abstractly."""
  x = jnp.zeros((1, 16, 16, 3))
  variables = jax.eval_shape(lambda: DISTS().init(jax.random.key(0), x, x))
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  return {tuple(k.key for k in path): leaf.shape for path, leaf in flat}


def _torch_name(path: tuple[str, ...]) -> str:
  if path[1] in ('alpha', 'beta'):
    return path[1]
  leaf = 'weight' if path[-1] == 'kernel' else 'bias'
  return f'features.{vgg16_lib.TORCHVISION_INDEX[path[2]]}.{leaf}'


def _torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  if len(shape) == 4:  # HWIO -> OIHW.
    return (shape[3], shape[2], shape[0], shape[1])
  return tuple(shape)
