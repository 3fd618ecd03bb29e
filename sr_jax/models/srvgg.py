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
import math
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import errors
from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import GENERATORS

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
  remat=True rematerialises each trunk unit (conv + activation) in the
  backward pass (`layers.maybe_remat`); parameters are unchanged.
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=8, num_conv=2)
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_conv: int = 32
  scale: int = 4
  act_type: str = 'prelu'
  remat: bool = False
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
      raise errors.ConfigError(
          f'SRVGGNetCompact act_type={self.act_type!r}; use one '
          f'of {list(ACT_TYPES)}.')
    if self.scale < 1:
      raise errors.ConfigError(
          f'SRVGGNetCompact scale must be >= 1; got {self.scale}.')
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise ValueError(f'SRVGGNetCompact expects [N, H, W, {self.num_in_ch}] '
                       f'input; got shape {x.shape}.')
    # The trunk predicts the residual over nearest upsampling of the input,
    # which needs num_in_ch == num_out_ch (true of every released model).
    if self.num_in_ch != self.num_out_ch:
      raise errors.ConfigError(
          f'SRVGGNetCompact adds the upsampled input to the output, so '
          f'num_in_ch ({self.num_in_ch}) must equal num_out_ch '
          f'({self.num_out_ch}).')
    conv = functools.partial(layers.Conv, kernel_size=3, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    x = x.astype(self.dtype)
    feat = self._activation(1, conv(self.num_feat, name='body_0')(x))

    def unit(module, feat, k):
      # Layers body_{2k} and body_{2k+1} stay siblings in the tree.
      feat = conv(self.num_feat, name=f'body_{2 * k}')(feat)
      return module._activation(2 * k + 1, feat)

    unit = layers.maybe_remat(unit, self.remat, static_argnums=(2,))
    for k in range(1, self.num_conv + 1):
      feat = unit(self, feat, k)
    r = self.scale
    feat = conv(self.num_out_ch * r * r,
                name=f'body_{2 * self.num_conv + 2}')(feat)
    out = layers.pixel_shuffle(feat, r)
    out = out + layers.upsample_nearest(x, r)
    return out.astype(jnp.float32)


# ------------------------------------------------------------- PyTorch --


def convert_torch(sd: torch_layout.StateDict,
                  **kwargs) -> torch_layout.Converted:
  """Real-ESRGAN SRVGGNetCompact: one `body` list of convs and activations.

  body.{2k}.weight are the convs (4-D), body.{2k+1}.weight the PReLU slopes
  (1-D) when act_type is 'prelu'; 'relu' / 'lrelu' have no weights, so pass
  act_type for those. scale is sqrt(last conv's out channels / num_out_ch).
  """
  convs = [i for i in torch_layout.indices(sd, r'body\.(\d+)\.weight$')
           if sd[f'body.{i}.weight'].ndim == 4]
  if not convs:
    raise ValueError('Not an SRVGGNetCompact state dict: no 4-D '
                     f'body.N.weight (keys start {sorted(sd)[:5]}).')
  num_feat, num_in_ch = torch_layout.shape_of(sd, 'body.0.weight')[:2]
  has_prelu = any(re.match(r'body\.\d+\.weight$', k) and v.ndim == 1
                  for k, v in sd.items())
  config = dict(num_in_ch=num_in_ch, num_out_ch=num_in_ch, num_feat=num_feat,
                num_conv=len(convs) - 2)
  if has_prelu:
    config['act_type'] = 'prelu'
  elif 'act_type' not in kwargs:
    raise ValueError(
        'This SRVGGNetCompact state dict has no PReLU weights, so its '
        "activation cannot be read off it: pass act_type='relu' or 'lrelu' "
        "(Python: convert_state_dict('srvgg', sd, act_type='relu'); command "
        'line: --kwarg act_type=relu).')
  config.update(kwargs)
  if config['act_type'] not in ACT_TYPES:
    raise ValueError(f'act_type={config["act_type"]!r}; use one of '
                     f'{list(ACT_TYPES)}.')
  out_total = sd[f'body.{convs[-1]}.weight'].shape[0]
  scale = math.isqrt(max(out_total // config['num_out_ch'], 1))
  if scale * scale * config['num_out_ch'] != out_total:
    raise ValueError(
        f'The last conv (body.{convs[-1]}) has {out_total} output channels, '
        f'not num_out_ch={config["num_out_ch"]} times a square scale^2.')
  config.setdefault('scale', scale)
  return torch_layout.convert_module(sd, SRVGGNetCompact(**config),
                  (1, 4, 4, config['num_in_ch'])), config


def recognise(sd) -> bool:
  """body.0.weight 4-D (the first conv) with body.1.weight 1-D (a PReLU)."""
  return (np.ndim(sd.get('body.0.weight')) == 4
          and np.ndim(sd.get('body.1.weight')) == 1)


def kwargs_from_params(params, **given):
  kernel = lambda *path: torch_layout.kernel_shape(params, 'srvgg', *path)
  num_in, num_feat = kernel('body_0')[2:]
  layers_ = torch_layout.fullmatch_indices(params, r'body_(\d+)')
  convs = [i for i in layers_ if 'kernel' in params[f'body_{i}']]
  kw = dict(num_in_ch=num_in, num_out_ch=num_in, num_feat=num_feat,
            num_conv=len(convs) - 2,
            scale=math.isqrt(kernel(f'body_{convs[-1]}')[3] // num_in))
  if any('negative_slope' in params[f'body_{i}'] for i in layers_):
    kw['act_type'] = 'prelu'
  return {**kw, **given}


GENERATORS.register('srvgg',
                    convert_torch=convert_torch,
                    recognise=recognise,
                    kwargs_from_params=kwargs_from_params)(SRVGGNetCompact)
