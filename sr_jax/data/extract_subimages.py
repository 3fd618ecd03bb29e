r"""Cuts large training images into overlapping sub-images, once, offline.

BasicSR's practice for DIV2K (scripts/data_preparation/extract_subimages.py):
decoding a 2K PNG for every 128 px crop makes the input pipeline, not the
accelerator, the bottleneck; 480 px tiles with a 240 px step decode ~12x
faster per crop and still leave room for random crops. Usage:

  python -m sr_jax.data.extract_subimages \
      --input DIV2K_train_HR --output DIV2K_train_HR_sub
  # Paired: LR tiles at the matching positions, named like their HR tile.
  python -m sr_jax.data.extract_subimages \
      --input DIV2K_train_HR --output DIV2K_train_HR_sub \
      --lr-input DIV2K_train_LR_bicubic/X4 --lr-filename-tmpl '{}x4' \
      --lr-output DIV2K_train_LR_bicubic_X4_sub --scale 4

Tiles start every `step` pixels on both axes; when the leftover beyond the
last one is more than `thresh_size`, one more tile flush with the border is
added. Tile k (row-major, from 1) of '0001.png' is '0001_s00k.png' (relative
sub-folders are kept). In paired mode the LR tile k is crop/scale pixels at
the HR position / scale and gets the HR tile's name (BasicSR drops the 'x4'
too), so train on the outputs with lr_filename_tmpl='{}'. Outputs are PNG
(compress_level 1: much faster to write than Pillow's default level
6, for somewhat larger files), written under a
temporary name and renamed, so an interrupted run leaves no half tile, and
re-running skips images whose tiles all exist.
"""
import argparse
from collections.abc import Callable, Sequence
import concurrent.futures
import dataclasses
import os
import sys

import numpy as np
from PIL import Image

from sr_jax.utils import io_utils
from sr_jax.data import folder as folder_lib
from sr_jax.data import image_io
from sr_jax.data import paired

def tile_starts(
    length: int, crop_size: int, step: int, thresh_size: int
) -> list[int]:
  """Start offsets of the tiles along one axis of `length` pixels.

  E.g. length 1000, crop 480, step 240: [0, 240, 480], leftover 40 beyond
  480 + 480, so with thresh_size < 40 also 520 (flush with the end).
  Empty when the axis is shorter than the crop.
  """
  if length < crop_size:
    return []
  starts = list(range(0, length - crop_size + 1, step))
  if length - (starts[-1] + crop_size) > thresh_size:
    starts.append(length - crop_size)
  return starts


def tile_positions(height: int, width: int, crop_size: int, step: int,
                   thresh_size: int) -> list[tuple[int, int]]:
  """(top, left) of every tile, row by row: the order of the _sNNN names."""
  return [(top, left)
          for top in tile_starts(height, crop_size, step, thresh_size)
          for left in tile_starts(width, crop_size, step, thresh_size)]


def tile_name(name: str, index: int) -> str:
  """'sub/0001', 1 -> 'sub/0001_s001.png' (index from 1)."""
  return f'{name}_s{index:03d}.png'


def _save_png(tile: np.ndarray, path: str) -> None:
  with io_utils.atomic_write(path) as f:
    Image.fromarray(tile).save(f, format='PNG', compress_level=1)


@dataclasses.dataclass(frozen=True)
class _Job:
  name: str  # Relative name without extension: 'sub/0001'.
  hr: str
  lr: str | None


@dataclasses.dataclass(frozen=True)
class _Settings:
  output: str
  lr_output: str | None
  crop_size: int
  step: int
  thresh_size: int
  scale: int
  max_pixels: int | None


def _process(job: _Job, s: _Settings) -> tuple[int, int, str]:
  """Writes one image's tiles: (written, already there, note)."""
  # From the header: re-runs decide what is left to do without decoding.
  height, width = image_io.display_size(job.hr, s.max_pixels)
  positions = tile_positions(height, width, s.crop_size, s.step,
                             s.thresh_size)
  if not positions:
    return 0, 0, (f'skipped: {height}x{width} is smaller than the crop '
                  f'{s.crop_size}')
  outputs = [(os.path.join(s.output, tile_name(job.name, k + 1)),
              s.lr_output and os.path.join(
                  s.lr_output, tile_name(job.name, k + 1)))
             for k in range(len(positions))]
  todo = [k for k, (hr_out, lr_out) in enumerate(outputs)
          if not os.path.exists(hr_out)
          or (lr_out and not os.path.exists(lr_out))]
  if not todo:
    return 0, len(positions), ''
  hr = image_io.read_image(job.hr, s.max_pixels)
  lr = image_io.read_image(job.lr, s.max_pixels) if job.lr else None
  if lr is not None and hr.shape[:2] != (lr.shape[0] * s.scale,
                                         lr.shape[1] * s.scale):
    raise ValueError(f'decoded HR {hr.shape[:2]} is not {s.scale} x LR '
                     f'{lr.shape[:2]} (EXIF orientation?)')
  size, lr_size = s.crop_size, s.crop_size // s.scale
  for k in todo:
    top, left = positions[k]
    hr_out, lr_out = outputs[k]
    _save_png(hr[top:top + size, left:left + size], hr_out)
    if lr is not None:
      lr_top, lr_left = top // s.scale, left // s.scale
      _save_png(lr[lr_top:lr_top + lr_size, lr_left:lr_left + lr_size],
                lr_out)
  return len(todo), len(positions) - len(todo), ''


def _jobs(input_dir, lr_input_dir, scale, lr_filename_tmpl, max_pixels,
          log) -> list[_Job]:
  if lr_input_dir is None:
    return [_Job(folder_lib.relative_name(p, input_dir), p, None)
            for p in image_io.list_images(input_dir)]
  # The training index's checks: every HR has its LR at exactly 1/scale.
  pairs, budget = paired.index_pairs(
      input_dir, lr_input_dir, scale=scale,
      lr_filename_tmpl=lr_filename_tmpl, max_pixels=max_pixels,
      max_bad_fraction=1.0)
  for name, reason in budget.bad:
    log(f'skipping unreadable {name}: {reason}')
  return [_Job(folder_lib.relative_name(p.hr, input_dir), p.hr, p.lr)
          for p in pairs]


def extract_subimages(
    input_dir: str,
    output_dir: str,
    *,
    crop_size: int = 480,
    step: int = 240,
    thresh_size: int = 0,
    workers: int | None = None,
    lr_input_dir: str | None = None,
    lr_output_dir: str | None = None,
    scale: int | None = None,
    lr_filename_tmpl: str = '{}',
    max_pixels: int | None = None,
    log: Callable[[str], None] = print,
) -> dict[str, int]:
  """Tiles every image under `input_dir` (see the module docstring).

  Args:
    input_dir, output_dir: HR images in, sub-images out (created).
    crop_size, step, thresh_size: tile side, stride, and the largest
      leftover (pixels) not worth a border-flush tile; HR pixels.
    workers: threads (Pillow decodes and encodes without the GIL); None:
      one per CPU.
    lr_input_dir, lr_output_dir, scale, lr_filename_tmpl: paired mode; LR
      tiles are crop_size / scale at positions / scale. crop_size and step
      must be multiples of scale.
    max_pixels: skip images above this many pixels (0: no limit; None:
      Pillow's limit, as for `image_io.read_image`).
    log: progress lines go here.

  Returns:
    Counts: images, tiles_written, tiles_existing, skipped (too small or
    unreadable).
  """
  if crop_size <= 0 or step <= 0 or thresh_size < 0:
    raise ValueError('crop_size and step must be > 0 and thresh_size >= 0.')
  if (lr_input_dir is None) != (lr_output_dir is None):
    raise ValueError('--lr-input and --lr-output go together.')
  if lr_input_dir is not None:
    if not scale or crop_size % scale or step % scale:
      raise ValueError(
          f'Paired mode needs --scale, with --crop-size ({crop_size}) and '
          f'--step ({step}) multiples of it (got scale={scale}), so LR tiles '
          'start on whole LR pixels.')
  jobs = _jobs(input_dir, lr_input_dir, scale, lr_filename_tmpl, max_pixels,
               log)
  settings = _Settings(output_dir, lr_output_dir, crop_size, step,
                       thresh_size, scale or 1, max_pixels)
  counts = dict(images=len(jobs), tiles_written=0, tiles_existing=0,
                skipped=0)
  os.makedirs(output_dir, exist_ok=True)

  def run(job):
    try:
      return _process(job, settings)
    except ValueError as e:  # Unreadable or refused: skip, say why.
      return 0, 0, f'skipped: {e}'

  workers = workers or os.cpu_count() or 1
  with concurrent.futures.ThreadPoolExecutor(workers) as pool:
    for k, (job, (written, existing, note)) in enumerate(
        zip(jobs, pool.map(run, jobs)), start=1):
      counts['tiles_written'] += written
      counts['tiles_existing'] += existing
      counts['skipped'] += bool(note)
      log(f'[{k}/{len(jobs)}] {job.name}: '
          + (note or f'{written} tiles written'
             + (f', {existing} already there' if existing else '')))
  log(f'Done: {counts}')
  return counts


def main(argv: Sequence[str] | None = None) -> dict[str, int]:
  parser = argparse.ArgumentParser(
      prog='python -m sr_jax.data.extract_subimages',
      description=__doc__.split('\n\n', 1)[0],
      epilog=__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('--input', required=True, help='HR image folder.')
  parser.add_argument('--output', required=True, help='HR tiles go here.')
  parser.add_argument('--crop-size', type=int, default=480)
  parser.add_argument('--step', type=int, default=240)
  parser.add_argument('--thresh-size', type=int, default=0)
  parser.add_argument('--workers', type=int, default=None,
                      help='Threads; default: one per CPU.')
  parser.add_argument('--lr-input', default=None, help='LR image folder.')
  parser.add_argument('--lr-output', default=None, help='LR tiles go here.')
  parser.add_argument('--scale', type=int, default=None)
  parser.add_argument('--lr-filename-tmpl', default='{}',
                      help="LR base name from the HR one, e.g. '{}x4'.")
  parser.add_argument(
      '--max-pixels', type=int, default=None,
      help="Skip images above this many pixels (0: no limit); default: "
      "Pillow's decompression-bomb limit, ~179 MP.")
  args = parser.parse_args(argv)
  return extract_subimages(
      args.input, args.output, crop_size=args.crop_size, step=args.step,
      thresh_size=args.thresh_size, workers=args.workers,
      lr_input_dir=args.lr_input, lr_output_dir=args.lr_output,
      scale=args.scale, lr_filename_tmpl=args.lr_filename_tmpl,
      max_pixels=args.max_pixels,
      log=lambda line: print(line, flush=True))


if __name__ == '__main__':
  main(sys.argv[1:])
