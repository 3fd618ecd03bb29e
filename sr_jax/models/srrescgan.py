"""SRResCGAN's generator (Umer et al., "Deep Generative Adversarial Residual
Convolutional Networks for Real-World Super-Resolution", CVPRW 2020), as the
released PyTorch code computes it (RaoUmer/SRResCGAN,
srrescgan_code_demo/models/SRResCGAN.py); written here from that code and
the paper.

The released model works on [0, 255] images. sr_jax generators take and
return [0, 1]: the input is multiplied by 255 on the way in and the output
divided by 255 on the way out; everything between is the released
computation in [0, 255]:

  y = bilinear x scale up-sampling of x (align_corners=False);
  sigma = 255 * WMAD(y): the median absolute deviation / 0.6745 of the
      finest diagonal Daubechies-7 wavelet coefficients of y (y / 255 when
      the batch's maximum exceeds 1, as released), per channel, averaged
      over the channels; not differentiated;
  r = ResCNet(y): reflect-padded weight-normalised 5x5 conv (3 -> 64), then
      `depth` residual blocks of [PReLU -> reflect pad 1 -> weight-normalised
      3x3 conv] twice (the first block without its shortcut), then a
      weight-normalised 5x5 transposed conv (64 -> 3, zero padding 2);
  r = r * eps / max(||r||_2, eps), eps = exp(alpha) * sigma * sqrt(3 H W - 1)
      (an L2 projection onto the ball of that radius, per image);
  out = clip(y - r, 0, 255).

What the released code computes, read closely:
- Its `zeromean()` subtracts each Conv2d weight's mean before every forward,
  but every Conv2d there is weight-normalised, and weight norm recomputes
  the weight from weight_g and weight_v in a forward pre-hook that runs
  after zeromean: the subtraction never reaches the convolution. The
  transposed conv is not an nn.Conv2d and is never zero-meaned. So no
  zero-mean step here either.
- torch.median of an even count is the LOWER of the two middle values, not
  their average; the noise estimate takes that.
- Weight norm is PyTorch's default dim=0: per output channel for the
  Conv2d weights [out, in, kh, kw], and per INPUT channel for the
  transposed conv's weight [in, out, kh, kw] (weight_g [64, 1, 1, 1]).

A consequence of the released noise estimate, measured here: it is taken
on the x4 bilinear image, whose finest diagonal wavelet coefficients are
almost zero, so sigma is tiny (0.004 levels of 255 for an LR with sensor
noise of sigma 8, 0.0005 for a clean one; the same with the released torch
code). The projection then holds the residual to RMS ~ exp(alpha) * sigma:
from the released alpha (log 2) the output is bilinear up-sampling, and it
can move away only as fast as alpha grows (an Adam step of ~lr per step).
The released training starts from a pretrained G (G_perceptual.pth);
`alpha_init` (default log 2, as released) lets a from-scratch run start
with a usable budget (configs/srrescycgan.py:demo uses log 2000).

Depth 5 has 380,356 parameters. The parameters keep the weight-norm split
(`v`, `g`), so training updates g and v as the released code does.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import GENERATORS

# Daubechies-7 high-pass decomposition filter (the released code's, applied
# as a cross-correlation).
DB7_DECOMPOSITION_HIGH = np.array([
    -0.07785205408506236, 0.39653931948230575, -0.7291320908465551,
    0.4697822874053586, 0.14390600392910627, -0.22403618499416572,
    -0.07130921926705004, 0.0806126091510659, 0.03802993693503463,
    -0.01657454163101562, -0.012550998556013784, 0.00042957797300470274,
    0.0018016407039998328, 0.0003537138000010399], np.float32)


def lower_median(x: jax.Array, axis: int = -1) -> jax.Array:
  """torch.median along an axis: the lower middle value for even counts."""
  n = x.shape[axis]
  return jnp.take(jnp.sort(x, axis=axis), (n - 1) // 2, axis=axis)


def _filter_rows(x: jax.Array, taps: np.ndarray) -> jax.Array:
  """Reflect-pad H by len(taps) // 2, correlate with taps along H, stride 2
  (the released conv2d with a [k, 1] kernel and stride (2, 1))."""
  half = len(taps) // 2
  x = jnp.pad(x, ((0, 0), (half, half), (0, 0), (0, 0)), mode='reflect')
  out_h = (x.shape[1] - len(taps)) // 2 + 1
  return sum(float(t) * x[:, k:k + 2 * (out_h - 1) + 1:2]
             for k, t in enumerate(taps))


def wmad_sigma(y: jax.Array) -> jax.Array:
  """[N, H, W, C] images -> [N] noise standard deviations (in y's units
  after the released /255 rule: divided by 255 when max(y) > 1)."""
  y = jnp.where(jnp.max(y) > 1, y / 255.0, y)
  diagonal = _filter_rows(y, DB7_DECOMPOSITION_HIGH)
  diagonal = _filter_rows(diagonal.transpose(0, 2, 1, 3),
                          DB7_DECOMPOSITION_HIGH)
  n, _, _, c = diagonal.shape
  values = jnp.abs(diagonal).reshape(n, -1, c)
  sigma = jnp.mean(lower_median(values, axis=1) / 0.6745, axis=-1)
  return jax.lax.stop_gradient(sigma)


def _weight_norm(v: jax.Array, g: jax.Array, axes) -> jax.Array:
  norm = jnp.sqrt(jnp.sum(jnp.square(v), axis=axes, keepdims=True))
  return v * (g / norm)


class WNConv(nn.Module):
  """A weight-normalised conv: kernel = g * v / ||v|| per output channel.
  v: [kh, kw, in, out] (HWIO), g: [out], bias: [out]. VALID padding (the
  caller pads). transposed=True is torch's ConvTranspose2d at stride 1:
  v keeps torch's [in, out] roles ([kh, kw, in, out] with the norm per
  INPUT channel, torch's dim=0), and the kernel is flipped and the input
  zero-padded by kernel_size - 1 - padding."""
  features: int
  kernel_size: int
  transposed: bool = False
  padding: int = 0
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, c_in = self.kernel_size, x.shape[-1]
    v = self.param('v', nn.initializers.lecun_normal(),
                   (k, k, c_in, self.features), self.param_dtype)
    norm_size = c_in if self.transposed else self.features
    g = self.param('g', nn.initializers.ones, (norm_size,), self.param_dtype)
    bias = self.param('bias', nn.initializers.zeros, (self.features,),
                      self.param_dtype)
    if self.transposed:
      kernel = _weight_norm(v, g[None, None, :, None], (0, 1, 3))
      kernel = kernel[::-1, ::-1]
      pad = k - 1 - self.padding
      x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    else:
      kernel = _weight_norm(v, g, (0, 1, 2))
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), kernel.astype(self.dtype), (1, 1), 'VALID',
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    return y + bias.astype(self.dtype)


def _reflect(x: jax.Array, pad: int) -> jax.Array:
  return jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='reflect')


class ResBlock(nn.Module):
  """[PReLU -> reflect pad -> WN 3x3 conv] x 2, plus the input if
  shortcut (the released BasicBlock; PReLU slopes start at 0.1)."""
  features: int = 64
  shortcut: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    out = x
    for i in (1, 2):
      out = layers.PReLU(init_slope=0.1, param_dtype=self.param_dtype,
                         name=f'relu{i}')(out)
      out = WNConv(self.features, 3, dtype=self.dtype,
                   param_dtype=self.param_dtype,
                   name=f'conv{i}')(_reflect(out, 1))
    return x + out if self.shortcut else out


class SRResCGAN(nn.Module):
  """SRResCGAN's generator G_SR (see the module docstring).

  Call: `apply(variables, x, train=...)` with x: [N, h, w, 3] in [0, 1];
  returns [N, scale h, scale w, 3] float32 in [0, 1]. `train` is unused.
  h and w must exceed 1 (reflect padding of the up-sampled image by 7).
  """
  TINY_KWARGS = dict(depth=2, num_feat=8)

  scale: int = 4
  depth: int = 5
  num_feat: int = 64
  num_in_ch: int = 3
  alpha_init: float = float(np.log(2.0))  # The released initial alpha.
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise ValueError(f'SRResCGAN expects [N, H, W, {self.num_in_ch}] '
                       f'input; got shape {x.shape}.')
    n, h, w, c = x.shape
    y = jax.image.resize(x.astype(jnp.float32) * 255.0,
                         (n, h * self.scale, w * self.scale, c), 'bilinear',
                         antialias=False)
    sigma = wmad_sigma(y) * 255.0
    alpha = self.param('alpha', nn.initializers.constant(self.alpha_init),
                       (1,), self.param_dtype)
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    r = WNConv(self.num_feat, 5, name='conv1', **kw)(_reflect(y, 2))
    for i in range(self.depth):
      r = ResBlock(self.num_feat, shortcut=i > 0, name=f'layer1_{i}',
                   **kw)(r)
    r = WNConv(c, 5, transposed=True, padding=2, name='conv_out', **kw)(r)
    r = r.astype(jnp.float32)
    # L2 projection onto the ball of radius exp(alpha) sigma sqrt(CHW - 1).
    size = r.shape[1] * r.shape[2] * r.shape[3]
    eps = (jnp.exp(alpha[0].astype(jnp.float32)) * sigma
           * np.sqrt(size - 1.0))[:, None, None, None]
    norm = jnp.sqrt(jnp.sum(jnp.square(r), axis=(1, 2, 3),
                            keepdims=True))
    r = r * (eps / jnp.maximum(norm, eps))
    return jnp.clip(y - r, 0.0, 255.0) / 255.0


# ------------------------------------------------------------- PyTorch --

def _flax_conv(sd, key: str, transposed: bool) -> dict:
  v = np.asarray(sd[f'{key}.weight_v'], np.float32)
  g = np.asarray(sd[f'{key}.weight_g'], np.float32).reshape(-1)
  # Conv2d [out, in, kh, kw] and ConvTranspose2d [in, out, kh, kw] both
  # become [kh, kw, in, out].
  v = v.transpose(2, 3, 0, 1) if transposed else v.transpose(2, 3, 1, 0)
  return {'v': v, 'g': g,
          'bias': np.asarray(sd[f'{key}.bias'], np.float32)}


def convert_torch(sd: torch_layout.StateDict,
                  **kwargs) -> torch_layout.Converted:
  """The released SRResCGAN Generator's state dict: `alpha`,
  `model.conv1.weight_g/_v/bias`, `model.layer1.{i}.conv{1,2}.weight_g/_v/
  bias`, `model.layer1.{i}.relu{1,2}.weight`, `model.conv_out.*`."""
  depth = len(torch_layout.indices(sd, r'model\.layer1\.(\d+)\.conv1\.'
                                       r'weight_v$'))
  num_feat, num_in_ch = torch_layout.shape_of(sd, 'model.conv1.weight_v')[:2]
  config = dict(depth=depth, num_feat=num_feat, num_in_ch=num_in_ch)
  config.update(kwargs)
  params: dict[str, Any] = {
      'alpha': np.asarray(sd['alpha'], np.float32).reshape(1)
      if 'alpha' in sd else None,
      'conv1': _flax_conv(sd, 'model.conv1', False)
      if 'model.conv1.weight_v' in sd else None,
      'conv_out': _flax_conv(sd, 'model.conv_out', True)
      if 'model.conv_out.weight_v' in sd else None}
  for i in range(depth):
    block = {}
    for j in (1, 2):
      key = f'model.layer1.{i}'
      if f'{key}.conv{j}.weight_v' in sd:
        block[f'conv{j}'] = _flax_conv(sd, f'{key}.conv{j}', False)
      if f'{key}.relu{j}.weight' in sd:
        block[f'relu{j}'] = {'negative_slope': np.asarray(
            sd[f'{key}.relu{j}.weight'], np.float32)}
    params[f'layer1_{i}'] = block
  module = SRResCGAN(**config)
  template = torch_layout.template(module, (1, 8, 8, config['num_in_ch']))
  flat = {}
  for path in template:
    node = params
    for name in path[1:]:
      node = node.get(name) if isinstance(node, dict) else None
    flat[path] = node
  missing = [('.'.join(p[1:]), s) for p, s in template.items()
             if flat[p] is None]
  mismatched = [f'{".".join(p[1:])}: got {flat[p].shape}, expected {s}'
                for p, s in template.items()
                if flat[p] is not None and flat[p].shape != tuple(s)]
  known = {'alpha'} | {k for k in sd if k.startswith('model.')}
  unexpected = sorted(set(sd) - known)
  if missing or mismatched or unexpected:
    raise ValueError(
        'State dict does not match SRResCGAN; ' + '; '.join(
            torch_layout.key_problems([m for m, _ in missing], unexpected,
                                      mismatched)) + '.')
  return torch_layout.nest(flat), config


def recognise(sd) -> bool:
  """Weight-normalised `model.conv1` with an `alpha`: SRResCGAN's keys."""
  return 'alpha' in sd and 'model.conv1.weight_v' in sd


def kwargs_from_params(params, **given):
  num_in, num_feat = np.shape(params['conv1']['v'])[2:]
  depth = len(torch_layout.fullmatch_indices(params, r'layer1_(\d+)'))
  return {**dict(depth=depth, num_feat=num_feat, num_in_ch=num_in), **given}


GENERATORS.register('srrescgan',
                    convert_torch=convert_torch,
                    recognise=recognise,
                    kwargs_from_params=kwargs_from_params)(SRResCGAN)
