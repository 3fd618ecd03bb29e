"""A discriminator on VGG19 features: a frozen pretrained trunk, a small head.

  trunk: sr_jax.models.VGG19 up to `feature_layer` (ImageNet input
    normalisation on), the submodule named 'trunk', so its parameters are
    exactly those of `VGG19(layers=(feature_layer,))` and converted
    torchvision VGG19 weights fit it. The trainer loads and freezes it
    (FROZEN_SUBMODULES); gradients still flow through it to the input.
  head: 3x3 conv (trunk channels -> num_feat, bias), LeakyReLU(0.2), global
    average pool, dense num_feat -> 1: one logit per image.

No BatchNorm anywhere, so each sample's logit depends on that sample only
and gradient penalties (WGAN-GP, R1) apply. The average pool makes the
input size free (at least 2^(pools before feature_layer) pixels a side).
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.models import layers
from sr_jax.models import vgg19 as vgg19_lib
from sr_jax.models import vgg_layout
from sr_jax.models.registry import DISCRIMINATORS


class FeatureHead(nn.Module):
  """x: [N, h, w, C] features -> logits [N, 1] in `dtype`."""
  num_feat: int = 64
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    x = layers.leaky_relu(layers.Conv(self.num_feat, 3, name='conv', **kw)(x))
    # Pool in float32: a bfloat16 sum over many pixels loses precision.
    x = jnp.mean(x.astype(jnp.float32), axis=(1, 2))
    return layers.Dense(1, name='dense', **kw)(x)


@DISCRIMINATORS.register('vgg19_feature')
class VGG19FeatureDiscriminator(nn.Module):
  """Real/fake classifier on VGG19 features (see the module docstring).

  Call: `apply(variables, x, train=...)` with x: [N, H, W, 3] an image in
  [0, 1]; returns logits [N, 1] float32 (as VGGStyleDiscriminator and
  SRGANDiscriminator). `train` is unused (no BN or dropout).
  Parameters: {'trunk': VGG19's, 'head': {'conv', 'dense'}}.
  """
  # The trunk's parameter subtree is the pretrained network 'vgg19' (a
  # sr_jax.weights NETWORKS name), loaded and frozen by the trainer.
  FROZEN_SUBMODULES = {'trunk': 'vgg19'}
  # The `:runlocal` size: the smallest with every kind of layer.
  TINY_KWARGS = dict(num_feat=8, feature_layer='relu2_2')
  num_feat: int = 64
  feature_layer: str = 'relu5_4'
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  def __post_init__(self):
    if self.feature_layer not in vgg19_lib.LAYER_NAMES:
      raise errors.ConfigError(
          f'Unknown VGG19 feature_layer {self.feature_layer!r}; valid names: '
          f'{list(vgg19_lib.LAYER_NAMES)}.')
    super().__post_init__()

  def min_input_size(self) -> int:
    """Smallest H (or W) that reaches feature_layer."""
    return vgg_layout.min_input_size(vgg19_lib.LAYER_NAMES, self.feature_layer)

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    del train
    layers.check_input(x, 3, 'VGG19FeatureDiscriminator')
    need = self.min_input_size()
    if min(x.shape[1:3]) < need:
      raise errors.ConfigError(
          f'VGG19FeatureDiscriminator needs H and W >= {need} to reach '
          f'{self.feature_layer!r}; got {x.shape[1]}x{x.shape[2]}.')
    trunk = vgg19_lib.VGG19(layers=(self.feature_layer,), use_input_norm=True,
                            dtype=self.dtype, param_dtype=self.param_dtype,
                            name='trunk')
    features = trunk(x)[self.feature_layer]
    logits = FeatureHead(self.num_feat, dtype=self.dtype,
                         param_dtype=self.param_dtype, name='head')(features)
    return logits.astype(jnp.float32)
