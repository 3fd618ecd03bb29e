"""Generators, discriminators and the VGG19 feature extractor, chosen by name.

  generator = models.get_generator('rrdbnet', scale=4, dtype=jnp.bfloat16)
  out = generator.apply(variables, lr, train=False)  # [N, 4h, 4w, 3] float32

All generators and discriminators take NHWC images in [0, 1], keep float32
parameters, compute in `dtype` and return float32.
"""
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from sr_jax.models.msrresnet import MSRResNet
from sr_jax.models.rrdbnet import RRDB
from sr_jax.models.rrdbnet import RRDBNet
from sr_jax.models.rrdbnet import ResidualDenseBlock
from sr_jax.models.srgan_discriminator import SRGANDiscriminator
from sr_jax.models.srresnet import SRResNet
from sr_jax.models.srvgg import SRVGGNetCompact
from sr_jax.models.unet_sn import UNetDiscriminatorSN
from sr_jax.models.vgg19 import VGG19
from sr_jax.models.vgg_style_discriminator import VGGStyleDiscriminator
from sr_jax.registry import Registry

GENERATORS = Registry('generator')
DISCRIMINATORS = Registry('discriminator')

GENERATORS.register('rrdbnet')(RRDBNet)
GENERATORS.register('srresnet')(SRResNet)
GENERATORS.register('srvgg')(SRVGGNetCompact)
GENERATORS.register('msrresnet')(MSRResNet)
DISCRIMINATORS.register('vgg_style')(VGGStyleDiscriminator)
DISCRIMINATORS.register('unet_sn')(UNetDiscriminatorSN)
DISCRIMINATORS.register('srgan')(SRGANDiscriminator)


def _resolve_dtype(kwargs: dict[str, Any]) -> dict[str, Any]:
  # Lets configs say dtype='bfloat16' as well as dtype=jnp.bfloat16.
  if isinstance(kwargs.get('dtype'), str):
    kwargs = dict(kwargs, dtype=jnp.dtype(kwargs['dtype']))
  return kwargs


def get_generator(name: str, **kwargs) -> nn.Module:
  """A generator module by registry name; ValueError lists known names."""
  return GENERATORS.get(name)(**_resolve_dtype(kwargs))


def get_discriminator(name: str, **kwargs) -> nn.Module:
  """A discriminator module by registry name; ValueError lists known names."""
  return DISCRIMINATORS.get(name)(**_resolve_dtype(kwargs))


__all__ = [
    'DISCRIMINATORS', 'GENERATORS', 'MSRResNet', 'RRDB', 'RRDBNet',
    'ResidualDenseBlock', 'SRGANDiscriminator', 'SRResNet',
    'SRVGGNetCompact', 'UNetDiscriminatorSN', 'VGG19',
    'VGGStyleDiscriminator', 'get_discriminator', 'get_generator',
]
