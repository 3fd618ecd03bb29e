"""PyTorch state dict -> flax variables, for every model sr_jax can build.

  arch       PyTorch source                                 sr_jax model
  rrdbnet    BasicSR / Real-ESRGAN RRDBNet (x1, x2, x4, x8)  get_generator
             and the original ESRGAN release's key names
  srvgg      Real-ESRGAN SRVGGNetCompact                     get_generator
  msrresnet  BasicSR MSRResNet (x2, x3, x4)                  get_generator
  srresnet   SRGAN SRResNet in Lornatang/SRGAN-PyTorch's     get_generator
             layout (see models/srresnet.py)
  vgg_style  BasicSR VGGStyleDiscriminator                   get_discriminator
  unet_sn    BasicSR / Real-ESRGAN UNetDiscriminatorSN       get_discriminator
             (weight_orig / weight_u / weight_v -> params and the
             'spectral' collection)
  vgg19      torchvision vgg19 `features`                    models.VGG19
  inception_fid  pytorch-fid's                               models.inception
             pt_inception-2015-12-05-6726825d.pth            .InceptionV3FID
             (the FID InceptionV3)
  dists      DISTS_pytorch's DISTS, or torchvision's vgg16   metrics.dists.DISTS
             (then with the released alpha / beta)

Each generator's / discriminator's converter lives in its own file
(`convert_torch` in sr_jax/models/<arch>.py, registered with the module
and found through `models.arch_spec`). Other networks (feature extractors,
metric networks) are one line each in NETWORKS below: the module class and
its converter, which lives with the module (VGG19's is still here).

A converter reads the architecture settings (num_feat, blocks, scale, ...)
off the tensor shapes, builds the flax model with them and checks every key
against it (see torch_layout.convert_keys); the settings come back with the
variables (`convert_with_config`), so a converted file can say what to build.
"""
import dataclasses
from typing import Any, Callable, Mapping

import numpy as np

from sr_jax import models
from sr_jax.metrics import dists_metric as dists_lib
from sr_jax.models import inception as inception_lib
from sr_jax.models import torch_layout as core
from sr_jax.models.torch_layout import StateDict
from sr_jax.models.torch_layout import unwrap_state_dict
from sr_jax.models import vgg19 as vgg19_lib
from sr_jax.registry import Registry

Converted = core.Converted  # (variables, kwargs)


_VGG19_NAME = {str(i): name for name, i in vgg19_lib.TORCHVISION_INDEX.items()}


def _vgg19(sd: StateDict, **kwargs) -> core.Converted:
  """torchvision vgg19 ('features.N.weight', or 'N.weight' for a bare
  `features` Sequential); the classifier is not part of the extractor."""
  if kwargs:
    raise ValueError(f'vgg19 conversion takes no options; got {kwargs}.')

  def module_to_flax(module):
    index = module[len('features.'):] if module.startswith('features.') \
        else module
    return (_VGG19_NAME.get(index, module),)

  def module_to_torch(path):
    return f'features.{vgg19_lib.TORCHVISION_INDEX[path[0]]}'

  return core.convert_module(
      sd, models.VGG19(layers=('pool5',)), (1, 32, 32, 3),
      module_to_flax=module_to_flax, module_to_torch=module_to_torch,
      ignore=lambda key: key.startswith('classifier.')), {}


@dataclasses.dataclass(frozen=True)
class Network:
  """A convertible network that is not a generator or discriminator.

  module: the Flax module class (build_model(name, **kwargs) builds it).
  convert: (state_dict, **kwargs) -> (variables, kwargs), as convert_torch.
  """
  module: type
  convert: Callable[..., Converted]


NETWORKS = Registry('network')
NETWORKS.register('vgg19')(Network(models.VGG19, _vgg19))
NETWORKS.register('inception_fid')(Network(inception_lib.InceptionV3FID,
                                           inception_lib.convert_torch))
NETWORKS.register('dists')(Network(dists_lib.DISTS, dists_lib.convert_torch))


def _converter(arch: str):
  if arch in NETWORKS.names():
    return NETWORKS.get(arch).convert
  if arch in models.arch_names():
    return models.arch_spec(arch).convert_torch
  return None


def _module(arch: str) -> type:
  if arch in NETWORKS.names():
    return NETWORKS.get(arch).module
  return models.arch_spec(arch).module


def supported_archs() -> tuple[str, ...]:
  """Every architecture with a converter: registered models with a
  `convert_torch` hook, and the NETWORKS."""
  return tuple(sorted(NETWORKS.names() + [
      a for a in models.arch_names()
      if models.arch_spec(a).convert_torch is not None]))


SUPPORTED_ARCHS = supported_archs()
# Settings a converter cannot always read off the shapes; callers that know
# the model's config (generator.init_from) pass these through.
CONVERSION_HINTS = {'rrdbnet': ('num_in_ch',), 'srvgg': ('act_type',)}


def convert_with_config(arch: str, state_dict: Mapping[str, Any],
                        **model_kwargs) -> Converted:
  """Like convert_state_dict, also returning the model's kwargs.

  Returns (variables, kwargs) with `build_model(arch, **kwargs)` the module
  those variables are for (kwargs as inferred, updated by model_kwargs).
  """
  converter = _converter(arch)
  if converter is None:
    raise ValueError(f'No state-dict converter for {arch!r}; supported: '
                     f'{list(supported_archs())}.')
  fields = set(models.module_fields(_module(arch)))
  unknown = sorted(set(model_kwargs) - fields)
  if unknown:
    raise ValueError(f'{arch} has no setting(s) {unknown}; it has '
                     f'{sorted(fields)}.')
  variables, config = converter(unwrap_state_dict(state_dict),
                                **model_kwargs)
  return variables, {k: (v.item() if isinstance(v, np.generic) else v)
                     for k, v in config.items()}


def convert_state_dict(arch: str, state_dict: Mapping[str, Any],
                       **model_kwargs) -> dict[str, dict]:
  """PyTorch state dict -> flax variables {'params': ..., ['batch_stats': ...]}.

  arch: one of SUPPORTED_ARCHS (see the module docstring for the sources):
    'rrdbnet', 'srvgg', 'msrresnet', 'srresnet' (for get_generator(arch)),
    'vgg_style' (get_discriminator) or a NETWORKS name ('vgg19',
    'inception_fid', 'dists').
  state_dict: {key: torch.Tensor or array}, optionally wrapped as BasicSR
    saves it ({'params': ...} / {'params_ema': ...}; params_ema preferred)
    or as {'state_dict': ...}.
  model_kwargs: overrides for the architecture settings otherwise inferred
    from the shapes (e.g. num_in_ch=1 for a grey-scale RRDBNet,
    act_type='relu' for an SRVGGNetCompact without PReLU).
  Returns nested dicts of float32 numpy arrays. Raises ValueError naming the
  missing, unexpected or mis-shaped keys.
  """
  return convert_with_config(arch, state_dict, **model_kwargs)[0]


def build_model(arch: str, **model_kwargs):
  """The flax module a converter's output is for: get_generator(arch, ...)
  for generators, get_discriminator('vgg_style', ...), or the NETWORKS
  module (models.VGG19, ...)."""
  if arch in NETWORKS.names():
    return NETWORKS.get(arch).module(**model_kwargs)
  if arch in models.DISCRIMINATORS.names():
    return models.get_discriminator(arch, **model_kwargs)
  return models.get_generator(arch, **model_kwargs)


__all__ = ['CONVERSION_HINTS', 'NETWORKS', 'SUPPORTED_ARCHS', 'build_model',
           'convert_state_dict', 'convert_with_config', 'unwrap_state_dict']
