"""PyTorch state dict -> flax variables: RRDBNet, VGGStyleDiscriminator, VGG19.

Torch is never imported: tensors are read through `.detach().cpu().numpy()`
(duck-typed) or `np.asarray`. Layout changes: conv weight OIHW -> HWIO,
linear weight [out, in] -> [in, out], BatchNorm weight/bias -> params
scale/bias and running_mean/var -> batch_stats mean/var.

The result is checked against the parameter shapes of the flax model
(`jax.eval_shape` of its init, configured from the state dict's shapes), so a
missing, unexpected or mis-shaped key fails here with its PyTorch name rather
than later inside `apply`.
"""
import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import models
from sr_jax.models import vgg19 as vgg19_lib
from sr_jax.models import vgg_style_discriminator as vgg_style_lib

Path = tuple[str, ...]  # (collection, module, ..., leaf)

_LEAF_TO_FLAX = {'weight': 'kernel', 'bias': 'bias'}
_BN_LEAF_TO_FLAX = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
                    'running_mean': ('batch_stats', 'mean'),
                    'running_var': ('batch_stats', 'var')}
_LEAF_TO_TORCH = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
                  'mean': 'running_mean', 'var': 'running_var'}


def _to_numpy(value: Any) -> np.ndarray:
  if hasattr(value, 'detach'):  # A torch.Tensor, without importing torch.
    value = value.detach().cpu()
    if str(value.dtype) == 'torch.bfloat16':  # numpy has no bfloat16.
      value = value.float()
    value = value.numpy()
  return np.asarray(value)


def unwrap_state_dict(state_dict: Mapping[str, Any]) -> dict[str, np.ndarray]:
  """{torch key: numpy array} from a state dict or a BasicSR checkpoint.

  BasicSR saves {'params': sd} and/or {'params_ema': sd}; the EMA weights are
  the ones its released models use, so they win. DataParallel's 'module.'
  prefix is dropped.
  """
  if not isinstance(state_dict, Mapping):
    raise ValueError(f'Expected a state dict (a mapping); got '
                     f'{type(state_dict).__name__}.')
  for wrapper in ('params_ema', 'params'):
    if isinstance(state_dict.get(wrapper), Mapping):
      state_dict = state_dict[wrapper]
      break
  out = {}
  for key, value in state_dict.items():
    key = key[len('module.'):] if key.startswith('module.') else key
    out[key] = _to_numpy(value)
  return out


def _to_flax_layout(array: np.ndarray) -> np.ndarray:
  if array.ndim == 4:  # Conv OIHW -> HWIO.
    return array.transpose(2, 3, 1, 0)
  if array.ndim == 2:  # Linear [out, in] -> [in, out].
    return array.T
  return array


def _to_torch_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
  if len(shape) == 4:
    return (shape[3], shape[2], shape[0], shape[1])
  return tuple(reversed(shape)) if len(shape) == 2 else tuple(shape)


def _default_module_to_flax(module: str) -> tuple[str, ...]:
  # BasicSR's nn.Sequential body: 'body.3.rdb1.conv2' -> body_3/rdb1/conv2.
  return tuple(re.sub(r'^body\.(\d+)', r'body_\1', module).split('.'))


def _default_module_to_torch(path: tuple[str, ...]) -> str:
  return re.sub(r'^body_(\d+)', r'body.\1', '.'.join(path))


def _convert(sd: dict[str, np.ndarray], template: dict[Path, tuple[int, ...]],
             module_to_flax: Callable[[str], tuple[str, ...]],
             module_to_torch: Callable[[tuple[str, ...]], str],
             ignore: Callable[[str], bool] = lambda key: False) -> dict:
  """Renames and re-lays-out sd, then checks it against the template shapes."""
  bn_modules = {k.rsplit('.', 1)[0] for k in sd if k.endswith('.running_mean')}
  flat, torch_name, unexpected = {}, {}, []
  for key, array in sd.items():
    if ignore(key) or key.endswith('.num_batches_tracked'):
      continue
    module, _, leaf = key.rpartition('.')
    if module in bn_modules and leaf in _BN_LEAF_TO_FLAX:
      collection, flax_leaf = _BN_LEAF_TO_FLAX[leaf]
    elif leaf in _LEAF_TO_FLAX:
      collection, flax_leaf = 'params', _LEAF_TO_FLAX[leaf]
    else:
      unexpected.append(key)
      continue
    path = (collection, *module_to_flax(module), flax_leaf)
    if path not in template:
      unexpected.append(key)
      continue
    flat[path] = _to_flax_layout(array)
    torch_name[path] = key

  missing = sorted(
      module_to_torch(path[1:-1]) + '.' + _LEAF_TO_TORCH[path[-1]]
      for path in template if path not in flat)
  mismatched = [
      f'{torch_name[path]}: got {tuple(sd[torch_name[path]].shape)}, '
      f'expected {_to_torch_shape(shape)}'
      for path, shape in template.items()
      if path in flat and flat[path].shape != tuple(shape)]
  problems = []
  if missing:
    problems.append(f'missing keys: {missing}')
  if unexpected:
    problems.append(f'unexpected keys: {sorted(unexpected)}')
  if mismatched:
    problems.append(f'shape mismatches (PyTorch layout): {mismatched}')
  if problems:
    raise ValueError('State dict does not match the model; ' +
                     '; '.join(problems) + '.')

  variables: dict[str, Any] = {}
  for path, array in flat.items():
    node = variables
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = np.asarray(array, np.float32)
  return variables


def _template(module, x_shape: tuple[int, ...]) -> dict[Path, tuple[int, ...]]:
  """{(collection, ..., leaf): shape} of module's variables, not computed."""
  variables = jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros(x_shape)))
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  return {tuple(k.key for k in path): leaf.shape for path, leaf in flat}


def _shape(sd: dict[str, np.ndarray], key: str) -> tuple[int, ...]:
  if key not in sd:
    raise ValueError(f'State dict does not match the model; missing keys: '
                     f'[{key!r}] (needed to infer the architecture).')
  return sd[key].shape


# The original ESRGAN release (RRDB_ESRGAN_x4.pth) predates BasicSR's names.
_ESRGAN_TO_BASICSR = ((r'^RRDB_trunk\.', 'body.'), (r'\.RDB(\d)\.', r'.rdb\1.'),
                      (r'^trunk_conv\.', 'conv_body.'),
                      (r'^upconv(\d)\.', r'conv_up\1.'),
                      (r'^HRconv\.', 'conv_hr.'))


def _rrdbnet(sd: dict[str, np.ndarray], **kwargs) -> dict:
  """BasicSR / Real-ESRGAN / original ESRGAN RRDBNet; config from the shapes."""
  if any(k.startswith('RRDB_trunk.') for k in sd):
    renamed = {}
    for key, value in sd.items():
      for pattern, replacement in _ESRGAN_TO_BASICSR:
        key = re.sub(pattern, replacement, key)
      renamed[key] = value
    sd = renamed
  num_feat, in_total = _shape(sd, 'conv_first.weight')[:2]
  blocks = {int(m.group(1)) for k in sd if (m := re.match(r'body\.(\d+)\.', k))}
  config = dict(
      num_feat=num_feat,
      num_out_ch=_shape(sd, 'conv_last.weight')[0],
      num_block=max(blocks) + 1 if blocks else 0,
      num_grow_ch=(_shape(sd, 'body.0.rdb1.conv1.weight')[0] if blocks else 32),
      num_in_ch=kwargs.get('num_in_ch', 3))
  if any(k.startswith('conv_up3.') for k in sd):
    config['scale'] = 8
  else:
    # Scales 2 and 1 pixel-unshuffle the input into 4x / 16x the channels.
    ratio_to_scale = {1: 4, 4: 2, 16: 1}
    ratio = in_total / config['num_in_ch']
    if ratio not in ratio_to_scale:
      raise ValueError(
          f'conv_first takes {in_total} channels, which is not num_in_ch='
          f'{config["num_in_ch"]} times 1, 4 or 16; pass num_in_ch=... .')
    config['scale'] = ratio_to_scale[ratio]
  config.update(kwargs)
  module = models.RRDBNet(**config)
  # Spatial size 4 works for every scale (x1 unshuffles by 4).
  template = _template(module, (1, 4, 4, config['num_in_ch']))
  return _convert(sd, template, _default_module_to_flax,
                  _default_module_to_torch)


def _vgg_style(sd: dict[str, np.ndarray], **kwargs) -> dict:
  """BasicSR VGGStyleDiscriminator (any input_size); config from the keys."""
  num_feat, num_in_ch = _shape(sd, 'conv0_0.weight')[:2]
  stages = {int(m.group(1)) for k in sd if (m := re.match(r'conv(\d+)_1\.', k))}
  config = dict(num_in_ch=num_in_ch, num_feat=num_feat,
                input_size=4 * 2 ** max(len(stages), 1),
                use_bn=any(k.startswith('bn') for k in sd))
  config.update(kwargs)
  vgg_style_lib.num_stages(config['input_size'])
  module = models.VGGStyleDiscriminator(**config)
  size = config['input_size']
  template = _template(module, (1, size, size, config['num_in_ch']))
  return _convert(sd, template, _default_module_to_flax,
                  _default_module_to_torch)


_VGG19_NAME = {str(i): name for name, i in vgg19_lib.TORCHVISION_INDEX.items()}


def _vgg19(sd: dict[str, np.ndarray], **kwargs) -> dict:
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

  template = _template(models.VGG19(layers=('pool5',)), (1, 32, 32, 3))
  return _convert(sd, template, module_to_flax, module_to_torch,
                  ignore=lambda key: key.startswith('classifier.'))


_CONVERTERS = {'rrdbnet': _rrdbnet, 'vgg19': _vgg19, 'vgg_style': _vgg_style}
SUPPORTED_ARCHS = tuple(sorted(_CONVERTERS))


def convert_state_dict(arch: str, state_dict: Mapping[str, Any],
                       **model_kwargs) -> dict[str, dict]:
  """PyTorch state dict -> flax variables {'params': ..., ['batch_stats': ...]}.

  arch: 'rrdbnet' (for get_generator('rrdbnet', ...)), 'vgg_style' (for
    get_discriminator('vgg_style', ...)) or 'vgg19' (for models.VGG19).
  state_dict: {key: torch.Tensor or array}, optionally wrapped as BasicSR
    saves it ({'params': ...} / {'params_ema': ...}; params_ema preferred).
  model_kwargs: overrides for the architecture settings otherwise inferred
    from the shapes (e.g. num_in_ch=1 for a grey-scale RRDBNet).
  Returns nested dicts of float32 numpy arrays. Raises ValueError naming the
  missing, unexpected or mis-shaped keys.
  """
  if arch not in _CONVERTERS:
    raise ValueError(f'No state-dict converter for {arch!r}; supported: '
                     f'{list(SUPPORTED_ARCHS)}.')
  return _CONVERTERS[arch](unwrap_state_dict(state_dict), **model_kwargs)
