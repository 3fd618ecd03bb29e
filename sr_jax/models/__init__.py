"""Generators, discriminators and the VGG19 feature extractor, chosen by name.

  generator = models.get_generator('rrdbnet', scale=4, dtype=jnp.bfloat16)
  out = generator.apply(variables, lr, train=False)  # [N, 4h, 4w, 3] float32

All generators and discriminators take NHWC images in [0, 1], keep float32
parameters, compute in `dtype` and return float32.
"""
import dataclasses
import fractions
from typing import Any

import flax.linen as nn
import jax.numpy as jnp

# The model files register their modules on import (GENERATORS.register in
# each file), so importing them here fills the registries.
from sr_jax.models.dsgan import DSGANDiscriminator
from sr_jax.models.dsgan import DSGANGenerator
from sr_jax.models.msrresnet import MSRResNet
from sr_jax.models.patchgan import PatchGANDiscriminatorSN
from sr_jax.models.registry import ArchSpec
from sr_jax.models.registry import arch_spec
from sr_jax.models.registry import DISCRIMINATORS
from sr_jax.models.registry import GENERATORS
from sr_jax.models.rrdbnet import RRDB
from sr_jax.models.rrdbnet import RRDBNet
from sr_jax.models.rrdbnet import ResidualDenseBlock
from sr_jax.models.srgan_discriminator import SRGANDiscriminator
from sr_jax.models.srrescgan import SRResCGAN
from sr_jax.models.srresnet import SRResNet
from sr_jax.models.srvgg import SRVGGNetCompact
from sr_jax.models.unet_sn import UNetDiscriminatorSN
from sr_jax.models.vgg19 import VGG19
from sr_jax.models.vgg19_feature_discriminator import VGG19FeatureDiscriminator
from sr_jax.models.vgg_style_discriminator import VGGStyleDiscriminator
from sr_jax.models.wdrn import WDRN


def generator_name(generator: nn.Module) -> str | None:
  """The registered name of a generator module's class, or None."""
  for name in GENERATORS.names():
    if type(generator) is GENERATORS.get(name):
      return name
  return None


def output_scale(generator: nn.Module) -> int | fractions.Fraction:
  """How many times the output's sides are the input's, for any registered
  generator: an int for super-resolution ones, Fraction(1, d) for one
  that scales down by d (its registration's `output_scale`)."""
  name = generator_name(generator)
  if name is None:
    raise ValueError(f'{type(generator).__name__} is not a registered '
                     f'generator ({GENERATORS.names()}).')
  scale = fractions.Fraction(arch_spec(name).output_scale(generator))
  return int(scale) if scale.denominator == 1 else scale


def module_fields(module_or_class) -> list[str]:
  """The settings a Flax module (class) takes: its dataclass fields, in
  order, without Flax's own `parent` and `name`."""
  return [f.name for f in dataclasses.fields(module_or_class)
          if f.name not in ('parent', 'name')]


def arch_names() -> list[str]:
  return GENERATORS.names() + DISCRIMINATORS.names()


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
    'ArchSpec', 'DISCRIMINATORS', 'DSGANDiscriminator', 'DSGANGenerator',
    'GENERATORS', 'MSRResNet', 'PatchGANDiscriminatorSN', 'RRDB', 'RRDBNet',
    'ResidualDenseBlock', 'SRGANDiscriminator', 'SRResCGAN', 'SRResNet',
    'SRVGGNetCompact', 'UNetDiscriminatorSN', 'VGG19',
    'VGG19FeatureDiscriminator', 'VGGStyleDiscriminator', 'WDRN',
    'arch_names', 'arch_spec', 'generator_name', 'get_discriminator',
    'get_generator', 'module_fields', 'output_scale',
]
