"""ncnn's .param / .bin files, read and checked: `read_param` (the layers
of a text .param) and `read_bin` (each layer's weights), for
sr_jax.weights.ncnn, which maps the graph onto an sr_jax generator.

The format (ncnn's docs/developer-guide/param-and-model-file-structure.md):
the .param is text, magic 7767517, then '<layer count> <blob count>', then
one layer a line: type, name, input count, output count, the input and
output blob names, then `k=v` params (an array as `-233kk=n,v1,...,vn`, key
kk). The .bin holds the weights of the layers that have any, in .param
order: a Convolution's kernel as a 4-byte storage tag (0x01306B47 float16,
0 float32, ...) and the data padded to 4 bytes, then (`5=1`) its bias as
raw float32; a PReLU's slopes as raw float32. The kernel is [out, in, kh,
kw], PyTorch's order.

The reader takes nothing on trust: the header's layer and blob counts,
every line's blob counts and every input blob are checked, and every byte
of the .bin must be used by the layers (a truncated, extended or
mismatched .bin is refused); errors name the file and the line or layer.
"""
import collections
import dataclasses
import os
import pathlib
from typing import Any

import numpy as np

MAGIC = 7767517
# Storage tags of tagged weight data (ncnn's src/modelbin.cpp).
TAG_FLOAT16 = 0x01306B47
TAG_INT8 = 0x000D4B38
TAG_FLOAT32_SCALED = 0x0002C056  # Raw float32 as well.
# Layer types without weights in the .bin, as these graphs use them.
NO_WEIGHTS = ('Input', 'Split', 'Concat', 'Eltwise', 'BinaryOp', 'Interp',
              'PixelShuffle')
WITH_WEIGHTS = ('Convolution', 'PReLU')


@dataclasses.dataclass
class Layer:
  """One line of a .param, and its weights once the .bin is read."""
  type: str
  name: str
  inputs: tuple[str, ...]
  outputs: tuple[str, ...]
  params: dict[int, Any]
  weights: dict[str, np.ndarray] = dataclasses.field(default_factory=dict)

  def param(self, key: int, default: Any = None) -> Any:
    return self.params.get(key, default)

  def __str__(self) -> str:
    return f'{self.type} {self.name}'


# ------------------------------------------------------------- .param --

def _number(text: str) -> int | float:
  return float(text) if any(c in text for c in '.eE') or text in (
      'inf', '-inf', 'nan') else int(text)


def _value(key: int, text: str, where: str) -> tuple[int, Any]:
  try:
    if key <= -23300:  # An array: count, then the values.
      count, *values = text.split(',')
      values = [_number(v) for v in values]
      if int(count) != len(values):
        raise ValueError(f'array of {count} values holds {len(values)}')
      return -key - 23300, values
    if ',' in text:  # Modern ncnn's plain array form.
      return key, [_number(v) for v in text.split(',')]
    return key, _number(text)
  except ValueError as e:
    raise ValueError(f'{where}: bad param {key}={text!r} ({e}).') from None


def read_param(path: str | os.PathLike) -> list[Layer]:
  """The layers of a text .param, in file order.

  Checks the magic number, the header's layer and blob counts, the blob
  counts of every line, and that every input blob is made by an earlier
  layer. Raises ValueError naming the file and line.
  """
  path = pathlib.Path(path).expanduser()
  if not path.is_file():
    raise FileNotFoundError(f'{path} does not exist.')
  try:
    lines = path.read_text(encoding='utf-8').splitlines()
  except UnicodeDecodeError:
    raise ValueError(f'{path} is not a text ncnn .param (binary .param.bin '
                     'files are not read).') from None
  lines = [(i + 1, line.split()) for i, line in enumerate(lines)
           if line.strip()]
  if not lines or lines[0][1] != [str(MAGIC)]:
    first = ' '.join(lines[0][1]) if lines else 'nothing'
    raise ValueError(f'{path} is not an ncnn .param: it starts with '
                     f'{first[:40]!r}, not the magic number {MAGIC}.')
  header = lines[1][1] if len(lines) > 1 else []
  if len(header) != 2 or not all(h.isdigit() for h in header):
    raise ValueError(f'{path}: line 2 should be "<layer count> <blob '
                     f'count>", found {" ".join(header)!r}.')
  layer_count, blob_count = map(int, header)
  body = lines[2:]
  if len(body) != layer_count:
    raise ValueError(f'{path}: the header says {layer_count} layers, the file '
                     f'has {len(body)} layer lines (truncated or edited).')
  layers, made = [], set()
  for number, fields in body:
    where = f'{path}:{number}'
    try:
      n_in, n_out = int(fields[2]), int(fields[3])
    except (IndexError, ValueError):
      raise ValueError(f'{where}: not a layer line ("type name inputs '
                       f'outputs blobs... params"): {fields[:4]}.') from None
    blobs = fields[4:4 + n_in + n_out]
    if len(blobs) != n_in + n_out or any('=' in b for b in blobs):
      raise ValueError(f'{where}: {fields[1]} should list {n_in} input and '
                       f'{n_out} output blob names.')
    params = {}
    for item in fields[4 + n_in + n_out:]:
      key, sep, text = item.partition('=')
      if not sep or not key.lstrip('-').isdigit():
        raise ValueError(f'{where}: bad param {item!r} (expected k=v).')
      key, value = _value(int(key), text, where)
      params[key] = value
    layer = Layer(fields[0], fields[1], tuple(blobs[:n_in]),
                  tuple(blobs[n_in:]), params)
    missing = [b for b in layer.inputs if b not in made]
    if missing:
      raise ValueError(f'{where}: {layer} reads blob(s) {missing} that no '
                       'earlier layer makes.')
    made.update(layer.outputs)
    layers.append(layer)
  if len(made) != blob_count:
    raise ValueError(f'{path}: the header says {blob_count} blobs, the '
                     f'layers make {len(made)}.')
  return layers


# --------------------------------------------------------------- .bin --

class _Bin:
  """The .bin's bytes, consumed in order; errors name the file and layer."""

  def __init__(self, path: pathlib.Path):
    self.path, self.data, self.offset = path, path.read_bytes(), 0
    self.storage = collections.Counter()

  def take(self, size: int, layer: Layer, what: str) -> bytes:
    end = self.offset + size
    if end > len(self.data):
      raise ValueError(
          f'{self.path} ends at byte {len(self.data):,}, but {layer} needs '
          f'its {what} at bytes {self.offset:,}-{end:,}: truncated, or not '
          'the .bin of this .param.')
    chunk, self.offset = self.data[self.offset:end], end
    return chunk

  def raw(self, count: int, layer: Layer, what: str) -> np.ndarray:
    """count float32s without a storage tag (biases, slopes)."""
    return np.frombuffer(self.take(4 * count, layer, what), '<f4').copy()

  def tagged(self, count: int, layer: Layer, what: str) -> np.ndarray:
    """count numbers after a storage tag (ModelBin::load type 0), float32."""
    tag = int.from_bytes(self.take(4, layer, f'{what} storage tag'), 'little')
    if tag == TAG_FLOAT16:
      self.storage['float16'] += 1
      size = -(-2 * count // 4) * 4  # Padded to 4 bytes.
      data = np.frombuffer(self.take(size, layer, what), '<f2')[:count]
      return data.astype(np.float32)
    if tag == TAG_INT8:
      raise ValueError(f'{self.path}: {layer} holds int8-quantised weights, '
                       'which sr_jax does not read (only float32 / float16 '
                       'files).')
    if tag in (0, TAG_FLOAT32_SCALED):
      self.storage['float32'] += 1
      return self.raw(count, layer, what)
    # Any other tag: a 256-entry float32 table and one byte per value.
    self.storage['table'] += 1
    table = np.frombuffer(self.take(1024, layer, f'{what} table'), '<f4')
    index = np.frombuffer(self.take(-(-count // 4) * 4, layer, what),
                          np.uint8)[:count]
    return table[index].astype(np.float32)

  def finish(self, param_path: pathlib.Path) -> None:
    left = len(self.data) - self.offset
    if left:
      raise ValueError(
          f'{self.path} has {left:,} bytes left after the last layer\'s '
          f'weights ({self.offset:,} of {len(self.data):,} used): not the '
          f'.bin of {param_path.name}, or extended.')


def _conv_weights(layer: Layer, data: _Bin) -> None:
  if layer.param(19, 0):
    raise ValueError(f'{layer} has dynamic weights (19=1), which sr_jax '
                     'does not read.')
  if layer.param(8, 0):
    raise ValueError(f'{layer} is int8-quantised (8={layer.param(8)}), '
                     'which sr_jax does not read.')
  size, out = layer.param(6, 0), layer.param(0, 0)
  kh, kw = layer.param(11, layer.param(1, 0)), layer.param(1, 0)
  if not (out and kh and kw) or size % (out * kh * kw):
    raise ValueError(f'{layer}: weight_data_size 6={size} is not num_output '
                     f'0={out} x {kh}x{kw} x input channels.')
  kernel = data.tagged(size, layer, 'kernel')
  layer.weights['weight'] = kernel.reshape(out, size // (out * kh * kw), kh,
                                           kw)
  if layer.param(5, 0):
    layer.weights['bias'] = data.raw(out, layer, 'bias')


def _prelu_weights(layer: Layer, data: _Bin) -> None:
  layer.weights['weight'] = data.raw(layer.param(0, 0), layer, 'slopes')


_READERS = {'Convolution': _conv_weights, 'PReLU': _prelu_weights}


def read_bin(layers: list[Layer], bin_path: str | os.PathLike,
             param_path: str | os.PathLike = '.param'
             ) -> collections.Counter:
  """Fills each layer's `weights` from the .bin; returns the storage counts.

  The .bin must be used up exactly. Raises ValueError for a layer type
  whose weights sr_jax cannot size (it would misread the rest).
  """
  bin_path = pathlib.Path(bin_path).expanduser()
  if not bin_path.is_file():
    raise FileNotFoundError(
        f'{bin_path} does not exist: the .bin must lie beside the .param, '
        'with the same name.')
  data = _Bin(bin_path)
  for layer in layers:
    if layer.type in _READERS:
      _READERS[layer.type](layer, data)
    elif layer.type not in NO_WEIGHTS:
      raise ValueError(
          f'{param_path}: {layer} is a layer type sr_jax\'s ncnn reader does '
          f'not know ({", ".join(NO_WEIGHTS + WITH_WEIGHTS)}), so it cannot '
          f'tell which bytes of {bin_path.name} are its weights.')
  data.finish(pathlib.Path(param_path))
  return data.storage
