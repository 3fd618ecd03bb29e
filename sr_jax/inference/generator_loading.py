"""A generator and its weights for inference: a training run's workdir, or
any weights file sr_jax can read (sr_jax.weights.generators).

  module, variables, scale = load_generator_for_inference(weights='x4.pth')
  run_batch = make_run_batch(module, variables)   # [K,h,w,3] -> [K,sh,sw,3]

Sources:
  checkpoint=WORKDIR  a training run: its EMA generator ('best' or 'latest',
                      sr_jax.checkpoint.load_generator), built from the run's
                      saved config.
  weights=X.npz       a converted file (`python -m sr_jax.tools.convert`), which
                      records its arch and model kwargs; a plain
                      `save_params` .npz needs arch= (the other settings,
                      scale included, are read off the parameter shapes).
  weights=X.pth / .pt / .ckpt / .safetensors
                      PyTorch weights converted on the fly; arch= or
                      recognised from the key names (each model file's
                      `recognise`).
  weights=X.param     an ncnn model (its .bin beside it), e.g. the released
                      realesrgan-x4plus.param (sr_jax.weights.ncnn); the
                      network only: an x2 / x3 file's final resize is
                      release_resize(X) (upscale applies it as --outscale).
"""
import argparse
import functools
import json
import os
import sys
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import checkpoint as checkpoint_lib
from sr_jax import models
from sr_jax.weights import generators
from sr_jax.weights import ncnn
# Re-exported: part of sr_jax.inference's API.
from sr_jax.weights.generators import TORCH_SUFFIXES  # noqa: F401
from sr_jax.weights.generators import WeightsError  # noqa: F401
from sr_jax.weights.generators import detect_arch  # noqa: F401
from sr_jax.weights.generators import infer_model_kwargs  # noqa: F401


def load_generator_for_inference(
    weights: str | os.PathLike | None = None,
    checkpoint: str | os.PathLike | None = None,
    arch: str | None = None,
    model_kwargs: Mapping[str, Any] | None = None,
    dtype: Any = jnp.float32,
    which: str = 'best', phase: str | None = None,
    step: int | None = None) -> tuple[nn.Module, dict[str, Any], int]:
  """Loads a generator for upscaling.

  Args:
    weights: a converted / plain .npz, a PyTorch .pth/.pt/.ckpt/.bin or
      .safetensors file, or an ncnn .param (see the module doc).
    checkpoint: a training run's workdir (instead of weights).
    arch: generator name (get_generator); needed for a plain .npz, otherwise
      read from the file / detected from PyTorch key names.
    model_kwargs: generator settings that override the ones read from the
      file (e.g. {'scale': 2}, {'act_type': 'relu'}); not with checkpoint.
    dtype: compute dtype, jnp.float32 or jnp.bfloat16 (or their names);
      parameters stay float32.
    which: 'best' or 'latest' checkpoint of the run.
    phase: with 'best', that phase's best (default: the final phase's).
    step: a given step of the run instead.

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
  if checkpoint is None and (phase is not None or step is not None):
    raise ValueError('--phase / --step pick a checkpoint of a --checkpoint '
                     'run, not of --weights.')
  if arch is not None:
    models.GENERATORS.get(arch)  # ValueError listing the generators.
  dtype = jnp.dtype(dtype)
  model_kwargs = dict(model_kwargs or {})
  if checkpoint is not None:
    if arch is not None or model_kwargs:
      raise ValueError('--arch / --scale / --model-kwargs apply to --weights; '
                       'a --checkpoint run already says what it trained.')
    loaded = checkpoint_lib.load_generator_from_workdir(
        os.fspath(checkpoint), which, phase, step)
    deg = loaded.config.get('degradation')
    if deg is not None and deg.get('target', 'hr') == 'lr':
      raise ValueError(
          f'{checkpoint} trained a down-sampling generator '
          f'({loaded.config.generator.name!r}: LR -> LR of the real domain), '
          'not a super-resolution one; make LR images with it: python -m '
          f'sr_jax.tools.make_lr --dsgan {checkpoint} --input HR --output LR.')
    print(f'Loaded {loaded.describe()}.', file=sys.stderr, flush=True)
    module = loaded.module.clone(dtype=dtype)
    scale = int(getattr(module, 'scale', loaded.config.scale))
    return module, loaded.variables, scale

  if ncnn.is_ncnn_param(weights):
    return _load_ncnn(weights, arch, model_kwargs, dtype)
  module, variables, scale = generators.load_generator_file(
      weights, arch, model_kwargs, dtype)
  if scale < 1:
    raise WeightsError(
        f'{weights} holds a down-sampling generator ({type(module).__name__}'
        f', output 1/{1 / scale} of its input), not a super-resolution one; '
        'make LR images with it: python -m sr_jax.tools.make_lr --dsgan '
        f'{weights} --input HR --output LR.')
  return module, variables, scale


def _load_ncnn(path: str | os.PathLike, arch: str | None,
               model_kwargs: dict[str, Any], dtype: Any
               ) -> tuple[nn.Module, dict[str, Any], int]:
  """(module, variables, scale) of an ncnn .param / .bin pair."""
  path = os.path.expanduser(os.fspath(path))
  try:
    model = ncnn.read_ncnn_model(path)
  except ValueError as e:
    raise WeightsError(str(e)) from None
  if arch is not None and arch != model.arch:
    raise WeightsError(f'{path} holds {model.arch!r} weights, not --arch '
                       f'{arch!r}: drop --arch or pick other weights.')
  try:
    module = models.get_generator(model.arch, dtype=dtype,
                                  **{**model.kwargs, **model_kwargs})
  except TypeError as e:
    raise WeightsError(f'{path}: bad settings for {model.arch}: {e}') from e
  generators.check_fits(module, model.variables, path)
  variables = jax.tree.map(lambda x: np.asarray(x, np.float32),
                           model.variables)
  return module, variables, models.output_scale(module)


def release_resize(weights: str | os.PathLike | None) -> ncnn.Resize | None:
  """The resize an ncnn .param applies after its network (the released
  realesr-animevideov3-x2 / -x3: bicubic by 0.5 / 0.75), else None."""
  if weights is None or not ncnn.is_ncnn_param(weights):
    return None
  return ncnn.final_resize(ncnn.read_param(os.path.expanduser(
      os.fspath(weights))))


def add_source_flags(p: argparse.ArgumentParser,
                     weights_help: str = 'converted .npz, or '
                     '.pth/.safetensors') -> None:
  """The command-line flags of load_generator_for_inference's arguments:
  --weights / --checkpoint (one required), --which, --arch, --scale,
  --model-kwargs (read back with model_kwargs_from_flags)."""
  src = p.add_mutually_exclusive_group(required=True)
  src.add_argument('--weights', help=weights_help)
  src.add_argument('--checkpoint', metavar='WORKDIR',
                   help="a training run's --workdir (its EMA generator)")
  p.add_argument('--which', choices=('best', 'latest'), default='best',
                 help='checkpoint to use with --checkpoint (default best)')
  p.add_argument('--arch', help='generator name, when the weights do not say')
  p.add_argument('--scale', type=int,
                 help='network scale (read off the weights when omitted)')
  p.add_argument('--model-kwargs', default='{}', metavar='JSON',
                 help='other generator settings, e.g. \'{"act_type": "relu"}\'')


def model_kwargs_from_flags(args: argparse.Namespace) -> dict[str, Any]:
  """--model-kwargs with --scale merged in; ValueError saying the fix."""
  try:
    model_kwargs = json.loads(args.model_kwargs)
    if not isinstance(model_kwargs, dict):
      raise ValueError('not a JSON object')
  except ValueError as e:
    raise ValueError(f'--model-kwargs {args.model_kwargs!r}: {e}; expected '
                     'e.g. \'{"num_feat": 64}\'.') from None
  if args.scale is not None:
    model_kwargs['scale'] = args.scale
  return model_kwargs


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
  apply = _jitted_apply(module)
  return lambda batch: apply(variables, batch)


@functools.lru_cache(maxsize=32)
def _jitted_apply(module: nn.Module) -> Callable:
  """One jitted inference function per distinct network: models of one
  architecture (a sweep's variants, evaluated together) share their
  compilations, one per input shape."""
  return jax.jit(lambda v, x: module.apply(v, x, train=False))
