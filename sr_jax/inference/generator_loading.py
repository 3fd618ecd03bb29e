"""A generator and its weights for inference, from any file sr_jax can read.

  module, variables, scale = load_generator_for_inference(weights='x4.pth')
  run_batch = make_run_batch(module, variables)   # [K,h,w,3] -> [K,sh,sw,3]

Sources:
  checkpoint=WORKDIR  a training run: its EMA generator ('best' or 'latest',
                      sr_jax.checkpoint.load_generator), built from the run's
                      saved config.
  weights=X.npz       a converted file (`python -m sr_jax.convert`), which
                      records its arch and model kwargs; a plain
                      `save_params` .npz needs arch= (the other settings,
                      scale included, are read off the parameter shapes).
  weights=X.pth / .pt / .ckpt / .safetensors
                      PyTorch weights converted on the fly; arch= or detected
                      from the key names (RRDBNet, SRVGGNetCompact,
                      MSRResNet).
"""
import math
import os
import re
import sys
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import checkpoint as checkpoint_lib
from sr_jax import models
from sr_jax import weights as weights_lib

TORCH_SUFFIXES = ('.pth', '.pt', '.ckpt', '.bin', '.safetensors')
_HOW_TO_GET = (
    'Convert official PyTorch weights with `python -m sr_jax.convert ARCH '
    'SRC.pth OUT.npz` (or pass the .pth / .safetensors directly), download '
    'them with `python -m sr_jax.weights fetch NAME`, or use a training run '
    'with --checkpoint WORKDIR.')


class WeightsError(ValueError):
  """Weights missing, unreadable or not fitting the model; says what to do."""


def detect_arch(state_dict: Mapping[str, Any]) -> str | None:
  """Generator arch from PyTorch key names (unwrapped), or None.

  body.0.rdb1.conv1.weight (BasicSR) / RRDB_trunk.0.RDB1.conv1.weight
  (original ESRGAN) => 'rrdbnet'; upconv1.weight without RRDB blocks =>
  'msrresnet' (BasicSR); body.0.weight 4-D with body.1.weight 1-D (a PReLU)
  => 'srvgg' (Real-ESRGAN's SRVGGNetCompact).
  """
  if 'body.0.rdb1.conv1.weight' in state_dict \
      or 'RRDB_trunk.0.RDB1.conv1.weight' in state_dict:
    return 'rrdbnet'  # Before msrresnet: original ESRGAN also has upconv1.
  if 'upconv1.weight' in state_dict:
    return 'msrresnet'
  if (np.ndim(state_dict.get('body.0.weight')) == 4
      and np.ndim(state_dict.get('body.1.weight')) == 1):
    return 'srvgg'
  return None


def _indices(params: Mapping[str, Any], pattern: str) -> list[int]:
  return sorted(int(m.group(1)) for k in params
                if (m := re.fullmatch(pattern, k)))


def infer_model_kwargs(arch: str, variables: Mapping[str, Any],
                       **given) -> dict[str, Any]:
  """Model kwargs read off flax parameter shapes; `given` ones win.

  For the generators whose settings are all visible in their shapes
  (rrdbnet, srresnet, msrresnet, srvgg); other archs get `given` only.
  Assumes num_in_ch == 3 for RRDBNet unless given (x2/x1 unshuffle the
  input, so conv_first only shows num_in_ch * 4 or * 16).
  """
  p = variables.get('params', {})

  def kernel(*path) -> tuple[int, ...]:
    node = p
    for name in path:
      if name not in node:
        raise WeightsError(f'No parameters {"/".join(path)}: these weights '
                           f'are not an {arch} generator.')
      node = node[name]
    return np.shape(node['kernel'])

  kw: dict[str, Any] = {}
  if arch == 'rrdbnet':
    in_total, num_feat = kernel('conv_first')[2:]
    num_in = given.get('num_in_ch', 3)
    blocks = _indices(p, r'body_(\d+)')
    kw = dict(num_in_ch=num_in, num_out_ch=kernel('conv_last')[3],
              num_feat=num_feat, num_block=len(blocks))
    if blocks:
      kw['num_grow_ch'] = kernel('body_0', 'rdb1', 'conv1')[3]
    ratio = {1: 4, 4: 2, 16: 1}.get(in_total // num_in)
    kw['scale'] = 8 if 'conv_up3' in p else ratio
  elif arch == 'srresnet':
    num_in, num_feat = kernel('conv_first')[2:]
    kw = dict(num_in_ch=num_in, num_out_ch=kernel('conv_last')[3],
              num_feat=num_feat, num_block=len(_indices(p, r'body_(\d+)')),
              scale=2 ** len(_indices(p, r'upsample_(\d+)_conv')))
  elif arch == 'msrresnet':
    num_in, num_feat = kernel('conv_first')[2:]
    kw = dict(num_in_ch=num_in, num_out_ch=kernel('conv_last')[3],
              num_feat=num_feat, num_block=len(_indices(p, r'body_(\d+)')))
    kw['scale'] = 4 if 'upconv2' in p else math.isqrt(
        kernel('upconv1')[3] // num_feat)
  elif arch == 'srvgg':
    num_in, num_feat = kernel('body_0')[2:]
    layers = _indices(p, r'body_(\d+)')
    convs = [i for i in layers if 'kernel' in p[f'body_{i}']]
    kw = dict(num_in_ch=num_in, num_out_ch=num_in, num_feat=num_feat,
              num_conv=len(convs) - 2,
              scale=math.isqrt(kernel(f'body_{convs[-1]}')[3] // num_in))
    if any('negative_slope' in p[f'body_{i}'] for i in layers):
      kw['act_type'] = 'prelu'
  kw.update(given)
  return {k: v for k, v in kw.items() if v is not None}


def _check_fits(module: nn.Module, variables: Mapping[str, Any],
                source: str) -> None:
  """Raises WeightsError naming every missing / extra / mis-shaped variable."""
  num_in = getattr(module, 'num_in_ch', 3)
  try:
    expected = jax.eval_shape(lambda: module.init(
        jax.random.key(0), jnp.zeros((1, 16, 16, num_in)), train=False))
  except (ValueError, TypeError) as e:
    raise WeightsError(f'{source}: cannot build {module!r}: {e}') from e

  def flat(tree):
    return {'/'.join(str(k.key) for k in path): np.shape(leaf) for path, leaf
            in jax.tree_util.tree_flatten_with_path(dict(tree))[0]}

  want, have = flat(expected), flat(variables)
  problems = []
  if missing := sorted(set(want) - set(have)):
    problems.append(f'missing {missing[:8]}{"..." if len(missing) > 8 else ""}')
  if extra := sorted(set(have) - set(want)):
    problems.append(f'unexpected {extra[:8]}{"..." if len(extra) > 8 else ""}')
  if shapes := [f'{k}: file {have[k]} vs model {want[k]}'
                for k in sorted(set(want) & set(have)) if have[k] != want[k]]:
    problems.append(f'shape mismatches {shapes[:8]}')
  if problems:
    raise WeightsError(
        f'{source} does not fit {type(module).__name__}('
        f'{_describe(module)}): ' + '; '.join(problems) +
        '. Check --arch / --scale, or pass the settings the shapes cannot '
        'show with --model-kwargs \'{"name": value}\'.')


def _describe(module: nn.Module) -> str:
  fields = ('scale', 'num_feat', 'num_block', 'num_conv', 'num_grow_ch',
            'act_type')
  return ', '.join(f'{f}={getattr(module, f)!r}' for f in fields
                   if hasattr(module, f))


def _from_npz(path: str, arch: str | None,
              model_kwargs: dict[str, Any]) -> tuple[str, dict, dict]:
  """(arch, kwargs, variables) of a converted or plain .npz."""
  file_arch, file_kwargs, variables = None, {}, None
  try:
    file_arch, file_kwargs, variables = weights_lib.load_converted(path)
  except ValueError as e:  # No metadata: a plain save_params file.
    if arch is None:
      raise WeightsError(
          f'{e} Or, for weights saved with save_params, pass --arch (one '
          f'of {models.GENERATORS.names()}).') from e
  if variables is None:
    try:
      variables = weights_lib.load_params(path)
    except (OSError, ValueError) as e:
      raise WeightsError(f'Cannot read weights {path}: {e}') from e
    variables = {k: v for k, v in variables.items() if not k.startswith('__')}
  if file_arch is None:
    if arch is None:
      raise WeightsError(
          f'{path} does not say which model it is for: pass --arch (one of '
          f'{models.GENERATORS.names()}) and, if needed, --scale.')
    return arch, infer_model_kwargs(arch, variables, **model_kwargs), \
        variables
  if arch is not None and arch != file_arch:
    raise WeightsError(f'{path} holds {file_arch!r} weights, not --arch '
                       f'{arch!r}: drop --arch or pick other weights.')
  return file_arch, {**file_kwargs, **model_kwargs}, variables


def _from_torch(path: str, arch: str | None,
                model_kwargs: dict[str, Any]) -> tuple[str, dict, dict]:
  convert = weights_lib
  state_dict = convert.unwrap_state_dict(convert.load_torch_file(path))
  if arch is None:
    arch = detect_arch(state_dict)
    if arch is None:
      raise WeightsError(
          f'Cannot tell the architecture of {path} from its keys (first: '
          f'{sorted(state_dict)[:4]}); pass --arch (one of '
          f'{list(convert.SUPPORTED_ARCHS)}).')
  # `scale` is always read off the shapes; a --scale given as well is
  # checked against them below instead of being forced on the converter.
  hints = {k: v for k, v in model_kwargs.items() if k != 'scale'}
  try:
    variables, kwargs = convert.convert_with_config(arch, state_dict, **hints)
  except ValueError as e:
    raise WeightsError(f'Converting {path} as {arch!r}: {e}') from e
  return arch, {**kwargs, **model_kwargs}, variables


def load_generator_for_inference(
    weights: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    arch: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    dtype: Any = jnp.float32,
    which: str = 'best') -> tuple[nn.Module, dict[str, Any], int]:
  """Loads a generator for upscaling.

  Args:
    weights: a converted / plain .npz, or a PyTorch .pth/.pt/.ckpt/.bin or
      .safetensors file (see the module doc).
    checkpoint: a training run's workdir (instead of weights).
    arch: generator name (get_generator); needed for a plain .npz, otherwise
      read from the file / detected from PyTorch key names.
    model_kwargs: generator settings that override the ones read from the
      file (e.g. {'scale': 2}, {'act_type': 'relu'}); not with checkpoint.
    dtype: compute dtype, jnp.float32 or jnp.bfloat16 (or their names);
      parameters stay float32.
    which: 'best' or 'latest' checkpoint of the run.

  Returns:
    (module, variables, scale): module.apply(variables, x, train=False) maps
    x [N, h, w, 3] float32 in [0, 1] to [N, scale h, scale w, 3] float32.

  Raises:
    FileNotFoundError: the weights / workdir do not exist (says how to get
      weights).
    WeightsError (a ValueError): unreadable, or not fitting the model.
  """
  if (weights is None) == (checkpoint is None):
    raise ValueError('Pass exactly one of weights (--weights FILE) and '
                     'checkpoint (--checkpoint WORKDIR).')
  dtype = jnp.dtype(dtype)
  model_kwargs = dict(model_kwargs or {})
  if checkpoint is not None:
    if arch is not None or model_kwargs:
      raise ValueError('--arch / --scale / --model-kwargs apply to --weights; '
                       'a --checkpoint run already says what it trained.')
    loaded = checkpoint_lib.load_generator_from_workdir(
        os.fspath(checkpoint), which)
    print(f'Loaded {loaded.describe()}.', file=sys.stderr, flush=True)
    module = loaded.module.clone(dtype=dtype)
    scale = int(getattr(module, 'scale', loaded.config.scale))
    return module, loaded.variables, scale

  path = os.path.expanduser(os.fspath(weights))
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Weights file {path!r} does not exist. '
                            + _HOW_TO_GET)
  suffix = os.path.splitext(path)[1].lower()
  if suffix == '.npz':
    arch, kwargs, variables = _from_npz(path, arch, model_kwargs)
  elif suffix in TORCH_SUFFIXES:
    arch, kwargs, variables = _from_torch(path, arch, model_kwargs)
  else:
    raise WeightsError(f'{path}: unknown weights format {suffix!r}; expected '
                       f'.npz or one of {list(TORCH_SUFFIXES)}.')
  if arch not in models.GENERATORS.names():
    raise WeightsError(f'{path} holds {arch!r} weights, which is not a '
                       f'generator ({models.GENERATORS.names()}).')
  kwargs.pop('dtype', None)
  try:
    module = models.get_generator(arch, dtype=dtype, **kwargs)
  except TypeError as e:
    raise WeightsError(f'{path}: bad settings for {arch}: {e}') from e
  _check_fits(module, variables, path)
  variables = jax.tree.map(lambda x: np.asarray(x, np.float32), variables)
  return module, variables, int(module.scale)


def input_multiple(module: nn.Module) -> int:
  """What H and W of the input must divide: RRDBNet x2 / x1 pixel-unshuffle
  the input by 2 / 4; every other generator takes any size."""
  if isinstance(module, models.RRDBNet) and module.scale in (1, 2):
    return 4 // module.scale
  return 1


def make_run_batch(module: nn.Module, variables: Mapping[str, Any]
                   ) -> Callable[[np.ndarray], jax.Array]:
  """A jitted batch function for tiling.upscale_tiled.

  The variables are put on the default device once; each call sends one
  batch of windows, [K, h, w, C] float32, and returns the (asynchronously
  computed) [K, s h, s w, C] float32 output. It compiles once per batch
  shape.
  """
  variables = jax.device_put(variables)
  apply = jax.jit(lambda v, x: module.apply(v, x, train=False))
  return lambda batch: apply(variables, batch)
