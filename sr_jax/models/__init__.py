"""Generators, discriminators and the VGG19 feature extractor, chosen by name.

  generator = models.get_generator('rrdbnet', scale=4, dtype=jnp.bfloat16)
  out = generator.apply(variables, lr, train=False)  # [N, 4h, 4w, 3] float32

All generators and discriminators take NHWC images in [0, 1], keep float32
parameters, compute in `dtype` and return float32.
"""
import dataclasses
import fractions
import sys
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

from sr_jax.models.dsgan import DSGANDiscriminator
from sr_jax.models.dsgan import DSGANGenerator
from sr_jax.models.msrresnet import MSRResNet
from sr_jax.models.rrdbnet import RRDB
from sr_jax.models.rrdbnet import RRDBNet
from sr_jax.models.rrdbnet import ResidualDenseBlock
from sr_jax.models.patchgan import PatchGANDiscriminatorSN
from sr_jax.models.srgan_discriminator import SRGANDiscriminator
from sr_jax.models.srrescgan import SRResCGAN
from sr_jax.models.srresnet import SRResNet
from sr_jax.models.srvgg import SRVGGNetCompact
from sr_jax.models.unet_sn import UNetDiscriminatorSN
from sr_jax.models.vgg19 import VGG19
from sr_jax.models.vgg19_feature_discriminator import VGG19FeatureDiscriminator
from sr_jax.models.vgg_style_discriminator import VGGStyleDiscriminator
from sr_jax.models.wdrn import WDRN
from sr_jax.registry import Registry

GENERATORS = Registry('generator')
DISCRIMINATORS = Registry('discriminator')

GENERATORS.register('rrdbnet')(RRDBNet)
GENERATORS.register('srresnet')(SRResNet)
GENERATORS.register('srvgg')(SRVGGNetCompact)
GENERATORS.register('msrresnet')(MSRResNet)
GENERATORS.register('srrescgan')(SRResCGAN)
GENERATORS.register('wdrn')(WDRN)
GENERATORS.register('dsgan')(DSGANGenerator)
DISCRIMINATORS.register('vgg_style')(VGGStyleDiscriminator)
DISCRIMINATORS.register('unet_sn')(UNetDiscriminatorSN)
DISCRIMINATORS.register('srgan')(SRGANDiscriminator)
DISCRIMINATORS.register('patchgan')(PatchGANDiscriminatorSN)
DISCRIMINATORS.register('vgg19_feature')(VGG19FeatureDiscriminator)
DISCRIMINATORS.register('dsgan_highpass')(DSGANDiscriminator)


@dataclasses.dataclass(frozen=True)
class ArchSpec:
  """What sr_jax knows of one registered architecture, all from its file.

  module: the Flax module class (with TINY_KWARGS, the `:runlocal` size).
  convert_torch: (state_dict, **kwargs) -> (variables, kwargs), or None.
  recognise: state_dict -> whether its key names are this architecture's.
  kwargs_from_params: (params, **given) -> the module's kwargs, read off
    parameter shapes (given ones win).
  input_multiple: module -> what H and W of its input must divide.
  output_scale: module -> output side / input side: `module.scale` by
    default; a fraction for a down-sampling generator (DSGAN).
  """
  name: str
  kind: str  # 'generator' or 'discriminator'.
  module: type
  convert_torch: Callable[..., Any] | None
  recognise: Callable[[Any], bool]
  kwargs_from_params: Callable[..., dict]
  input_multiple: Callable[[Any], int]
  output_scale: Callable[[Any], int | fractions.Fraction]

  @property
  def tiny_kwargs(self) -> dict | None:
    return getattr(self.module, 'TINY_KWARGS', None)


def arch_spec(name: str) -> ArchSpec:
  """The spec of a registered generator or discriminator: the functions
  named convert_torch / recognise / kwargs_from_params / input_multiple /
  output_scale in the file that defines its module (defaults when absent)."""
  if name in GENERATORS.names():
    kind, cls = 'generator', GENERATORS.get(name)
  else:
    kind, cls = 'discriminator', DISCRIMINATORS.get(name)
  file = sys.modules[cls.__module__]
  return ArchSpec(
      name=name, kind=kind, module=cls,
      convert_torch=getattr(file, 'convert_torch', None),
      recognise=getattr(file, 'recognise', lambda sd: False),
      kwargs_from_params=getattr(file, 'kwargs_from_params',
                                 lambda params, **given: dict(given)),
      input_multiple=getattr(file, 'input_multiple', lambda module: 1),
      output_scale=getattr(file, 'output_scale',
                           lambda module: int(module.scale)))


def output_scale(generator: nn.Module) -> int | fractions.Fraction:
  """How many times the output's sides are the input's, for any registered
  generator: an int for super-resolution ones, Fraction(1, d) for one
  that scales down by d (from its file's `output_scale`)."""
  for name in GENERATORS.names():
    if type(generator) is GENERATORS.get(name):
      scale = fractions.Fraction(arch_spec(name).output_scale(generator))
      return int(scale) if scale.denominator == 1 else scale
  raise ValueError(f'{type(generator).__name__} is not a registered '
                   f'generator ({GENERATORS.names()}).')


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
    'ArchSpec', 'DISCRIMINATORS', 'GENERATORS', 'MSRResNet', 'RRDB',
    'RRDBNet', 'ResidualDenseBlock', 'SRGANDiscriminator', 'SRResNet',
    'SRVGGNetCompact', 'UNetDiscriminatorSN', 'VGG19',
    'VGGStyleDiscriminator', 'arch_names', 'arch_spec', 'get_discriminator',
    'get_generator', 'module_fields', 'output_scale',
]
