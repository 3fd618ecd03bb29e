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
import re
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import GENERATORS


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
  remat=True rematerialises each residual block in the backward pass
  (`layers.maybe_remat`); parameters are unchanged.
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=8, num_block=1)
  num_in_ch: int = 3
  num_out_ch: int = 3
  scale: int = 4
  num_feat: int = 64
  num_block: int = 16
  remat: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if self.scale not in (1, 2, 4, 8):
      raise errors.ConfigError(
          f'SRResNet supports scale 1 (no up-sampling blocks: '
          f'denoising), 2, 4 or 8; got {self.scale}.')
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise ValueError(f'SRResNet expects [N, H, W, {self.num_in_ch}] input; '
                       f'got shape {x.shape}.')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nf = self.num_feat
    x = x.astype(self.dtype)

    feat = layers.Conv(nf, 9, name='conv_first', **kw)(x)
    feat = layers.PReLU(param_dtype=self.param_dtype, name='prelu_first')(feat)
    body = feat
    block = layers.maybe_remat(ResidualBlockBN, self.remat, static_argnums=(2,))
    for i in range(self.num_block):
      body = block(nf, name=f'body_{i}', **kw)(body, train)
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


# ------------------------------------------------------------- PyTorch --


# Lornatang/SRGAN-PyTorch's SRResNet -> sr_jax's SRResNet module paths.
# The inner `.rcb` / `.upsample_block` names are optional (older versions of
# that repo and many forks index the Sequential directly).
_SRGAN_MODULES = (
    (r'conv1\.0', 'conv_first'), (r'conv1\.1', 'prelu_first'),
    (r'trunk\.(\d+)\.0', r'body_\1.conv1'),
    (r'trunk\.(\d+)\.1', r'body_\1.bn1'),
    (r'trunk\.(\d+)\.2', r'body_\1.prelu'),
    (r'trunk\.(\d+)\.3', r'body_\1.conv2'),
    (r'trunk\.(\d+)\.4', r'body_\1.bn2'),
    (r'conv2\.0', 'conv_body'), (r'conv2\.1', 'bn_body'),
    (r'upsampling\.(\d+)\.0', r'upsample_\1_conv'),
    (r'upsampling\.(\d+)\.2', r'upsample_\1_prelu'),
    (r'conv3', 'conv_last'))
_SRGAN_MODULES_BACK = (
    (r'conv_first', 'conv1.0'), (r'prelu_first', 'conv1.1'),
    (r'body_(\d+)\.conv1', r'trunk.\1.rcb.0'),
    (r'body_(\d+)\.bn1', r'trunk.\1.rcb.1'),
    (r'body_(\d+)\.prelu', r'trunk.\1.rcb.2'),
    (r'body_(\d+)\.conv2', r'trunk.\1.rcb.3'),
    (r'body_(\d+)\.bn2', r'trunk.\1.rcb.4'),
    (r'conv_body', 'conv2.0'), (r'bn_body', 'conv2.1'),
    (r'upsample_(\d+)_conv', r'upsampling.\1.upsample_block.0'),
    (r'upsample_(\d+)_prelu', r'upsampling.\1.upsample_block.2'),
    (r'conv_last', 'conv3'))


def convert_torch(sd: torch_layout.StateDict,
                  **kwargs) -> torch_layout.Converted:
  """SRGAN's SRResNet (with BN) in Lornatang/SRGAN-PyTorch's layout.

  Accepted keys (Sequential indices; `.rcb` / `.upsample_block` optional):
    conv1.0 (9x9 conv, bias), conv1.1 (PReLU)
    trunk.{i}.rcb.{0,3} (3x3 convs), .{1,4} (BatchNorm2d), .2 (PReLU)
    conv2.0 (3x3 conv), conv2.1 (BatchNorm2d)
    upsampling.{i}.upsample_block.0 (3x3 conv nf -> 4 nf, bias), .2 (PReLU)
      (index 1 is the parameter-free PixelShuffle(2))
    conv3 (9x9 conv, bias)
  PReLU slopes may be shared ([1], nn.PReLU()'s default) or per channel.
  A conv bias right before a BatchNorm is folded into its running_mean
  (BN(conv + b) == BN'(conv) with mean' = mean - b, in eval and train mode),
  since sr_jax's convs there have none. That repo's final clamp to [0, 1] is
  not part of the model (sr_jax outputs are unclipped). Only x2, x4 and x8.
  """
  # A new dict: the bias folding below must not touch the caller's.
  sd = {re.sub(r'\.(rcb|upsample_block)\.', '.', k): v for k, v in sd.items()}
  for conv, bn in [(f'trunk.{i}.{c}', f'trunk.{i}.{c + 1}')
                   for i in torch_layout.indices(sd, r'trunk\.(\d+)\.')
                   for c in (0, 3)] + [('conv2.0', 'conv2.1')]:
    if f'{conv}.bias' in sd and f'{bn}.running_mean' in sd:
      bias = sd.pop(f'{conv}.bias')
      sd[f'{bn}.running_mean'] = sd[f'{bn}.running_mean'] - bias
  num_feat, num_in_ch = torch_layout.shape_of(sd, 'conv1.0.weight')[:2]
  ups = torch_layout.indices(sd, r'upsampling\.(\d+)\.')
  for i in ups:
    channels = torch_layout.shape_of(sd, f'upsampling.{i}.0.weight')[0]
    if channels != 4 * num_feat:
      raise ValueError(
          f'upsampling.{i} has {channels} output channels; sr_jax\'s SRResNet '
          f'upsamples by 2 per block ({4 * num_feat} channels), so x3 '
          'SRGAN models are not supported.')
  config = dict(num_in_ch=num_in_ch,
                num_out_ch=torch_layout.shape_of(sd, 'conv3.weight')[0],
                num_feat=num_feat,
                num_block=len(torch_layout.indices(sd, r'trunk\.(\d+)\.')),
                scale=2 ** len(ups))
  config.update(kwargs)
  rename = torch_layout.rename
  module_to_flax = lambda m: tuple(rename(m, _SRGAN_MODULES).split('.'))
  module_to_torch = lambda p: rename('.'.join(p), _SRGAN_MODULES_BACK)
  return torch_layout.convert_module(
      sd, SRResNet(**config), (1, 4, 4, num_in_ch),
      module_to_flax=module_to_flax,
      module_to_torch=module_to_torch), config


def recognise(sd) -> bool:
  """SRGAN's SRResNet in Lornatang/SRGAN-PyTorch's layout."""
  return 'conv1.0.weight' in sd and any(k.startswith('trunk.') for k in sd)


def kwargs_from_params(params, **given):
  kernel = lambda *path: torch_layout.kernel_shape(params, 'srresnet', *path)
  num_in, num_feat = kernel('conv_first')[2:]
  kw = dict(num_in_ch=num_in, num_out_ch=kernel('conv_last')[3],
            num_feat=num_feat,
            num_block=len(torch_layout.fullmatch_indices(params,
                                                         r'body_(\d+)')),
            scale=2 ** len(torch_layout.fullmatch_indices(
                params, r'upsample_(\d+)_conv')))
  return {**kw, **given}


GENERATORS.register('srresnet',
                    convert_torch=convert_torch,
                    recognise=recognise,
                    kwargs_from_params=kwargs_from_params)(SRResNet)
