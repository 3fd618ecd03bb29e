"""WDRN, an SRGAN generator built of weighted dense residual blocks.

The trunk of SRGAN's SRResNet (Ledig et al. 2017, Fig. 4) with its residual
blocks replaced by dense residual blocks and the blocks joined by a learned,
weighted concatenation rather than a chain of sums:

  feat = PReLU(conv3x3(x))                                  conv_first
  h_0 = feat;  h_i = block_i(h_{i-1})                       body_{i-1}
  fused = conv1x1(concat(w_1 h_1, ..., w_B h_B))            conv_fusion
  feat = feat + conv3x3(fused)                              conv_body
  log2(scale) x [conv3x3 nf -> 4nf, pixel shuffle x2, PReLU] upsample_{i}_*
  out = conv3x3(feat)                                       conv_last

A block (`DenseResidualBlock`) is num_layer 3x3 convs, each taking the
concatenation of the block input and all previous layers' outputs and
adding num_grow_ch channels (ReLU after each), a 1x1 local fusion back to
num_feat (no activation) and the block's identity skip. The weights w_i
are scalars (params['block_weight'], shape [num_block], initialised to 1.0,
so the network starts as plain concatenation); they scale what each block
contributes to the fusion only, the chain h_i is not scaled. Being a scalar
gain per input group of a 1x1 conv they add no expressive power, only a
per-block step size that the optimiser can learn directly.

Sources and choices. No text of the WDRN paper itself could be found with
the search tools (queries for "weighted dense residual network" super-
resolution returned only related work), so its details are not matched and
the following are choices made here:
  * The dense block follows the residual dense block of RDN (Zhang et al.
    2018, "Residual Dense Network for Image Super-Resolution", read through
    the abstract at hyper.ai/en/papers/1802.08797 and S.-H. Tsang's review
    on Medium): dense connections with ReLU, local feature fusion by a 1x1
    conv, local residual learning, no BatchNorm (as in EDSR / ESRGAN, which
    found BN harmful for SR). No residual scaling.
  * The global path follows RDN's global feature fusion (concatenate every
    block's output, 1x1 conv, 3x3 conv, then add the shallow features), with
    the per-block weights added in front of the 1x1 conv; the 3x3 conv
    before the global skip is also SRGAN's conv2 / conv_body.
  * The head is SRGAN's: a 3x3 first conv with PReLU (SRGAN's is 9x9; 3x3
    as the task specifies), sub-pixel convolution (Shi et al. 2016) with
    per-channel PReLU for each x2, and a 3x3 last conv. The output is not
    passed through tanh or clipped, as for all sr_jax generators.
  * Defaults: num_block 8, num_layer 4, num_grow_ch 32, num_feat 64.
  * Initialisation: PyTorch's defaults (as SRResNet here), block weights 1.

Names (PyTorch layout, see `convert_torch`): conv_first, prelu_first,
body_{i}/{conv1..conv{num_layer}, conv_fusion}, block_weight, conv_fusion,
conv_body, upsample_{i}_conv, upsample_{i}_prelu, conv_last.
"""
import functools
import math
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import errors
from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import GENERATORS

SCALES = (1, 2, 4, 8)


class DenseResidualBlock(nn.Module):
  """num_layer densely connected 3x3 convs, 1x1 local fusion, identity skip.

  Conv j (1-based) sees num_feat + (j - 1) * num_grow_ch channels: the block
  input and every earlier conv's output, concatenated in that order (which
  fixes the input-channel order of a converted kernel, as torch.cat's).
  x: [N, H, W, num_feat] -> same shape, in `dtype`.
  """
  num_feat: int = 64
  num_layer: int = 4
  num_grow_ch: int = 32
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    features = [x]
    for j in range(1, self.num_layer + 1):
      y = layers.Conv(self.num_grow_ch, 3, name=f'conv{j}', **kw)(
          jnp.concatenate(features, axis=-1))
      features.append(nn.relu(y))
    fused = layers.Conv(self.num_feat, 1, name='conv_fusion', **kw)(
        jnp.concatenate(features, axis=-1))
    return x + fused


class WDRN(nn.Module):
  """Weighted dense residual network (the generator; see the module doc).

  Call: `apply(variables, x, train=...)` with x: [N, h, w, num_in_ch] float in
  [0, 1]; returns [N, h*scale, w*scale, num_out_ch] float32, unclipped.
  `train` is unused (no BN or dropout) but kept so all generators share one
  signature. scale 1 has no up-sampling stages (restoration / denoising).
  """
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=8, num_block=2, num_layer=2, num_grow_ch=4)
  num_in_ch: int = 3
  num_out_ch: int = 3
  num_feat: int = 64
  num_block: int = 8
  num_layer: int = 4
  num_grow_ch: int = 32
  scale: int = 4
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    if self.scale not in SCALES:
      raise errors.ConfigError(
          f'WDRN supports scale 1 (no up-sampling: '
          f'restoration), 2, 4 or 8; got {self.scale}.')
    if self.num_block < 1 or self.num_layer < 1:
      raise errors.ConfigError(
          f'WDRN needs num_block >= 1 and num_layer >= 1; got '
          f'{self.num_block} and {self.num_layer}.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    layers.check_input(x, self.num_in_ch, 'WDRN')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    prelu = functools.partial(layers.PReLU, param_dtype=self.param_dtype)
    nf = self.num_feat
    x = x.astype(self.dtype)

    feat = prelu(name='prelu_first')(
        layers.Conv(nf, 3, name='conv_first', **kw)(x))
    block_weight = self.param('block_weight', nn.initializers.ones,
                              (self.num_block,), self.param_dtype)
    h, weighted = feat, []
    for i in range(self.num_block):
      h = DenseResidualBlock(nf, self.num_layer, self.num_grow_ch,
                             name=f'body_{i}', **kw)(h)
      weighted.append(h * block_weight[i].astype(self.dtype))
    fused = layers.Conv(nf, 1, name='conv_fusion', **kw)(
        jnp.concatenate(weighted, axis=-1))
    feat = feat + layers.Conv(nf, 3, name='conv_body', **kw)(fused)

    for i in range(int(math.log2(self.scale))):
      feat = layers.Conv(4 * nf, 3, name=f'upsample_{i}_conv', **kw)(feat)
      feat = prelu(name=f'upsample_{i}_prelu')(layers.pixel_shuffle(feat, 2))
    out = layers.Conv(self.num_out_ch, 3, name='conv_last', **kw)(feat)
    return out.astype(jnp.float32)


# ------------------------------------------------------------- PyTorch --
# sr_jax's own PyTorch layout of WDRN (there is no released checkpoint):
# nn.Module attributes named as the flax modules, the blocks an
# nn.ModuleList `body`, each up-sampling stage an nn.Sequential(conv,
# PixelShuffle(2), PReLU) in an nn.ModuleList `upsample`, and the block
# weights an nn.Parameter `block_weight` of shape [num_block].

_TO_FLAX = ((r'body\.(\d+)\.(.+)', r'body_\1.\2'),
            (r'upsample\.(\d+)\.0', r'upsample_\1_conv'),
            (r'upsample\.(\d+)\.2', r'upsample_\1_prelu'))
_TO_TORCH = ((r'body_(\d+)\.(.+)', r'body.\1.\2'),
             (r'upsample_(\d+)_conv', r'upsample.\1.0'),
             (r'upsample_(\d+)_prelu', r'upsample.\1.2'))
_BLOCK_WEIGHT = 'block_weight'


def convert_torch(sd: torch_layout.StateDict,
                  **kwargs) -> torch_layout.Converted:
  """WDRN in sr_jax's PyTorch layout; config read off the shapes.

  Keys:
    conv_first (3x3, bias), prelu_first (PReLU, shared or per channel)
    body.{i}.conv{j} (3x3, nf + (j-1) g -> g, bias), body.{i}.conv_fusion
      (1x1, nf + L g -> nf, bias)
    block_weight ([num_block])
    conv_fusion (1x1, B nf -> nf, bias), conv_body (3x3, bias)
    upsample.{i}.0 (3x3 conv nf -> 4 nf, bias), upsample.{i}.2 (PReLU)
      (index 1 is the parameter-free PixelShuffle(2))
    conv_last (3x3, bias)
  """
  sd = dict(sd)  # The block weight is popped; the caller's dict stays whole.
  num_feat, num_in_ch = torch_layout.shape_of(sd, 'conv_first.weight')[:2]
  blocks = torch_layout.indices(sd, r'body\.(\d+)\.')
  ups = torch_layout.indices(sd, r'upsample\.(\d+)\.')
  for i in ups:
    channels = torch_layout.shape_of(sd, f'upsample.{i}.0.weight')[0]
    if channels != 4 * num_feat:
      raise ValueError(
          f'upsample.{i}.0 has {channels} output channels; WDRN upsamples by '
          f'2 per stage ({4 * num_feat} channels).')
  config = dict(
      num_in_ch=num_in_ch,
      num_out_ch=torch_layout.shape_of(sd, 'conv_last.weight')[0],
      num_feat=num_feat, num_block=len(blocks),
      num_layer=len(torch_layout.indices(sd, r'body\.0\.conv(\d+)\.')),
      num_grow_ch=torch_layout.shape_of(sd, 'body.0.conv1.weight')[0],
      scale=2 ** len(ups))
  config.update(kwargs)
  module = WDRN(**config)
  template = torch_layout.template(module, (1, 4, 4, config['num_in_ch']))
  # convert_keys knows module leaves ('weight' / 'bias'); the top-level
  # parameter is moved over here.
  weight_shape = tuple(template.pop(('params', _BLOCK_WEIGHT)))
  block_weight = sd.pop(_BLOCK_WEIGHT, None)
  if block_weight is None:
    raise ValueError('State dict does not match the model; missing keys: '
                     f'[{_BLOCK_WEIGHT!r}].')
  block_weight = np.asarray(torch_layout.to_numpy(block_weight), np.float32)
  if block_weight.shape != weight_shape:
    raise ValueError(
        'State dict does not match the model; shape mismatches (PyTorch '
        f'layout): [\'{_BLOCK_WEIGHT}: got {block_weight.shape}, expected '
        f'{weight_shape}\'].')
  variables = torch_layout.convert_keys(
      sd, template,
      module_to_flax=lambda m: tuple(
          torch_layout.rename(m, _TO_FLAX).split('.')),
      module_to_torch=lambda p: torch_layout.rename('.'.join(p), _TO_TORCH))
  variables['params'][_BLOCK_WEIGHT] = block_weight.copy()
  return variables, config


def recognise(sd) -> bool:
  """sr_jax's WDRN layout: a `block_weight` and dense blocks with fusion."""
  return _BLOCK_WEIGHT in sd and 'body.0.conv_fusion.weight' in sd


def kwargs_from_params(params, **given):
  kernel = lambda *path: torch_layout.kernel_shape(params, 'wdrn', *path)
  num_in, num_feat = kernel('conv_first')[2:]
  blocks = torch_layout.fullmatch_indices(params, r'body_(\d+)')
  kw = dict(num_in_ch=num_in, num_out_ch=kernel('conv_last')[3],
            num_feat=num_feat, num_block=len(blocks),
            scale=2 ** len(torch_layout.fullmatch_indices(
                params, r'upsample_(\d+)_conv')))
  if blocks:
    kw['num_layer'] = len(torch_layout.fullmatch_indices(
        params['body_0'], r'conv(\d+)'))
    kw['num_grow_ch'] = kernel('body_0', 'conv1')[3]
  return {**kw, **given}


GENERATORS.register('wdrn',
                    convert_torch=convert_torch,
                    recognise=recognise,
                    kwargs_from_params=kwargs_from_params)(WDRN)
