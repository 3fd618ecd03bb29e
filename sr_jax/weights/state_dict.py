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

Each model's converter lives in its own file (`convert_torch` in
sr_jax/models/<arch>.py, found through `models.arch_spec`); VGG19's is here.
A converter reads the architecture settings (num_feat, blocks, scale, ...)
off the tensor shapes, builds the flax model with them and checks every key
against it (see torch_layout.convert_keys); the settings come back with the
variables (`convert_with_config`), so a converted file can say what to build.
"""
from typing import Any, Mapping

import numpy as np

from sr_jax import models
from sr_jax.models import torch_layout as core
from sr_jax.models.torch_layout import StateDict
from sr_jax.models.torch_layout import unwrap_state_dict
from sr_jax.models import vgg19 as vgg19_lib

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


def _converter(arch: str):
  if arch == 'vgg19':
    return _vgg19
  if arch in models.arch_names():
    return models.arch_spec(arch).convert_torch
  return None


def supported_archs() -> tuple[str, ...]:
  """Every architecture with a converter: registered models whose file has
  `convert_torch`, and 'vgg19'."""
  return tuple(sorted(['vgg19'] + [
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
  module = (models.VGG19 if arch == 'vgg19' else
            models.arch_spec(arch).module)
  fields = set(models.module_fields(module))
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
    'vgg_style' (get_discriminator) or 'vgg19' (models.VGG19).
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
  for generators, get_discriminator('vgg_style', ...), or models.VGG19."""
  if arch == 'vgg19':
    return models.VGG19(**model_kwargs)
  if arch in models.DISCRIMINATORS.names():
    return models.get_discriminator(arch, **model_kwargs)
  return models.get_generator(arch, **model_kwargs)


__all__ = ['CONVERSION_HINTS', 'SUPPORTED_ARCHS', 'build_model',
           'convert_state_dict', 'convert_with_config', 'unwrap_state_dict']
