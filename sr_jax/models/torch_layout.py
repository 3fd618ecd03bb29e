"""The machinery shared by all converters: rename, re-lay-out, check shapes.

Torch is never imported: tensors are read through `.detach().cpu().numpy()`
(duck-typed) or `np.asarray`. Layout changes: conv weight OIHW -> HWIO,
linear weight [out, in] -> [in, out], BatchNorm weight/bias -> params
scale/bias and running_mean/var -> batch_stats mean/var, PReLU weight ->
negative_slope (a single shared slope, nn.PReLU()'s default, is repeated per
channel, which computes the same function).

The result is checked against the variable shapes of the flax model
(`jax.eval_shape` of its init), so a missing, unexpected or mis-shaped key
fails with its PyTorch name rather than later inside `apply`.
"""
import re
from typing import Any, Callable, Mapping

import jax
import jax.numpy as jnp
import numpy as np

Path = tuple[str, ...]  # (collection, module, ..., leaf)
StateDict = dict[str, np.ndarray]

# BasicSR checkpoints: {'params': sd} and/or {'params_ema': sd}; the EMA
# weights are the ones its released models use, so they come first.
# 'state_dict' is what Lornatang/SRGAN-PyTorch and Lightning save.
WRAPPER_KEYS = ('params_ema', 'params', 'state_dict')

_BN_LEAF_TO_FLAX = {'weight': ('params', 'scale'), 'bias': ('params', 'bias'),
                    'running_mean': ('batch_stats', 'mean'),
                    'running_var': ('batch_stats', 'var')}
# A non-BN 'weight' is a conv / linear kernel or a PReLU slope; which one is
# read off the model's variables.
_WEIGHT_LEAVES = ('kernel', 'negative_slope')
_LEAF_TO_TORCH = {'kernel': 'weight', 'scale': 'weight', 'bias': 'bias',
                  'negative_slope': 'weight', 'mean': 'running_mean',
                  'var': 'running_var'}


def to_numpy(value: Any) -> Any:
  """A torch.Tensor (or array) as a numpy array; other values unchanged."""
  if hasattr(value, 'detach'):  # A torch.Tensor, without importing torch.
    value = value.detach().cpu()
    if str(value.dtype) == 'torch.bfloat16':  # numpy has no bfloat16.
      value = value.float()
    return value.numpy()
  if isinstance(value, (np.ndarray, np.generic, jax.Array)):
    return np.asarray(value)
  return value


def unwrap_state_dict(state_dict: Mapping[str, Any]) -> StateDict:
  """{torch key: numpy array} from a state dict or a training checkpoint.

  Unwraps the first of WRAPPER_KEYS present ('params_ema' before 'params').
  DataParallel's 'module.' prefix is dropped. Raises ValueError when values
  are not arrays (a training checkpoint with another layout), naming the
  keys that hold dicts, to pick one by hand.
  """
  if not isinstance(state_dict, Mapping):
    raise ValueError(f'Expected a state dict (a mapping); got '
                     f'{type(state_dict).__name__}.')
  for wrapper in WRAPPER_KEYS:
    if isinstance(state_dict.get(wrapper), Mapping):
      state_dict = state_dict[wrapper]
      break
  out, not_arrays = {}, []
  for key, value in state_dict.items():
    value = to_numpy(value)
    if not isinstance(value, np.ndarray) or value.dtype == object:
      not_arrays.append(key)
      continue
    key = key[len('module.'):] if key.startswith('module.') else key
    out[key] = value
  if not_arrays:
    nested = [k for k in not_arrays if isinstance(state_dict[k], Mapping)]
    raise ValueError(
        f'Not a state dict of tensors: entries {sorted(map(str, not_arrays))} '
        'are not arrays. For a training checkpoint, pick the entry that '
        f'holds the weights (one of {sorted(map(str, nested))}) with '
        "key=... in Python or --key NAME on the command line.")
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


def convert_keys(sd: StateDict, template: dict[Path, tuple[int, ...]],
                 module_to_flax: Callable[[str], tuple[str, ...]],
                 module_to_torch: Callable[[tuple[str, ...]], str],
                 ignore: Callable[[str], bool] = lambda key: False) -> dict:
  """Renames and re-lays-out sd, then checks it against the template shapes.

  sd: {torch key: array}; template: {(collection, *module, leaf): shape} of
  the flax model; module_to_flax / module_to_torch map a torch module name
  ('body.3.rdb1.conv2') to the flax module path and back (for messages).
  Returns nested dicts of float32 numpy arrays; raises ValueError naming
  every missing, unexpected and mis-shaped key in PyTorch terms.
  """
  bn_modules = {k.rsplit('.', 1)[0] for k in sd if k.endswith('.running_mean')}
  flat, torch_name, unexpected = {}, {}, []
  for key, array in sd.items():
    if ignore(key) or key.endswith('.num_batches_tracked'):
      continue
    module, _, leaf = key.rpartition('.')
    module_path = module_to_flax(module)
    if module in bn_modules and leaf in _BN_LEAF_TO_FLAX:
      candidates = [_BN_LEAF_TO_FLAX[leaf]]
    elif leaf == 'weight':
      candidates = [('params', name) for name in _WEIGHT_LEAVES]
    elif leaf == 'bias':
      candidates = [('params', 'bias')]
    else:
      candidates = []
    paths = [(collection, *module_path, name) for collection, name in
             candidates if (collection, *module_path, name) in template]
    if not paths:
      unexpected.append(key)
      continue
    path = paths[0]
    array = _to_flax_layout(array)
    shape = tuple(template[path])
    if path[-1] == 'negative_slope' and array.shape == (1,) and shape:
      array = np.broadcast_to(array, shape)  # One shared PReLU slope.
    flat[path] = array
    torch_name[path] = key

  missing = sorted(
      module_to_torch(path[1:-1]) + '.' + _LEAF_TO_TORCH[path[-1]]
      for path in template if path not in flat)
  mismatched = [
      f'{torch_name[path]}: got {tuple(sd[torch_name[path]].shape)}, '
      f'expected {_to_torch_shape(shape)}'
      for path, shape in template.items()
      if path in flat and flat[path].shape != tuple(shape)]
  problems = key_problems(missing, unexpected, mismatched)
  if problems:
    raise ValueError('State dict does not match the model; ' +
                     '; '.join(problems) + '.')
  return nest(flat)


def key_problems(missing, unexpected, mismatched) -> list[str]:
  """The parts of a 'state dict does not match' message, in PyTorch terms."""
  problems = []
  if missing:
    problems.append(f'missing keys: {missing}')
  if unexpected:
    problems.append(f'unexpected keys: {sorted(unexpected)}')
  if mismatched:
    problems.append(f'shape mismatches (PyTorch layout): {mismatched}')
  return problems


def nest(flat: Mapping[Path, Any]) -> dict[str, Any]:
  """{(collection, ..., leaf): array} -> nested dicts of float32 copies."""
  variables: dict[str, Any] = {}
  for path, array in flat.items():
    node = variables
    for name in path[:-1]:
      node = node.setdefault(name, {})
    node[path[-1]] = np.array(array, np.float32)  # A copy: owns its memory.
  return variables


def template(module, x_shape: tuple[int, ...]) -> dict[Path, tuple[int, ...]]:
  """{(collection, ..., leaf): shape} of module's variables, not computed."""
  variables = jax.eval_shape(
      lambda: module.init(jax.random.key(0), jnp.zeros(x_shape)))
  flat = jax.tree_util.tree_flatten_with_path(variables)[0]
  return {tuple(k.key for k in path): leaf.shape for path, leaf in flat}


def shape_of(sd: StateDict, key: str) -> tuple[int, ...]:
  """sd[key].shape, or a ValueError saying the key is needed."""
  if key not in sd:
    raise ValueError(f'State dict does not match the model; missing keys: '
                     f'[{key!r}] (needed to infer the architecture).')
  return sd[key].shape


# ------------------------------------------- helpers for the model files --

Converted = tuple[dict[str, dict], dict[str, Any]]  # (variables, kwargs)


def default_module_to_flax(module: str) -> tuple[str, ...]:
  # BasicSR's nn.Sequential body: 'body.3.rdb1.conv2' -> body_3/rdb1/conv2.
  return tuple(re.sub(r'^body\.(\d+)', r'body_\1', module).split('.'))


def default_module_to_torch(path: tuple[str, ...]) -> str:
  return re.sub(r'^body_(\d+)', r'body.\1', '.'.join(path))


def rename(name: str, table) -> str:
  """The first (pattern, replacement) of `table` whose pattern matches all
  of `name`, applied (re.sub); `name` itself when none matches."""
  for pattern, replacement in table:
    if re.fullmatch(pattern, name):
      return re.sub(pattern, replacement, name)
  return name


def indices(sd: Mapping[str, Any], pattern: str) -> list[int]:
  """Sorted distinct ints captured by `pattern` (matched at key start)."""
  return sorted({int(m.group(1)) for k in sd if (m := re.match(pattern, k))})


def fullmatch_indices(tree: Mapping[str, Any], pattern: str) -> list[int]:
  """Sorted ints captured by `pattern` matching whole keys of a dict (flax
  module names such as 'body_3')."""
  return sorted(int(m.group(1)) for k in tree
                if (m := re.fullmatch(pattern, k)))


def convert_module(sd: StateDict, module, x_shape, **kw) -> dict:
  """convert_keys against `module`'s variables for an input of x_shape."""
  return convert_keys(
      sd, template(module, x_shape),
      kw.pop('module_to_flax', default_module_to_flax),
      kw.pop('module_to_torch', default_module_to_torch), **kw)


def kernel_shape(params: Mapping[str, Any], arch: str,
                 *path: str) -> tuple[int, ...]:
  """Shape of params[path...]['kernel'], or a ValueError naming the path."""
  node = params
  for name in path:
    if name not in node:
      raise ValueError(f'No parameters {"/".join(path)}: these weights are '
                       f'not an {arch} model.')
    node = node[name]
  return tuple(np.shape(node['kernel']))
