"""VGG19 features (torchvision's `vgg19().features`) for perceptual losses.

Sixteen 3x3 convs with bias and ReLU, 2x2 max-pool (stride 2, floor) after
conv1_2, conv2_2, conv3_4, conv4_4 and conv5_4. Layer names follow BasicSR's
VGGFeatureExtractor: 'convX_Y' is a conv's output before ReLU, 'reluX_Y' after
it, 'poolX' after pooling. ESRGAN's perceptual loss uses 'conv5_4' (before
activation, Wang et al. 2018 Sec. 3.3); SRGAN's uses post-activation features.
"""
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax.models import layers
from sr_jax.models import vgg_layout
from sr_jax.models.layers import Conv

# (block, number of convs, channels) for the five blocks of VGG19.
_BLOCKS = ((1, 2, 64), (2, 2, 128), (3, 4, 256), (4, 4, 512), (5, 4, 512))

CONV_NAMES: tuple[str, ...] = vgg_layout.conv_names(_BLOCKS)
TORCHVISION_INDEX: dict[str, int] = vgg_layout.torchvision_indices(_BLOCKS)
LAYER_NAMES: tuple[str, ...] = vgg_layout.layer_names(_BLOCKS)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class VGG19(nn.Module):
  """Returns {layer name: [N, h, w, c] float32} for the requested layers.

  x: [N, H, W, 3] float in [0, 1] (in [-1, 1] when range_norm=True). With
  use_input_norm, x is normalised with ImageNet's mean/std first, as the
  torchvision weights expect. Only the layers up to the deepest requested one
  are built and run, so e.g. layers=('relu2_2',) has 4 convs' parameters;
  variables with all 16 convs (from sr_jax.convert / sr_jax.weights) still
  apply, the extra entries are ignored.
  """
  layers: Sequence[str] = ('conv5_4',)
  use_input_norm: bool = True
  range_norm: bool = False
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    if isinstance(self.layers, str):
      raise ValueError(f'VGG19 layers must be a sequence of names, e.g. '
                       f'({self.layers!r},); got the string {self.layers!r}.')
    unknown = [name for name in self.layers if name not in LAYER_NAMES]
    if unknown or not self.layers:
      raise ValueError(f'Unknown VGG19 layer(s) {unknown} (or none given); '
                       f'valid names: {list(LAYER_NAMES)}.')
    super().__post_init__()

  @nn.compact
  def __call__(self, x: jax.Array) -> dict[str, jax.Array]:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'VGG19 expects [N, H, W, 3] input; got {x.shape}.')
    wanted = set(self.layers)
    last = max(LAYER_NAMES.index(name) for name in wanted)
    x = x.astype(jnp.float32)
    if self.range_norm:
      x = (x + 1) / 2
    if self.use_input_norm:
      x = (x - jnp.array(IMAGENET_MEAN)) / jnp.array(IMAGENET_STD)
    x = x.astype(self.dtype)

    out = {}

    def emit(name, y):
      if name in wanted:
        out[name] = y.astype(jnp.float32)
      return LAYER_NAMES.index(name) >= last

    for b, n, ch in _BLOCKS:
      for i in range(1, n + 1):
        x = Conv(ch, 3, dtype=self.dtype, param_dtype=self.param_dtype,
                 name=f'conv{b}_{i}')(x)
        if emit(f'conv{b}_{i}', x):
          return out
        x = nn.relu(x)
        if emit(f'relu{b}_{i}', x):
          return out
      x = layers.max_pool_2x2(x)
      if emit(f'pool{b}', x):
        return out
    return out
