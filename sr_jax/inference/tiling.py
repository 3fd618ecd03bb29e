"""Tiled inference of one image of any size, and x8 self-ensemble.

The image stays in host (numpy) memory. It is cut into `tile` x `tile` cores;
each core is run inside a window that adds up to `tile_pad` pixels of real
image context on every side, then the context is cropped off the output and
the core is placed (Real-ESRGAN's crop approach; overlapping tiles are not
blended). Windows are fed `batch_tiles` at a time, so the accelerator only
ever holds two batches of windows (one computing, one being copied back):
peak device memory is bounded by the tile size, not the image size.

Exactness. Every window has the same shape, min(tile + 2 pad, H) x
min(tile + 2 pad, W): a window that would cross the image border is slid
back inside the image instead of being padded, so it gains context on the
other side and its edges are either the image's own border (where the
network zero-pads exactly as on the whole image) or at least `tile_pad`
pixels from its core. A network whose receptive field radius is at most
`tile_pad` LR pixels therefore gives the same output tiled as untiled, up to
float rounding. Deeper networks (RRDBNet's radius is hundreds of pixels) see
a truncated context near tile edges; tile_pad 10-32 hides the seams in
practice, as in Real-ESRGAN.

Pixel-unshuffle networks (RRDBNet x2 / x1) need H and W divisible by
`multiple` (2 / 4): the image is reflect-padded at the bottom and right to a
multiple first and the output cropped back (Real-ESRGAN's `mod_pad`), and
tile and tile_pad are rounded up to multiples so every window stays aligned.

Host memory. Neither padding copies the image: windows are gathered through
index maps of the padded rows and columns, and integer images (uint8 /
uint16) are converted to [0, 1] floats one window at a time. With a `sink`,
each output core is handed over as it is computed (a float32 block of at
most tile x scale pixels a side), so the caller can quantise it into an
output at its bit depth; no full-size float copy of the output exists.
Without one, the whole float32 output is returned (12 bytes per RGB pixel).
"""
import dataclasses
import math
from typing import Callable, Iterator, Sequence

import numpy as np

# [K, h, w, C] float32 -> [K, h * scale, w * scale, C'] (numpy or jax array;
# a jax array may still be computing: it is read back one batch later).
RunBatch = Callable[[np.ndarray], object]
# progress(done_tiles, total_tiles), called after each batch is placed.
Progress = Callable[[int, int], None]
# sink(y, x, block): block, float32 [h, w, C'], is the output at rows
# [y, y + h) and columns [x, x + w). Blocks are views of a batch result: a
# sink copies what it keeps.
Sink = Callable[[int, int, np.ndarray], None]
# A streamed upscaler: upscale(image [H, W, C], sink) hands the whole output
# to sink, each output pixel in exactly one block (upscale_tiled with its
# settings bound, self_ensemble of one, whole_image of a plain function).
Streamed = Callable[[np.ndarray, Sink], None]


@dataclasses.dataclass(frozen=True)
class Tile:
  """One core and its window, in LR pixels of the (mod-padded) image.

  The core [y0, y1) x [x0, x1) is what this tile contributes to the output;
  the window [wy, wy + window_h) x [wx, wx + window_w) is what the network
  sees (window size is the grid's, the same for every tile).
  """
  y0: int
  y1: int
  x0: int
  x1: int
  wy: int
  wx: int


def round_up(value: int, multiple: int) -> int:
  return -(-value // multiple) * multiple


def _axis_tiles(size: int, tile: int, pad: int) -> list[tuple[int, int, int]]:
  """(core start, core end, window start) along one axis of length `size`."""
  window = min(tile + 2 * pad, size)
  out = []
  for start in range(0, size, tile):
    # Slid back inside the image rather than padded: see the module doc.
    window_start = min(max(start - pad, 0), size - window)
    out.append((start, min(start + tile, size), window_start))
  return out


def tile_grid(height: int, width: int, tile: int,
              tile_pad: int) -> tuple[list[Tile], tuple[int, int]]:
  """Cuts a height x width image into tiles, row by row.

  tile <= 0 means one tile covering the whole image. Returns (tiles,
  (window_h, window_w)); window size is min(tile + 2 tile_pad, size) per axis.
  """
  if height < 1 or width < 1:
    raise ValueError(f'Cannot tile an empty image ({height}x{width}).')
  if tile_pad < 0:
    raise ValueError(f'tile_pad must be >= 0; got {tile_pad}.')
  tile_h = height if tile <= 0 else tile
  tile_w = width if tile <= 0 else tile
  rows = _axis_tiles(height, tile_h, tile_pad)
  cols = _axis_tiles(width, tile_w, tile_pad)
  tiles = [Tile(y0, y1, x0, x1, wy, wx)
           for y0, y1, wy in rows for x0, x1, wx in cols]
  return tiles, (min(tile_h + 2 * tile_pad, height),
                 min(tile_w + 2 * tile_pad, width))


def _mod_pad_mode(size: int, pad: int) -> str:
  return 'reflect' if pad < size else 'symmetric'


def pad_to_multiple(image: np.ndarray, multiple: int) -> np.ndarray:
  """Reflect-pads [H, W, C] at the bottom / right to multiples of `multiple`.

  Reflection (not zeros) keeps the padded border looking like image content,
  so the cropped-off padding does not darken the last real rows. Images
  thinner than the padding fall back to mirroring with the edge repeated.
  """
  for axis in (0, 1):
    size = image.shape[axis]
    pad = round_up(size, multiple) - size
    if pad:
      widths = [(0, 0)] * image.ndim
      widths[axis] = (0, pad)
      image = np.pad(image, widths, mode=_mod_pad_mode(size, pad))
  return image


def padded_index(size: int, pre_pad: int, multiple: int) -> np.ndarray:
  """Where each row (or column) of the padded image comes from.

  The padded image is the image edge-replicated by `pre_pad` on both sides,
  then reflect-padded at the end to a multiple of `multiple` (as
  pad_to_multiple). Padding only copies pixels, so padding the indices
  0..size-1 the same way gives, for every padded position, the index of the
  image pixel it holds: image[index] is the padded image, without making it.
  """
  index = np.arange(size)
  if pre_pad:
    index = np.pad(index, pre_pad, mode='edge')
  pad = round_up(len(index), multiple) - len(index)
  if pad:
    index = np.pad(index, (0, pad), mode=_mod_pad_mode(len(index), pad))
  return index


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
  """A slice for a run of consecutive indices (a cheap view), else index."""
  if index[-1] - index[0] == len(index) - 1 and (
      len(index) < 2 or bool(np.all(np.diff(index) == 1))):
    return slice(int(index[0]), int(index[-1]) + 1)
  return index


def _gather(image: np.ndarray, rows: np.ndarray,
            cols: np.ndarray) -> np.ndarray:
  """image[rows][:, cols] without copying more than the window."""
  r, c = _as_slice(rows), _as_slice(cols)
  if isinstance(r, np.ndarray) and isinstance(c, np.ndarray):
    return image[np.ix_(r, c)]
  return image[r, c]


def as_float(values: np.ndarray) -> np.ndarray:
  """uint8 as v / 255, uint16 as v / 65535, floats as they are; float32.

  The same float32 division the image readers always did, so a window
  converted here equals the window of an image converted when read.
  """
  values = np.asarray(values)
  if values.dtype == np.uint8:
    return values.astype(np.float32) / 255.0
  if values.dtype == np.uint16:
    return values.astype(np.float32) / 65535.0
  if not np.issubdtype(values.dtype, np.floating):
    raise ValueError(f'Expected a float, uint8 or uint16 image; got '
                     f'{values.dtype}.')
  return np.asarray(values, np.float32)


def _batches(tiles: Sequence[Tile], size: int) -> Iterator[list[Tile]]:
  for i in range(0, len(tiles), size):
    yield list(tiles[i:i + size])


def _check_tiling(image: np.ndarray, scale: int, batch_tiles: int,
                  multiple: int, pre_pad: int) -> None:
  """ValueError for arguments upscale_tiled cannot use."""
  if image.ndim != 3:
    raise ValueError(f'upscale_tiled expects [H, W, C]; got {image.shape}.')
  if batch_tiles < 1 or multiple < 1 or scale < 1:
    raise ValueError(f'batch_tiles ({batch_tiles}), multiple ({multiple}) and '
                     f'scale ({scale}) must be >= 1.')
  if pre_pad < 0:
    raise ValueError(f'pre_pad must be >= 0; got {pre_pad}.')


def _run_batches(run_batch: RunBatch, tiles: Sequence[Tile], batch_size: int,
                 window: Callable[[Tile], np.ndarray],
                 place: Callable[[object, list[Tile]], None],
                 progress: Progress | None) -> None:
  """Runs the network on every batch of `batch_size` windows (the last
  filled up with copies of its last window) and hands each result and its
  tiles to `place`, one batch behind."""
  pending, done = None, 0
  for batch in _batches(tiles, batch_size):
    windows = [window(t) for t in batch]
    windows += windows[-1:] * (batch_size - len(batch))
    # Dispatch this batch before reading the previous one back, so the copy
    # to the host overlaps the next batch's compute.
    result = run_batch(np.stack(windows))
    del windows
    if pending is not None:
      place(*pending)
      done += len(pending[1])
      if progress:
        progress(done, len(tiles))
    pending = (result, batch)
  place(*pending)
  if progress:
    progress(len(tiles), len(tiles))


def upscale_tiled(run_batch: RunBatch, image: np.ndarray, scale: int, *,
                  tile: int = 0, tile_pad: int = 10, batch_tiles: int = 1,
                  multiple: int = 1, pre_pad: int = 0,
                  progress: Progress | None = None,
                  sink: Sink | None = None) -> np.ndarray | None:
  """Runs a network over `image` tile by tile.

  Args:
    run_batch: the network on a batch of windows, [K, h, w, C] float32 ->
      [K, h * scale, w * scale, C'] (numpy, or a jax array still computing).
      Always called with the same K and (h, w) for one image, so a jitted
      function compiles once (per window shape).
    image: [H, W, C], float (values as the network expects, e.g. [0, 1]) or
      uint8 / uint16 (fed as v / 255, v / 65535: see as_float). Any strided
      view works (a rotation, a broadcast grey): only windows are copied.
    scale: the network's integer upscaling factor.
    tile: core size in LR pixels; <= 0 runs the whole image at once.
    tile_pad: context added on each side of a core (LR pixels).
    batch_tiles: windows per network call (the last batch is filled up with
      copies of its last window, which are computed and dropped).
    multiple: H and W the network needs to divide (pixel-unshuffle).
    pre_pad: LR pixels of edge replication around the whole image before
      the network, cropped off the output (inference.pre_pad): the
      network's zero padding then leaves no line along the image edges.
    progress: called as progress(done, total) after each batch.
    sink: receives the output core by core (see Sink), in output pixels of
      the image (padding already cropped off); each output pixel once.

  Returns:
    With a sink, None. Without, the [H * scale, W * scale, C'] float32
    output (one full-size float array; pass a sink to avoid it).
  """
  _check_tiling(image, scale, batch_tiles, multiple, pre_pad)
  h, w = image.shape[:2]
  rows = padded_index(h, pre_pad, multiple)
  cols = padded_index(w, pre_pad, multiple)
  ph, pw = len(rows), len(cols)
  tile = round_up(tile, multiple) if tile > 0 else 0
  tiles, (win_h, win_w) = tile_grid(ph, pw, tile,
                                    round_up(tile_pad, multiple))
  batch_size = min(batch_tiles, len(tiles))
  # The image's output inside the padded output: [top, top + h s) x
  # [top, top + w s); pre-pad and mod-pad output outside it is dropped.
  top = pre_pad * scale
  output = None

  def keep(y: int, x: int, block: np.ndarray) -> None:
    nonlocal output
    if output is None:  # Allocated once the channel count is known.
      output = np.empty((h * scale, w * scale, block.shape[-1]), np.float32)
    output[y:y + block.shape[0], x:x + block.shape[1]] = block

  sink = sink or keep

  def window(t: Tile) -> np.ndarray:
    return as_float(_gather(image, rows[t.wy:t.wy + win_h],
                            cols[t.wx:t.wx + win_w]))

  def place(result, batch: list[Tile]) -> None:
    result = np.asarray(result, np.float32)  # Waits for the device.
    expected = (batch_size, win_h * scale, win_w * scale)
    if result.shape[:3] != expected:
      raise ValueError(
          f'The network returned {result.shape[:3]} for a batch of '
          f'{batch_size} windows of {win_h}x{win_w}; expected {expected} '
          f'(is scale={scale} right for these weights?).')
    for out, t in zip(result, batch):
      # The core, in padded output pixels, clipped to the image's output.
      y0, y1 = max(t.y0 * scale, top), min(t.y1 * scale, top + h * scale)
      x0, x1 = max(t.x0 * scale, top), min(t.x1 * scale, top + w * scale)
      if y0 < y1 and x0 < x1:
        oy, ox = y0 - t.wy * scale, x0 - t.wx * scale
        sink(y0 - top, x0 - top,
             out[oy:oy + y1 - y0, ox:ox + x1 - x0])

  _run_batches(run_batch, tiles, batch_size, window, place, progress)
  return output


def whole_image(fn: Callable[[np.ndarray], np.ndarray]) -> Streamed:
  """A plain function, [H, W, C] float32 -> [sH, sW, C'], as a Streamed.

  The output goes to the sink as one block; for tests and small images
  (it is a full-size float array).
  """

  def streamed(image: np.ndarray, sink: Sink) -> None:
    sink(0, 0, np.asarray(fn(as_float(image)), np.float32))

  return streamed


# The dihedral group D4 on [H, W, C] arrays, as views. A pass's output is
# put back by writing it into the same transform of the output (a view).
def _transform(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
  return np.rot90(x[:, ::-1] if flip else x, k, axes=(0, 1))


DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))
# Output rows handed to the sink at a time once the ensemble is averaged:
# the sink's temporaries (clip, round) stay this small.
_SINK_ROWS = 64


def self_ensemble(upscale: Streamed, image: np.ndarray, scale: int,
                  sink: Sink | None = None) -> np.ndarray | None:
  """x8 geometric self-ensemble (EDSR+ / SRResCGAN+; Lim et al. 2017, 3.3).

  Runs `upscale` on the 8 rotations / flips of `image` ([H, W, C]; views,
  not copies), undoes each transform on its output and averages, in
  float32. Costs 8 passes; typically +0.1-0.3 dB PSNR, and smooths away
  orientation-dependent artefacts.

  Memory: one float32 sum of the output, [H scale, W scale, C'] (12 bytes
  per RGB output pixel), that every pass adds its blocks into where they
  belong (through the transformed view of the sum); the passes are summed
  in order, so the mean is the same float32 value as summing whole outputs.

  Returns:
    With a sink: None; the mean goes to the sink in bands of rows. Without:
    the mean, [H scale, W scale, C'] float32.
  """
  h, w = image.shape[:2]
  total = None

  def pass_sink(k: int, flip: bool, first: bool) -> Sink:
    view = None  # The sum as this pass sees it: a rotated / flipped view.

    def add(y: int, x: int, block: np.ndarray) -> None:
      nonlocal total, view
      if total is None:
        total = np.empty((h * scale, w * scale, block.shape[-1]), np.float32)
      if view is None:
        view = _transform(total, k, flip)
      region = view[y:y + block.shape[0], x:x + block.shape[1]]
      if first:
        region[...] = block
      else:
        region += block

    return add

  for i, (k, flip) in enumerate(DIHEDRAL):
    upscale(_transform(image, k, flip), pass_sink(k, flip, i == 0))
  total /= np.float32(len(DIHEDRAL))
  if sink is None:
    return total
  for y in range(0, total.shape[0], _SINK_ROWS):
    sink(y, 0, total[y:y + _SINK_ROWS])
  return None


def output_size(height: int, width: int, outscale: float) -> tuple[int, int]:
  """round(H * outscale) x round(W * outscale) (halves up), at least 1 x 1."""
  if not (outscale > 0 and math.isfinite(outscale)):
    raise ValueError(f'--outscale must be a positive number; got {outscale}.')
  # floor(x + 0.5), not Python's round(): 2.5 -> 3 like every image tool.
  return (max(1, math.floor(height * outscale + 0.5)),
          max(1, math.floor(width * outscale + 0.5)))
