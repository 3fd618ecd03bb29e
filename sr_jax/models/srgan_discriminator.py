"""The SRGAN discriminator (Ledig et al. 2017, Fig. 4).

Eight 3x3 convolutions with LeakyReLU(0.2), channels nf, nf, 2nf, 2nf, 4nf,
4nf, 8nf, 8nf (64 -> 512 with nf = 64), stride 2 on the even ones
(`conv1`, `conv3`, `conv5`, `conv7`), BatchNorm after all but the first;
then a dense layer of 1024 units with LeakyReLU and a dense layer to one
logit (the sigmoid is in the loss). For the paper's 96 px patches the last
map is 6x6x512. Flattening is in PyTorch's (C, H, W) order, so a torch
state dict's `dense1` converts with a plain transpose.
"""
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.models import layers
from sr_jax.models.registry import DISCRIMINATORS

# (channel multiple of num_feat, stride) of conv1 .. conv7 (conv0 is nf, 1).
_BLOCKS = ((1, 2), (2, 1), (2, 2), (4, 1), (4, 2), (8, 1), (8, 2))


@DISCRIMINATORS.register('srgan')
class SRGANDiscriminator(nn.Module):
  """x [N, input_size, input_size, num_in_ch] in [0, 1] -> logits [N, 1].

  With train=True, apply with mutable=['batch_stats'].
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=4, dense_features=16)
  num_in_ch: int = 3
  num_feat: int = 64
  input_size: int = 96
  dense_features: int = 1024
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    if self.input_size <= 0 or self.input_size % 16:
      raise errors.ConfigError(
          'SRGANDiscriminator input_size must be a positive multiple of 16 '
          f'(four stride-2 convolutions; the paper uses 96); got '
          f'{self.input_size}. Set data.gt_size accordingly.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    size = self.input_size
    if x.ndim != 4 or x.shape[1:] != (size, size, self.num_in_ch):
      raise errors.ConfigError(
          f'SRGANDiscriminator(input_size={size}) expects [N, {size}, {size}, '
          f'{self.num_in_ch}] input; got shape {x.shape}.')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv = functools.partial(layers.Conv, kernel_size=3, **kw)
    x = x.astype(self.dtype)
    x = layers.leaky_relu(conv(self.num_feat, name='conv0')(x))
    for i, (mult, stride) in enumerate(_BLOCKS, start=1):
      x = conv(self.num_feat * mult, strides=stride, use_bias=False,
               name=f'conv{i}')(x)
      x = layers.leaky_relu(layers.batch_norm(train, name=f'bn{i}', **kw)(x))
    x = x.transpose(0, 3, 1, 2).reshape(x.shape[0], -1)
    x = layers.leaky_relu(
        layers.Dense(self.dense_features, name='dense1', **kw)(x))
    x = layers.Dense(1, name='dense2', **kw)(x)
    return x.astype(jnp.float32)
