"""ONNX export of a generator (jax2onnx) and an onnxruntime `run_batch`.

  proto = export_generator(module, variables, scale=4, arch='rrdbnet')
  run_batch = OnnxGenerator('x4.onnx')   # or proto.SerializeToString()
  out = run_batch(batch)                 # [K,h,w,3] -> [K,4h,4w,3], NHWC
  run_batch = load_onnx_generator(weights='x4.pth')  # exported in memory

The ONNX file takes what chaiNNer, spandrel and Real-ESRGAN's ONNX files
take: NCHW float32 RGB in [0, 1], with a dynamic batch, height and width
(any height and width, also for RRDBNet x2 / x1), and returns NCHW float32
[N, 3, scale H, scale W] (unclipped, as the JAX generators). The
generators themselves are NHWC; OnnxGenerator keeps tiling's NHWC
RunBatch contract and transposes on the host.

The export traces `module.apply` with symbolic batch, height and width
(jax.export shape polymorphism, which jax2onnx turns into dynamic ONNX
dimensions). Three things are rewritten for the trace only; the JAX
generators and their outputs are unchanged:

  - layout: an NCHW -> NHWC transpose before the network and back after.
  - size multiple: pixel-unshuffle networks (RRDBNet x2 / x1) need H and W
    divisible by 2 / 4; the graph reflect-pads the bottom and right to a
    multiple and crops the output back, as tiling.pad_to_multiple and
    Real-ESRGAN's `mod_pad` do (written with reverse / concatenate /
    static slices: jnp.pad's reflect mode cannot take a symbolic width).
  - up-sampling by an integer factor (MSRResNet's bilinear base image,
    SRResCGAN's bilinear input, RRDBNet's optional upsample_skip):
    sr_jax.degradations.resampling.resize builds dense [out, in] matrices
    and jax.image.resize static weights, neither possible for a symbolic
    size. While tracing, resampling.resize (any mode) and jax.image.resize
    (bilinear) are replaced by the same interpolation written as `scale`
    phase-shifted blends of neighbours, interleaved (torch's
    align_corners=False with the edge clamped, which both originals compute
    for integer up-sampling); other calls go to the originals.

onnxruntime and jax2onnx are optional (`pip install -e .[onnx]`, then
`pip install --no-deps -r requirements-onnx.txt`):
this module imports them only when called.
"""
import contextlib
import functools
import importlib
import importlib.metadata
import json
import logging
import os
from typing import Any, Callable, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import models
from sr_jax.degradations import resampling
from sr_jax.inference import generator_loading

INSTALL_HINT = ('pip install -e .[onnx] && pip install --no-deps -r '
                'requirements-onnx.txt (jax2onnx without the older '
                'orbax-checkpoint it declares)')
# metadata_props keys of exported files (strings); files without them (from
# other tools) work too: the scale is then measured and the multiple is 1.
META_SCALE = 'sr_jax.scale'
META_MULTIPLE = 'sr_jax.input_multiple'
META_ARCH = 'sr_jax.arch'
META_KWARGS = 'sr_jax.model_kwargs'
META_LAYOUT = 'sr_jax.layout'
LAYOUT = 'NCHW float32 RGB in [0, 1]'
DEFAULT_OPSET = 17
# jax2onnx writes dynamic sizes with Shape(start=...), opset 15 on.
MIN_OPSET = 15
# onnxruntime's execution providers in order of preference (those
# installed); TensorRT (slow engine builds) and Azure are left out.
PROVIDERS = ('CUDAExecutionProvider', 'ROCMExecutionProvider',
             'DmlExecutionProvider', 'CoreMLExecutionProvider',
             'CPUExecutionProvider')


def require(module_name: str):
  """Imports jax2onnx / onnxruntime, or raises ImportError saying how to
  install them (one line)."""
  try:
    return importlib.import_module(module_name)
  except ImportError:
    raise ImportError(
        f'ONNX export and the onnxruntime backend need {module_name}, '
        f'which is not installed: {INSTALL_HINT}') from None


# ------------------------------------------------------------------ export --


def _reflect_pad_to_multiple(x: jax.Array, multiple: int,
                             axis: int) -> jax.Array:
  """Reflect-pads `axis` at its end to a multiple (size may be symbolic).

  np.pad's 'reflect' (the edge not repeated) for images at least
  `multiple` pixels along the axis; thinner ones read zeros past their far
  edge. Built from lax reverse, concatenate and slices with provable
  bounds only: jnp.pad cannot take a symbolic width, and jnp indexing with
  symbolic bounds becomes a gather, which jax2onnx 0.17.1 converts only in
  the first conversion of a process (its gather plugin registers constant
  folders once, on the first conversion's context).
  """
  size = x.shape[axis]
  zeros = list(x.shape)
  zeros[axis] = multiple
  # Rows size - 2, ..., size - multiple: rows 1 .. multiple - 1 of the
  # reversed axis (zeros appended so the slice is provably in bounds).
  reverse = jax.lax.concatenate(
      [jax.lax.rev(x, (axis,)), jnp.zeros(zeros, x.dtype)], axis)
  tail = jax.lax.slice_in_dim(reverse, 1, multiple, axis=axis)
  padded = jax.lax.concatenate([x, tail], axis)
  return jax.lax.slice_in_dim(
      padded, 0, multiple * ((size + multiple - 1) // multiple), axis=axis)


@functools.lru_cache(maxsize=None)
def _phase_taps(factor: int, mode: str) -> tuple[tuple[tuple[int, float],
                                                        ...], ...]:
  """Per output phase r, the (offset, weight) taps of an integer up-sampling.

  Output o = factor i + r reads inputs i + offset, offset in [-2, 2]. Read
  off the reference matrix (resampling.resize_matrix, torch's
  F.interpolate) at an interior pixel, so the formula is written once.
  """
  n, i = 9, 4
  mat = resampling.resize_matrix(n, n * factor, mode)
  return tuple(
      tuple((j, float(mat[factor * i + r, i + j])) for j in range(-2, 3)
            if mat[factor * i + r, i + j] != 0)
      for r in range(factor))


def _upsample_axis(x: jax.Array, factor: int, axis: int,
                   mode: str) -> jax.Array:
  """F.interpolate(align_corners=False) up-sampling of one axis by an
  integer factor, for a symbolic size.

  Every mode's output phase r is a fixed blend of the input shifted by at
  most two pixels (_phase_taps). Torch clamps out-of-range taps to the edge
  pixel (bilinear clamps the coordinate at 0, the same value), so the axis
  is edge-padded by two and each shift is a static slice of it.
  """
  size = x.shape[axis]
  # Static slice bounds only (symbolic ones need size > 1 proved), and
  # lax.concatenate: jax2onnx 0.17.1's jnp.concatenate gives a symbolic
  # axis the first operand's size.
  take = lambda v, start, stop: v[(slice(None),) * axis + (slice(start, stop),)]
  first, last = take(x, None, 1), take(x, -1, None)
  padded = jax.lax.concatenate([first, first, x, last, last], axis)
  phases = []
  for taps in _phase_taps(factor, mode):
    phase = 0.0
    for j, weight in taps:
      shifted = take(padded, 2 + j, (j - 2) or None)
      phase = phase + (shifted if weight == 1 else weight * shifted)
    phases.append(phase)
  out = jnp.stack(phases, axis=axis + 1)
  shape = list(x.shape)
  shape[axis] = size * factor
  return out.reshape(shape)


def _integer_factor(size_in, size_out) -> int | None:
  for factor in range(1, 17):
    if size_out == factor * size_in:
      return factor
  return None


def _upsample(x: jax.Array, out_hw, mode: str, original: Callable,
              *args, **kwargs) -> jax.Array:
  """Up-sampling of NHWC x with a symbolic size to out_hw by integer
  factors, else `original(*args, **kwargs)`."""
  factors = [_integer_factor(i, o) for i, o in zip(x.shape[1:3], out_hw)]
  if None in factors or all(isinstance(d, int) for d in x.shape[1:3]):
    return original(*args, **kwargs)
  y = x.astype(jnp.float32)
  for axis, factor in zip((1, 2), factors):
    if factor > 1:
      y = _upsample_axis(y, factor, axis, mode)
  return y


@contextlib.contextmanager
def _symbolic_size_resize():
  """Swaps in _upsample for the two resize functions generators call (see
  the module doc), while a trace runs."""
  saved = resampling.resize, jax.image.resize

  def sr_jax_resize(x, out_hw, mode):
    return _upsample(x, out_hw, mode, saved[0], x, out_hw, mode)

  def jax_resize(image, shape, method, *args, **kwargs):
    call = lambda: saved[1](image, shape, method, *args, **kwargs)
    if (str(method) not in ('bilinear', 'linear') or len(shape) != 4
        or shape[0] != image.shape[0] or shape[3] != image.shape[3]):
      return call()
    return _upsample(image, shape[1:3], 'bilinear', call).astype(image.dtype)

  resampling.resize, jax.image.resize = sr_jax_resize, jax_resize
  try:
    yield
  finally:
    resampling.resize, jax.image.resize = saved


def nchw_function(module: nn.Module, variables: Mapping[str, Any],
                  scale: int, multiple: int) -> Callable[[jax.Array],
                                                         jax.Array]:
  """The exported computation: [N, 3, H, W] float32 in [0, 1] -> [N, 3,
  scale H, scale W] float32, any H and W (mod-padded inside)."""

  def fn(x):
    _, _, h, w = x.shape
    x = jnp.transpose(x, (0, 2, 3, 1))
    if multiple > 1:
      x = _reflect_pad_to_multiple(x, multiple, 1)
      x = _reflect_pad_to_multiple(x, multiple, 2)
    with _symbolic_size_resize():
      y = module.apply(variables, x, train=False)
    if multiple > 1:  # lax slices: jnp's symbolic-bound slices gather.
      y = jax.lax.slice_in_dim(y, 0, h * scale, axis=1)
      y = jax.lax.slice_in_dim(y, 0, w * scale, axis=2)
    return jnp.transpose(y, (0, 3, 1, 2)).astype(jnp.float32)

  return fn


def _one_line(error: BaseException) -> str:
  return ' '.join(str(error).split())


def _version(package: str) -> str:
  try:
    return importlib.metadata.version(package)
  except importlib.metadata.PackageNotFoundError:
    return '?'


def arch_name(module: nn.Module) -> str:
  """The registry name of a generator module (its class name if none)."""
  return models.generator_name(module) or type(module).__name__


def export_generator(module: nn.Module, variables: Mapping[str, Any],
                     scale: int, arch: str | None = None,
                     opset: int = DEFAULT_OPSET):
  """A generator as an onnx.ModelProto (see the module doc).

  Args:
    module, variables, scale: as load_generator_for_inference returns them
      (module in float32: the file computes in float32).
    arch: registry name, recorded in the metadata.
    opset: ONNX opset.

  Returns:
    onnx.ModelProto with input 'input' [batch, 3, height, width] and output
    'output', and metadata_props recording scale, input multiple, arch and
    model kwargs (META_*).

  Raises:
    ImportError: jax2onnx missing.
    ValueError: the generator cannot be traced for a symbolic size.
  """
  jax2onnx = require('jax2onnx')
  arch = arch or arch_name(module)
  module = module.clone(dtype=jnp.float32)
  variables = jax.tree.map(np.asarray, variables)
  multiple = generator_loading.input_multiple(module)
  channels = getattr(module, 'num_in_ch', 3)
  fn = nchw_function(module, variables, scale, multiple)
  # onnx_ir logs a warning per shape value it leaves untyped: harmless.
  serde_log = logging.getLogger('onnx_ir.serde')
  level = serde_log.level
  serde_log.setLevel(logging.ERROR)
  try:
    proto = jax2onnx.to_onnx(
        fn, [('batch', channels, 'height', 'width')],
        model_name=arch, opset=opset,
        input_names=['input'], output_names=['output'])
  except (ValueError, TypeError, NotImplementedError,
          jax.errors.InconclusiveDimensionOperation) as e:
    # What the trace met: its first line names the operation.
    raise ValueError(
        f'{type(module).__name__} cannot be exported to ONNX with a dynamic '
        f'height and width (jax2onnx {_version("jax2onnx")}): '
        f'{str(e).splitlines()[0]}') from e
  finally:
    serde_log.setLevel(level)
  kwargs = {f: getattr(module, f) for f in models.module_fields(module)
            if f not in ('dtype', 'param_dtype')}
  for key, value in ((META_SCALE, scale), (META_MULTIPLE, multiple),
                     (META_ARCH, arch),
                     (META_KWARGS, json.dumps(kwargs, default=str)),
                     (META_LAYOUT, LAYOUT)):
    entry = proto.metadata_props.add()
    entry.key, entry.value = key, str(value)
  return proto


# ------------------------------------------------------------- onnxruntime --


class OnnxGenerator:
  """An onnxruntime session of an NCHW [0, 1] super-resolution model, called
  as tiling's RunBatch: [K, h, w, C] float32 (NHWC) -> [K, s h, s w, C]
  float32 numpy (computed synchronously).

  scale and input_multiple come from the file's metadata when sr_jax wrote
  it; for other files the scale is measured on a 16 x 16 input and the
  multiple is 1.
  """

  def __init__(self, model: str | os.PathLike | bytes, name: str = '',
               providers: list[str] | None = None):
    ort = require('onnxruntime')
    if isinstance(model, bytes):
      source, where = model, 'the exported model'
    else:
      source = where = os.path.expanduser(os.fspath(model))
      if not os.path.isfile(source):
        raise FileNotFoundError(f'ONNX file {source!r} does not exist.')
    if providers is None:
      available = ort.get_available_providers()
      providers = [p for p in PROVIDERS if p in available] or available
    options = ort.SessionOptions()
    options.log_severity_level = 3  # Errors only: no unused-node warnings.
    try:
      self.session = ort.InferenceSession(
          source, options, providers=providers)
    except Exception as e:  # onnxruntime's errors are not ValueErrors.
      raise ValueError(
          f'onnxruntime cannot load {where}: {_one_line(e)}') from None
    inputs = self.session.get_inputs()
    if len(inputs) != 1 or len(inputs[0].shape) != 4:
      raise ValueError(
          f'{where}: expected one NCHW image input; got inputs '
          f'{[(i.name, i.shape) for i in inputs]}.')
    self.input_name = inputs[0].name
    self.output_name = self.session.get_outputs()[0].name
    self.provider = self.session.get_providers()[0]
    self.metadata = dict(self.session.get_modelmeta().custom_metadata_map)
    self.name = self.metadata.get(META_ARCH) or name or os.path.basename(
        where)
    self.input_multiple = int(self.metadata.get(META_MULTIPLE, 1))
    if META_SCALE in self.metadata:
      self.scale = int(self.metadata[META_SCALE])
    else:
      try:
        probe = self.run_nchw(np.zeros((1, 3, 16, 16), np.float32))
      except RuntimeError as e:
        raise ValueError(f'{where}: not an image model taking [N, 3, H, W] '
                         f'float32 of any size ({e})') from None
      self.scale = probe.shape[2] // 16

  def run_nchw(self, x: np.ndarray) -> np.ndarray:
    """[N, 3, H, W] -> [N, 3, s H, s W] float32."""
    try:
      return self.session.run([self.output_name], {
          self.input_name: np.ascontiguousarray(x, np.float32)})[0]
    except Exception as e:  # onnxruntime's errors are not RuntimeErrors.
      raise RuntimeError(f'onnxruntime: {_one_line(e)}') from None

  def __call__(self, batch: np.ndarray) -> np.ndarray:
    out = self.run_nchw(np.transpose(batch, (0, 3, 1, 2)))
    return np.transpose(out, (0, 2, 3, 1))


def load_onnx_generator(weights: str | os.PathLike | None = None,
                        checkpoint: str | os.PathLike | None = None,
                        arch: str | None = None,
                        model_kwargs: Mapping[str, Any] | None = None,
                        dtype: Any = 'float32', which: str = 'best',
                        opset: int = DEFAULT_OPSET) -> OnnxGenerator:
  """The onnxruntime backend of `python -m sr_jax.upscale`: an .onnx file
  as it is, or any other source of load_generator_for_inference exported
  in memory first."""
  if jnp.dtype(dtype) != jnp.float32:
    raise ValueError(f'--dtype {jnp.dtype(dtype).name} is for --backend jax; '
                     'the ONNX model computes in float32.')
  if weights is not None and os.fspath(weights).lower().endswith('.onnx'):
    if arch is not None or model_kwargs:
      raise ValueError('--arch / --scale / --model-kwargs do not apply to an '
                       '.onnx file: it is exported with its settings.')
    return OnnxGenerator(weights)
  require('onnxruntime')  # Before a possibly long export.
  module, variables, scale = generator_loading.load_generator_for_inference(
      weights=weights, checkpoint=checkpoint, arch=arch,
      model_kwargs=model_kwargs, which=which)
  proto = export_generator(module, variables, scale, opset=opset)
  return OnnxGenerator(proto.SerializeToString())
