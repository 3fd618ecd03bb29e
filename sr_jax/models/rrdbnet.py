"""RRDBNet, the ESRGAN generator (Wang et al. 2018), in BasicSR's layout.

Submodule names follow BasicSR's `basicsr/archs/rrdbnet_arch.py` exactly
(conv_first, body_0..body_{B-1}/rdb1..rdb3/conv1..conv5, conv_body, conv_up1,
conv_up2, conv_hr, conv_last), so a BasicSR / Real-ESRGAN state dict maps by
name: `body.3.rdb2.conv4.weight` -> params['body_3']['rdb2']['conv4']['kernel'].
"""
import functools
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.degradations import resampling
from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import GENERATORS


class ResidualDenseBlock(nn.Module):
  """Five densely connected 3x3 convs (ESRGAN Fig. 4), residual scaled by 0.2.

  x: [N, H, W, num_feat] -> same shape, in `dtype`.
  """
  num_feat: int = 64
  num_grow_ch: int = 32
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    # BasicSR's default_init_weights(scale=0.1): small initial residuals keep
    # the 69 stacked residual branches close to identity at the start.
    conv = functools.partial(
        layers.Conv, kernel_size=3,
        kernel_init=layers.scaled_kaiming_normal(0.1),
        bias_init=nn.initializers.zeros,
        dtype=self.dtype, param_dtype=self.param_dtype)
    features = [x]
    for i in range(1, 5):
      # Concatenation order (x, x1, x2, ...) is torch.cat's; it fixes which
      # input channels each converted kernel slice multiplies.
      y = conv(self.num_grow_ch, name=f'conv{i}')(
          jnp.concatenate(features, axis=-1))
      features.append(layers.leaky_relu(y))
    x5 = conv(self.num_feat, name='conv5')(jnp.concatenate(features, axis=-1))
    # Residual scaling 0.2 (ESRGAN Sec. 3.1) stabilises the deep trunk.
    return x5 * 0.2 + x


class RRDB(nn.Module):
  """Residual-in-Residual Dense Block: three RDBs and a scaled skip.

  x: [N, H, W, num_feat] -> same shape, in `dtype`.
  """
  num_feat: int = 64
  num_grow_ch: int = 32
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out = x
    for i in range(1, 4):
      out = ResidualDenseBlock(self.num_feat, self.num_grow_ch, self.dtype,
                               self.param_dtype, name=f'rdb{i}')(out)
    return out * 0.2 + x


class RRDBNet(nn.Module):
  """ESRGAN generator.

  Call: `apply(variables, x, train=...)` with x: [N, h, w, num_in_ch] float in
  [0, 1]; returns [N, h*scale, w*scale, num_out_ch] float32 (not clipped; the
  training target is in [0, 1]). `train` is unused (no BN or dropout) but kept
  so all generators share one signature.

  Scales 2 and 1 pixel-unshuffle the input first (BasicSR / Real-ESRGAN), so
  the trunk runs at h/2 (x2) or h/4 (x1) and the same x4 upsampler follows;
  h and w must then be divisible by 2 or 4. Scale 8 adds conv_up3.

  remat=True rematerialises each RRDB in the backward pass
  (`layers.maybe_remat`): about 30% more generator compute for far less
  activation memory; parameter names and values do not change.

  upsample_skip (sr_jax's option, off in ESRGAN and every release): '' adds
  nothing; a resampling mode ('bicubic', 'bilinear', 'nearest', 'area')
  adds F.interpolate(x, mode) of the input to the output, the global skip
  of BasicSR's MSRResNet (bilinear) and Real-ESRGAN's SRVGGNetCompact
  (nearest). The network then learns the residual over an interpolated
  image, so a short run cannot do worse than the interpolation on smooth
  areas. No parameters: weights convert and load the same either way, but
  give a different output.
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=8, num_block=1, num_grow_ch=4)
  num_in_ch: int = 3
  num_out_ch: int = 3
  scale: int = 4
  num_feat: int = 64
  num_block: int = 23
  num_grow_ch: int = 32
  remat: bool = False
  upsample_skip: str = ''
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    if self.upsample_skip and self.upsample_skip not in resampling.MODES:
      raise errors.ConfigError(
          f"RRDBNet upsample_skip must be '' or one of {resampling.MODES}; "
          f'got {self.upsample_skip!r}.')
    if self.scale not in (1, 2, 4, 8):
      raise errors.ConfigError(
          f'RRDBNet supports scale 1, 2, 4 or 8; got {self.scale}.')
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise ValueError(f'RRDBNet expects [N, H, W, {self.num_in_ch}] input; '
                       f'got shape {x.shape}.')
    conv = functools.partial(layers.Conv, self.num_feat, 3, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    h, w = x.shape[1:3]
    skip = None
    if self.upsample_skip:
      skip = resampling.resize(x.astype(jnp.float32),
                               (h * self.scale, w * self.scale),
                               self.upsample_skip)
    x = x.astype(self.dtype)
    if self.scale in (1, 2):
      x = layers.pixel_unshuffle(x, 4 // self.scale)

    feat = conv(name='conv_first')(x)
    block = layers.maybe_remat(RRDB, self.remat)
    body = feat
    for i in range(self.num_block):
      body = block(self.num_feat, self.num_grow_ch, self.dtype,
                   self.param_dtype, name=f'body_{i}')(body)
    feat = feat + conv(name='conv_body')(body)

    # Nearest-neighbour upsampling + conv instead of transposed conv / pixel
    # shuffle, as in ESRGAN: avoids checkerboard artefacts.
    num_up = 3 if self.scale == 8 else 2
    for i in range(1, num_up + 1):
      feat = layers.upsample_nearest(feat, 2)
      feat = layers.leaky_relu(conv(name=f'conv_up{i}')(feat))
    feat = layers.leaky_relu(conv(name='conv_hr')(feat))
    out = layers.Conv(self.num_out_ch, 3, dtype=self.dtype,
                      param_dtype=self.param_dtype, name='conv_last')(feat)
    out = out.astype(jnp.float32)
    return out if skip is None else out + skip


# ------------------------------------------------------------- PyTorch --
# The original ESRGAN release (RRDB_ESRGAN_x4.pth) predates BasicSR's names.
_ESRGAN_TO_BASICSR = ((r'^RRDB_trunk\.', 'body.'), (r'\.RDB(\d)\.', r'.rdb\1.'),
                      (r'^trunk_conv\.', 'conv_body.'),
                      (r'^upconv(\d)\.', r'conv_up\1.'),
                      (r'^HRconv\.', 'conv_hr.'))


def convert_torch(sd: torch_layout.StateDict,
                  **kwargs) -> torch_layout.Converted:
  """BasicSR / Real-ESRGAN / original ESRGAN RRDBNet; config from the shapes.

  Real-ESRGAN's x2 and x1 models pixel-unshuffle the input, so conv_first
  takes 4x / 16x num_in_ch channels; that ratio gives the scale.
  """
  if any(k.startswith('RRDB_trunk.') for k in sd):
    renamed = {}
    for key, value in sd.items():
      for pattern, replacement in _ESRGAN_TO_BASICSR:
        key = re.sub(pattern, replacement, key)
      renamed[key] = value
    sd = renamed
  num_feat, in_total = torch_layout.shape_of(sd, 'conv_first.weight')[:2]
  blocks = torch_layout.indices(sd, r'body\.(\d+)\.')
  config = dict(
      num_feat=num_feat,
      num_out_ch=torch_layout.shape_of(sd, 'conv_last.weight')[0],
      num_block=max(blocks) + 1 if blocks else 0,
      num_grow_ch=(torch_layout.shape_of(sd, 'body.0.rdb1.conv1.weight')[0]
                   if blocks else 32),
      num_in_ch=kwargs.get('num_in_ch', 3))
  if any(k.startswith('conv_up3.') for k in sd):
    config['scale'] = 8
  else:
    ratio_to_scale = {1: 4, 4: 2, 16: 1}
    ratio = in_total / config['num_in_ch']
    if ratio not in ratio_to_scale:
      raise ValueError(
          f'conv_first takes {in_total} channels, which is not num_in_ch='
          f'{config["num_in_ch"]} times 1, 4 or 16; pass num_in_ch=... .')
    config['scale'] = ratio_to_scale[ratio]
  config.update(kwargs)
  # Spatial size 4 works for every scale (x1 unshuffles by 4).
  return torch_layout.convert_module(sd, RRDBNet(**config),
                  (1, 4, 4, config['num_in_ch'])), config


def recognise(sd) -> bool:
  """BasicSR (body.0.rdb1...) or original ESRGAN (RRDB_trunk.0.RDB1...)."""
  return ('body.0.rdb1.conv1.weight' in sd
          or 'RRDB_trunk.0.RDB1.conv1.weight' in sd)


def kwargs_from_params(params, **given):
  """Settings read off the parameter shapes (num_in_ch 3 unless given:
  x2 / x1 unshuffle the input, so conv_first shows num_in_ch * 4 or 16)."""
  kernel = lambda *path: torch_layout.kernel_shape(params, 'rrdbnet', *path)
  in_total, num_feat = kernel('conv_first')[2:]
  num_in = given.get('num_in_ch', 3)
  blocks = torch_layout.fullmatch_indices(params, r'body_(\d+)')
  kw = dict(num_in_ch=num_in, num_out_ch=kernel('conv_last')[3],
            num_feat=num_feat, num_block=len(blocks))
  if blocks:
    kw['num_grow_ch'] = kernel('body_0', 'rdb1', 'conv1')[3]
  ratio = {1: 4, 4: 2, 16: 1}.get(in_total // num_in)
  kw['scale'] = 8 if 'conv_up3' in params else ratio
  return {**kw, **given}


def input_multiple(module) -> int:
  """x2 / x1 pixel-unshuffle the input by 2 / 4: H and W must divide it."""
  return 4 // module.scale if module.scale in (1, 2) else 1


GENERATORS.register('rrdbnet',
                    convert_torch=convert_torch,
                    recognise=recognise,
                    kwargs_from_params=kwargs_from_params,
                    input_multiple=input_multiple)(RRDBNet)
