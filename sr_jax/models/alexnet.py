"""AlexNet features (torchvision's `alexnet().features`), as LPIPS uses them.

torchvision's `features` Sequential (the "one weird trick" variant that its
`alexnet-owt-7be5be79.pth` weights belong to):

  index  layer
  0      Conv2d(3, 64, 11, stride 4, padding 2)   'conv1'
  1      ReLU                                      'relu1'
  2      MaxPool2d(3, stride 2)                    'pool1'
  3      Conv2d(64, 192, 5, padding 2)             'conv2'
  4, 5   ReLU, MaxPool2d(3, stride 2)              'relu2', 'pool2'
  6, 7   Conv2d(192, 384, 3, padding 1), ReLU      'conv3', 'relu3'
  8, 9   Conv2d(384, 256, 3, padding 1), ReLU      'conv4', 'relu4'
  10, 11 Conv2d(256, 256, 3, padding 1), ReLU      'conv5', 'relu5'
  12     MaxPool2d(3, stride 2)                    'pool5'

Max-pooling has no padding and rounds down (PyTorch's default), so an input
needs H, W >= 31 to reach 'relu5' (see `min_input_size`).
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax.models.layers import Conv

# (name, index in torchvision's `features`, out channels, kernel, stride, pad).
CONVS: tuple[tuple[str, int, int, int, int, int], ...] = (
    ('conv1', 0, 64, 11, 4, 2),
    ('conv2', 3, 192, 5, 1, 2),
    ('conv3', 6, 384, 3, 1, 1),
    ('conv4', 8, 256, 3, 1, 1),
    ('conv5', 10, 256, 3, 1, 1),
)
# Convs followed by a 3x3 / stride 2 max-pool.
_POOL_AFTER = ('conv1', 'conv2', 'conv5')

CONV_NAMES: tuple[str, ...] = tuple(c[0] for c in CONVS)
TORCHVISION_INDEX: dict[str, int] = {c[0]: c[1] for c in CONVS}

# Every selectable layer name, in forward order.
LAYER_NAMES: tuple[str, ...] = tuple(
    name for conv, *_ in CONVS
    for name in (conv, conv.replace('conv', 'relu'))
    + ((conv.replace('conv', 'pool'),) if conv in _POOL_AFTER else ()))


def _out_size(size: int, kernel: int, stride: int, pad: int) -> int:
  return (size + 2 * pad - kernel) // stride + 1


def output_size(size: int, layer: str) -> int:
  """Spatial size (of H or W) of `layer`'s output for an input of `size`.

  Non-positive means the input is too small to reach that layer.
  """
  last = LAYER_NAMES.index(layer)
  for name in LAYER_NAMES[:last + 1]:
    if size <= 0:
      return size
    if name.startswith('conv'):
      _, _, _, k, s, p = CONVS[CONV_NAMES.index(name)]
      size = _out_size(size, k, s, p)
    elif name.startswith('pool'):
      size = _out_size(size, 3, 2, 0)
  return size


def min_input_size(layer: str) -> int:
  """Smallest H (or W) giving `layer` a non-empty output (31 for relu5)."""
  size = 1
  while output_size(size, layer) < 1:
    size += 1
  return size


class AlexNet(nn.Module):
  """AlexNet features: {layer name: [N, h, w, c] float32} for `layers`.

  x: [N, H, W, 3] float, already normalised the way the weights expect
    (torchvision: ImageNet mean/std of [0, 1] images; LPIPS: its own
    ScalingLayer of [-1, 1] images). No normalisation happens here.
  Only the layers up to the deepest requested one are built and run; the
  parameters are 'conv1'..'conv5', each {'kernel': HWIO, 'bias'}.
  """
  layers: Sequence[str] = ('relu1', 'relu2', 'relu3', 'relu4', 'relu5')
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    if isinstance(self.layers, str):
      raise ValueError(f'AlexNet layers must be a sequence of names, e.g. '
                       f'({self.layers!r},); got the string {self.layers!r}.')
    unknown = [name for name in self.layers if name not in LAYER_NAMES]
    if unknown or not self.layers:
      raise ValueError(f'Unknown AlexNet layer(s) {unknown} (or none given); '
                       f'valid names: {list(LAYER_NAMES)}.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'AlexNet expects [N, H, W, 3] input; got {x.shape}.')
    last = max(LAYER_NAMES.index(name) for name in self.layers)
    need = min_input_size(LAYER_NAMES[last])
    if min(x.shape[1:3]) < need:
      raise ValueError(
          f'AlexNet needs H and W >= {need} to reach {LAYER_NAMES[last]!r} '
          f'(stride-4 conv and two unpadded 3x3/2 max-pools); got '
          f'{x.shape[1]}x{x.shape[2]}. Use larger images or crops.')
    x = x.astype(self.dtype)
    out = {}
    for name in LAYER_NAMES[:last + 1]:
      if name.startswith('conv'):
        _, _, ch, k, s, p = CONVS[CONV_NAMES.index(name)]
        x = Conv(ch, k, strides=s, padding=p, dtype=self.dtype,
                 param_dtype=self.param_dtype, name=name)(x)
      elif name.startswith('relu'):
        x = nn.relu(x)
      else:
        x = nn.max_pool(x, (3, 3), strides=(2, 2), padding='VALID')
      if name in self.layers:
        out[name] = x.astype(jnp.float32)
    return out
