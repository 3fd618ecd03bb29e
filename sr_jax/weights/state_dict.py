"""PyTorch state dict -> flax variables, for every model sr_jax can build.

  arch       PyTorch source                                 sr_jax model
  rrdbnet    BasicSR / Real-ESRGAN RRDBNet (x1, x2, x4, x8)  get_generator
             and the original ESRGAN release's key names
  srvgg      Real-ESRGAN SRVGGNetCompact                     get_generator
  msrresnet  BasicSR MSRResNet (x2, x3, x4)                  get_generator
  srresnet   SRGAN SRResNet in Lornatang/SRGAN-PyTorch's     get_generator
             layout (see _srresnet)
  vgg_style  BasicSR VGGStyleDiscriminator                   get_discriminator
  unet_sn    BasicSR / Real-ESRGAN UNetDiscriminatorSN       get_discriminator
             (weight_orig / weight_u / weight_v -> params and the
             'spectral' collection)
  vgg19      torchvision vgg19 `features`                    models.VGG19

Each converter reads the architecture settings (num_feat, blocks, scale, ...)
off the tensor shapes, builds the flax model with them and checks every key
against it (see core.convert_keys); the settings come back with the
variables (`convert_with_config`), so a converted file can say what to build.
"""
import dataclasses
import math
import re
from typing import Any, Mapping

import numpy as np

from sr_jax import models
from sr_jax.models import torch_layout as core
from sr_jax.models.torch_layout import StateDict
from sr_jax.models.torch_layout import unwrap_state_dict
from sr_jax.models import srvgg as srvgg_lib
from sr_jax.models import vgg19 as vgg19_lib
from sr_jax.models import unet_sn as unet_sn_lib
from sr_jax.models import vgg_style_discriminator as vgg_style_lib

Converted = tuple[dict[str, dict], dict[str, Any]]  # (variables, kwargs)


def _default_module_to_flax(module: str) -> tuple[str, ...]:
  # BasicSR's nn.Sequential body: 'body.3.rdb1.conv2' -> body_3/rdb1/conv2.
  return tuple(re.sub(r'^body\.(\d+)', r'body_\1', module).split('.'))


def _default_module_to_torch(path: tuple[str, ...]) -> str:
  return re.sub(r'^body_(\d+)', r'body.\1', '.'.join(path))


def _indices(sd: StateDict, pattern: str) -> list[int]:
  """Sorted distinct ints captured by `pattern` (matched at key start)."""
  return sorted({int(m.group(1)) for k in sd if (m := re.match(pattern, k))})


def _convert(sd: StateDict, module, x_shape, **kw) -> dict:
  return core.convert_keys(
      sd, core.template(module, x_shape),
      kw.pop('module_to_flax', _default_module_to_flax),
      kw.pop('module_to_torch', _default_module_to_torch), **kw)


# The original ESRGAN release (RRDB_ESRGAN_x4.pth) predates BasicSR's names.
_ESRGAN_TO_BASICSR = ((r'^RRDB_trunk\.', 'body.'), (r'\.RDB(\d)\.', r'.rdb\1.'),
                      (r'^trunk_conv\.', 'conv_body.'),
                      (r'^upconv(\d)\.', r'conv_up\1.'),
                      (r'^HRconv\.', 'conv_hr.'))


def _rrdbnet(sd: StateDict, **kwargs) -> Converted:
  """BasicSR / Real-ESRGAN / original ESRGAN RRDBNet; config from the shapes.

  Real-ESRGAN's x2 and x1 models pixel-unshuffle the input, so conv_first
  takes 4x / 16x num_in_ch channels; that ratio gives the scale.
  """
  if any(k.startswith('RRDB_trunk.') for k in sd):
    renamed = {}
    for key, value in sd.items():
      for pattern, replacement in _ESRGAN_TO_BASICSR:
        key = re.sub(pattern, replacement, key)
      renamed[key] = value
    sd = renamed
  num_feat, in_total = core.shape_of(sd, 'conv_first.weight')[:2]
  blocks = _indices(sd, r'body\.(\d+)\.')
  config = dict(
      num_feat=num_feat,
      num_out_ch=core.shape_of(sd, 'conv_last.weight')[0],
      num_block=max(blocks) + 1 if blocks else 0,
      num_grow_ch=(core.shape_of(sd, 'body.0.rdb1.conv1.weight')[0]
                   if blocks else 32),
      num_in_ch=kwargs.get('num_in_ch', 3))
  if any(k.startswith('conv_up3.') for k in sd):
    config['scale'] = 8
  else:
    ratio_to_scale = {1: 4, 4: 2, 16: 1}
    ratio = in_total / config['num_in_ch']
    if ratio not in ratio_to_scale:
      raise ValueError(
          f'conv_first takes {in_total} channels, which is not num_in_ch='
          f'{config["num_in_ch"]} times 1, 4 or 16; pass num_in_ch=... .')
    config['scale'] = ratio_to_scale[ratio]
  config.update(kwargs)
  # Spatial size 4 works for every scale (x1 unshuffles by 4).
  return _convert(sd, models.RRDBNet(**config),
                  (1, 4, 4, config['num_in_ch'])), config


def _srvgg(sd: StateDict, **kwargs) -> Converted:
  """Real-ESRGAN SRVGGNetCompact: one `body` list of convs and activations.

  body.{2k}.weight are the convs (4-D), body.{2k+1}.weight the PReLU slopes
  (1-D) when act_type is 'prelu'; 'relu' / 'lrelu' have no weights, so pass
  act_type for those. scale is sqrt(last conv's out channels / num_out_ch).
  """
  convs = [i for i in _indices(sd, r'body\.(\d+)\.weight$')
           if sd[f'body.{i}.weight'].ndim == 4]
  if not convs:
    raise ValueError('Not an SRVGGNetCompact state dict: no 4-D '
                     f'body.N.weight (keys start {sorted(sd)[:5]}).')
  num_feat, num_in_ch = core.shape_of(sd, 'body.0.weight')[:2]
  has_prelu = any(re.match(r'body\.\d+\.weight$', k) and v.ndim == 1
                  for k, v in sd.items())
  config = dict(num_in_ch=num_in_ch, num_out_ch=num_in_ch, num_feat=num_feat,
                num_conv=len(convs) - 2)
  if has_prelu:
    config['act_type'] = 'prelu'
  elif 'act_type' not in kwargs:
    raise ValueError(
        'This SRVGGNetCompact state dict has no PReLU weights, so its '
        "activation cannot be read off it: pass act_type='relu' or 'lrelu' "
        "(Python: convert_state_dict('srvgg', sd, act_type='relu'); command "
        'line: --kwarg act_type=relu).')
  config.update(kwargs)
  if config['act_type'] not in srvgg_lib.ACT_TYPES:
    raise ValueError(f'act_type={config["act_type"]!r}; use one of '
                     f'{list(srvgg_lib.ACT_TYPES)}.')
  out_total = sd[f'body.{convs[-1]}.weight'].shape[0]
  scale = math.isqrt(max(out_total // config['num_out_ch'], 1))
  if scale * scale * config['num_out_ch'] != out_total:
    raise ValueError(
        f'The last conv (body.{convs[-1]}) has {out_total} output channels, '
        f'not num_out_ch={config["num_out_ch"]} times a square scale^2.')
  config.setdefault('scale', scale)
  return _convert(sd, models.SRVGGNetCompact(**config),
                  (1, 4, 4, config['num_in_ch'])), config


def _msrresnet(sd: StateDict, **kwargs) -> Converted:
  """BasicSR MSRResNet: upconv2 present means x4, else upconv1 gives 2 or 3."""
  num_feat, num_in_ch = core.shape_of(sd, 'conv_first.weight')[:2]
  config = dict(num_in_ch=num_in_ch,
                num_out_ch=core.shape_of(sd, 'conv_last.weight')[0],
                num_feat=num_feat,
                num_block=len(_indices(sd, r'body\.(\d+)\.')))
  if 'upconv2.weight' in sd:
    config['scale'] = 4
  else:
    ratio = core.shape_of(sd, 'upconv1.weight')[0] // num_feat
    if ratio not in (4, 9):
      raise ValueError(
          f'upconv1 has {sd["upconv1.weight"].shape[0]} output channels, not '
          f'4x or 9x num_feat={num_feat} (MSRResNet x2 / x3).')
    config['scale'] = math.isqrt(ratio)
  config.update(kwargs)
  return _convert(sd, models.MSRResNet(**config),
                  (1, 4, 4, config['num_in_ch'])), config


# Lornatang/SRGAN-PyTorch's SRResNet -> sr_jax's SRResNet module paths.
# The inner `.rcb` / `.upsample_block` names are optional (older versions of
# that repo and many forks index the Sequential directly).
_SRGAN_MODULES = (
    (r'conv1\.0', 'conv_first'), (r'conv1\.1', 'prelu_first'),
    (r'trunk\.(\d+)\.0', r'body_\1.conv1'),
    (r'trunk\.(\d+)\.1', r'body_\1.bn1'),
    (r'trunk\.(\d+)\.2', r'body_\1.prelu'),
    (r'trunk\.(\d+)\.3', r'body_\1.conv2'),
    (r'trunk\.(\d+)\.4', r'body_\1.bn2'),
    (r'conv2\.0', 'conv_body'), (r'conv2\.1', 'bn_body'),
    (r'upsampling\.(\d+)\.0', r'upsample_\1_conv'),
    (r'upsampling\.(\d+)\.2', r'upsample_\1_prelu'),
    (r'conv3', 'conv_last'))
_SRGAN_MODULES_BACK = (
    (r'conv_first', 'conv1.0'), (r'prelu_first', 'conv1.1'),
    (r'body_(\d+)\.conv1', r'trunk.\1.rcb.0'),
    (r'body_(\d+)\.bn1', r'trunk.\1.rcb.1'),
    (r'body_(\d+)\.prelu', r'trunk.\1.rcb.2'),
    (r'body_(\d+)\.conv2', r'trunk.\1.rcb.3'),
    (r'body_(\d+)\.bn2', r'trunk.\1.rcb.4'),
    (r'conv_body', 'conv2.0'), (r'bn_body', 'conv2.1'),
    (r'upsample_(\d+)_conv', r'upsampling.\1.upsample_block.0'),
    (r'upsample_(\d+)_prelu', r'upsampling.\1.upsample_block.2'),
    (r'conv_last', 'conv3'))


def _rename(name: str, table) -> str:
  for pattern, replacement in table:
    if re.fullmatch(pattern, name):
      return re.sub(pattern, replacement, name)
  return name


def _srresnet(sd: StateDict, **kwargs) -> Converted:
  """SRGAN's SRResNet (with BN) in Lornatang/SRGAN-PyTorch's layout.

  Accepted keys (Sequential indices; `.rcb` / `.upsample_block` optional):
    conv1.0 (9x9 conv, bias), conv1.1 (PReLU)
    trunk.{i}.rcb.{0,3} (3x3 convs), .{1,4} (BatchNorm2d), .2 (PReLU)
    conv2.0 (3x3 conv), conv2.1 (BatchNorm2d)
    upsampling.{i}.upsample_block.0 (3x3 conv nf -> 4 nf, bias), .2 (PReLU)
      (index 1 is the parameter-free PixelShuffle(2))
    conv3 (9x9 conv, bias)
  PReLU slopes may be shared ([1], nn.PReLU()'s default) or per channel.
  A conv bias right before a BatchNorm is folded into its running_mean
  (BN(conv + b) == BN'(conv) with mean' = mean - b, in eval and train mode),
  since sr_jax's convs there have none. That repo's final clamp to [0, 1] is
  not part of the model (sr_jax outputs are unclipped). Only x2, x4 and x8.
  """
  # A new dict: the bias folding below must not touch the caller's.
  sd = {re.sub(r'\.(rcb|upsample_block)\.', '.', k): v for k, v in sd.items()}
  for conv, bn in [(f'trunk.{i}.{c}', f'trunk.{i}.{c + 1}')
                   for i in _indices(sd, r'trunk\.(\d+)\.')
                   for c in (0, 3)] + [('conv2.0', 'conv2.1')]:
    if f'{conv}.bias' in sd and f'{bn}.running_mean' in sd:
      bias = sd.pop(f'{conv}.bias')
      sd[f'{bn}.running_mean'] = sd[f'{bn}.running_mean'] - bias
  num_feat, num_in_ch = core.shape_of(sd, 'conv1.0.weight')[:2]
  ups = _indices(sd, r'upsampling\.(\d+)\.')
  for i in ups:
    channels = core.shape_of(sd, f'upsampling.{i}.0.weight')[0]
    if channels != 4 * num_feat:
      raise ValueError(
          f'upsampling.{i} has {channels} output channels; sr_jax\'s SRResNet '
          f'upsamples by 2 per block ({4 * num_feat} channels), so x3 '
          'SRGAN models are not supported.')
  config = dict(num_in_ch=num_in_ch,
                num_out_ch=core.shape_of(sd, 'conv3.weight')[0],
                num_feat=num_feat,
                num_block=len(_indices(sd, r'trunk\.(\d+)\.')),
                scale=2 ** len(ups))
  config.update(kwargs)
  module_to_flax = lambda m: tuple(_rename(m, _SRGAN_MODULES).split('.'))
  module_to_torch = lambda p: _rename('.'.join(p), _SRGAN_MODULES_BACK)
  return _convert(sd, models.SRResNet(**config), (1, 4, 4, num_in_ch),
                  module_to_flax=module_to_flax,
                  module_to_torch=module_to_torch), config


def _vgg_style(sd: StateDict, **kwargs) -> Converted:
  """BasicSR VGGStyleDiscriminator (any input_size); config from the keys."""
  num_feat, num_in_ch = core.shape_of(sd, 'conv0_0.weight')[:2]
  stages = _indices(sd, r'conv(\d+)_1\.')
  config = dict(num_in_ch=num_in_ch, num_feat=num_feat,
                input_size=4 * 2 ** max(len(stages), 1),
                use_bn=any(k.startswith('bn') for k in sd))
  config.update(kwargs)
  vgg_style_lib.num_stages(config['input_size'])
  size = config['input_size']
  return _convert(sd, models.VGGStyleDiscriminator(**config),
                  (1, size, size, config['num_in_ch'])), config


_VGG19_NAME = {str(i): name for name, i in vgg19_lib.TORCHVISION_INDEX.items()}


def _vgg19(sd: StateDict, **kwargs) -> Converted:
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

  return _convert(sd, models.VGG19(layers=('pool5',)), (1, 32, 32, 3),
                  module_to_flax=module_to_flax,
                  module_to_torch=module_to_torch,
                  ignore=lambda key: key.startswith('classifier.')), {}


_CONVERTERS = {'msrresnet': _msrresnet, 'rrdbnet': _rrdbnet,
               'srresnet': _srresnet, 'srvgg': _srvgg, 'vgg19': _vgg19,
               'vgg_style': _vgg_style,
               'unet_sn': unet_sn_lib.convert_torch}
SUPPORTED_ARCHS = tuple(sorted(_CONVERTERS))
_MODULES = {'msrresnet': models.MSRResNet, 'rrdbnet': models.RRDBNet,
            'srresnet': models.SRResNet, 'srvgg': models.SRVGGNetCompact,
            'vgg19': models.VGG19, 'vgg_style': models.VGGStyleDiscriminator,
            'unet_sn': models.UNetDiscriminatorSN}
# Settings a converter cannot always read off the shapes; callers that know
# the model's config (generator.init_from) pass these through.
CONVERSION_HINTS = {'rrdbnet': ('num_in_ch',), 'srvgg': ('act_type',)}


def convert_with_config(arch: str, state_dict: Mapping[str, Any],
                        **model_kwargs) -> Converted:
  """Like convert_state_dict, also returning the model's kwargs.

  Returns (variables, kwargs) with `build_model(arch, **kwargs)` the module
  those variables are for (kwargs as inferred, updated by model_kwargs).
  """
  if arch not in _CONVERTERS:
    raise ValueError(f'No state-dict converter for {arch!r}; supported: '
                     f'{list(SUPPORTED_ARCHS)}.')
  fields = {f.name for f in dataclasses.fields(_MODULES[arch])} - {
      'parent', 'name'}
  unknown = sorted(set(model_kwargs) - fields)
  if unknown:
    raise ValueError(f'{arch} has no setting(s) {unknown}; it has '
                     f'{sorted(fields)}.')
  variables, config = _CONVERTERS[arch](unwrap_state_dict(state_dict),
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
