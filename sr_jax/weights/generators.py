"""Generator weights from files: converted .npz, PyTorch .pth / .pt / .ckpt /
.bin and .safetensors, for inference and tools.

  module, variables, scale = load_generator_file('x4.pth')

A converted .npz records its arch and kwargs; a plain `save_params` .npz
needs arch= (the other settings, scale included, are read off the
parameter shapes by the architecture's `kwargs_from_params`); PyTorch files
are converted on the fly, their arch given or recognised from the key names
(each model file's `recognise`).
"""
import fractions
import os
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import errors
from sr_jax import models
from sr_jax.models.torch_layout import unwrap_state_dict
from sr_jax.weights import files
from sr_jax.weights import params_io
from sr_jax.weights import state_dict as state_dict_lib

TORCH_SUFFIXES = ('.pth', '.pt', '.ckpt', '.bin', '.safetensors')
_HOW_TO_GET = (
    'Convert official PyTorch weights with '
    '`python -m sr_jax.convert ARCH '
    'SRC.pth OUT.npz` (or pass the .pth / .safetensors directly), download '
    'them with `python -m sr_jax.weights fetch NAME`, or use a training run '
    'with --checkpoint WORKDIR.')


class WeightsError(errors.SrJaxError, ValueError):
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


def check_fits(module: nn.Module, variables: Mapping[str, Any],
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
  return ', '.join(f'{f}={getattr(module, f)!r}'
                   for f in models.module_fields(module)
                   if f not in ('dtype', 'param_dtype'))


def _from_npz(path: str, arch: str | None,
              model_kwargs: dict[str, Any]) -> tuple[str, dict, dict]:
  """(arch, kwargs, variables) of a converted or plain .npz."""
  file_arch, file_kwargs, variables = None, {}, None
  try:
    file_arch, file_kwargs, variables = files.load_converted(path)
  except errors.CorruptFileError:
    raise
  except ValueError as e:  # No metadata: a plain save_params file.
    if arch is None:
      raise WeightsError(
          f'{e} Or, for weights saved with save_params, pass --arch (one '
          f'of {models.GENERATORS.names()}).') from e
  if variables is None:
    try:
      variables = params_io.load_params(path)
    except errors.CorruptFileError:
      raise
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
  state_dict = unwrap_state_dict(files.load_torch_file(path))
  if arch is None:
    arch = detect_arch(state_dict)
    if arch is None:
      raise WeightsError(
          f'Cannot tell the architecture of {path} from its keys (first: '
          f'{sorted(state_dict)[:4]}); pass --arch (one of '
          f'{list(state_dict_lib.supported_archs())}).')
  # `scale` is always read off the shapes; a --scale given as well is
  # checked against them below instead of being forced on the converter.
  hints = {k: v for k, v in model_kwargs.items() if k != 'scale'}
  try:
    variables, kwargs = state_dict_lib.convert_with_config(arch, state_dict,
                                                           **hints)
  except ValueError as e:
    raise WeightsError(f'Converting {path} as {arch!r}: {e}') from e
  return arch, {**kwargs, **model_kwargs}, variables


def load_generator_file(weights: str | os.PathLike, arch: str | None = None,
                        model_kwargs: Mapping[str, Any] | None = None,
                        dtype: Any = jnp.float32
                        ) -> tuple[nn.Module, dict[str, Any],
                                   int | fractions.Fraction]:
  """(module, variables, scale) of a generator weights file.

  scale: models.output_scale(module), output side / input side: an int,
  or Fraction(1, d) for a generator that scales down by d (a DSGAN).

  arch: generator name; needed for a plain .npz, otherwise read from the
    file or recognised from PyTorch key names.
  model_kwargs: settings that override the ones read from the file.
  Raises FileNotFoundError (with how to get weights), WeightsError or
  errors.CorruptFileError (a damaged or truncated file).
  """
  dtype = jnp.dtype(dtype)
  model_kwargs = dict(model_kwargs or {})
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
  check_fits(module, variables, path)
  variables = jax.tree.map(lambda x: np.asarray(x, np.float32), variables)
  return module, variables, models.output_scale(module)
