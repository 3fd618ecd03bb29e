"""DSGAN's down-sampling generator and high-pass discriminator (Fritsche,
Gu and Timofte, "Frequency Separation for Real-World Super-Resolution",
ICCVW 2019; released code manuelfritsche/real-world-sr, dsgan/model.py,
also shipped with SRResCGAN's training code as models/DSGAN.py). Written
here from that code and the paper.

`DSGANGenerator` ('dsgan'): LR -> LR of the same size, the real-world
degradation learned from unpaired images:
  3x3 conv (3 -> nf) + PReLU; `num_block` residual blocks
  [3x3 conv -> PReLU -> 3x3 conv] + identity; 3x3 conv (nf -> 3); sigmoid.
With `downscale` > 1 the input is an HR image and the network first makes
its MATLAB-bicubic 1 / downscale version (what DSGAN is trained on, the
bicubic LR of the source images): `dsgan` with downscale=4 is an HR -> LR
generator, SRResCycGAN's G_LR.

`DSGANDiscriminator` ('dsgan_highpass'): a patch discriminator on the high
frequencies only: the box high-pass of `sr_jax.degradations.
frequency_split` (5x5, 'same' size, 0.5 + 0.5 r), then 5x5 convs 3 -> 64 ->
128 -> 256 (BatchNorm on the last two, LeakyReLU 0.2) and a 1x1 conv to one
logit per pixel. The released discriminator ends in a sigmoid and its loss
takes -log(p + 1e-8); sr_jax's objectives take logits, so the sigmoid is the
objective's (vanilla = the same loss without the 1e-8).
"""
import fractions
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.degradations import frequency_split
from sr_jax.degradations.imresize import imresize
from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import DISCRIMINATORS
from sr_jax.models.registry import GENERATORS


class _ResidualBlock(nn.Module):
  num_feat: int
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    conv = functools.partial(layers.Conv, self.num_feat, 3, dtype=self.dtype,
                             param_dtype=self.param_dtype)
    y = conv(name='conv1')(x)
    y = layers.PReLU(param_dtype=self.param_dtype, name='prelu')(y)
    return x + conv(name='conv2')(y)


class DSGANGenerator(nn.Module):
  """x: [N, H, W, 3] in [0, 1] -> [N, H / downscale, W / downscale, 3] in
  (0, 1) (a sigmoid, as released). H and W must divide by downscale."""
  TINY_KWARGS = dict(num_feat=8, num_block=1)
  num_in_ch: int = 3
  num_feat: int = 64
  num_block: int = 8
  downscale: int = 1
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    layers.check_input(x, self.num_in_ch, 'DSGANGenerator')
    if self.downscale < 1:
      raise errors.ConfigError(f'downscale must be >= 1; got {self.downscale}.')
    if self.downscale > 1:
      if x.shape[1] % self.downscale or x.shape[2] % self.downscale:
        raise errors.ConfigError(
            f'DSGANGenerator(downscale={self.downscale}) needs '
            f'H and W divisible by {self.downscale}; got '
            f'{x.shape[1:3]}.')
      x = imresize(x.astype(jnp.float32), 1.0 / self.downscale)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = x.astype(self.dtype)
    feat = layers.Conv(self.num_feat, 3, name='conv_first', **kw)(x)
    feat = layers.PReLU(param_dtype=self.param_dtype,
                        name='prelu_first')(feat)
    for i in range(self.num_block):
      feat = _ResidualBlock(self.num_feat, name=f'body_{i}', **kw)(feat)
    out = layers.Conv(3, 3, name='conv_last', **kw)(feat)
    return jax.nn.sigmoid(out.astype(jnp.float32))


@DISCRIMINATORS.register('dsgan_highpass')
class DSGANDiscriminator(nn.Module):
  """x: [N, H, W, 3] in [0, 1] -> logits [N, H, W, 1] float32 (one per
  pixel: a patch discriminator on the high-pass of x). With train=True,
  apply with mutable=['batch_stats']."""
  TINY_KWARGS = dict(num_feat=4)
  num_in_ch: int = 3
  num_feat: int = 64
  kernel_size: int = 5  # Of the high-pass filter.
  gaussian: bool = False  # Gaussian instead of box low-pass.
  highpass: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    layers.check_input(x, self.num_in_ch, 'DSGANDiscriminator')
    x = x.astype(jnp.float32)
    if self.highpass:
      x = frequency_split.high_pass(x, self.kernel_size, self.gaussian)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    nf = self.num_feat
    x = layers.leaky_relu(layers.Conv(nf, 5, name='conv0', **kw)(
        x.astype(self.dtype)))
    for i, ch in ((1, 2 * nf), (2, 4 * nf)):
      x = layers.Conv(ch, 5, name=f'conv{i}', **kw)(x)
      x = layers.leaky_relu(layers.batch_norm(train, name=f'bn{i}', **kw)(x))
    return layers.Conv(1, 1, name='conv_last', **kw)(x).astype(jnp.float32)


# ------------------------------------------------------------- PyTorch --

# DSGAN's generator keys -> sr_jax module paths.
_TO_FLAX = (('block_input.0', 'conv_first'), ('block_input.1', 'prelu_first'),
            ('block_output', 'conv_last'))


def _module_to_flax(module: str) -> tuple[str, ...]:
  for torch_name, flax_name in _TO_FLAX:
    if module == torch_name:
      return (flax_name,)
  parts = module.split('.')
  if parts[0] == 'res_blocks' and len(parts) == 3:
    return (f'body_{parts[1]}', parts[2])
  return tuple(parts)


def _module_to_torch(path: tuple[str, ...]) -> str:
  for torch_name, flax_name in _TO_FLAX:
    if path == (flax_name,):
      return torch_name
  if path and path[0].startswith('body_'):
    return '.'.join(('res_blocks', path[0][5:]) + tuple(path[1:]))
  return '.'.join(path)


def convert_torch(sd: torch_layout.StateDict,
                  **kwargs) -> torch_layout.Converted:
  """DSGAN's `Generator` (dsgan/model.py; SRResCGAN's models/DSGAN.py):
  block_input.0 (3x3 conv 3 -> 64), block_input.1 (PReLU, one shared
  slope), res_blocks.{i}.{conv1, prelu, conv2}, block_output (3x3 conv
  64 -> 3). Shared PReLU slopes become per-channel copies. Pass
  downscale=4 for an HR -> LR generator (the bicubic step has no weights).
  """
  num_feat, num_in_ch = torch_layout.shape_of(sd, 'block_input.0.weight')[:2]
  config = dict(num_in_ch=num_in_ch, num_feat=num_feat,
                num_block=len(torch_layout.indices(sd, r'res_blocks\.(\d+)\.')))
  config.update(kwargs)
  side = 4 * config.get('downscale', 1)
  return torch_layout.convert_module(
      sd, DSGANGenerator(**config), (1, side, side, num_in_ch),
      module_to_flax=_module_to_flax,
      module_to_torch=_module_to_torch), config


def recognise(sd) -> bool:
  return 'block_input.0.weight' in sd and 'block_output.weight' in sd


def kwargs_from_params(params, **given):
  kernel = lambda *path: torch_layout.kernel_shape(params, 'dsgan', *path)
  num_in, num_feat = kernel('conv_first')[2:]
  kw = dict(num_in_ch=num_in, num_feat=num_feat,
            num_block=len(torch_layout.fullmatch_indices(params,
                                                         r'body_(\d+)')))
  return {**kw, **given}


def input_multiple(module) -> int:
  return int(getattr(module, 'downscale', 1))


def output_scale(module) -> fractions.Fraction:
  """1 / downscale: the output is smaller (1 at LR size, as released)."""
  return fractions.Fraction(1, int(getattr(module, 'downscale', 1)))


GENERATORS.register('dsgan',
                    convert_torch=convert_torch,
                    recognise=recognise,
                    kwargs_from_params=kwargs_from_params,
                    input_multiple=input_multiple,
                    output_scale=output_scale)(DSGANGenerator)
