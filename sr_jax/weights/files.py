"""Weight files: PyTorch / safetensors / ncnn in, converted .npz with
metadata out.

  sd = load_torch_file('RealESRGAN_x4plus.pth')         # needs torch
  sd = load_torch_file('model.safetensors')             # numpy only
  convert_file('rrdbnet', 'RealESRGAN_x4plus.pth', 'x4plus.npz')
  convert_file('rrdbnet', 'realesrgan-x4plus.param', 'x4plus.npz')  # ncnn
  arch, kwargs, variables = load_converted('x4plus.npz')
  sr = build_model(arch, **kwargs).apply(variables, lr)

A converted file is a params_io .npz whose metadata holds the arch and the
model kwargs inferred from the shapes, so loaders know what to build.
"""
import functools
import os
import pathlib
import pickle
import zipfile
from typing import Any, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import errors
from sr_jax.models import torch_layout as core
from sr_jax.weights import ncnn
from sr_jax.weights import safetensors_io
from sr_jax.weights import state_dict as state_dict_lib
from sr_jax.weights import params_io

TORCH_SUFFIXES = ('.pth', '.pt', '.ckpt', '.bin')
FORMAT = 'sr_jax.converted/1'


def require_torch(why: str):
  """`import torch`, or an ImportError that says what to install."""
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError(
        f'{why} needs PyTorch, used only for this one-off conversion: pip '
        'install torch (the CPU wheel is enough). Or convert on another '
        'machine and copy the .npz, or save the weights as .safetensors, '
        'which sr_jax reads without torch.') from e
  return torch


def _arrays(obj: Any) -> Any:
  if isinstance(obj, Mapping):
    return {key: _arrays(value) for key, value in obj.items()}
  if isinstance(obj, (list, tuple)):
    return type(obj)(_arrays(value) for value in obj)
  return core.to_numpy(obj)


def load_torch_file(path: str | os.PathLike) -> dict[str, Any]:
  """A PyTorch weights file as a dict with numpy arrays in place of tensors.

  .pth / .pt / .ckpt / .bin: `torch.load(path, map_location='cpu',
  weights_only=True)` (ImportError saying `pip install torch` without it);
  wrappers such as {'params_ema': {...}} are kept (convert_state_dict
  unwraps them). .safetensors: read with numpy alone, a flat dict.
  Raises FileNotFoundError / ValueError naming the file: CorruptFileError
  for a damaged or truncated one (every CRC of a zip-format .pth is
  checked first).
  """
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f'{path} does not exist.')
  suffix = path.suffix.lower()
  if suffix == '.safetensors' or (suffix not in TORCH_SUFFIXES
                                  and safetensors_io.is_safetensors(path)):
    return safetensors_io.read_safetensors(path)[0]
  if suffix not in TORCH_SUFFIXES and not zipfile.is_zipfile(path):
    raise ValueError(
        f'{path}: unknown weights format; expected a PyTorch checkpoint '
        f'({", ".join(TORCH_SUFFIXES)}) or a .safetensors file.')
  if params_io.is_zip(path):  # torch >= 1.6; older files are bare pickles.
    params_io.check_zip(path)  # torch.load checks no CRCs.
  torch = require_torch(f'Reading {path}')
  try:
    obj = torch.load(str(path), map_location='cpu', weights_only=True)
  except (EOFError, OSError) as e:
    raise errors.CorruptFileError(
        f'{path} is damaged or truncated ({type(e).__name__}: {e}); download '
        'or convert it again.') from None
  except (pickle.UnpicklingError, RuntimeError, ValueError) as e:
    raise ValueError(
        f'Cannot read {path} as PyTorch weights ({type(e).__name__}: {e}). '
        'It may be truncated, or hold pickled objects other than tensors, '
        'which are not loaded for safety: in PyTorch, save just '
        'model.state_dict() (or to .safetensors).') from None
  if not isinstance(obj, Mapping):
    raise ValueError(f'{path} holds a {type(obj).__name__}, not a state dict '
                     '(a mapping of names to tensors).')
  return _arrays(obj)


def select_key(checkpoint: Mapping[str, Any], key: str,
               source: Any = 'the checkpoint') -> Mapping[str, Any]:
  """checkpoint[key], which must be a mapping; errors list what there is."""
  if not isinstance(checkpoint.get(key), Mapping):
    choices = sorted(k for k, v in checkpoint.items() if isinstance(v, Mapping))
    what = 'has no entry' if key not in checkpoint else 'has no mapping at'
    raise ValueError(f'{source} {what} {key!r}; entries holding mappings: '
                     f'{choices}' + ('' if choices else
                                     ' (it is a plain state dict: drop --key)')
                     + '.')
  return checkpoint[key]


def save_converted(path: str | os.PathLike, arch: str, variables: Mapping,
                   model_kwargs: Mapping[str, Any],
                   source: Optional[str] = None) -> pathlib.Path:
  """Writes variables + {arch, model_kwargs, source} metadata (atomic)."""
  path = pathlib.Path(path).expanduser()
  params_io.save_params(path, variables, metadata=dict(
      format=FORMAT, arch=arch, model_kwargs=dict(model_kwargs),
      source=source))
  return path


def convert_file(arch: str, src: str | os.PathLike, out: str | os.PathLike,
                 key: Optional[str] = None,
                 **model_kwargs) -> tuple[pathlib.Path, dict[str, Any]]:
  """PyTorch / safetensors weights, or an ncnn .param (its .bin beside it),
  -> converted .npz; returns (out, kwargs).

  key: the checkpoint entry holding the weights (default: the state dict
  itself, or the first of 'params_ema', 'params', 'state_dict'). Nothing is
  written unless the conversion succeeds. An ncnn file's settings all come
  from its graph (no key or model_kwargs); see sr_jax.weights.ncnn.
  """
  out = pathlib.Path(out).expanduser()
  if out.suffix != '.npz':
    raise ValueError(f'Output {out} must end in .npz.')
  if ncnn.is_ncnn_param(src):
    if key or model_kwargs:
      raise ValueError(f'{src} is an ncnn model: its settings come from its '
                       'graph; drop --key / --kwarg.')
    model = ncnn.read_ncnn_model(src)
    if model.arch != arch:
      raise ValueError(f'{src} holds an {model.arch} network '
                       f'({model.kwargs}), not {arch!r}.')
    save_converted(out, arch, model.variables, model.kwargs,
                   source=pathlib.Path(src).name)
    return out, model.kwargs
  checkpoint = load_torch_file(src)
  if key:
    checkpoint = select_key(checkpoint, key, src)
  try:
    variables, kwargs = state_dict_lib.convert_with_config(
        arch, checkpoint, **model_kwargs)
  except ValueError as e:
    raise ValueError(f'Converting {src} as {arch!r}: {e}') from None
  save_converted(out, arch, variables, kwargs,
                 source=pathlib.Path(src).name)
  return out, kwargs


def load_converted(path: str | os.PathLike
                   ) -> tuple[str, dict[str, Any], dict[str, Any]]:
  """(arch, model_kwargs, variables) of a file written by convert_file.

  build_model(arch, **model_kwargs).apply(variables, x) runs it. Raises
  ValueError for an .npz without the metadata (e.g. an older conversion).
  """
  path = pathlib.Path(path).expanduser()
  meta = params_io.load_metadata(path)
  if 'arch' not in meta:
    raise ValueError(
        f'{path} does not say which model it is for (no arch metadata: '
        'written by an older sr_jax, or not by a converter). Convert the '
        f'original again: python -m sr_jax.convert ARCH SRC {path}')
  return meta['arch'], dict(meta.get('model_kwargs') or {}), \
      params_io.load_params(path)


def _name(path) -> str:
  return '/'.join(str(getattr(k, 'key', k)) for k in path)


@functools.lru_cache(maxsize=4)
def _load_for(path: str, stamp: tuple[int, int], arch: str,
              hints: tuple[tuple[str, Any], ...]) -> tuple[dict, str]:
  del stamp  # Only part of the cache key: a rewritten file is read again.
  if path.endswith('.npz'):
    meta = params_io.load_metadata(path)
    if meta.get('arch') not in (None, arch):
      raise ValueError(
          f'{path} was converted as {meta["arch"]!r} '
          f'({meta.get("model_kwargs")}), not {arch!r}.')
    about = (f'{meta["arch"]} {meta.get("model_kwargs")}' if 'arch' in meta
             else 'no arch metadata')
    return params_io.load_params(path), about
  if ncnn.is_ncnn_param(path):
    model = ncnn.read_ncnn_model(path)
    if model.arch != arch:
      raise ValueError(f'{path} holds an {model.arch} network, not {arch!r}.')
    return model.variables, f'{arch} {model.kwargs} (ncnn)'
  try:
    variables, kwargs = state_dict_lib.convert_with_config(
        arch, load_torch_file(path), **dict(hints))
  except ValueError as e:
    raise ValueError(f'Converting {path} as {arch!r}: {e}') from None
  return variables, f'{arch} {kwargs}'


def load_like(path: str | os.PathLike, arch: str, like: Mapping[str, Any],
              model_description: str, **hints) -> dict[str, Any]:
  """Variables from `path` with exactly the structure and shapes of `like`.

  path: a converted .npz (its arch, if recorded, must be `arch`), a
    PyTorch / safetensors file converted here as `arch` (hints: kwargs the
    converter cannot infer, e.g. act_type), or an ncnn .param. Loading is
    cached per file.
  like: the model's variables (arrays or ShapeDtypeStructs), whose dtypes
    the result takes.
  model_description: how the error names the model (e.g. its config).
  Raises ValueError naming every missing, extra or mis-shaped variable.
  """
  path = pathlib.Path(path).expanduser().resolve()
  if not path.is_file():
    raise FileNotFoundError(f'{path} does not exist.')
  stat = path.stat()
  hints = {k: v for k, v in hints.items()
           if k in state_dict_lib.CONVERSION_HINTS.get(arch, ())}
  loaded, about = _load_for(str(path), (stat.st_mtime_ns, stat.st_size), arch,
                            tuple(sorted(hints.items())))
  return check_like(loaded, like, model_description, f'{path} ({about})')


def check_like(loaded: Mapping[str, Any], like: Mapping[str, Any],
               model_description: str, source: str) -> dict[str, Any]:
  """`loaded` variables in the structure and dtypes of `like`; ValueError
  naming every missing, extra or mis-shaped variable of `source`."""
  flat_file = {_name(p): v for p, v in
               jax.tree_util.tree_flatten_with_path(loaded)[0]}
  flat_like, treedef = jax.tree_util.tree_flatten_with_path(like)
  names = [_name(p) for p, _ in flat_like]
  shapes = [f'{k}: file {np.shape(flat_file[k])} vs model {tuple(v.shape)}'
            for k, (_, v) in zip(names, flat_like)
            if k in flat_file and np.shape(flat_file[k]) != tuple(v.shape)]
  missing = [k for k in names if k not in flat_file]
  extra = sorted(set(flat_file) - set(names))
  problems = []
  if shapes:
    problems.append(f'shape mismatches: {shapes}')
  if missing:
    problems.append(f'missing from the file: {missing}')
  if extra:
    problems.append(f'in the file but not in the model: {extra}')
  if problems:
    raise ValueError(
        f'{source} does not fit {model_description}: '
        + '; '.join(problems) + '.')
  return jax.tree_util.tree_unflatten(
      treedef, [jnp.asarray(flat_file[k], v.dtype)
                for k, (_, v) in zip(names, flat_like)])
