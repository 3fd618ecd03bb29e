"""SRResNet, the SRGAN generator (Ledig et al. 2017, Fig. 4).

9x9 conv + PReLU; B residual blocks (conv3x3-BN-PReLU-conv3x3-BN + skip);
conv3x3-BN + long skip; log2(scale) upsampling blocks
(conv nf->4nf, pixel shuffle x2, PReLU); 9x9 conv out.

Names: conv_first, prelu_first, body_{i}/{conv1,bn1,prelu,conv2,bn2},
conv_body, bn_body, upsample_{i}_conv, upsample_{i}_prelu, conv_last.
BatchNorm statistics are in the 'batch_stats' collection.
"""
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax.models import layers


class ResidualBlockBN(nn.Module):
  """conv3x3-BN-PReLU-conv3x3-BN plus identity. x: [N, H, W, nf] -> same."""
  num_feat: int = 64
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    # A conv bias right before BN is cancelled by the mean subtraction, so
    # these convs have none (as in BasicSR's VGGStyleDiscriminator).
    conv = functools.partial(layers.Conv, self.num_feat, 3, use_bias=False,
                             dtype=self.dtype, param_dtype=self.param_dtype)
    bn = functools.partial(layers.batch_norm, train, self.dtype,
                           self.param_dtype)
    y = bn('bn1')(conv(name='conv1')(x))
    y = layers.PReLU(param_dtype=self.param_dtype, name='prelu')(y)
    y = bn('bn2')(conv(name='conv2')(y))
    return x + y


class SRResNet(nn.Module):
  """SRGAN generator.

  Call: `apply(variables, x, train=...)` with x: [N, h, w, num_in_ch] float in
  [0, 1]; returns [N, h*scale, w*scale, num_out_ch] float32, unclipped (the
  target is in [0, 1]; the paper's tanh output in [-1, 1] is not used so that
  all generators share one range). With train=True, apply with
  mutable=['batch_stats'] to update the BN running statistics.
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=8, num_block=1)
  num_in_ch: int = 3
  num_out_ch: int = 3
  scale: int = 4
  num_feat: int = 64
  num_block: int = 16
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.scale not in (2, 4, 8):
      raise ValueError(f'SRResNet supports scale 2, 4 or 8; got {self.scale}.')
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise ValueError(f'SRResNet expects [N, H, W, {self.num_in_ch}] input; '
                       f'got shape {x.shape}.')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nf = self.num_feat
    x = x.astype(self.dtype)

    feat = layers.Conv(nf, 9, name='conv_first', **kw)(x)
    feat = layers.PReLU(param_dtype=self.param_dtype, name='prelu_first')(feat)
    body = feat
    for i in range(self.num_block):
      body = ResidualBlockBN(nf, name=f'body_{i}', **kw)(body, train)
    body = layers.Conv(nf, 3, use_bias=False, name='conv_body', **kw)(body)
    feat = feat + layers.batch_norm(train, name='bn_body', **kw)(body)

    for i in range(int(math.log2(self.scale))):
      # Sub-pixel convolution (Shi et al. 2016): learn 4 sub-pixel maps per
      # channel, then rearrange them into a 2x larger image.
      feat = layers.Conv(4 * nf, 3, name=f'upsample_{i}_conv', **kw)(feat)
      feat = layers.pixel_shuffle(feat, 2)
      feat = layers.PReLU(param_dtype=self.param_dtype,
                          name=f'upsample_{i}_prelu')(feat)
    out = layers.Conv(self.num_out_ch, 9, name='conv_last', **kw)(feat)
    return out.astype(jnp.float32)
