"""Real-ESRGAN's U-Net discriminator with spectral normalisation.

BasicSR's `UNetDiscriminatorSN` (basicsr/archs/discriminator_arch.py): conv0
(3x3, bias), three stride-2 4x4 convs down (conv1..conv3), three bilinear x2
upsamplings each followed by a 3x3 conv (conv4..conv6) with the encoder map
of the same size added back (skip_connection), two more 3x3 convs (conv7,
conv8) and conv9 (3x3, bias) giving one logit per pixel. conv1..conv8 have
no bias and are spectrally normalised; every conv but conv9 is followed by
LeakyReLU(0.2). Channels: nf, 2nf, 4nf, 8nf, 4nf, 2nf, nf, nf, nf, 1.

Spectral normalisation reproduces torch.nn.utils.spectral_norm exactly (one
power iteration, eps 1e-12): the weight is used as W / sigma with W the conv
weight in PyTorch's [out, in * kh * kw] layout. The power-iteration vectors u
[out] and v [in * kh * kw] (torch's weight_u / weight_v buffers) live in the
'spectral' collection, not 'batch_stats': they never mix samples. With
train=True they take one power-iteration step and are stored back (apply with
mutable=['spectral']); with train=False they are used as stored.

`convert_torch` maps a PyTorch state dict (conv*.weight_orig / weight_u /
weight_v, conv0 / conv9 .weight / .bias) onto these variables.
"""
import functools
import math
import re
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.models import layers
from sr_jax.models import torch_layout
from sr_jax.models.registry import DISCRIMINATORS

# The size the tests train: 17k parameters (the default num_feat=64: 4.4M).
TINY_KWARGS = dict(num_feat=4)

SPECTRAL = 'spectral'  # The variable collection holding u and v.
_EPS = 1e-12  # torch.nn.utils.spectral_norm's default eps.
_HIGHEST = jax.lax.Precision.HIGHEST
_PLAIN_CONVS = ('conv0', 'conv9')  # With bias, without spectral norm.
_SN_CONVS = tuple(f'conv{i}' for i in range(1, 9))


def _normalize(x: jax.Array) -> jax.Array:
  """F.normalize(x, dim=0, eps=1e-12): x / max(||x||, eps)."""
  return x / jnp.maximum(jnp.linalg.norm(x), _EPS)


def upsample_bilinear_2x(x: jax.Array) -> jax.Array:
  """F.interpolate(x, scale_factor=2, mode='bilinear', align_corners=False).

  x: [N, H, W, C] -> [N, 2H, 2W, C], same dtype. Output pixel 2i samples the
  input at i - 1/4 and 2i + 1 at i + 1/4, so the weights are 1/4 and 3/4 of
  the two nearest pixels, with the edge pixel repeated outside the image
  (PyTorch clamps the source coordinate there). jax.image.resize 'bilinear'
  computes the same for this exact 2x case (see the tests) through dense
  interpolation matrices; these few adds are cheaper and backend-independent.
  """

  def along(y, axis):
    size = y.shape[axis]
    take = lambda start, stop: jax.lax.slice_in_dim(y, start, stop, axis=axis)
    prev = jnp.concatenate([take(0, 1), take(0, size - 1)], axis=axis)
    nxt = jnp.concatenate([take(1, size), take(size - 1, size)], axis=axis)
    even = 0.25 * prev + 0.75 * y
    odd = 0.75 * y + 0.25 * nxt
    out = jnp.stack([even, odd], axis=axis + 1)  # [..., size, 2, ...]
    new_shape = y.shape[:axis] + (2 * size,) + y.shape[axis + 1:]
    return out.reshape(new_shape).astype(y.dtype)

  return along(along(x, 1), 2)


def _torch_kernel_init(key: jax.Array, shape: tuple[int, ...],
                       dtype: Any = jnp.float32) -> jax.Array:
  """layers.torch_default_kernel_init(), drawn flat and reshaped.

  U(-1/sqrt(fan_in), 1/sqrt(fan_in)), fan_in = kh * kw * in for an HWIO
  kernel: the same distribution, but a 1-D draw compiles several times
  faster on CPU than a 4-D one (threefry counters per dimension).
  """
  bound = 1.0 / math.sqrt(math.prod(shape[:-1]))
  flat = jax.random.uniform(key, (math.prod(shape),), dtype, -bound, bound)
  return flat.reshape(shape)


class SpectralNormConv(nn.Module):
  """spectral_norm(nn.Conv2d(in, features, k, stride, pad, bias=False)).

  x: [N, H, W, C_in] -> [N, H', W', features] in `dtype`. Variables:
  params 'kernel' [k, k, C_in, features] (HWIO; torch's weight_orig
  transposed) and, in the 'spectral' collection, 'u' [features] and 'v'
  [C_in * k * k] (torch's weight_u, weight_v). Init is torch's: the kernel
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)), u and v normalised Gaussian noise, all
  from the 'params' rng.

  With update=True (training) one power iteration refreshes u and v, which
  are stored back (except in init; ValueError if the 'spectral' collection
  is not mutable). sigma = u . (W v) always uses the (gradient-stopped) u
  and v of this call, as torch does.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  padding: int = 1
  use_bias: bool = False  # True: spectral_norm(nn.Conv2d(..., bias=True)).
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, update: bool = False) -> jax.Array:
    k, in_ch = self.kernel_size, x.shape[-1]
    num_u, num_v = self.features, in_ch * k * k
    kernel = self.param('kernel', _torch_kernel_init,
                        (k, k, in_ch, self.features), self.param_dtype)
    if not self.has_variable(SPECTRAL, 'u'):
      # One draw for both, split: random draws dominate init compile time.
      noise = jax.random.normal(self.make_rng('params'), (num_u + num_v,))
      init_u = _normalize(noise[:num_u]).astype(self.param_dtype)
      init_v = _normalize(noise[num_u:]).astype(self.param_dtype)
    else:
      init_u = init_v = None  # The variables exist: inits unused.
    u_var = self.variable(SPECTRAL, 'u', lambda: init_u)
    v_var = self.variable(SPECTRAL, 'v', lambda: init_v)

    # PyTorch's weight_orig.view(out, -1): [out, in, kh, kw] flattened.
    w = kernel.astype(jnp.float32).transpose(3, 2, 0, 1).reshape(
        self.features, -1)
    u = u_var.value.astype(jnp.float32)
    v = v_var.value.astype(jnp.float32)
    if update:
      w_const = jax.lax.stop_gradient(w)
      v = _normalize(jnp.matmul(w_const.T, u, precision=_HIGHEST))
      u = _normalize(jnp.matmul(w_const, v, precision=_HIGHEST))
      if not self.is_initializing():
        if not self.is_mutable_collection(SPECTRAL):
          raise ValueError(
              f"train=True updates the {SPECTRAL!r} collection (spectral "
              f"norm's power iteration); apply with mutable=[{SPECTRAL!r}].")
        u_var.value = u.astype(self.param_dtype)
        v_var.value = v.astype(self.param_dtype)
    u, v = jax.lax.stop_gradient(u), jax.lax.stop_gradient(v)
    sigma = jnp.dot(u, jnp.matmul(w, v, precision=_HIGHEST),
                    precision=_HIGHEST)
    pad = self.padding
    y = jax.lax.conv_general_dilated(
        x.astype(self.dtype), (kernel / sigma).astype(self.dtype),
        window_strides=(self.strides, self.strides),
        padding=((pad, pad), (pad, pad)),
        dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    if self.use_bias:
      bias = self.param('bias', layers.torch_default_bias_init(num_v),
                        (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class UNetDiscriminatorSN(nn.Module):
  """Per-pixel real/fake classifier (Real-ESRGAN's discriminator).

  Call: `apply(variables, x, train=...)` with x: [N, H, W, num_in_ch] an
  image in [0, 1], H and W multiples of 8; returns logits [N, H, W, 1]
  float32. With train=True apply with mutable=['spectral'] (one spectral-norm
  power iteration per call, as torch in train mode); train=False leaves the
  'spectral' collection unchanged. No BatchNorm: samples never mix.
  """
  # The `:runlocal` size.
  TINY_KWARGS = TINY_KWARGS
  num_in_ch: int = 3
  num_feat: int = 64
  skip_connection: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise errors.ConfigError(
          f'UNetDiscriminatorSN(num_in_ch={self.num_in_ch}) expects '
          f'[N, H, W, {self.num_in_ch}] input; got shape {x.shape}.')
    if x.shape[1] % 8 or x.shape[2] % 8:
      raise errors.ConfigError(
          f'UNetDiscriminatorSN needs H and W to be multiples of 8 (three '
          f'stride-2 convs, then three x2 upsamplings with skip additions); '
          f'got {x.shape[1]}x{x.shape[2]}. Crop or pad the patches.')
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    conv = functools.partial(layers.Conv, kernel_init=_torch_kernel_init, **kw)
    nf = self.num_feat
    act = layers.leaky_relu

    def sn_conv(y, features, name, down=False):
      if down:
        layer = SpectralNormConv(features, 4, strides=2, padding=1, name=name,
                                **kw)
      else:
        layer = SpectralNormConv(features, 3, name=name, **kw)
      return act(layer(y, update=train))

    def skip(y, encoder_map):
      return y + encoder_map if self.skip_connection else y

    x = x.astype(self.dtype)
    x0 = act(conv(nf, 3, name='conv0')(x))
    x1 = sn_conv(x0, nf * 2, 'conv1', down=True)
    x2 = sn_conv(x1, nf * 4, 'conv2', down=True)
    x3 = sn_conv(x2, nf * 8, 'conv3', down=True)
    x4 = skip(sn_conv(upsample_bilinear_2x(x3), nf * 4, 'conv4'), x2)
    x5 = skip(sn_conv(upsample_bilinear_2x(x4), nf * 2, 'conv5'), x1)
    x6 = skip(sn_conv(upsample_bilinear_2x(x5), nf, 'conv6'), x0)
    out = sn_conv(x6, nf, 'conv7')
    out = sn_conv(out, nf, 'conv8')
    out = conv(1, 3, name='conv9')(out)
    return out.astype(jnp.float32)


# torch leaf -> (collection, flax leaf). 'weight' only for the plain convs.
_SN_LEAVES = {'weight_orig': ('params', 'kernel'),
              'weight_u': (SPECTRAL, 'u'), 'weight_v': (SPECTRAL, 'v')}
_PLAIN_LEAVES = {'weight': ('params', 'kernel'), 'bias': ('params', 'bias')}
_KEY = re.compile(r'^(conv\d+)\.(\w+)$')


def _keys(state_dict: Mapping[str, Any]) -> set[str]:
  """Key names of a state dict or a BasicSR checkpoint wrapping one."""
  for wrapper in torch_layout.WRAPPER_KEYS:
    if isinstance(state_dict.get(wrapper), Mapping):
      state_dict = state_dict[wrapper]
      break
  return {k[len('module.'):] if k.startswith('module.') else k
          for k in state_dict if isinstance(k, str)}


def recognise(state_dict: Mapping[str, Any]) -> bool:
  """True if state_dict (or a checkpoint wrapping it) is this architecture."""
  if not isinstance(state_dict, Mapping):
    return False
  keys = _keys(state_dict)
  return {'conv0.weight', 'conv1.weight_orig', 'conv1.weight_u',
          'conv8.weight_orig', 'conv9.weight'} <= keys


def _torch_name(path: torch_layout.Path) -> str:
  collection, module, leaf = path
  table = _PLAIN_LEAVES if module in _PLAIN_CONVS else _SN_LEAVES
  return next(f'{module}.{name}' for name, target in table.items()
              if target == (collection, leaf))


def convert_torch(state_dict: Mapping[str, Any],
                  **kwargs) -> tuple[dict, dict]:
  """PyTorch UNetDiscriminatorSN state dict -> (variables, model kwargs).

  state_dict: {torch key: tensor or array}, or a BasicSR checkpoint wrapping
  one ('params' / 'params_ema'). num_in_ch and num_feat are read off
  conv0.weight; skip_connection (no weights of its own) comes from kwargs,
  default True. Returns variables {'params': ..., 'spectral': ...} of
  float32 numpy arrays and the kwargs to build UNetDiscriminatorSN with.

  Raises ValueError naming every missing, unexpected or mis-shaped torch key,
  and for exports with spectral norm removed (convN.weight for N in 1..8):
  those have lost weight_u / weight_v, so the eval-mode forward pass cannot
  be reproduced exactly.
  """
  unknown = set(kwargs) - {'skip_connection'}
  if unknown:
    raise TypeError(f'convert_torch: unexpected kwargs {sorted(unknown)}; '
                    'only skip_connection is not read off the weights.')
  sd = torch_layout.unwrap_state_dict(state_dict)
  num_feat, num_in_ch = torch_layout.shape_of(sd, 'conv0.weight')[:2]
  model_kwargs = dict(num_in_ch=int(num_in_ch), num_feat=int(num_feat),
                      skip_connection=bool(kwargs.get('skip_connection', True)))

  removed = sorted(
      k for k in sd if (m := _KEY.match(k)) and m.group(2) == 'weight'
      and m.group(1) in _SN_CONVS
      and f'{m.group(1)}.weight_orig' not in sd)
  if removed:
    raise ValueError(
        f'State dict has spectral norm removed ({removed} instead of '
        '.weight_orig / .weight_u / .weight_v); convert the checkpoint saved '
        'with spectral norm (BasicSR net_d), whose weight_u / weight_v are '
        'needed to reproduce its outputs.')

  template = torch_layout.template(UNetDiscriminatorSN(**model_kwargs),
                                   (1, 8, 8, model_kwargs['num_in_ch']))
  flat, torch_key, unexpected = {}, {}, []
  for key, array in sd.items():
    m = _KEY.match(key)
    table = _PLAIN_LEAVES if m and m.group(1) in _PLAIN_CONVS else _SN_LEAVES
    target = table.get(m.group(2)) if m else None
    path = (target[0], m.group(1), target[1]) if target else None
    if path not in template:
      unexpected.append(key)
      continue
    flat[path] = array.transpose(2, 3, 1, 0) if array.ndim == 4 else array
    torch_key[path] = key

  missing = sorted(_torch_name(p) for p in template if p not in flat)
  mismatched = []
  for path, shape in template.items():
    if path in flat and flat[path].shape != tuple(shape):
      expected = tuple(shape)
      if len(expected) == 4:  # HWIO -> OIHW, to speak PyTorch.
        expected = (expected[3], expected[2], expected[0], expected[1])
      mismatched.append(f'{torch_key[path]}: got '
                        f'{tuple(sd[torch_key[path]].shape)}, expected '
                        f'{expected}')
  problems = torch_layout.key_problems(missing, unexpected, mismatched)
  if problems:
    raise ValueError(f'State dict does not match UNetDiscriminatorSN'
                     f'({model_kwargs}); ' + '; '.join(problems) + '.')
  return torch_layout.nest(flat), model_kwargs


def input_multiple(module) -> int:
  """Three stride-2 convolutions: H and W must be multiples of 8."""
  del module
  return 8


DISCRIMINATORS.register('unet_sn',
                        convert_torch=convert_torch,
                        recognise=recognise,
                        input_multiple=input_multiple)(UNetDiscriminatorSN)
