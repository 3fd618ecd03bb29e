"""SRVGGNetCompact, Real-ESRGAN's small VGG-style generator.

The network of `realesr-general-x4v3` and `realesr-animevideov3` (Real-ESRGAN's
`realesrgan/archs/srvgg_arch.py`): a plain stack of 3x3 convs at LR
resolution, one pixel shuffle, and the nearest-upsampled input added back, so
the convs only learn the residual over nearest upsampling. No normalisation,
no skip inside the trunk: cheap enough for video.

Names follow Real-ESRGAN's single `body` ModuleList, index for index:
body_0 = first conv, body_1 = its activation, body_{2k} / body_{2k+1} = conv k
and its activation, body_{2 num_conv + 2} = the last conv. Activations only
have parameters for 'prelu' (`negative_slope`, one per channel); for 'relu'
and 'lrelu' their indices are skipped, as in the PyTorch state dict.
"""
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax.models import layers

ACT_TYPES = ('prelu', 'lrelu', 'relu')


class SRVGGNetCompact(nn.Module):
  """Real-ESRGAN's compact generator.

  Call: `apply(variables, x, train=...)` with x: [N, h, w, num_in_ch] float in
  [0, 1]; returns [N, h*scale, w*scale, num_out_ch] float32, unclipped.
  Any h and w work. `train` is unused (no BN or dropout) but kept so all
  generators share one signature.

  scale is Real-ESRGAN's `upscale`; act_type is 'prelu' (per-channel
  PReLU, the released models), 'lrelu' (LeakyReLU 0.1) or 'relu'.
  Defaults are realesr-general-x4v3's (realesr-animevideov3: num_conv=16).
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=8, num_conv=2)
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_conv: int = 32
  scale: int = 4
  act_type: str = 'prelu'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def _activation(self, index: int, x: jax.Array) -> jax.Array:
    if self.act_type == 'prelu':
      return layers.PReLU(param_dtype=self.param_dtype,
                          name=f'body_{index}')(x)
    if self.act_type == 'lrelu':
      return nn.leaky_relu(x, negative_slope=0.1)
    return nn.relu(x)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    if self.act_type not in ACT_TYPES:
      raise ValueError(f'SRVGGNetCompact act_type={self.act_type!r}; use one '
                       f'of {list(ACT_TYPES)}.')
    if self.scale < 1:
      raise ValueError(f'SRVGGNetCompact scale must be >= 1; got {self.scale}.')
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise ValueError(f'SRVGGNetCompact expects [N, H, W, {self.num_in_ch}] '
                       f'input; got shape {x.shape}.')
    # The trunk predicts the residual over nearest upsampling of the input,
    # which needs num_in_ch == num_out_ch (true of every released model).
    if self.num_in_ch != self.num_out_ch:
      raise ValueError(
          f'SRVGGNetCompact adds the upsampled input to the output, so '
          f'num_in_ch ({self.num_in_ch}) must equal num_out_ch '
          f'({self.num_out_ch}).')
    conv = functools.partial(layers.Conv, kernel_size=3, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    x = x.astype(self.dtype)
    feat = self._activation(1, conv(self.num_feat, name='body_0')(x))
    for k in range(1, self.num_conv + 1):
      feat = conv(self.num_feat, name=f'body_{2 * k}')(feat)
      feat = self._activation(2 * k + 1, feat)
    r = self.scale
    feat = conv(self.num_out_ch * r * r,
                name=f'body_{2 * self.num_conv + 2}')(feat)
    out = layers.pixel_shuffle(feat, r)
    out = out + layers.upsample_nearest(x, r)
    return out.astype(jnp.float32)
