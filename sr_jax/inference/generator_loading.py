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
import dataclasses
import os
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
  """Generator arch from PyTorch key names (unwrapped), or None: the
  generator whose file's `recognise` accepts them (models.arch_spec)."""
  for name in models.GENERATORS.names():
    if models.arch_spec(name).recognise(state_dict):
      return name
  return None


def infer_model_kwargs(arch: str, variables: Mapping[str, Any],
                       **given) -> dict[str, Any]:
  """Model kwargs read off flax parameter shapes; `given` ones win.

  Each architecture's file says how (`kwargs_from_params`); archs without
  one get `given` only.
  """
  try:
    kw = models.arch_spec(arch).kwargs_from_params(
        variables.get('params', {}), **given)
  except ValueError as e:
    raise WeightsError(str(e)) from None
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
  skip = {'parent', 'name', 'dtype', 'param_dtype'}
  return ', '.join(f'{f.name}={getattr(module, f.name)!r}'
                   for f in dataclasses.fields(module) if f.name not in skip)


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
  """What H and W of the input must divide (RRDBNet x2 / x1 pixel-unshuffle
  the input by 2 / 4); from the architecture's file, 1 by default."""
  for name in models.GENERATORS.names():
    if type(module) is models.GENERATORS.get(name):
      return int(models.arch_spec(name).input_multiple(module))
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
