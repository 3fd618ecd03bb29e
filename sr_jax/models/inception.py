"""The FID network: pytorch-fid's InceptionV3, 2048-d pool3 features.

Heusel et al.'s FID (TTUR, 2017) reads the final average pool of the
TensorFlow Inception graph `inception-2015-12-05`; pytorch-fid ports those
weights (`pt_inception-2015-12-05-6726825d.pth`) to torchvision's Inception3
(num_classes=1008, no aux head) with the blocks patched to compute what the
TensorFlow graph computes:

  * every conv is torchvision's BasicConv2d: conv without bias, BatchNorm
    (eps 1e-3, running statistics), ReLU;
  * InceptionA / C / E_1 ('Mixed_5b'-'5d', '6b'-'6e', '7b') average-pool
    their pool branch 3x3 / stride 1 / pad 1 without counting the padding
    (count_include_pad=False);
  * InceptionE_2 ('Mixed_7c') max-pools its pool branch (3x3 / 1 / 1);
  * InceptionB / D ('Mixed_6a', '7a') are torchvision's, unchanged.

Input: images in [0, 1], resized to 299x299 bilinearly (F.interpolate,
align_corners=False, no antialiasing) and mapped to [-1, 1]; output: the
global average of Mixed_7c, [N, 2048].

Module and parameter names are the PyTorch ones ('Mixed_6e' /
'branch7x7dbl_3' / 'conv' | 'bn'), so `convert_torch` maps pytorch-fid's
file key by key (its 'fc' classifier is not part of the feature network).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax.models import torch_layout as core

FID_INPUT_SIZE = 299
# Smallest H and W the trunk (resize_input=False) takes: 75 -> ... -> 1x1
# after Mixed_7a.
MIN_INPUT_SIZE = 75
FEATURE_DIM = 2048
BN_EPSILON = 1e-3  # torchvision's BasicConv2d.


def resize_bilinear(x: jax.Array, size: int) -> jax.Array:
  """F.interpolate(x, (size, size), mode='bilinear', align_corners=False) in
  NHWC: half-pixel centres, edge samples clamped, no antialiasing (also when
  down-sampling). x: [N, H, W, C] float -> [N, size, size, C]."""
  n, h, w, c = x.shape
  if (h, w) == (size, size):
    return x  # What the interpolation computes: the same samples.
  return jax.image.resize(x, (n, size, size, c), 'bilinear', antialias=False)


class BasicConv(nn.Module):
  """torchvision's BasicConv2d: conv (no bias) -> BatchNorm -> ReLU."""
  features: int
  kernel_size: tuple[int, int]
  strides: int = 1
  padding: tuple[int, int] = (0, 0)
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    ph, pw = self.padding
    x = nn.Conv(self.features, self.kernel_size, strides=self.strides,
                padding=((ph, ph), (pw, pw)), use_bias=False,
                dtype=self.dtype, param_dtype=self.param_dtype,
                name='conv')(x)
    x = nn.BatchNorm(use_running_average=True, epsilon=BN_EPSILON,
                     dtype=self.dtype, param_dtype=self.param_dtype,
                     name='bn')(x)
    return nn.relu(x)


class _Block(nn.Module):
  """Shared by the Inception blocks: `conv(name, features, kernel, ...)`."""
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def conv(self, name, features, kernel, strides=1, padding=(0, 0)):
    if isinstance(kernel, int):
      kernel = (kernel, kernel)
    return BasicConv(features, kernel, strides, padding, dtype=self.dtype,
                     param_dtype=self.param_dtype, name=name)


def _avg_pool_3x3(x):
  # TensorFlow's average pool: the padded zeros are not counted.
  return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)),
                     count_include_pad=False)


def _max_pool_3x3_stride2(x):
  return nn.max_pool(x, (3, 3), strides=(2, 2), padding='VALID')


class FIDInceptionA(_Block):
  """Mixed_5b..5d: 64 + 64 + 96 + pool_features channels."""
  pool_features: int = 32

  @nn.compact
  def __call__(self, x):
    b1 = self.conv('branch1x1', 64, 1)(x)
    b5 = self.conv('branch5x5_1', 48, 1)(x)
    b5 = self.conv('branch5x5_2', 64, 5, padding=(2, 2))(b5)
    b3 = self.conv('branch3x3dbl_1', 64, 1)(x)
    b3 = self.conv('branch3x3dbl_2', 96, 3, padding=(1, 1))(b3)
    b3 = self.conv('branch3x3dbl_3', 96, 3, padding=(1, 1))(b3)
    bp = self.conv('branch_pool', self.pool_features, 1)(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(_Block):
  """Mixed_6a: grid reduction, 384 + 96 + C_in channels."""

  @nn.compact
  def __call__(self, x):
    b3 = self.conv('branch3x3', 384, 3, strides=2)(x)
    bd = self.conv('branch3x3dbl_1', 64, 1)(x)
    bd = self.conv('branch3x3dbl_2', 96, 3, padding=(1, 1))(bd)
    bd = self.conv('branch3x3dbl_3', 96, 3, strides=2)(bd)
    return jnp.concatenate([b3, bd, _max_pool_3x3_stride2(x)], axis=-1)


class FIDInceptionC(_Block):
  """Mixed_6b..6e: factorised 7x7 convs, 4 x 192 channels."""
  channels_7x7: int = 128

  @nn.compact
  def __call__(self, x):
    c7 = self.channels_7x7
    b1 = self.conv('branch1x1', 192, 1)(x)
    b7 = self.conv('branch7x7_1', c7, 1)(x)
    b7 = self.conv('branch7x7_2', c7, (1, 7), padding=(0, 3))(b7)
    b7 = self.conv('branch7x7_3', 192, (7, 1), padding=(3, 0))(b7)
    bd = self.conv('branch7x7dbl_1', c7, 1)(x)
    bd = self.conv('branch7x7dbl_2', c7, (7, 1), padding=(3, 0))(bd)
    bd = self.conv('branch7x7dbl_3', c7, (1, 7), padding=(0, 3))(bd)
    bd = self.conv('branch7x7dbl_4', c7, (7, 1), padding=(3, 0))(bd)
    bd = self.conv('branch7x7dbl_5', 192, (1, 7), padding=(0, 3))(bd)
    bp = self.conv('branch_pool', 192, 1)(_avg_pool_3x3(x))
    return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(_Block):
  """Mixed_7a: grid reduction, 320 + 192 + C_in channels."""

  @nn.compact
  def __call__(self, x):
    b3 = self.conv('branch3x3_1', 192, 1)(x)
    b3 = self.conv('branch3x3_2', 320, 3, strides=2)(b3)
    b7 = self.conv('branch7x7x3_1', 192, 1)(x)
    b7 = self.conv('branch7x7x3_2', 192, (1, 7), padding=(0, 3))(b7)
    b7 = self.conv('branch7x7x3_3', 192, (7, 1), padding=(3, 0))(b7)
    b7 = self.conv('branch7x7x3_4', 192, 3, strides=2)(b7)
    return jnp.concatenate([b3, b7, _max_pool_3x3_stride2(x)], axis=-1)


class FIDInceptionE(_Block):
  """Mixed_7b (pool='avg', FIDInceptionE_1) and Mixed_7c (pool='max',
  FIDInceptionE_2): 320 + 768 + 768 + 192 = 2048 channels."""
  pool: str = 'avg'

  @nn.compact
  def __call__(self, x):
    b1 = self.conv('branch1x1', 320, 1)(x)
    b3 = self.conv('branch3x3_1', 384, 1)(x)
    b3 = jnp.concatenate([
        self.conv('branch3x3_2a', 384, (1, 3), padding=(0, 1))(b3),
        self.conv('branch3x3_2b', 384, (3, 1), padding=(1, 0))(b3)], axis=-1)
    bd = self.conv('branch3x3dbl_1', 448, 1)(x)
    bd = self.conv('branch3x3dbl_2', 384, 3, padding=(1, 1))(bd)
    bd = jnp.concatenate([
        self.conv('branch3x3dbl_3a', 384, (1, 3), padding=(0, 1))(bd),
        self.conv('branch3x3dbl_3b', 384, (3, 1), padding=(1, 0))(bd)],
                         axis=-1)
    if self.pool == 'avg':
      pooled = _avg_pool_3x3(x)
    else:  # The FID graph max-pools here (unlike the paper's Inception).
      pooled = nn.max_pool(x, (3, 3), strides=(1, 1),
                           padding=((1, 1), (1, 1)))
    bp = self.conv('branch_pool', 192, 1)(pooled)
    return jnp.concatenate([b1, b3, bd, bp], axis=-1)


class InceptionV3FID(nn.Module):
  """pytorch-fid's InceptionV3(output_blocks=[3]): [N, H, W, 3] -> [N, 2048].

  x: images in [0, 1] (any H, W with resize_input; else H, W >= 75 and
  already 299x299 for the FID protocol). resize_input: bilinear resize to
  299x299 first (resize_bilinear); normalize_input: v -> 2v - 1. Variables:
  'params' (conv kernels, BN scale / bias) and 'batch_stats' (BN running
  mean / var), converted from pytorch-fid's file by `convert_torch`.
  Returns float32 pool3 features (non-negative: the mean of ReLUs).
  """
  resize_input: bool = True
  normalize_input: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'InceptionV3FID expects [N, H, W, 3] images; got '
                       f'{x.shape}.')
    x = x.astype(jnp.float32)
    if self.resize_input:
      x = resize_bilinear(x, FID_INPUT_SIZE)
    elif min(x.shape[1:3]) < MIN_INPUT_SIZE:
      raise ValueError(
          f'InceptionV3FID needs H and W >= {MIN_INPUT_SIZE} without '
          f'resize_input; got {x.shape[1]}x{x.shape[2]}.')
    if self.normalize_input:
      x = 2 * x - 1
    x = x.astype(self.dtype)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)

    def conv(name, features, kernel, strides=1, padding=(0, 0)):
      return BasicConv(features, (kernel, kernel), strides, padding,
                       name=name, **kw)

    x = conv('Conv2d_1a_3x3', 32, 3, strides=2)(x)
    x = conv('Conv2d_2a_3x3', 32, 3)(x)
    x = conv('Conv2d_2b_3x3', 64, 3, padding=(1, 1))(x)
    x = _max_pool_3x3_stride2(x)
    x = conv('Conv2d_3b_1x1', 80, 1)(x)
    x = conv('Conv2d_4a_3x3', 192, 3)(x)
    x = _max_pool_3x3_stride2(x)
    for name, pool_features in (('Mixed_5b', 32), ('Mixed_5c', 64),
                                ('Mixed_5d', 64)):
      x = FIDInceptionA(pool_features=pool_features, name=name, **kw)(x)
    x = InceptionB(name='Mixed_6a', **kw)(x)
    for name, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160),
                     ('Mixed_6e', 192)):
      x = FIDInceptionC(channels_7x7=c7, name=name, **kw)(x)
    x = InceptionD(name='Mixed_7a', **kw)(x)
    x = FIDInceptionE(pool='avg', name='Mixed_7b', **kw)(x)
    x = FIDInceptionE(pool='max', name='Mixed_7c', **kw)(x)
    return jnp.mean(x.astype(jnp.float32), axis=(1, 2))


def convert_torch(sd: core.StateDict, **kwargs) -> core.Converted:
  """pytorch-fid's `pt_inception-2015-12-05-6726825d.pth` (torchvision
  Inception3 keys: 'Mixed_6e.branch7x7dbl_3.conv.weight', '....bn.weight' /
  'bias' / 'running_mean' / 'running_var') -> InceptionV3FID variables.
  The 1008-way 'fc' classifier is ignored; anything else unexpected, missing
  or mis-shaped is a ValueError naming the PyTorch keys."""
  if kwargs:
    raise ValueError(f'inception_fid conversion takes no options; got '
                     f'{kwargs}.')
  try:
    return core.convert_module(
        sd, InceptionV3FID(resize_input=False),
        (1, MIN_INPUT_SIZE, MIN_INPUT_SIZE, 3),
        ignore=lambda key: key.startswith('fc.')), {}
  except ValueError as e:
    if any(key.startswith('AuxLogits.') for key in sd):
      raise ValueError(
          f'{e} These look like torchvision\'s inception_v3 weights (they '
          'have AuxLogits); FID needs pytorch-fid\'s '
          'pt_inception-2015-12-05-6726825d.pth.') from None
    raise
