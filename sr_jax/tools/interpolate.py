"""Network interpolation (ESRGAN's net_interp) and a perception-distortion
sweep over alpha.

  python -m sr_jax.interpolate --psnr A --gan B --alpha 0.8 --out C.npz
  python -m sr_jax.interpolate --psnr A --gan B --sweep 0:1:0.1 \
      --eval-dir /data/Set14/HR --out sweep_dir [--scale 4]

theta = (1 - alpha) * theta_PSNR + alpha * theta_GAN, leaf by leaf (Wang et
al. 2018, ESRGAN Sec. 3.4): alpha 0 is the PSNR-oriented model, 1 the GAN
one, and the values between trade distortion for perceptual quality without
retraining. Both models must have the same architecture; every float leaf
(parameters and BatchNorm statistics, as ESRGAN interpolates every state
dict entry) is interpolated, non-float leaves must be equal.

A and B are each a converted weights file (.npz from `python -m
sr_jax.weights` or `sr_jax.weights.params_io.save_params`) or a training
--workdir, whose EMA generator ('best' by validation PSNR, or 'latest' with
--which latest) is used. C keeps A's metadata (arch and model kwargs), so
`python -m sr_jax.upscale --weights C` knows what to build; for a workdir A
they come from its config.

The sweep scores each alpha on the HR images of --eval-dir as sr_jax.evaluate
does (LR = MATLAB bicubic, 8-bit; SR rounded to 8 bits; PSNR/SSIM on Y,
`scale` border pixels cropped), plus LPIPS (full RGB image; AlexNet unless
--lpips-net vgg) when its weights are available, and writes sweep.csv,
sweep.md and sweep.png (PSNR vs LPIPS, or vs alpha without LPIPS) to --out.
"""
import argparse
import dataclasses
import io
import json
import math
import pathlib
import sys
from typing import Any, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import checkpoint
from sr_jax import errors
from sr_jax import evaluate
from sr_jax import inference
from sr_jax import metrics
from sr_jax import weights
from sr_jax.evaluate import image_sets
from sr_jax.utils import io_utils
from sr_jax.weights import params_io


@dataclasses.dataclass
class Source:
  """One side of the interpolation."""
  path: str
  variables: dict[str, Any]  # {'params': ..., ['batch_stats': ...]}, numpy.
  metadata: dict[str, Any]  # {'arch', 'model_kwargs', ...}; {} if unknown.
  module: Any = None  # The generator, when the source says how to build it.


def load_source(path: str, which: str = 'best', role: str = 'gan',
                phase: Optional[str] = None) -> Source:
  """A converted .npz or a training workdir (its EMA generator).

  From a workdir, `phase` picks the phase's best generator; by default the
  run's first phase for role 'psnr' (the warm-up) and its last for 'gan'.
  """
  p = pathlib.Path(path).expanduser()
  if p.is_dir():
    if phase is None and which == 'best':
      phases = checkpoint.run_phases(str(p))
      phase = phases[0] if role == 'psnr' else phases[-1]
    loaded = inference.load_generator(str(p), phase, which=which)
    config = loaded.run.config
    kwargs = json.loads(config.generator.kwargs.to_json_best_effort())
    kwargs.setdefault('scale', config.scale)
    metadata = {'arch': config.generator.name, 'model_kwargs': kwargs,
                'source': f'{p} ({loaded.describe()})'}
    print(f'--{role}: {loaded.describe()}', file=sys.stderr)
    return Source(str(p), _to_numpy(loaded.variables), metadata,
                  loaded.module)
  if not p.is_file():
    raise FileNotFoundError(
        f'{path} does not exist: give a converted .npz (python -m '
        'sr_jax.weights ARCH SRC OUT.npz) or a training --workdir.')
  if p.suffix != '.npz':
    raise ValueError(
        f'{path} is not an .npz: convert PyTorch weights first with python '
        f'-m sr_jax.convert ARCH {path} OUT.npz, then interpolate '
        'OUT.npz.')
  return Source(str(p), params_io.load_params(p), params_io.load_metadata(p))


def _to_numpy(tree: Any) -> Any:
  return jax.tree.map(np.asarray, jax.device_get(tree))


def _flat(tree: Any) -> dict[str, Any]:
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {'/'.join(str(getattr(k, 'key', k)) for k in path): leaf
          for path, leaf in leaves}


def _shape_dtype(leaf: Any) -> tuple[tuple[int, ...], np.dtype]:
  leaf = leaf if hasattr(leaf, 'dtype') else np.asarray(leaf)  # Or abstract.
  return tuple(leaf.shape), np.dtype(leaf.dtype)


def check_compatible(a: Any, b: Any, a_name: str = 'A',
                     b_name: str = 'B', compare_values: bool = True) -> None:
  """Raises ValueError naming the first differing leaves of two trees.

  Leaves must match in name, shape and dtype; with compare_values,
  non-float leaves must also be equal, since integers have no meaningful
  average. Leaves may be arrays or jax.ShapeDtypeStructs (shapes only).
  """
  fa, fb = _flat(a), _flat(b)
  problems = []
  for name in sorted(set(fa) | set(fb)):
    if name not in fa or name not in fb:
      problems.append(f'{name}: in {a_name if name in fa else b_name} only')
      continue
    (sa, da), (sb, db) = _shape_dtype(fa[name]), _shape_dtype(fb[name])
    if sa != sb:
      problems.append(f'{name}: shape {sa} vs {sb}')
    elif da != db:
      problems.append(f'{name}: dtype {da} vs {db}')
    elif (compare_values and not jnp.issubdtype(da, jnp.floating)
          and not np.array_equal(fa[name], fb[name])):
      problems.append(
          f'{name}: non-float values differ, cannot be interpolated')
  if problems:
    more = f' (and {len(problems) - 5} more)' if len(problems) > 5 else ''
    raise ValueError(
        f'{a_name} and {b_name} do not match; first mismatching params: '
        f'{problems[0]}. All: {problems[:5]}{more}. Interpolation needs '
        'two trainings of one architecture (e.g. the PSNR warm-up and the '
        'GAN model of the same run).')


def interpolate(psnr_variables: Any, gan_variables: Any, alpha: float,
                names: tuple[str, str] = ('--psnr', '--gan')) -> Any:
  """(1 - alpha) * psnr + alpha * gan for float leaves; same tree, dtypes.

  alpha 0 and 1 return copies of the inputs bit for bit; in between the
  arithmetic is in each leaf's dtype (float32), as ESRGAN's net_interp.
  Non-float leaves (equal in both, checked) are taken from psnr_variables.
  """
  alpha = float(alpha)
  if not math.isfinite(alpha):
    raise ValueError(f'alpha={alpha} must be a finite number.')
  check_compatible(psnr_variables, gan_variables, *names)

  def mix(a, b):
    a, b = np.asarray(a), np.asarray(b)
    if alpha == 0.0 or not jnp.issubdtype(a.dtype, jnp.floating):
      return a.copy()
    if alpha == 1.0:
      return b.copy()
    dtype = a.dtype.type
    return (dtype(1.0 - alpha) * a + dtype(alpha) * b).astype(a.dtype)

  return jax.tree.map(mix, psnr_variables, gan_variables)


def parse_alphas(spec: str) -> list[float]:
  """'start:stop:step' (stop included) or 'a,b,c' -> sorted alphas."""
  try:
    if ':' in spec:
      start, stop, step = (float(s) for s in spec.split(':'))
      if step <= 0 or stop < start:
        raise ValueError
      count = int(math.floor((stop - start) / step + 1e-9)) + 1
      alphas = [round(start + i * step, 10) for i in range(count)]
    else:
      alphas = [float(s) for s in spec.split(',') if s.strip()]
  except ValueError:
    raise ValueError(
        f'--sweep {spec!r}: use start:stop:step with step > 0 (e.g. '
        '0:1:0.1, stop included) or a comma list (e.g. 0,0.5,0.8,1).'
    ) from None
  if not alphas:
    raise ValueError(f'--sweep {spec!r} gives no alphas.')
  return sorted(set(alphas))


def build_generator(psnr: Source, gan: Source, arch: Optional[str],
                    model_kwargs: Optional[dict[str, Any]],
                    scale: Optional[int]) -> tuple[Any, int]:
  """The generator module for the sweep and its scale.

  From --arch/--model-kwargs when given, else from a workdir's config or a
  file's metadata (A first, then B).
  """
  convert = weights
  if arch:
    kwargs = dict(model_kwargs or {})
    if scale:
      kwargs.setdefault('scale', scale)
    module = convert.build_model(arch, **kwargs)
  else:
    if model_kwargs:
      raise ValueError('--model-kwargs needs --arch.')
    for source in (psnr, gan):
      if source.module is not None:
        module = source.module
        break
      if source.metadata.get('arch'):
        module = convert.build_model(
            source.metadata['arch'],
            **dict(source.metadata.get('model_kwargs') or {}))
        break
    else:
      raise ValueError(
          f'Neither {psnr.path} nor {gan.path} says which model it holds (no '
          'arch metadata). Pass it, e.g. --arch rrdbnet --model-kwargs '
          '\'{"num_feat": 64, "num_block": 23}\' --scale 4.')
  module_scale = getattr(module, 'scale', None)
  if scale and module_scale and scale != module_scale:
    raise ValueError(f'--scale {scale} but the model is x{module_scale} '
                     f'({type(module).__name__}); drop --scale or fix it.')
  return module, int(module_scale or scale or 4)


@dataclasses.dataclass
class Lpips:
  net: str
  note: str  # Why LPIPS is n/a, or ''.
  variables: Any = None  # The LPIPS weights, or None when n/a.


def load_lpips(net: str, path: Optional[str]) -> Lpips:
  """LPIPS from --lpips-weights (must exist) or the cache (may be absent)."""
  try:
    variables = weights.load_lpips_params(net, path)
  except params_io.WeightsNotFoundError as e:
    if path:
      raise
    first = str(e).splitlines()[0]
    return Lpips(net, f'LPIPS n/a: {first} Run python -m sr_jax.weights '
                 f'fetch lpips_{net} (or pass --lpips-weights) to get it.')
  return Lpips(net, '', variables)


def evaluate_alpha(super_resolve, variables, val_set, scale: int,
                   lpips: Lpips) -> dict[str, Optional[float]]:
  """Mean PSNR / SSIM (Y, crop scale) and LPIPS over val_set for variables,
  through the evaluator that training validation uses."""
  has_lpips = lpips.variables is not None
  names = ('psnr', 'ssim') + ((_LPIPS_METRIC[lpips.net],) if has_lpips
                              else ())
  evaluator = evaluate.Evaluator(
      'sweep', val_set, names, 0,
      {f'lpips_{lpips.net}': lpips.variables} if has_lpips else {})
  values, _ = evaluator.run(super_resolve, variables, scale)
  return {'psnr': values['psnr'], 'ssim': values['ssim'],
          'lpips': values[_LPIPS_METRIC[lpips.net]] if has_lpips else None}


# The registered LPIPS metric of each --lpips-net.
_LPIPS_METRIC = {'alex': 'lpips', 'vgg': 'lpips_vgg'}


# ------------------------------------------------------------------ outputs


def _write_atomic(path: pathlib.Path, data: bytes) -> None:
  with io_utils.atomic_write(path) as f:
    f.write(data)


def sweep_table(rows: Sequence[dict], lpips_net: str) -> str:
  """Markdown table: alpha | PSNR (dB) | SSIM | LPIPS."""
  lines = [f'| alpha | PSNR (dB) | SSIM | LPIPS ({lpips_net}) |',
           '| ---: | ---: | ---: | ---: |']
  for r in rows:
    lpips = 'n/a' if r['lpips'] is None else f'{r["lpips"]:.4f}'
    lines.append(f'| {r["alpha"]:g} | {r["psnr"]:.4f} | {r["ssim"]:.4f} | '
                 f'{lpips} |')
  return '\n'.join(lines)


def sweep_csv(rows: Sequence[dict]) -> str:
  """alpha,psnr,ssim,lpips lines ('n/a' for a missing LPIPS)."""
  lines = ['alpha,psnr,ssim,lpips'] + [
      f'{r["alpha"]:g},{r["psnr"]:.6f},{r["ssim"]:.6f},'
      + ('n/a' if r['lpips'] is None else f'{r["lpips"]:.6f}') for r in rows]
  return '\n'.join(lines) + '\n'


def _padded_range(values: Sequence[float]) -> tuple[float, float]:
  lo, hi = min(values), max(values)
  span = hi - lo if hi > lo else max(abs(hi), 1.0) * 0.1
  return lo - 0.08 * span, hi + 0.08 * span


def _ticks(lo: float, hi: float) -> list[float]:
  """3-6 round tick values (steps of 1, 2 or 5 times a power of 10)."""
  raw = (hi - lo) / 4
  power = 10.0 ** math.floor(math.log10(raw))
  step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
  first = math.ceil(lo / step) * step
  return [first + i * step for i in range(int((hi - first) / step) + 1)]


def _plot_matplotlib(xs, ys, labels, x_label, y_label, title) -> bytes:
  # Figure (not pyplot): no global backend switch for a caller's session.
  from matplotlib.figure import Figure  # pylint: disable=g-import-not-at-top
  fig = Figure(figsize=(6.4, 4.8), dpi=100)
  ax = fig.add_subplot()
  ax.plot(xs, ys, 'o-')
  for x, y, label in zip(xs, ys, labels):
    ax.annotate(f'a={label}', (x, y), textcoords='offset points',
                xytext=(4, 4), fontsize=8)
  ax.set(xlabel=x_label, ylabel=y_label, title=title)
  ax.grid(True, alpha=0.3)
  buffer = io.BytesIO()
  fig.savefig(buffer, format='png')
  return buffer.getvalue()


def _plot_pil(xs, ys, labels, x_label, y_label, title) -> bytes:
  """The same line plot drawn with PIL: axes, 5 ticks each, labelled points."""
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from PIL import ImageDraw  # pylint: disable=g-import-not-at-top
  from PIL import ImageFont  # pylint: disable=g-import-not-at-top
  width, height, left, right, top, bottom = 640, 480, 80, 24, 36, 56
  img = Image.new('RGB', (width, height), 'white')
  draw = ImageDraw.Draw(img)
  font = ImageFont.load_default()
  (x0, x1), (y0, y1) = _padded_range(xs), _padded_range(ys)

  def to_px(x, y):
    return (left + (x - x0) / (x1 - x0) * (width - left - right),
            height - bottom - (y - y0) / (y1 - y0) * (height - top - bottom))

  draw.rectangle((left, top, width - right, height - bottom), outline='black')
  for x in _ticks(x0, x1):
    px = to_px(x, y0)[0]
    draw.line((px, height - bottom, px, height - bottom + 4), fill='black')
    draw.text((px, height - bottom + 6), f'{x:.4g}', fill='black', font=font,
              anchor='ma')
  for y in _ticks(y0, y1):
    py = to_px(x0, y)[1]
    draw.line((left - 4, py, left, py), fill='black')
    draw.text((left - 6, py), f'{y:.4g}', fill='black', font=font,
              anchor='rm')
  points = [to_px(x, y) for x, y in zip(xs, ys)]
  if len(points) > 1:
    draw.line(points, fill=(31, 119, 180), width=2)
  for (px, py), label in zip(points, labels):
    draw.ellipse((px - 4, py - 4, px + 4, py + 4), fill=(31, 119, 180))
    draw.text((px + 6, py - 6), f'a={label}', fill='black', font=font,
              anchor='ls')
  draw.text((width / 2, 12), title, fill='black', font=font, anchor='mt')
  draw.text(((left + width - right) / 2, height - 18), x_label, fill='black',
            font=font, anchor='mm')
  # Vertical y label: draw it on its own strip and rotate.
  strip = Image.new('RGB', (height - top - bottom, 16), 'white')
  ImageDraw.Draw(strip).text((strip.width / 2, 8), y_label, fill='black',
                             font=font, anchor='mm')
  img.paste(strip.rotate(90, expand=True), (8, top))
  buffer = io.BytesIO()
  img.save(buffer, format='PNG')
  return buffer.getvalue()


def plot_sweep(rows: Sequence[dict], title: str) -> tuple[bytes, str]:
  """PNG of PSNR vs LPIPS (vs alpha without LPIPS); (bytes, backend name).

  matplotlib when installed (it is not a dependency), else PIL.
  Non-finite values (PSNR of a perfect match) are left out.
  """
  has_lpips = all(r['lpips'] is not None for r in rows)
  points = [((r['lpips'] if has_lpips else r['alpha']), r['psnr'],
             f'{r["alpha"]:g}') for r in rows]
  points = [p for p in points if math.isfinite(p[0]) and math.isfinite(p[1])]
  xs, ys, labels = ([p[i] for p in points] for i in range(3))
  if not points:
    xs, ys, labels = [0.0], [0.0], ['no finite values']
  args = (xs, ys, labels,
          'LPIPS (lower is better)' if has_lpips else 'alpha',
          'PSNR (dB, Y)', title)
  try:
    import matplotlib  # noqa: F401  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return _plot_pil(*args), 'PIL'
  return _plot_matplotlib(*args), 'matplotlib'


# ---------------------------------------------------------------------- CLI


def _json_object(text: str) -> dict[str, Any]:
  try:
    value = json.loads(text)
  except ValueError:
    value = None
  if not isinstance(value, dict):
    raise argparse.ArgumentTypeError(
        f'{text!r} is not a JSON object, e.g. \'{{"num_feat": 64}}\'')
  return value


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog='python -m sr_jax.interpolate',
      description='Interpolate a PSNR-oriented and a GAN generator '
                  '(ESRGAN net_interp): (1 - alpha) * PSNR + alpha * GAN.')
  parser.add_argument('--psnr', required=True,
                      help='converted .npz or training workdir (alpha = 0)')
  parser.add_argument('--gan', required=True,
                      help='converted .npz or training workdir (alpha = 1)')
  mode = parser.add_mutually_exclusive_group(required=True)
  mode.add_argument('--alpha', type=float,
                    help='write one interpolated .npz to --out (values '
                         'outside [0, 1] extrapolate)')
  mode.add_argument('--sweep', help='alphas to evaluate: start:stop:step '
                    '(stop included) or a comma list; needs --eval-dir')
  parser.add_argument('--out', required=True,
                      help='.npz with --alpha; a folder (created) for '
                           'sweep.csv, sweep.md, sweep.png with --sweep')
  parser.add_argument('--which', choices=('best', 'latest'), default='best',
                      help='checkpoint of a workdir input (default best)')
  parser.add_argument('--psnr-phase', help='phase of a --psnr workdir '
                      "whose best generator to use (default: the run's first)")
  parser.add_argument('--gan-phase', help='phase of a --gan workdir whose '
                      "best generator to use (default: the run's last)")
  parser.add_argument('--eval-dir', help='folder of HR images for --sweep')
  parser.add_argument('--max-images', type=int, default=0,
                      help='evaluate only the first N images (0 = all)')
  parser.add_argument('--scale', type=int,
                      help='SR scale (default: the model\'s)')
  parser.add_argument('--arch', help='generator name (rrdbnet, srvgg, ...) '
                      'when the inputs carry no arch metadata')
  parser.add_argument('--model-kwargs', type=_json_object, default={},
                      help='JSON model kwargs with --arch, e.g. '
                           '\'{"num_feat": 64, "num_block": 23}\'')
  parser.add_argument('--lpips-net', choices=metrics.lpips.NETS,
                      default='alex')
  parser.add_argument('--lpips-weights',
                      help='converted LPIPS .npz (default: the sr_jax cache; '
                           'without it LPIPS is n/a)')
  return parser


def _run_sweep(args, psnr: Source, gan: Source) -> None:
  if not args.eval_dir:
    raise ValueError('--sweep needs --eval-dir, a folder of HR images.')
  alphas = parse_alphas(args.sweep)
  check_compatible(psnr.variables, gan.variables, f'--psnr {psnr.path}',
                   f'--gan {gan.path}')
  module, scale = build_generator(psnr, gan, args.arch, args.model_kwargs,
                                  args.scale)
  lr = np.zeros((1, 16, 16, 3), np.float32)  # x1 models unshuffle by 4.
  template = jax.eval_shape(
      lambda: module.init(jax.random.key(0), lr, train=False))
  check_compatible(template, psnr.variables,
                   f'the model ({type(module).__name__})',
                   f'--psnr {psnr.path}', compare_values=False)
  try:
    image_set = image_sets.load_image_set(args.eval_dir, None, scale,
                                          max_images=args.max_images)
  except (OSError, ValueError) as e:
    raise ValueError(f'--eval-dir {args.eval_dir}: {e}') from None
  for path, why in image_set.skipped:
    print(f'  skipped {path}: {why}', file=sys.stderr)
  if not image_set.images:
    raise ValueError(f'--eval-dir {args.eval_dir}: no readable images.')
  val_set = image_set.images
  lpips = load_lpips(args.lpips_net, args.lpips_weights)
  smallest = min(min(hr.shape[:2]) for _, hr, _ in val_set)
  if (lpips.variables is not None
      and smallest < metrics.lpips.min_image_size(args.lpips_net)):
    lpips = Lpips(args.lpips_net, f'LPIPS n/a: an image is only '
                  f'{smallest} px on a side, too small for {args.lpips_net}.')

  out = pathlib.Path(args.out).expanduser()
  super_resolve = evaluate.make_super_resolve_fn(module)
  rows = []
  for i, alpha in enumerate(alphas):
    variables = interpolate(psnr.variables, gan.variables, alpha)
    rows.append(dict(alpha=alpha, **evaluate_alpha(
        super_resolve, variables, val_set, scale, lpips)))
    print(f'[{i + 1}/{len(alphas)}] alpha={alpha:g}: PSNR '
          f'{rows[-1]["psnr"]:.3f} dB', file=sys.stderr, flush=True)

  table = sweep_table(rows, args.lpips_net)
  notes = [f'{len(val_set)} images from {args.eval_dir}, x{scale}; PSNR/SSIM '
           f'on Y with {scale} border pixels cropped; LPIPS on the full RGB '
           'image.'] + [f'Skipped {path}: {why}.'
                        for path, why in image_set.skipped]
  if lpips.note:
    notes.append(lpips.note)
  title = f'Interpolation {pathlib.Path(psnr.path).name} -> ' \
          f'{pathlib.Path(gan.path).name}'
  png, backend = plot_sweep(rows, title)
  out.mkdir(parents=True, exist_ok=True)
  markdown = '\n\n'.join([f'# {title}', table, *notes]) + '\n'
  _write_atomic(out / 'sweep.csv', sweep_csv(rows).encode())
  _write_atomic(out / 'sweep.md', markdown.encode())
  _write_atomic(out / 'sweep.png', png)
  print(table)
  for note in notes:
    print(note)
  print(f'Wrote {out / "sweep.csv"}, {out / "sweep.md"} and '
        f'{out / "sweep.png"} (plotted with {backend}).')


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  try:
    psnr = load_source(args.psnr, args.which, 'psnr', args.psnr_phase)
    gan = load_source(args.gan, args.which, 'gan', args.gan_phase)
    if psnr.metadata.get('source') and \
        psnr.metadata.get('source') == gan.metadata.get('source'):
      raise ValueError(
          f'--psnr and --gan are the same generator '
          f'({psnr.metadata["source"]}): interpolating it with itself '
          'changes nothing. Give two runs, or one run with two phases '
          '(--psnr-phase / --gan-phase).')
    if args.sweep is not None:
      _run_sweep(args, psnr, gan)
      return 0
    out = pathlib.Path(args.out).expanduser()
    if out.suffix != '.npz':
      raise ValueError(f'--out {args.out} must end in .npz with --alpha.')
    variables = interpolate(psnr.variables, gan.variables, args.alpha,
                            (f'--psnr {psnr.path}', f'--gan {gan.path}'))
    metadata = dict(psnr.metadata or gan.metadata)
    if args.arch and 'arch' not in metadata:
      metadata.update(arch=args.arch, model_kwargs=dict(
          args.model_kwargs, **({'scale': args.scale} if args.scale else {})))
    metadata['interpolation'] = {'psnr': psnr.path, 'gan': gan.path,
                                 'alpha': args.alpha}
    params_io.save_params(out, variables, metadata=metadata)
  except (ValueError, OSError) as e:
    print(f'error: {errors.one_line(e)}', file=sys.stderr)
    return 2
  print(f'Wrote {out}: (1 - {args.alpha:g}) * {psnr.path} + {args.alpha:g} '
        f'* {gan.path}.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
