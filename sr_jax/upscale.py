"""python -m sr_jax.upscale INPUT -o OUT --weights W [--tile N --tile-pad P]

Upscales images of any size with a trained or converted generator.

  INPUT  an image file; a folder (its images, not sub-folders; --recursive
         for those too, mirrored under OUT); or a quoted glob ('a/*.png',
         '**' allowed).
  OUT    a folder (created), written as OUT/<name>_<suffix>.<ext>; or, when
         INPUT is one file and OUT ends in an image extension, that file.

The output format follows the input's extension unless --ext (GIF: PNG);
images with alpha are written as PNG rather than JPEG. Of an animated GIF
(or a multi-page TIFF, an animated PNG / WebP) only the first frame is
upscaled, and a note says so. Alpha, 16-bit depth (PNG) and
grey are kept (see sr_jax/inference/image_files.py). --outscale resizes the
network's output with Pillow's Lanczos (--outscale-filter cubic: ncnn's
bicubic, as the released realesr-animevideov3-x2 / -x3 .param files end;
given such a .param as --weights, that is the default, at its scale).
--pre-pad defaults to 0 for released weights (a .pth / .safetensors /
ncnn .param, or an .npz converted from one), as Real-ESRGAN's own
inference_realesrgan.py runs them, and to 8 for sr_jax's runs (as their
validation); the choice is printed. --tile cuts large images into tiles
(exact when --tile-pad covers the network's receptive field; see
sr_jax/inference/tiling.py). Unreadable images are skipped with a message
and make the exit status 1; outputs are written atomically. An OUT that
cannot be written (read-only, no permission, a file where a folder should
be) is an error before the model loads.

Host memory is about one copy of the output at its bit depth (W x H x
channels bytes, twice that for 16 bits), filled tile by tile, plus the
input and a few batches of tiles; PNGs are written a band of rows at a
time. Other formats are encoded by Pillow from a copy of its own (4 bytes
per pixel for RGB). --ensemble adds a float32 sum of the passes (12 bytes
per pixel of the network output); --outscale keeps the network output in
float32 (4 bytes per channel and pixel) for the Lanczos resize. Inputs above
--max-pixels are refused from their header, before decoding. Out of memory,
the message says what helps: a smaller --tile for the device, a smaller
output for the host.
"""
import argparse
import glob
import os
import sys
import time
from typing import Optional, Sequence

from sr_jax import errors
from sr_jax.inference import generator_loading
from sr_jax.inference import image_files
from sr_jax.inference import onnx_backend
from sr_jax.inference import pre_pad
from sr_jax.inference import resize
from sr_jax.inference import tiling

_GLOB_CHARS = '*?['


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m sr_jax.upscale',
      description='Upscale images of any size with a generator.',
      epilog=__doc__.split('\n\n', 2)[2],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('input', metavar='INPUT', help='image file, folder or glob')
  p.add_argument('-o', '--output', required=True, metavar='OUT',
                 help='output folder (or file, for one input file)')
  generator_loading.add_source_flags(
      p, weights_help='converted .npz, .pth/.safetensors or an ncnn .param '
      '(its .bin beside it); or, with --backend onnxruntime, an .onnx file '
      'from python -m sr_jax.export')
  p.add_argument('--backend', choices=('jax', 'onnxruntime'), default='jax',
                 help='what runs the network (default jax); onnxruntime '
                 'runs an .onnx file, or exports the generator first (pip '
                 'install jax2onnx onnxruntime)')
  p.add_argument('--outscale', type=float,
                 help='final scale (default: the network scale, or an '
                 'ncnn .param\'s own resize); the network output is then '
                 'held in float32 for the resize (4 bytes per channel and '
                 'network pixel)')
  p.add_argument('--outscale-filter', choices=resize.FILTERS,
                 help='the --outscale resize: lanczos (Pillow\'s; the '
                 'default) or cubic (ncnn\'s Interp bicubic, a=-0.75, no '
                 'antialiasing: what realesr-animevideov3-x2/-x3.param do; '
                 'the default for those)')
  p.add_argument('--tile', type=int, default=0,
                 help='tile size in input pixels; 0: whole image at once '
                 '(RRDBNet x2 / x1: rounded up to a multiple of 2 / 4)')
  p.add_argument('--tile-pad', type=int, default=10,
                 help='context pixels around each tile (default 10); tiled '
                 'equals untiled when it covers the receptive field')
  p.add_argument('--pre-pad', type=int, default=None,
                 help='input pixels replicated around the image edges and '
                 'cropped off the output, so the network\'s zero padding '
                 'leaves no line along them (default: '
                 f'{pre_pad.RELEASE_PRE_PAD} for released weights, as '
                 "Real-ESRGAN's inference; "
                 f'{pre_pad.DEFAULT_PRE_PAD} for sr_jax runs, as their '
                 'validation; 0: off)')
  p.add_argument('--batch-tiles', type=int, default=4,
                 help='tiles per device call (default 4)')
  p.add_argument('--ensemble', action='store_true',
                 help='x8 self-ensemble (rotations and flips; 8x slower; '
                 'sums the passes in float32: 12 more bytes per pixel of '
                 'the network output)')
  p.add_argument('--dtype', choices=('float32', 'bfloat16'),
                 default='float32', help='compute dtype (default float32)')
  p.add_argument('--suffix', default='out',
                 help="output name suffix (default 'out'; '' for none)")
  p.add_argument('--ext', default='auto', choices=('auto', 'png', 'jpg'),
                 help='output format (default: as the input)')
  p.add_argument('--alpha-upsampler', choices=('network', 'bicubic'),
                 default='network', help='how alpha is upscaled')
  p.add_argument('--jpeg-quality', type=int, default=95)
  p.add_argument('--recursive', action='store_true',
                 help='with a folder INPUT, also its sub-folders')
  p.add_argument('--max-pixels', type=int,
                 default=image_files.DEFAULT_MAX_PIXELS, metavar='N',
                 help='skip inputs of more than N pixels (width x height, '
                 'read from the header before decoding; default '
                 f'{image_files.DEFAULT_MAX_PIXELS:,}; 0: no limit)')
  return p


def find_inputs(spec: str, recursive: bool) -> tuple[list[str], str | None]:
  """(image paths, root folder or None) for INPUT; raises if there are none.

  The root is the folder paths are relative to in the output (folder input).
  """
  if os.path.isfile(spec):
    return [spec], None
  if os.path.isdir(spec):
    if recursive:
      paths = [os.path.join(d, f) for d, _, files in os.walk(spec)
               for f in files]
    else:
      paths = [os.path.join(spec, f) for f in os.listdir(spec)]
    paths = sorted(p for p in paths if os.path.isfile(p)
                   and image_files.is_image_file(p)
                   and not os.path.basename(p).startswith('.'))
    if not paths:
      raise ValueError(
          f'Folder {spec!r} holds no images ('
          f'{"recursively" if recursive else "not recursive"}; extensions '
          f'{", ".join(image_files.INPUT_EXTENSIONS)}).')
    return paths, spec
  if any(c in spec for c in _GLOB_CHARS):
    paths = sorted(p for p in glob.glob(spec, recursive=True)
                   if os.path.isfile(p) and image_files.is_image_file(p))
    if not paths:
      raise ValueError(f'{spec!r} matches no image files.')
    return paths, None
  raise FileNotFoundError(f'INPUT {spec!r} does not exist (expected an image '
                          'file, a folder or a quoted glob).')


def _output_path(src: str, root: str | None, args, image) -> str:
  ext = image_files.output_extension(src, args.ext, image)
  stem = os.path.splitext(os.path.basename(src))[0]
  name = f'{stem}_{args.suffix}{ext}' if args.suffix else stem + ext
  sub = os.path.dirname(os.path.relpath(src, root)) if root else ''
  return os.path.join(args.output, sub, name)


class _TileBar:
  """`[#####-----] tiles 12/40, pass 1/8` on one stderr line (TTY only)."""

  def __init__(self, passes: int, stream=None):
    stream = stream or sys.stderr
    self.passes, self.stream, self.current = passes, stream, 1
    self.enabled = stream.isatty()

  def __call__(self, done: int, total: int) -> None:
    if self.enabled:
      filled = 30 * done // total
      self.stream.write(f'\r  [{"#" * filled}{"-" * (30 - filled)}] tiles '
                        f'{done}/{total}, pass {self.current}/{self.passes} ')
      self.stream.flush()
    if done == total:
      self.current += 1

  def close(self) -> None:
    if self.enabled:
      self.stream.write('\r' + ' ' * 70 + '\r')


class _Upscaler:
  """The network of one run: tiled, optionally ensembled, with progress."""

  def __init__(self, args, run_batch: tiling.RunBatch, multiple: int,
               scale: int):
    self.args, self.scale = args, scale
    self.run_batch, self.multiple = run_batch, multiple
    self.bar = None

  def _network(self, rgb, sink) -> None:
    a = self.args
    tiling.upscale_tiled(
        self.run_batch, rgb, self.scale, tile=a.tile, tile_pad=a.tile_pad,
        batch_tiles=a.batch_tiles, multiple=self.multiple,
        pre_pad=a.pre_pad, progress=self.bar, sink=sink)

  def _streamed(self, rgb, sink) -> None:
    if self.args.ensemble:
      tiling.self_ensemble(self._network, rgb, self.scale, sink)
    else:
      self._network(rgb, sink)

  def __call__(self, image: image_files.ImageData,
               bit_depth: int) -> image_files.ImageData:
    a = self.args
    alpha_passes = 2 if (image.alpha is not None
                         and a.alpha_upsampler == 'network') else 1
    self.bar = _TileBar((8 if a.ensemble else 1) * alpha_passes)
    try:
      return image_files.upscale_image_data(
          image, self._streamed, self.scale, outscale=a.outscale,
          alpha_upsampler=a.alpha_upsampler, bit_depth=bit_depth,
          outscale_filter=a.outscale_filter or 'lanczos')
    finally:
      self.bar.close()


def _gb(num_bytes: float) -> str:
  return f'{num_bytes / 1e9:.1f} GB'


def memory_hint(error: BaseException, args, scale: int,
                image: image_files.ImageData | None = None,
                bit_depth: int | None = None) -> str:
  """What to try after `error`, if it is an out-of-memory error, else ''.

  Device memory (XLA's RESOURCE_EXHAUSTED) depends on the tile size and
  batch, never on the image size; host memory (MemoryError) holds the whole
  output, so there only a smaller output (or a format written without a
  copy) helps.
  """
  if 'RESOURCE_EXHAUSTED' in str(error):
    if args.tile <= 0:
      tips = ['--tile 512']
    else:
      tips = [f'--tile {max(args.tile // 2, 16)}' + (
          ' --batch-tiles 1' if args.batch_tiles > 1 else '')]
    if args.dtype != 'bfloat16':
      tips.append('--dtype bfloat16')
    return f' (out of device memory: try {" or ".join(tips)})'
  if not isinstance(error, MemoryError):
    return ''
  if image is None:  # Failed while reading: the input itself is too large.
    return (' (out of host memory reading it: try a smaller image, or a '
            'lower --max-pixels to skip such images)')
  h, w = image.size
  size = (h * scale, w * scale) if args.outscale is None else (
      tiling.output_size(h, w, args.outscale))
  channels = image.pixels.shape[-1] + (image.alpha is not None)
  depth = bit_depth or image.bit_depth
  need = image_files.output_bytes(*size, channels, depth)
  network_pixels = h * w * scale * scale  # Float32 copies are this size.
  extra = []
  if args.ensemble:
    extra.append(f'--ensemble adds {_gb(network_pixels * 12)}')
  if size != (h * scale, w * scale):
    extra.append('--outscale adds '
                 f'{_gb(network_pixels * 4 * image.pixels.shape[-1])}')
  extra = f' ({"; ".join(extra)})' if extra else ''
  return (f' (out of host memory: the {size[1]}x{size[0]} output needs '
          f'{_gb(need)} at {depth} bits{extra}; try a smaller --outscale, '
          'PNG output (other formats are encoded from a copy), or fewer or '
          'smaller inputs at a time)')


def _release_defaults(args, scale: int) -> None:
  """Fills --pre-pad (and, for an ncnn .param that ends with a resize,
  --outscale / --outscale-filter) as the release runs the weights; says so
  on stderr."""
  if args.pre_pad is None:
    args.pre_pad, why = pre_pad.default_pre_pad(args.weights, args.checkpoint)
    print(f'pre-pad {args.pre_pad} ({why}; --pre-pad N to change it)',
          file=sys.stderr)
  file_resize = generator_loading.release_resize(args.weights)
  if file_resize is None:
    return
  given = args.outscale is not None
  if not given:
    args.outscale = scale * file_resize.scale
  if args.outscale_filter is None and file_resize.kind == 'bicubic':
    args.outscale_filter = 'cubic'
  print(f'{os.path.basename(args.weights)} ends with a {file_resize.kind} '
        f'resize by {file_resize.scale:g}: the x{scale} network, then '
        f'--outscale {args.outscale:g}'
        + (' (given)' if given else '') + ' --outscale-filter '
        f'{args.outscale_filter or "lanczos"}', file=sys.stderr)


def _load_network(args, model_kwargs: dict):
  """(run_batch, input multiple, scale, a description) of the network the
  flags name, on the --backend; raises OSError / ValueError / ImportError."""
  if args.backend == 'onnxruntime':
    net = onnx_backend.load_onnx_generator(
        weights=args.weights, checkpoint=args.checkpoint, arch=args.arch,
        model_kwargs=model_kwargs, dtype=args.dtype, which=args.which)
    run_batch, multiple, scale = net, net.input_multiple, net.scale
    about = f'{net.name} x{scale} (onnxruntime, {net.provider})'
  else:
    module, variables, scale = (
        generator_loading.load_generator_for_inference(
            weights=args.weights, checkpoint=args.checkpoint,
            arch=args.arch, model_kwargs=model_kwargs, dtype=args.dtype,
            which=args.which))
    run_batch = generator_loading.make_run_batch(module, variables)
    multiple = generator_loading.input_multiple(module)
    about = f'{type(module).__name__} x{scale} ({args.dtype})'
  return run_batch, multiple, scale, about


def _check_destination(src: str, dst: str, written: set[str]) -> None:
  """ValueError if writing `dst` would overwrite this run's output of
  another input, or the input itself."""
  if os.path.abspath(dst) in written:
    raise ValueError(f'{dst} was already written by this run: two '
                     'inputs map to one output name; run them '
                     'separately.')
  if os.path.exists(dst) and os.path.samefile(dst, src):
    raise ValueError(f'output {dst} would overwrite the input; use a '
                     '--suffix or another -o.')


def _describe(image: image_files.ImageData) -> str:
  """'WxH, D-bit[, grey][, alpha]' of an input image."""
  h, w = image.size
  about = [f'{w}x{h}', f'{image.bit_depth}-bit'] + (
      ['grey'] if image.grey else []) + (
          ['alpha'] if image.alpha is not None else [])
  return ', '.join(about)


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  try:
    model_kwargs = generator_loading.model_kwargs_from_flags(args)
  except ValueError as e:
    return errors.usage(str(e))
  for flag, value, low in (('--tile', args.tile, 0),
                           ('--tile-pad', args.tile_pad, 0),
                           ('--pre-pad', args.pre_pad, 0),
                           ('--batch-tiles', args.batch_tiles, 1)):
    if value is not None and value < low:
      return errors.usage(f'{flag} must be >= {low}; got {value}.')
  try:
    if args.outscale is not None:
      tiling.output_size(1, 1, args.outscale)
    inputs, root = find_inputs(args.input, args.recursive)
  except (OSError, ValueError) as e:
    return errors.usage(str(e))
  single_file_output = (
      len(inputs) == 1 and os.path.isfile(args.input)
      and os.path.splitext(args.output)[1].lower() in image_files.WRITE_FORMATS)
  if not single_file_output and os.path.isfile(args.output):
    return errors.usage(f'-o {args.output!r} is a file; with INPUT '
                        f'{args.input!r} it must be a folder.')
  # Before the model loads and any image is computed.
  out_dir = (os.path.dirname(os.path.abspath(args.output))
             if single_file_output else args.output)
  why = image_files.output_folder_problem(out_dir)
  if why is not None:
    return errors.usage(f'-o {args.output}: cannot write to folder '
                        f'{out_dir} ({why}); use another -o.')

  try:
    run_batch, multiple, scale, about = _load_network(args, model_kwargs)
    _release_defaults(args, scale)
  except (OSError, ValueError, ImportError) as e:
    return errors.usage(str(e))
  print(f'{about}, {len(inputs)} image(s) -> {args.output}', file=sys.stderr)
  upscaler = _Upscaler(args, run_batch, multiple, scale)

  failed, written, start = [], set(), time.time()
  for i, src in enumerate(inputs, 1):
    image = depth = result = None  # Last image's arrays freed first.
    try:
      image = image_files.read_image_file(src, max_pixels=args.max_pixels)
      dst = (args.output if single_file_output
             else _output_path(src, root, args, image))
      _check_destination(src, dst, written)
      print(f'[{i}/{len(inputs)}] {src} ({_describe(image)}) -> {dst}',
            file=sys.stderr)
      # Quantised once, straight to the depth the format stores.
      depth, notes = image_files.output_bit_depth(dst, image.bit_depth)
      if image.frames > 1:
        notes.insert(0, f'only frame 1 of {image.frames} was upscaled '
                     '(animated or multi-page input; written as a still '
                     'image)')
      result = upscaler(image, depth)
      os.makedirs(os.path.dirname(os.path.abspath(dst)), exist_ok=True)
      notes += image_files.write_image_file(
          dst, result, jpeg_quality=args.jpeg_quality)
      for note in notes:
        print(f'  note: {note}', file=sys.stderr)
      written.add(os.path.abspath(dst))
    except (OSError, ValueError, RuntimeError, MemoryError) as e:
      hint = memory_hint(e, args, scale, image, depth)
      print(f'  skipped {src}: {e}{hint}', file=sys.stderr)
      failed.append(src)
  print(f'Done: {len(inputs) - len(failed)} written, {len(failed)} failed, '
        f'{time.time() - start:.1f} s.', file=sys.stderr)
  if failed:
    print('Failed: ' + ', '.join(failed), file=sys.stderr)
    return 1
  return 0


if __name__ == '__main__':
  sys.exit(main())
