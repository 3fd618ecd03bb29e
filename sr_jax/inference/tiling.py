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
      image = np.pad(image, widths,
                     mode='reflect' if pad < size else 'symmetric')
  return image


def _batches(tiles: Sequence[Tile], size: int) -> Iterator[list[Tile]]:
  for i in range(0, len(tiles), size):
    yield list(tiles[i:i + size])


def upscale_tiled(run_batch: RunBatch, image: np.ndarray, scale: int, *,
                  tile: int = 0, tile_pad: int = 10, batch_tiles: int = 1,
                  multiple: int = 1, pre_pad: int = 0,
                  progress: Progress | None = None) -> np.ndarray:
  """Runs a network over `image` tile by tile; returns the whole output.

  Args:
    run_batch: the network on a batch of windows, [K, h, w, C] float32 ->
      [K, h * scale, w * scale, C'] (numpy, or a jax array still computing).
      Always called with the same K and (h, w) for one image, so a jitted
      function compiles once (per window shape).
    image: [H, W, C] float32, values as the network expects (e.g. [0, 1]).
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

  Returns:
    [H * scale, W * scale, C'] float32 numpy array.
  """
  if image.ndim != 3:
    raise ValueError(f'upscale_tiled expects [H, W, C]; got {image.shape}.')
  if batch_tiles < 1 or multiple < 1 or scale < 1:
    raise ValueError(f'batch_tiles ({batch_tiles}), multiple ({multiple}) and '
                     f'scale ({scale}) must be >= 1.')
  if pre_pad < 0:
    raise ValueError(f'pre_pad must be >= 0; got {pre_pad}.')
  h, w = image.shape[:2]
  image = np.asarray(image, np.float32)
  if pre_pad:
    image = np.pad(image, ((pre_pad, pre_pad), (pre_pad, pre_pad), (0, 0)),
                   mode='edge')
  padded = pad_to_multiple(image, multiple)
  ph, pw = padded.shape[:2]
  tile = round_up(tile, multiple) if tile > 0 else 0
  tiles, (win_h, win_w) = tile_grid(ph, pw, tile,
                                    round_up(tile_pad, multiple))
  batch_size = min(batch_tiles, len(tiles))
  output = None  # Allocated once the output's channel count is known.

  def place(result, batch: list[Tile]) -> None:
    nonlocal output
    result = np.asarray(result, np.float32)  # Waits for the device.
    expected = (batch_size, win_h * scale, win_w * scale)
    if result.shape[:3] != expected:
      raise ValueError(
          f'The network returned {result.shape[:3]} for a batch of '
          f'{batch_size} windows of {win_h}x{win_w}; expected {expected} '
          f'(is scale={scale} right for these weights?).')
    if output is None:
      output = np.empty((ph * scale, pw * scale, result.shape[3]), np.float32)
    for out, t in zip(result, batch):
      oy, ox = (t.y0 - t.wy) * scale, (t.x0 - t.wx) * scale
      core = out[oy:oy + (t.y1 - t.y0) * scale, ox:ox + (t.x1 - t.x0) * scale]
      output[t.y0 * scale:t.y1 * scale, t.x0 * scale:t.x1 * scale] = core

  pending, done = None, 0
  for batch in _batches(tiles, batch_size):
    windows = np.stack(
        [padded[t.wy:t.wy + win_h, t.wx:t.wx + win_w] for t in batch] +
        [padded[batch[-1].wy:batch[-1].wy + win_h,
                batch[-1].wx:batch[-1].wx + win_w]] *
        (batch_size - len(batch)))
    # Dispatch this batch before reading the previous one back, so the copy
    # to the host overlaps the next batch's compute.
    result = run_batch(windows)
    if pending is not None:
      place(*pending)
      done += len(pending[1])
      if progress:
        progress(done, len(tiles))
    pending = (result, batch)
  place(*pending)
  if progress:
    progress(len(tiles), len(tiles))
  top = pre_pad * scale
  return output[top:top + h * scale, top:top + w * scale]


# The dihedral group D4 on [H, W, C] arrays: (transform, inverse) pairs.
def _transform(x: np.ndarray, k: int, flip: bool) -> np.ndarray:
  return np.rot90(x[:, ::-1] if flip else x, k, axes=(0, 1))


def _inverse(y: np.ndarray, k: int, flip: bool) -> np.ndarray:
  y = np.rot90(y, -k, axes=(0, 1))
  return y[:, ::-1] if flip else y


DIHEDRAL = tuple((k, flip) for flip in (False, True) for k in range(4))


def self_ensemble(upscale: Callable[[np.ndarray], np.ndarray],
                  image: np.ndarray) -> np.ndarray:
  """x8 geometric self-ensemble (EDSR+ / SRResCGAN+; Lim et al. 2017, 3.3).

  Runs `upscale` on the 8 rotations / flips of `image` ([H, W, C]), undoes
  each transform on its output and averages, in float32. Costs 8 passes;
  typically +0.1-0.3 dB PSNR, and smooths away orientation-dependent
  artefacts.
  """
  total = None
  for k, flip in DIHEDRAL:
    out = _inverse(upscale(np.ascontiguousarray(_transform(image, k, flip))),
                   k, flip)
    total = out.astype(np.float32) if total is None else total + out
  return total / np.float32(len(DIHEDRAL))


def output_size(height: int, width: int, outscale: float) -> tuple[int, int]:
  """round(H * outscale) x round(W * outscale) (halves up), at least 1 x 1."""
  if not (outscale > 0 and math.isfinite(outscale)):
    raise ValueError(f'--outscale must be a positive number; got {outscale}.')
  # floor(x + 0.5), not Python's round(): 2.5 -> 3 like every image tool.
  return (max(1, math.floor(height * outscale + 0.5)),
          max(1, math.floor(width * outscale + 0.5)))
