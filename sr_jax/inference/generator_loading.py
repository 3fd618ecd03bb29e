"""A generator and its weights for inference: a training run's workdir, or
any weights file sr_jax can read (sr_jax.weights.generators).

  module, variables, scale = load_generator_for_inference(weights='x4.pth')
  run_batch = make_run_batch(module, variables)   # [K,h,w,3] -> [K,sh,sw,3]

Sources:
  checkpoint=WORKDIR  a training run: its EMA generator ('best' or 'latest',
                      load_generator), built from the run's
                      saved config.
  weights=X.npz       a converted file (`python -m sr_jax.convert`), which
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
import dataclasses
import fractions
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
from sr_jax.utils import io_utils
from sr_jax.weights import generators
from sr_jax.weights import ncnn
# Re-exported: part of sr_jax.inference's API.
from sr_jax.weights.generators import TORCH_SUFFIXES  # noqa: F401
from sr_jax.weights.generators import WeightsError  # noqa: F401
from sr_jax.weights.generators import detect_arch  # noqa: F401
from sr_jax.weights.generators import infer_model_kwargs  # noqa: F401


WHICH = ('best', 'latest', 'final')


@dataclasses.dataclass(frozen=True)
class Generator:
  """A loaded generator: module.apply(variables, x, train=False) maps
  x [N, h, w, 3] float32 in [0, 1] to [N, scale h, scale w, 3] float32.

  scale: output side / input side (models.output_scale): an int, or
    Fraction(1, d) for a down-sampling generator (DSGAN).
  run: for a workdir, the checkpoint it came from (its config, step, phase
    and whether the EMA or the raw weights); None for a weights file.
  """
  module: nn.Module
  variables: dict[str, Any]
  scale: int | fractions.Fraction
  source: str
  run: checkpoint_lib.LoadedGenerator | None = None

  @property
  def arch(self) -> str:
    """The generator's registered name."""
    return models.generator_name(self.module)

  def describe(self) -> str:
    return self.run.describe() if self.run else f'the weights in {self.source}'


def split_source(source: str | os.PathLike) -> tuple[str, str | None]:
  """'W:gan' -> ('W', 'gan'): a workdir and one of its phases. A path that
  exists, or has nothing after its last ':' that could be a phase, is
  returned whole."""
  spec = os.fspath(source)
  path, sep, phase = spec.rpartition(':')
  if sep and path and not os.path.exists(spec) and phase.isidentifier():
    return path, phase
  return spec, None


def load_generator(source: str | os.PathLike, phase: str | None = None,
                   step: int | None = None, *, which: str = 'final',
                   arch: str | None = None,
                   model_kwargs: Mapping[str, Any] | None = None,
                   dtype: Any = None) -> Generator:
  """The one way to load a trained generator, for every command.

  source: a training run's workdir (`W`, or `W:phase` for that phase's
    best), or a weights file: a converted / plain .npz, a PyTorch
    .pth/.pt/.ckpt/.bin or .safetensors file, or an ncnn .param (see the
    module doc).
  phase, step: pick a checkpoint of a workdir (a phase's best, or a given
    step); `which` says which one otherwise: 'best' (the best validated
    state of the final phase that has one), 'latest' (the newest
    checkpoint) or 'final' (best, else latest: a run without evaluations).
  arch, model_kwargs: for a weights file, the generator's name (needed for
    a plain .npz) and settings that override those read off the file.
  dtype: the compute dtype (parameters stay float32); by default a run's
    own (config.dtype) and float32 for a weights file.

  Raises FileNotFoundError (with how to get weights), ValueError
  (WeightsError: unreadable or not fitting; a corrupt checkpoint).
  """
  if which not in WHICH:
    raise ValueError(f'which={which!r}; use one of {list(WHICH)}.')
  path, phase = _with_phase(source, phase)
  if _is_workdir(path):
    _check_workdir_args(arch, model_kwargs)
    return _from_workdir(path, which, phase, step, dtype)
  _check_file_args(phase, step)
  return _from_file(path, arch, model_kwargs, dtype)


def _with_phase(source, phase: str | None) -> tuple[str, str | None]:
  """(path, phase) of `source`, `W:phase` or `W` with `phase`."""
  path, named_phase = split_source(source)
  if named_phase is None:
    return path, phase
  if phase is not None and phase != named_phase:
    raise ValueError(f'{source} names phase {named_phase!r}, but phase='
                     f'{phase!r} was given too: give one.')
  return path, named_phase


def _is_workdir(path: str) -> bool:
  return io_utils.path(io_utils.workdir_path(path)).is_dir()


def _check_workdir_args(arch, model_kwargs) -> None:
  if arch is not None or model_kwargs:
    raise ValueError('--arch / --scale / --model-kwargs apply to --weights; '
                     'a --checkpoint run already says what it trained.')


def _check_file_args(phase, step) -> None:
  if phase is not None or step is not None:
    raise ValueError('--phase / --step pick a checkpoint of a --checkpoint '
                     'run, not of --weights.')


def _from_workdir(path: str, which: str, phase: str | None,
                  step: int | None, dtype: Any) -> Generator:
  """A run's generator ('final': its best, else its newest checkpoint)."""
  if which == 'final' and phase is None and step is None:
    try:
      run = checkpoint_lib.load_generator_from_workdir(path, 'best')
    except FileNotFoundError:
      run = checkpoint_lib.load_generator_from_workdir(path, 'latest')
  else:
    run = checkpoint_lib.load_generator_from_workdir(
        path, 'best' if which == 'final' else which, phase, step)
  module = run.module if dtype is None else run.module.clone(
      dtype=jnp.dtype(dtype))
  return Generator(module, run.variables, models.output_scale(module), path,
                   run)


def _from_file(path: str, arch: str | None,
               model_kwargs: Mapping[str, Any] | None,
               dtype: Any) -> Generator:
  """A weights file's generator (float32 unless `dtype` says)."""
  model_kwargs = dict(model_kwargs or {})
  dtype = jnp.dtype(jnp.float32 if dtype is None else dtype)
  if ncnn.is_ncnn_param(path):
    module, variables, scale = _load_ncnn(path, arch, model_kwargs, dtype)
  else:
    module, variables, scale = generators.load_generator_file(
        path, arch, model_kwargs, dtype)
  return Generator(module, dict(variables), scale, path)


def load_generator_of(source: str, arch: str, what: str) -> Generator:
  """The final generator of a workdir, or a weights file, which must be an
  `arch` generator (ValueError naming `what`, the setting that gave it).
  For a generator that a run reads (a DSGAN degradation, a frozen network)
  or a command that needs one kind (make_lr)."""
  if not _is_workdir(source):
    if not os.path.isfile(os.path.expanduser(source)):
      raise FileNotFoundError(f'{what}: {source} is neither a workdir nor a '
                              'weights file.')
    return _from_file(source, arch, None, None)
  loaded = _from_workdir(source, 'final', None, None, None)
  if loaded.arch != arch:
    raise ValueError(f'{what}: {source} trained a {loaded.arch!r} '
                     f'generator, not a {arch!r} one.')
  print(f'{what}: {loaded.describe()}.', flush=True)
  return loaded


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
  if checkpoint is None:
    _check_file_args(phase, step)
  if arch is not None:
    models.GENERATORS.get(arch)  # ValueError listing the generators.
  if checkpoint is not None:
    _check_workdir_args(arch, model_kwargs)
    path, phase = _with_phase(checkpoint, phase)
    # Always the workdir reader: a --checkpoint that is not a run says so.
    loaded = _from_workdir(path, which, phase, step, dtype)
    config = loaded.run.config
    deg = config.get('degradation')
    if deg is not None and deg.get('target', 'hr') == 'lr':
      raise ValueError(
          f'{checkpoint} trained a down-sampling generator '
          f'({config.generator.name!r}: LR -> LR of the real domain), '
          'not a super-resolution one; make LR images with it: python -m '
          f'sr_jax.data.make_lr --dsgan {checkpoint} --input HR --output LR.')
    print(f'Loaded {loaded.describe()}.', file=sys.stderr, flush=True)
    return loaded.module, loaded.variables, int(loaded.scale)
  loaded = _from_file(os.fspath(weights), arch, model_kwargs, dtype)
  if loaded.scale < 1:
    raise WeightsError(
        f'{weights} holds a down-sampling generator '
        f'({type(loaded.module).__name__}, output 1/{1 / loaded.scale} of '
        'its input), not a super-resolution one; make LR images with it: '
        f'python -m sr_jax.data.make_lr --dsgan {weights} --input HR '
        '--output LR.')
  return loaded.module, loaded.variables, loaded.scale


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
  src.add_argument('--checkpoint', metavar='WORKDIR[:PHASE]',
                   help="a training run's --workdir (its EMA generator); "
                   "W:PHASE for that phase's best")
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
  name = models.generator_name(module)
  return 1 if name is None else int(
      models.arch_spec(name).input_multiple(module))


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
