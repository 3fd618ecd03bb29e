"""BasicSR's VGGStyleDiscriminator (ESRGAN / SRGAN), for any 4 * 2^k input.

Stage i (i = 0 .. S-1, S = log2(input_size / 4)) has `conv{i}_0` (3x3) and
`conv{i}_1` (4x4, stride 2, pad 1), each followed by BN (`bn{i}_0`,
`bn{i}_1`) and LeakyReLU(0.2); stage 0's first conv has a bias and no BN.
Channels are nf, 2nf, 4nf, 8nf, 8nf, ... so the last map is 4x4. For
input_size 128 this is BasicSR's VGG128 layout exactly, and 256 adds stage 5
as BasicSR does; names match BasicSR's, so its state dicts map by name.
"""
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import DISCRIMINATORS


def num_stages(input_size: int) -> int:
  """Stride-2 stages taking input_size down to 4; ValueError if not 4*2^k."""
  k = math.log2(input_size / 4) if input_size > 0 else -1
  if k < 1 or k != int(k):
    raise errors.ConfigError(
        f'VGGStyleDiscriminator input_size must be 4 * 2^k with k >= 1 '
        f'(8, 16, 32, 64, 128, 256, ...); got {input_size}.')
  return int(k)


class VGGStyleDiscriminator(nn.Module):
  """Patch-level real/fake classifier.

  Call: `apply(variables, x, train=...)` with x: [N, input_size, input_size,
  num_in_ch] an image in [0, 1]; returns logits [N, 1] float32. With
  train=True and use_bn, apply with mutable=['batch_stats'].

  use_bn=False removes every BN (and gives the convs a bias instead), since a
  gradient penalty (WGAN-GP) is per-sample and BN mixes samples.
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=4)
  num_in_ch: int = 3
  num_feat: int = 64
  input_size: int = 128
  use_bn: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    num_stages(self.input_size)  # Fail at construction, not deep in a trace.
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    size = self.input_size
    if x.ndim != 4 or x.shape[1:] != (size, size, self.num_in_ch):
      raise errors.ConfigError(
          f'VGGStyleDiscriminator(input_size={size}, num_in_ch='
          f'{self.num_in_ch}) expects [N, {size}, {size}, {self.num_in_ch}] '
          f'input; got shape {x.shape}. Set input_size to the GT patch size.')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv = functools.partial(layers.Conv, use_bias=not self.use_bn, **kw)

    def norm(y, name):
      if not self.use_bn:
        return y
      return layers.batch_norm(train, name=name, **kw)(y)

    x = x.astype(self.dtype)
    x = layers.leaky_relu(
        layers.Conv(self.num_feat, 3, name='conv0_0', **kw)(x))
    for i in range(num_stages(size)):
      ch = self.num_feat * min(2**i, 8)
      if i > 0:
        x = conv(ch, 3, name=f'conv{i}_0')(x)
        x = layers.leaky_relu(norm(x, f'bn{i}_0'))
      x = conv(ch, 4, strides=2, padding=1, name=f'conv{i}_1')(x)
      x = layers.leaky_relu(norm(x, f'bn{i}_1'))

    # Flatten in PyTorch's (C, H, W) order so linear1's weight converts with a
    # plain transpose.
    x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
    x = layers.leaky_relu(layers.Dense(100, name='linear1', **kw)(x))
    x = layers.Dense(1, name='linear2', **kw)(x)
    return x.astype(jnp.float32)


# ------------------------------------------------------------- PyTorch --


def convert_torch(sd: torch_layout.StateDict,
                  **kwargs) -> torch_layout.Converted:
  """BasicSR VGGStyleDiscriminator (any input_size); config from the keys."""
  num_feat, num_in_ch = torch_layout.shape_of(sd, 'conv0_0.weight')[:2]
  stages = torch_layout.indices(sd, r'conv(\d+)_1\.')
  config = dict(num_in_ch=num_in_ch, num_feat=num_feat,
                input_size=4 * 2 ** max(len(stages), 1),
                use_bn=any(k.startswith('bn') for k in sd))
  config.update(kwargs)
  num_stages(config['input_size'])
  size = config['input_size']
  return torch_layout.convert_module(sd, VGGStyleDiscriminator(**config),
                  (1, size, size, config['num_in_ch'])), config


DISCRIMINATORS.register('vgg_style',
                        convert_torch=convert_torch)(VGGStyleDiscriminator)
