"""MSRResNet, BasicSR's modified SRResNet (the ESRGAN paper's baseline).

Differences from SRGAN's SRResNet (`srresnet.py`): no BatchNorm, 3x3 convs
throughout, LeakyReLU(0.1), residual blocks without an activation after the
skip, and the bilinear-upsampled input added to the output, so the network
learns the residual over bilinear upsampling.

Names follow BasicSR's `basicsr/archs/srresnet_arch.py` (conv_first,
body_{i}/{conv1, conv2}, upconv1, upconv2, conv_hr, conv_last), so
`body.3.conv2.weight` -> params['body_3']['conv2']['kernel'].
"""
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.degradations import resampling
from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import GENERATORS

SCALES = (2, 3, 4)


def _lrelu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=0.1)


class ResidualBlockNoBN(nn.Module):
  """conv3x3-ReLU-conv3x3 plus identity (EDSR's block, res_scale 1).

  x: [N, H, W, num_feat] -> same shape, in `dtype`.
  """
  num_feat: int = 64
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # BasicSR's default_init_weights(scale=0.1): each block starts close to
    # the identity, so a deep stack trains from the first step.
    conv = functools.partial(
        layers.Conv, self.num_feat, 3,
        kernel_init=layers.scaled_kaiming_normal(0.1),
        bias_init=nn.initializers.zeros,
        dtype=self.dtype, param_dtype=self.param_dtype)
    return x + conv(name='conv2')(nn.relu(conv(name='conv1')(x)))


class MSRResNet(nn.Module):
  """BasicSR's MSRResNet.

  Call: `apply(variables, x, train=...)` with x: [N, h, w, num_in_ch] float in
  [0, 1]; returns [N, h*scale, w*scale, num_out_ch] float32, unclipped. Any h
  and w work. `train` is unused (no BN) but kept so all generators share one
  signature. scale is BasicSR's `upscale`: 2 and 3 use one upconv1 + pixel
  shuffle by 2 or 3, 4 uses upconv1 and upconv2, each + pixel shuffle by 2.
  remat=True rematerialises each residual block in the backward pass
  (`layers.maybe_remat`); parameters are unchanged.
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=8, num_block=1)
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_block: int = 16
  scale: int = 4
  remat: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    if self.scale not in SCALES:
      raise errors.ConfigError(
          f'MSRResNet supports scale {SCALES}; got {self.scale}.')
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise ValueError(f'MSRResNet expects [N, H, W, {self.num_in_ch}] input; '
                       f'got shape {x.shape}.')
    if self.num_in_ch != self.num_out_ch:
      raise errors.ConfigError(
          f'MSRResNet adds the upsampled input to the output, so num_in_ch '
          f'({self.num_in_ch}) must equal num_out_ch ({self.num_out_ch}).')
    nf = self.num_feat
    conv = functools.partial(
        layers.Conv, kernel_size=3,
        kernel_init=layers.scaled_kaiming_normal(0.1),
        bias_init=nn.initializers.zeros,
        dtype=self.dtype, param_dtype=self.param_dtype)
    _, h, w, _ = x.shape
    x = x.astype(self.dtype)

    feat = _lrelu(conv(nf, name='conv_first')(x))
    block = layers.maybe_remat(ResidualBlockNoBN, self.remat)
    for i in range(self.num_block):
      feat = block(nf, self.dtype, self.param_dtype, name=f'body_{i}')(feat)
    # Sub-pixel convolution; x4 is two x2 steps, as in BasicSR.
    steps = (2, 2) if self.scale == 4 else (self.scale,)
    for i, r in enumerate(steps, start=1):
      feat = conv(nf * r * r, name=f'upconv{i}')(feat)
      feat = _lrelu(layers.pixel_shuffle(feat, r))
    out = conv(self.num_out_ch, name='conv_last')(
        _lrelu(conv(nf, name='conv_hr')(feat)))
    # F.interpolate(x, scale_factor=scale, mode='bilinear',
    # align_corners=False); for an integer factor this is the resize to
    # exactly scale * (h, w).
    base = resampling.resize(x.astype(jnp.float32),
                             (h * self.scale, w * self.scale), 'bilinear')
    return out.astype(jnp.float32) + base


# ------------------------------------------------------------- PyTorch --


def convert_torch(sd: torch_layout.StateDict,
                  **kwargs) -> torch_layout.Converted:
  """BasicSR MSRResNet: upconv2 present means x4, else upconv1 gives 2 or 3."""
  num_feat, num_in_ch = torch_layout.shape_of(sd, 'conv_first.weight')[:2]
  config = dict(num_in_ch=num_in_ch,
                num_out_ch=torch_layout.shape_of(sd, 'conv_last.weight')[0],
                num_feat=num_feat,
                num_block=len(torch_layout.indices(sd, r'body\.(\d+)\.')))
  if 'upconv2.weight' in sd:
    config['scale'] = 4
  else:
    ratio = torch_layout.shape_of(sd, 'upconv1.weight')[0] // num_feat
    if ratio not in (4, 9):
      raise ValueError(
          f'upconv1 has {sd["upconv1.weight"].shape[0]} output channels, not '
          f'4x or 9x num_feat={num_feat} (MSRResNet x2 / x3).')
    config['scale'] = math.isqrt(ratio)
  config.update(kwargs)
  return torch_layout.convert_module(sd, MSRResNet(**config),
                  (1, 4, 4, config['num_in_ch'])), config


def recognise(sd) -> bool:
  """BasicSR MSRResNet: upconv1 without RRDB blocks (original ESRGAN files
  have upconv1 too)."""
  return ('upconv1.weight' in sd and 'body.0.rdb1.conv1.weight' not in sd
          and 'RRDB_trunk.0.RDB1.conv1.weight' not in sd)


def kwargs_from_params(params, **given):
  kernel = lambda *path: torch_layout.kernel_shape(params, 'msrresnet', *path)
  num_in, num_feat = kernel('conv_first')[2:]
  kw = dict(num_in_ch=num_in, num_out_ch=kernel('conv_last')[3],
            num_feat=num_feat,
            num_block=len(torch_layout.fullmatch_indices(params,
                                                         r'body_(\d+)')))
  kw['scale'] = 4 if 'upconv2' in params else math.isqrt(
      kernel('upconv1')[3] // num_feat)
  return {**kw, **given}


GENERATORS.register('msrresnet',
                    convert_torch=convert_torch,
                    recognise=recognise,
                    kwargs_from_params=kwargs_from_params)(MSRResNet)
