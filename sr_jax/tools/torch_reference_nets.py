"""The networks of the PyTorch reference (sr_jax.tools.torch_reference):
BasicSR's RRDBNet, VGGStyleDiscriminator and VGGFeatureExtractor (torchvision's
VGG19 features), with BasicSR's state-dict names, and `torch_state_dict`,
which maps sr_jax's variables back onto them. Re-exported from
torch_reference; imports torch. Tensors are NCHW, images in [0, 1].
"""
import math
from typing import Sequence

import jax
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from sr_jax import weights


def _lrelu(x: torch.Tensor) -> torch.Tensor:
  return F.leaky_relu(x, 0.2)


class ResidualDenseBlock(nn.Module):
  """Five densely connected 3x3 convs, residual scaled by 0.2."""

  def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
    super().__init__()
    for i in range(1, 5):
      setattr(self, f'conv{i}',
              nn.Conv2d(num_feat + (i - 1) * num_grow_ch, num_grow_ch, 3, 1,
                        1))
    self.conv5 = nn.Conv2d(num_feat + 4 * num_grow_ch, num_feat, 3, 1, 1)
    # BasicSR's default_init_weights(scale=0.1).
    for i in range(1, 6):
      conv = getattr(self, f'conv{i}')
      nn.init.kaiming_normal_(conv.weight)
      conv.weight.data.mul_(0.1)
      conv.bias.data.zero_()

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    feats = [x]
    for i in range(1, 5):
      feats.append(_lrelu(getattr(self, f'conv{i}')(torch.cat(feats, 1))))
    return self.conv5(torch.cat(feats, 1)) * 0.2 + x


class RRDB(nn.Module):
  """Residual-in-Residual Dense Block: three RDBs and a 0.2-scaled skip."""

  def __init__(self, num_feat: int = 64, num_grow_ch: int = 32):
    super().__init__()
    self.rdb1 = ResidualDenseBlock(num_feat, num_grow_ch)
    self.rdb2 = ResidualDenseBlock(num_feat, num_grow_ch)
    self.rdb3 = ResidualDenseBlock(num_feat, num_grow_ch)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x


def pixel_unshuffle(x: torch.Tensor, scale: int) -> torch.Tensor:
  """BasicSR's pixel_unshuffle: [B, C, H, W] -> [B, C s^2, H / s, W / s]."""
  b, c, hh, ww = x.shape
  x = x.view(b, c, hh // scale, scale, ww // scale, scale)
  return x.permute(0, 1, 3, 5, 2, 4).reshape(b, c * scale * scale,
                                             hh // scale, ww // scale)


class RRDBNet(nn.Module):
  """BasicSR's RRDBNet (ESRGAN's generator), x1 / x2 / x4 (and x8).

  x: [B, num_in_ch, h, w] -> [B, num_out_ch, h scale, w scale], unclipped.
  x2 and x1 pixel-unshuffle the input first (Real-ESRGAN); x8 adds conv_up3.
  """

  def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, scale: int = 4,
               num_feat: int = 64, num_block: int = 23,
               num_grow_ch: int = 32):
    super().__init__()
    self.scale = scale
    in_ch = num_in_ch * {1: 16, 2: 4}.get(scale, 1)
    self.conv_first = nn.Conv2d(in_ch, num_feat, 3, 1, 1)
    self.body = nn.Sequential(*[RRDB(num_feat, num_grow_ch)
                                for _ in range(num_block)])
    self.conv_body = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    self.num_up = 3 if scale == 8 else 2
    for i in range(1, self.num_up + 1):
      setattr(self, f'conv_up{i}', nn.Conv2d(num_feat, num_feat, 3, 1, 1))
    self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
    self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    if self.scale in (1, 2):
      x = pixel_unshuffle(x, 4 // self.scale)
    feat = self.conv_first(x)
    feat = feat + self.conv_body(self.body(feat))
    for i in range(1, self.num_up + 1):
      up = F.interpolate(feat, scale_factor=2, mode='nearest')
      feat = _lrelu(getattr(self, f'conv_up{i}')(up))
    return self.conv_last(_lrelu(self.conv_hr(feat)))


class VGGStyleDiscriminator(nn.Module):
  """BasicSR's VGGStyleDiscriminator, stages generalised to any 4 * 2^k.

  input_size 128 is BasicSR's layout exactly (conv0_0 ... conv4_1, BN after
  every conv but the first, linear1 8nf*4*4 -> 100, linear2 100 -> 1);
  256 adds stage 5 as BasicSR does. use_bn=False drops the BN layers and
  gives those convs a bias (sr_jax's per-sample critic).
  x: [B, num_in_ch, input_size, input_size] -> logits [B, 1].
  """

  def __init__(self, num_in_ch: int = 3, num_feat: int = 64,
               input_size: int = 128, use_bn: bool = True):
    super().__init__()
    self.stages = int(math.log2(input_size // 4))
    if 4 * 2**self.stages != input_size or self.stages < 1:
      raise ValueError(f'input_size must be 4 * 2^k, k >= 1; got '
                       f'{input_size}.')
    self.use_bn = use_bn
    self.conv0_0 = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1, bias=True)
    prev = num_feat
    for i in range(self.stages):
      ch = num_feat * min(2**i, 8)
      if i > 0:
        setattr(self, f'conv{i}_0',
                nn.Conv2d(prev, ch, 3, 1, 1, bias=not use_bn))
        if use_bn:
          setattr(self, f'bn{i}_0', nn.BatchNorm2d(ch, affine=True))
      setattr(self, f'conv{i}_1', nn.Conv2d(ch, ch, 4, 2, 1, bias=not use_bn))
      if use_bn:
        setattr(self, f'bn{i}_1', nn.BatchNorm2d(ch, affine=True))
      prev = ch
    self.linear1 = nn.Linear(prev * 4 * 4, 100)
    self.linear2 = nn.Linear(100, 1)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    x = _lrelu(self.conv0_0(x))
    for i in range(self.stages):
      for j in ((0, 1) if i > 0 else (1,)):
        x = getattr(self, f'conv{i}_{j}')(x)
        if self.use_bn:
          x = getattr(self, f'bn{i}_{j}')(x)
        x = _lrelu(x)
    x = _lrelu(self.linear1(x.flatten(1)))
    return self.linear2(x)


# torchvision's vgg19 `features`: channels, 'M' a 2x2 max-pool.
VGG19_CFG = (64, 64, 'M', 128, 128, 'M', 256, 256, 256, 256, 'M',
             512, 512, 512, 512, 'M', 512, 512, 512, 512, 'M')


def vgg19_layer_names() -> list[str]:
  """BasicSR's names of torchvision's vgg19 features, index for index:
  conv1_1, relu1_1, conv1_2, relu1_2, pool1, conv2_1, ..., pool5."""
  names, block, conv = [], 1, 1
  for v in VGG19_CFG:
    if v == 'M':
      names.append(f'pool{block}')
      block, conv = block + 1, 1
    else:
      names += [f'conv{block}_{conv}', f'relu{block}_{conv}']
      conv += 1
  return names


def vgg19_features(last: int | None = None) -> nn.Sequential:
  """torchvision's vgg19().features (module indices 0 ... 36, so its
  state-dict keys are torchvision's), up to index `last` (default all)."""
  modules, prev = [], 3
  for v in VGG19_CFG:
    if v == 'M':
      modules.append(nn.MaxPool2d(2, 2))
    else:
      modules += [nn.Conv2d(prev, v, 3, padding=1), nn.ReLU()]
      prev = v
  return nn.Sequential(*modules[:None if last is None else last + 1])


class VGGFeatureExtractor(nn.Module):
  """BasicSR's VGGFeatureExtractor: {layer: features} of an image batch.

  The network stops at the deepest requested layer (conv5_4 for ESRGAN's
  perceptual loss: 35 of torchvision's 37 modules). Its parameters are
  frozen. use_input_norm: ImageNet mean / std first; range_norm: x in
  [-1, 1]. State-dict keys are `features.N.weight` (torchvision's).
  """

  def __init__(self, layer_name_list: Sequence[str] = ('conv5_4',),
               use_input_norm: bool = True, range_norm: bool = False):
    super().__init__()
    names = vgg19_layer_names()
    self.layer_name_list = tuple(layer_name_list)
    self.index = {n: names.index(n) for n in self.layer_name_list}
    self.features = vgg19_features(max(self.index.values()))
    self.use_input_norm = use_input_norm
    self.range_norm = range_norm
    self.register_buffer(
        'mean', torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        persistent=False)
    self.register_buffer(
        'std', torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
        persistent=False)
    for p in self.parameters():
      p.requires_grad = False

  def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
    if self.range_norm:
      x = (x + 1) / 2
    if self.use_input_norm:
      x = (x - self.mean) / self.std
    out = {}
    for i, module in enumerate(self.features):
      x = module(x)
      for name, index in self.index.items():
        if index == i:
          out[name] = x.clone()
    return out


def esrgan_networks(num_block: int = 23, num_feat: int = 64,
                    num_grow_ch: int = 32, d_num_feat: int = 64,
                    gt_size: int = 128, use_bn: bool = True,
                    device: str = 'cpu'):
  """(RRDBNet x4, VGG-style D, VGG19 to conv5_4) of BasicSR's ESRGAN, with
  random weights (PyTorch's and BasicSR's initialisations), on `device`."""
  net_g = RRDBNet(3, 3, 4, num_feat, num_block, num_grow_ch)
  net_d = VGGStyleDiscriminator(3, d_num_feat, gt_size, use_bn)
  vgg = VGGFeatureExtractor(('conv5_4',))
  return net_g.to(device), net_d.to(device), vgg.to(device).eval()


# ------------------------------------------------- JAX -> PyTorch weights --


def torch_state_dict(arch: str, variables, module: nn.Module
                     ) -> dict[str, torch.Tensor]:
  """sr_jax variables of `arch` as `module`'s state dict: the inverse of
  `sr_jax.convert.convert_state_dict(arch, ...)` ('rrdbnet', 'vgg_style',
  'vgg19', ...), exact (a re-layout, no arithmetic).

  Where each PyTorch tensor lives in the flax tree is read off the forward
  converter itself: it converts a probe state dict of `module` whose k-th
  floating tensor is filled with the number k (exact in float32), so every
  renaming the converter does is followed without being restated here.
  Conv kernels go HWIO -> OIHW and dense kernels [in, out] -> [out, in].
  Non-float buffers (BatchNorm's num_batches_tracked, which sr_jax does not
  keep) come from `module`. Extra flax collections (e.g. 'flipped') are
  ignored. Raises ValueError naming a tensor the variables do not give.
  """
  template = module.state_dict()
  keys = [k for k, v in template.items() if v.is_floating_point()]
  probe = {k: np.full(tuple(template[k].shape), i, np.float32)
           for i, k in enumerate(keys)}
  where = {}
  for path, leaf in jax.tree_util.tree_flatten_with_path(
      weights.convert_state_dict(arch, probe))[0]:
    values = np.unique(np.asarray(leaf))
    if values.size != 1:
      raise ValueError(f'{arch}: the converter mixes tensors into '
                       f'{jax.tree_util.keystr(path)}; no exact inverse.')
    where[keys[int(values[0])]] = tuple(p.key for p in path)
  out = dict(template)
  for k in keys:
    if k not in where:
      raise ValueError(f'{arch}: the converter drops {k}; no inverse.')
    node = variables
    try:
      for name in where[k]:
        node = node[name]
    except (KeyError, TypeError):
      raise ValueError(f'{arch}: the variables have no '
                       f'{"/".join(where[k])} (for {k}).') from None
    array = np.asarray(node, np.float32)
    if array.ndim == 4:  # HWIO -> OIHW.
      array = array.transpose(3, 2, 0, 1)
    elif array.ndim == 2:  # [in, out] -> [out, in].
      array = array.T
    if array.shape != tuple(template[k].shape):
      raise ValueError(f'{arch}: {"/".join(where[k])} has shape '
                       f'{array.shape} in PyTorch layout; {k} needs '
                       f'{tuple(template[k].shape)}.')
    out[k] = torch.from_numpy(np.array(array, np.float32))  # A copy.
  return out
