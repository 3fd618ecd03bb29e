"""Layers shared by the SR models, laid out so PyTorch state dicts map 1:1.

Conv kernels are HWIO ('kernel', [kh, kw, in, out]) and dense kernels are
[in, out]; PyTorch's OIHW / [out, in] weights convert with a transpose
(see sr_jax.convert). Parameters are created in `param_dtype` (float32) and
cast to the compute `dtype` on use, so passing dtype=jnp.bfloat16 gives mixed
precision with float32 master weights.

Unlike flax.linen.Conv, these layers know their fan-in when creating the bias,
which is what PyTorch's default bias init needs.
"""
import functools
import math
from typing import Any, Callable, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Initializer = Callable[..., jax.Array]


def torch_default_kernel_init() -> Initializer:
  """nn.Conv2d / nn.Linear default: kaiming_uniform(a=sqrt(5)).

  That is U(-1/sqrt(fan_in), 1/sqrt(fan_in)), i.e. variance 1/(3 fan_in).
  """
  return nn.initializers.variance_scaling(1 / 3, 'fan_in', 'uniform')


def scaled_kaiming_normal(scale: float) -> Initializer:
  """BasicSR's default_init_weights: kaiming_normal_(fan_in) * scale.

  kaiming_normal_ with a=0 has gain sqrt(2), so std = scale * sqrt(2/fan_in).
  PyTorch draws from an untruncated normal, as 'normal' does here.
  """
  return nn.initializers.variance_scaling(2.0 * scale**2, 'fan_in', 'normal')


def torch_default_bias_init(fan_in: int) -> Initializer:
  """PyTorch's default bias: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def maybe_remat(target, remat: bool, static_argnums: tuple[int, ...] = ()):
  """`target` rematerialised in the backward pass when `remat`, else itself.

  The one mechanism behind `config.remat` (activation checkpointing): of a
  rematerialised block only the input is kept for the backward pass, and
  its inner activations are recomputed there, which costs about one more
  forward pass of the blocks and frees most of the activation memory of a
  deep trunk. Parameter names and values do not change, so checkpoints and
  converted weights load either way. (XLA's CPU backend drops remat's
  optimisation barriers and merges the recomputation back: the saving is
  on GPUs and TPUs.)

  target: a block's Module class, or a function (module, *args) that
    creates and runs a unit of layers inside a compact method (for layers
    that are siblings in the parameter tree, as in srvgg).
  static_argnums: Python-valued arguments such as `train`, counting the
    module as 0 (a block called as block(x, train): (2,)).

  A generator opts in with a field `remat: bool = False` and its repeated
  block built as `block = layers.maybe_remat(Block, self.remat)`; the
  trainer sets it from config.remat.
  """
  if not remat:
    return target
  return nn.remat(target, static_argnums=static_argnums)


def leaky_relu(x: jax.Array) -> jax.Array:
  """LeakyReLU(0.2), as used throughout ESRGAN and its discriminator."""
  return nn.leaky_relu(x, negative_slope=0.2)


_NHWC = ('NHWC', 'HWIO', 'NHWC')

# Output pixels per image from which a strided conv's input gradient is
# faster in space-to-depth form on XLA:CPU (measured at batch 2, 2 threads:
# 64^2 out 15.3 -> 2.8 ms, 32^2 out 4.0 -> 2.9 ms; 16^2 out 3.8 -> 4.2 ms).
S2D_MIN_OUTPUT_PIXELS = 32 * 32


def _conv(x: jax.Array, kernel: jax.Array, stride: int,
          pad: int) -> jax.Array:
  return jax.lax.conv_general_dilated(
      x, kernel, window_strides=(stride, stride),
      padding=((pad, pad), (pad, pad)), dimension_numbers=_NHWC)


def _input_grad(g: jax.Array, flipped: jax.Array, in_hw, stride: int,
                pad: int) -> jax.Array:
  """What lax's transpose rule computes for the input gradient of
  _conv(x, kernel, stride, pad) with x of spatial size `in_hw`, given the
  kernel already laid out for it (`flipped` = flip_kernel(kernel))."""
  k = flipped.shape[0]
  return jax.lax.conv_general_dilated(
      g, flipped, (1, 1),
      [(k - 1 - pad, k - 1 - pad + (n + 2 * pad - k) % stride)
       for n in in_hw],
      lhs_dilation=(stride, stride), dimension_numbers=_NHWC)


def _kernel_grad(x: jax.Array, kernel: jax.Array, g: jax.Array, stride: int,
                 pad: int) -> jax.Array:
  """lax's own kernel gradient of _conv(x, kernel, stride, pad)."""
  return jax.vjp(lambda kk: _conv(x, kk, stride, pad), kernel)[1](g)[0]


def _space_to_depth_conv(x: jax.Array, kernel: jax.Array, stride: int,
                         pad: int) -> jax.Array:
  """The strided conv as a stride-1 conv over its stride x stride phases
  (space-to-depth of the padded input, the kernel regrouped to match; the
  kernel zero-padded to a multiple of the stride). The same sums, so the
  same values up to rounding."""
  n, h, w, c = x.shape
  k, s = kernel.shape[0], stride
  kq = -(-k // s)  # Taps per phase.
  out_h = (h + 2 * pad - k) // s + 1
  out_w = (w + 2 * pad - k) // s + 1
  # Pad to exactly (out - 1 + kq) * s rows / columns (crop what no output
  # reads), then split every s x s block into channels.
  rows, cols = (out_h - 1 + kq) * s, (out_w - 1 + kq) * s
  xp = jnp.pad(x, ((0, 0), (pad, max(rows - h - pad, 0)),
                   (pad, max(cols - w - pad, 0)), (0, 0)))[:, :rows, :cols]
  xs = xp.reshape(n, rows // s, s, cols // s, s, c)
  xs = xs.transpose(0, 1, 3, 2, 4, 5).reshape(n, rows // s, cols // s,
                                               s * s * c)
  kp = jnp.pad(kernel, ((0, kq * s - k), (0, kq * s - k), (0, 0), (0, 0)))
  ks = kp.reshape(kq, s, kq, s, c, -1).transpose(0, 2, 1, 3, 4, 5)
  ks = ks.reshape(kq, kq, s * s * c, -1)
  return _conv(xs, ks, 1, 0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(2, 3))
def _strided_conv(x, kernel, stride, pad):
  return _conv(x, kernel, stride, pad)


def _strided_conv_fwd(x, kernel, stride, pad):
  return _conv(x, kernel, stride, pad), (x, kernel)


def _strided_conv_bwd(stride, pad, residuals, g):
  x, kernel = residuals
  # Large maps: the input gradient through the space-to-depth form, a
  # stride-1 transposed conv. XLA:CPU runs the strided form's as a conv
  # over a zero-dilated gradient, single-threaded (15 ms vs 2.7 ms for
  # batch 2 at 128 px, 64 -> 64, in the ESRGAN discriminator's conv0_1).
  if g.shape[1] * g.shape[2] >= S2D_MIN_OUTPUT_PIXELS:
    dx = jax.vjp(lambda v: _space_to_depth_conv(v, kernel, stride, pad),
                 x)[1](g)[0]
  else:
    # lax's own, the kernel laid out in two cheap copies, not one slow one.
    flipped = jax.lax.optimization_barrier(jnp.swapaxes(kernel, 2, 3))
    dx = _input_grad(g, flipped[::-1, ::-1], x.shape[1:3], stride, pad)
  return dx, _kernel_grad(x, kernel, g, stride, pad)


_strided_conv.defvjp(_strided_conv_fwd, _strided_conv_bwd)


def flip_kernel(kernel: jax.Array) -> jax.Array:
  """The HWIO kernel of a stride-1 conv's input gradient: spatially
  reversed, input and output channels swapped."""
  return jnp.swapaxes(kernel[::-1, ::-1], 2, 3)


def with_flipped_kernels(variables: dict) -> dict:
  """A frozen network's variables plus a 'flipped' collection: every conv
  kernel in the layout its input gradient needs (`flip_kernel`).

  `Conv` (stride 1) finds it and takes its input gradient with it, so a
  loss backpropagating through a frozen network (VGG19's perceptual term,
  LPIPS, DISTS) no longer re-lays out the same constant kernels every step:
  XLA:CPU spent ~40 ms of the ESRGAN GAN step (batch 2, 128 px) on VGG19's.
  Costs one more copy of the kernels.
  """
  def flip(tree):
    out = {}
    for key, value in tree.items():
      if hasattr(value, 'items'):
        sub = flip(value)
        if sub:
          out[key] = sub
      elif key == 'kernel' and getattr(value, 'ndim', 0) == 4:
        out[key] = flip_kernel(value)
    return out

  return {**variables, 'flipped': flip(variables['params'])}


@functools.partial(jax.custom_vjp, nondiff_argnums=(3,))
def _conv_with_flipped(x, kernel, flipped, pad):
  """A stride-1 conv whose input gradient uses `flipped` (=
  flip_kernel(kernel), given) instead of laying the kernel out again.

  For frozen networks: the input gradient is exact to any order, and so is
  the kernel gradient, but a second derivative does not see that `flipped`
  is a function of `kernel`.
  """
  del flipped
  return _conv(x, kernel, 1, pad)


def _conv_with_flipped_fwd(x, kernel, flipped, pad):
  return _conv(x, kernel, 1, pad), (x, kernel, flipped)


def _conv_with_flipped_bwd(pad, residuals, g):
  x, kernel, flipped = residuals
  return (_input_grad(g, flipped, x.shape[1:3], 1, pad),
          _kernel_grad(x, kernel, g, 1, pad), jnp.zeros_like(flipped))


_conv_with_flipped.defvjp(_conv_with_flipped_fwd, _conv_with_flipped_bwd)


def conv2d(x: jax.Array, kernel: jax.Array, stride: int = 1,
           pad: int = 0) -> jax.Array:
  """NHWC x HWIO convolution with symmetric padding: lax's, except that on
  the CPU a strided conv takes its input gradient its own way (the forward
  pass and the kernel gradient are lax's): in space-to-depth form for large
  output maps, else as lax does but with the kernel's channels swapped
  before its taps are reversed (XLA fuses the two into one slow copy: 9.7
  ms a step for the ESRGAN discriminator's 4x4x512x512 conv3_1).
  Differentiable to any order in reverse mode."""
  if stride > 1 and jax.default_backend() == 'cpu':
    return _strided_conv(x, kernel, stride, pad)
  return _conv(x, kernel, stride, pad)


class Conv(nn.Module):
  """2-D convolution matching torch.nn.Conv2d(in, features, k, stride, pad).

  x: [N, H, W, C_in] -> [N, H', W', features] in `dtype`.
  padding=None means 'same' for odd kernels ((k - 1) // 2 on each side).
  kernel_init=None / bias_init=None use PyTorch's defaults.
  """
  features: int
  kernel_size: int = 3
  strides: int = 1
  padding: Optional[int] = None
  use_bias: bool = True
  kernel_init: Optional[Initializer] = None
  bias_init: Optional[Initializer] = None
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    k, in_ch = self.kernel_size, x.shape[-1]
    pad = (k - 1) // 2 if self.padding is None else self.padding
    kernel_init = self.kernel_init or torch_default_kernel_init()
    kernel = self.param('kernel', kernel_init, (k, k, in_ch, self.features),
                        self.param_dtype)
    if self.strides == 1 and self.has_variable('flipped', 'kernel'):
      y = _conv_with_flipped(
          x.astype(self.dtype), kernel.astype(self.dtype),
          self.get_variable('flipped', 'kernel').astype(self.dtype), pad)
    else:
      y = conv2d(x.astype(self.dtype), kernel.astype(self.dtype),
                 self.strides, pad)
    if self.use_bias:
      bias_init = self.bias_init or torch_default_bias_init(k * k * in_ch)
      bias = self.param('bias', bias_init, (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class Dense(nn.Module):
  """torch.nn.Linear(in, features): x [..., in] -> [..., features], `dtype`."""
  features: int
  use_bias: bool = True
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    in_features = x.shape[-1]
    kernel = self.param('kernel', torch_default_kernel_init(),
                        (in_features, self.features), self.param_dtype)
    y = x.astype(self.dtype) @ kernel.astype(self.dtype)
    if self.use_bias:
      bias = self.param('bias', torch_default_bias_init(in_features),
                        (self.features,), self.param_dtype)
      y = y + bias.astype(self.dtype)
    return y


class PReLU(nn.Module):
  """torch.nn.PReLU(num_parameters=C): one learnable slope per channel.

  flax.linen.PReLU has a single scalar slope; SRGAN's generator uses one per
  channel, and a [C] parameter keeps PyTorch checkpoints convertible.
  x: [..., C] -> same shape and dtype.
  """
  init_slope: float = 0.25
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    slope = self.param('negative_slope',
                       nn.initializers.constant(self.init_slope),
                       (x.shape[-1],), self.param_dtype)
    return jnp.where(x >= 0, x, slope.astype(x.dtype) * x)


def batch_norm(train: bool, dtype: Any, param_dtype: Any,
               name: str) -> nn.BatchNorm:
  """torch.nn.BatchNorm2d defaults: running stats updated with weight 0.1.

  Flax's momentum is the weight of the *old* statistic, so 0.9 == torch 0.1.
  Statistics live in the 'batch_stats' collection ('mean', 'var').
  """
  return nn.BatchNorm(use_running_average=not train, momentum=0.9,
                      epsilon=1e-5, dtype=dtype, param_dtype=param_dtype,
                      name=name)


def max_pool_2x2(x: jax.Array) -> jax.Array:
  """torch.nn.MaxPool2d(2, 2) on NHWC (an odd last row / column dropped).

  A max over a reshape rather than `nn.max_pool`: the windows do not
  overlap, so the backward pass is an elementwise select. reduce_window's
  backward (index arrays, a scatter) cost XLA:CPU about 50 ms of the ESRGAN
  GAN step's VGG19 at batch 2, 128 px. Ties share the gradient (torch sends
  it to one of them); ties are zeros after a ReLU, whose gradient the ReLU
  stops anyway.
  """
  n, h, w, c = x.shape
  x = x[:, :h - h % 2, :w - w % 2]
  return x.reshape(n, h // 2, 2, w // 2, 2, c).max(axis=(2, 4))


def check_input(x: jax.Array, channels: int, model: str) -> None:
  """ValueError unless x is [N, H, W, channels] (at trace time)."""
  if x.ndim != 4 or x.shape[-1] != channels:
    raise ValueError(f'{model} expects [N, H, W, {channels}] input; got '
                     f'shape {x.shape}.')


def pixel_shuffle(x: jax.Array, r: int) -> jax.Array:
  """F.pixel_shuffle in NHWC: [N, H, W, C*r*r] -> [N, H*r, W*r, C].

  PyTorch reads input channel c*r*r + i*r + j into output pixel (h*r+i, w*r+j)
  of channel c; the reshape below keeps that order so converted weights of
  the preceding conv stay valid.
  """
  n, h, w, c = x.shape
  if c % (r * r):
    raise ValueError(f'pixel_shuffle: {c} channels not divisible by {r * r}.')
  x = x.reshape(n, h, w, c // (r * r), r, r)
  x = x.transpose(0, 1, 4, 2, 5, 3)  # [N, H, i, W, j, C]
  return x.reshape(n, h * r, w * r, c // (r * r))


def pixel_unshuffle(x: jax.Array, r: int) -> jax.Array:
  """Inverse of pixel_shuffle: [N, H*r, W*r, C] -> [N, H, W, C*r*r].

  Output channel c*r*r + i*r + j holds input pixel (h*r+i, w*r+j) of channel
  c, as in BasicSR's pixel_unshuffle (and torch.nn.functional.pixel_unshuffle).
  """
  n, hh, ww, c = x.shape
  if hh % r or ww % r:
    raise ValueError(
        f'pixel_unshuffle by {r} needs H and W divisible by {r}; got '
        f'{hh}x{ww}. Pad or crop the input to a multiple of {r}.')
  x = x.reshape(n, hh // r, r, ww // r, r, c)
  x = x.transpose(0, 1, 3, 5, 2, 4)  # [N, H, W, C, i, j]
  return x.reshape(n, hh // r, ww // r, c * r * r)


def upsample_nearest(x: jax.Array, r: int = 2) -> jax.Array:
  """F.interpolate(scale_factor=r, mode='nearest') in NHWC.

  x: [N, H, W, C] -> [N, r*H, r*W, C]; each pixel becomes an r x r block.
  """
  return jnp.repeat(jnp.repeat(x, r, axis=1), r, axis=2)
