"""VGG16 features (torchvision's `vgg16().features`), as LPIPS uses them.

Thirteen 3x3 convs (padding 1) with bias and ReLU in five blocks of 2, 2, 3,
3, 3 convs (64, 128, 256, 512, 512 channels), a 2x2 / stride 2 max-pool
(floor) after each block. Names as in sr_jax.models.vgg19: 'convX_Y' before
ReLU, 'reluX_Y' after, 'poolX' after pooling. LPIPS reads relu1_2, relu2_2,
relu3_3, relu4_3 and relu5_3.

This is a separate module rather than a depth option of VGG19 so that VGG19's
parameter names and behaviour (input normalisation for the perceptual loss)
stay exactly as they are; here the input is used as given.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax.models import layers
from sr_jax.models import vgg_layout
from sr_jax.models.layers import Conv

# (block, number of convs, channels) for the five blocks of VGG16.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512))

CONV_NAMES: tuple[str, ...] = vgg_layout.conv_names(_BLOCKS)
# Conv name -> index in torchvision's `features` (conv1_1: 0 ... conv5_3: 28).
TORCHVISION_INDEX: dict[str, int] = vgg_layout.torchvision_indices(_BLOCKS)
LAYER_NAMES: tuple[str, ...] = vgg_layout.layer_names(_BLOCKS)


def min_input_size(layer: str) -> int:
  """Smallest H (or W) giving `layer` a non-empty output: 2^(pools before)."""
  return vgg_layout.min_input_size(LAYER_NAMES, layer)


class VGG16(nn.Module):
  """VGG16 features: {layer name: [N, h, w, c] float32} for `layers`.

  x: [N, H, W, 3] float, already normalised the way the weights expect
    (torchvision: ImageNet mean/std of [0, 1] images; LPIPS: its own
    ScalingLayer of [-1, 1] images). No normalisation happens here.
  Only the layers up to the deepest requested one are built and run; the
  parameters are 'conv1_1'..'conv5_3', each {'kernel': HWIO, 'bias'}.
  """
  layers: Sequence[str] = ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3',
                           'relu5_3')
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    if isinstance(self.layers, str):
      raise ValueError(f'VGG16 layers must be a sequence of names, e.g. '
                       f'({self.layers!r},); got the string {self.layers!r}.')
    unknown = [name for name in self.layers if name not in LAYER_NAMES]
    if unknown or not self.layers:
      raise ValueError(f'Unknown VGG16 layer(s) {unknown} (or none given); '
                       f'valid names: {list(LAYER_NAMES)}.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'VGG16 expects [N, H, W, 3] input; got {x.shape}.')
    last = max(LAYER_NAMES.index(name) for name in self.layers)
    need = min_input_size(LAYER_NAMES[last])
    if min(x.shape[1:3]) < need:
      raise ValueError(
          f'VGG16 needs H and W >= {need} to reach {LAYER_NAMES[last]!r}; '
          f'got {x.shape[1]}x{x.shape[2]}. Use larger images or crops.')
    x = x.astype(self.dtype)
    out = {}
    for name in LAYER_NAMES[:last + 1]:
      kind, index = name[:4], name[4:]
      if kind == 'conv':
        ch = _BLOCKS[int(index[0]) - 1][2]
        x = Conv(ch, 3, dtype=self.dtype, param_dtype=self.param_dtype,
                 name=name)(x)
      elif kind == 'relu':
        x = nn.relu(x)
      else:
        x = layers.max_pool_2x2(x)
      if name in self.layers:
        out[name] = x.astype(jnp.float32)
    return out
