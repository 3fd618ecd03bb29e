"""A pix2pixHD-style PatchGAN discriminator with spectral normalisation.

pix2pixHD's NLayerDiscriminator (Wang et al., CVPR 2018) classifies
overlapping patches: 4x4 convs with padding 2, `num_layers` of them at
stride 2 (features num_feat, 2 num_feat, ... capped at 8 num_feat), one at
stride 1 (the next width, capped likewise), then a 4x4 stride-1 conv to one
logit per patch, LeakyReLU(0.2) between. Here every conv is spectrally
normalised (Miyato et al. 2018; torch.nn.utils.spectral_norm, with its
bias) in place of pix2pixHD's InstanceNorm: no statistics mix samples, so
the per-sample gradient penalties (RaGP, WGAN-GP, R1) apply.

For the default num_layers=3 each logit sees 70x70 input pixels (pix2pix's
"70x70 PatchGAN"). Registered as 'patchgan'.
"""
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax import errors
from sr_jax.models.unet_sn import SpectralNormConv
from sr_jax.models.registry import DISCRIMINATORS


@DISCRIMINATORS.register('patchgan')
class PatchGANDiscriminatorSN(nn.Module):
  """Call: `apply(variables, x, train=...)` with x: [N, H, W, num_in_ch] in
  [0, 1]; returns patch logits [N, H', W', 1] float32 (H' = H / 2^num_layers
  + 2 for the paddings). With train=True apply with mutable=['spectral']
  (one power iteration per conv, as torch in train mode)."""
  TINY_KWARGS = dict(num_feat=8, num_layers=2)

  num_in_ch: int = 3
  num_feat: int = 64
  num_layers: int = 3
  dtype: Any = jnp.float32
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    if x.ndim != 4 or x.shape[-1] != self.num_in_ch:
      raise errors.ConfigError(
          f'PatchGANDiscriminatorSN(num_in_ch={self.num_in_ch}) expects '
          f'[N, H, W, {self.num_in_ch}] input; got shape {x.shape}.')
    if self.num_layers < 1:
      raise errors.ConfigError(
          f'PatchGAN num_layers must be >= 1; got '
          f'{self.num_layers}.')
    kw = dict(kernel_size=4, padding=2, use_bias=True, dtype=self.dtype,
              param_dtype=self.param_dtype)
    cap = 8 * self.num_feat
    y = x.astype(self.dtype)
    for i in range(self.num_layers + 1):
      features = min(self.num_feat * 2 ** i, cap)
      stride = 2 if i < self.num_layers else 1
      y = SpectralNormConv(features, strides=stride, name=f'conv{i}',
                           **kw)(y, update=train)
      y = nn.leaky_relu(y, 0.2)
    y = SpectralNormConv(1, strides=1, name=f'conv{self.num_layers + 1}',
                         **kw)(y, update=train)
    return y.astype(jnp.float32)
