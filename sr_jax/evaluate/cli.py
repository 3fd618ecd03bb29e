"""python -m sr_jax.evaluate: the papers' tables for SR models on image sets.

  python -m sr_jax.evaluate --checkpoint workdirs/esrgan \\
      --weights RRDB_ESRGAN_x4.pth \\
      --datasets set5=data/Set5/HR,set14=data/Set14/HR \\
      --metrics psnr,ssim,lpips,niqe,brisque,fid,spectrum --out results

Models: every --checkpoint WORKDIR (its final phase's best EMA generator;
--phase / --step / --which pick another) and every --weights FILE (any file
`python -m sr_jax.upscale` reads), in the order given. Datasets: HR folders;
the LR input is MATLAB bicubic of the HR (mod-cropped to the scale and
quantised to 8 bits, BasicSR's protocol), or read from --lr-dirs, matched
by name through --lr-template ('{}x4' for BasicSR's '<name>x4.png').
Each model runs with its own default --pre-pad, as `python -m
sr_jax.upscale` runs it (a run as its validation does, 8; released weights
as their release does, 0); --pre-pad N sets one for all.

Metrics (sr_jax.metrics.METRICS): full-reference ones (psnr, ssim on Y
unless --no-test-y, lpips, dists) and no-reference ones (niqe, brisque) are
computed per image after cropping --crop-border pixels (default: the scale)
and averaged; set metrics (fid, spectrum) on each whole set. An image a
metric cannot score (smaller than twice the border, or than NIQE's blocks)
is left out of that metric's mean, with a note naming it. A metric whose
weights are missing is reported and left out; the others still run.

Writes to --out:
  results.md, results.csv  one row per model x dataset, one column per
                           metric; a 'bicubic' row per dataset, and an 'HR'
                           row for no-reference metrics
  per_image.csv            model, dataset, image, per-image metrics
  spectra_<dataset>.png    average spectra (with the spectrum metric)
  images/<model>/<dataset>/<name>.png   SR outputs (--save-images)

Unreadable images are skipped and listed; exit status 1 if anything was
skipped (an image, a metric), 2 for bad arguments, a missing folder or an
--out that cannot be written (checked before the models load).
"""
import argparse
import contextlib
import csv
import dataclasses
import functools
import json
import os
import sys
import time
from typing import Callable, Optional, Sequence

from absl import logging
import numpy as np
from PIL import Image

from sr_jax import errors
from sr_jax import evaluate as eval_lib
from sr_jax.utils import io_utils
from sr_jax import metrics as sr_metrics
from sr_jax import weights
from sr_jax.evaluate import image_sets
from sr_jax.inference import generator_loading
from sr_jax.inference import image_files
from sr_jax.inference import pre_pad as pre_pad_lib
from sr_jax.inference import tiling
from sr_jax.metrics import frechet_inception as fid_lib
from sr_jax.metrics import spectrum

DEFAULT_METRICS = 'psnr,ssim'
_RGB_VARIANT = {'psnr': 'psnr_rgb', 'ssim': 'ssim_rgb'}


class UsageError(errors.UsageError):
  """A bad argument; main prints it as one `error:` line (exit 2)."""


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m sr_jax.evaluate',
      description='Metrics of SR models on image sets, as the papers '
      'report them.', epilog=__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--checkpoint', action='append', default=[],
                 metavar='WORKDIR[:PHASE]',
                 help='a training run (repeatable); :PHASE takes that '
                 'phase\'s best, e.g. W:psnr and W:gan to compare them')
  p.add_argument('--weights', action='append', default=[], metavar='FILE',
                 help='a weights file (repeatable)')
  p.add_argument('--phase', help='with --checkpoint: that phase\'s best '
                 '(default: the final phase)')
  p.add_argument('--step', type=int, help='with --checkpoint: that step')
  p.add_argument('--which', choices=('best', 'latest'), default='best')
  p.add_argument('--arch', help='with --weights: generator name, when the '
                 'file does not say')
  p.add_argument('--scale', type=int, help='with --weights: network scale')
  p.add_argument('--model-kwargs', default='{}', metavar='JSON')
  p.add_argument('--datasets', required=True, metavar='NAME=DIR,...',
                 help='HR folders, e.g. set5=data/Set5/HR,set14=...')
  p.add_argument('--lr-dirs', default='', metavar='NAME=DIR,...',
                 help='LR folders matched to the datasets by name '
                 '(default: MATLAB bicubic of the HR)')
  p.add_argument('--lr-template', default='{}',
                 help="LR file name from the HR one, e.g. '{}x4'")
  p.add_argument('--metrics', default=DEFAULT_METRICS,
                 help=f'comma list (default {DEFAULT_METRICS}); known: '
                 f'{", ".join(sr_metrics.METRICS.names())}')
  p.add_argument('--crop-border', type=int,
                 help='pixels cropped off each side (default: the scale)')
  p.add_argument('--test-y', action=argparse.BooleanOptionalAction,
                 default=True, help='PSNR / SSIM on Y of BT.601 (default) '
                 'or on RGB (--no-test-y)')
  p.add_argument('--fid-patch', type=int, default=0, metavar='N',
                 help='FID over non-overlapping NxN crops (the protocol for '
                 'small SR test sets), reported as fid_patchN; 0: whole '
                 'images')
  p.add_argument('--frozen', default='', metavar='NAME=PATH,...',
                 help='weights of the metrics\' networks, e.g. '
                 'lpips_alex=alex.npz (default: the sr_jax cache)')
  p.add_argument('--save-images', action='store_true')
  p.add_argument('--ensemble', action='store_true',
                 help='x8 self-ensemble (SRResCGAN+, EDSR+)')
  p.add_argument('--tile', type=int, default=0,
                 help='tile size in LR pixels (0: whole images)')
  p.add_argument('--tile-pad', type=int, default=10)
  p.add_argument('--pre-pad', type=int, default=None,
                 help='LR edge pixels replicated around each image and '
                 'cropped off, for every model (default: per model, as '
                 '`python -m sr_jax.upscale` runs it: '
                 f'{pre_pad_lib.RELEASE_PRE_PAD} for released weights, as '
                 'Real-ESRGAN\'s inference; '
                 f'{pre_pad_lib.DEFAULT_PRE_PAD} for sr_jax runs, as their '
                 'validation; results.md says which each model used)')
  p.add_argument('--dtype', choices=('float32', 'bfloat16'),
                 default='float32')
  p.add_argument('--max-images', type=int, default=0,
                 help='first N images of each dataset (0: all)')
  p.add_argument('--out', default='results', metavar='DIR')
  return p


def named_list(spec: str, flag: str) -> dict[str, str]:
  """'a=X,b=Y' (or bare folders, named after themselves) -> {a: X, b: Y}."""
  out = {}
  for item in filter(None, (s.strip() for s in spec.split(','))):
    name, sep, path = item.partition('=')
    if not sep:
      name, path = os.path.basename(os.path.normpath(item)), item
    if name in out:
      raise UsageError(f'{flag}: {name!r} is given twice.')
    out[name] = path
  return out


def metric_names(spec: str, test_y: bool, fid_patch: int = 0) -> list[str]:
  """The registered metrics of --metrics (psnr / ssim on RGB with
  --no-test-y, FID over patches with --fid-patch); UsageError with a
  did-you-mean for an unknown one."""
  names = []
  for name in filter(None, (s.strip() for s in spec.split(','))):
    name = name if test_y else _RGB_VARIANT.get(name, name)
    if name == 'fid' and fid_patch:
      name = fid_lib.patch_metric(fid_patch)
    try:
      sr_metrics.METRICS.get(name)
    except ValueError as e:
      raise UsageError(f'--metrics: {e}') from None
    names.append(name)
  if not names:
    raise UsageError('--metrics names no metric.')
  return names


@dataclasses.dataclass
class Model:
  label: str
  run: Callable[[np.ndarray], np.ndarray]  # LR uint8 -> SR uint8.
  scale: int
  pre_pad: int = 0
  pre_pad_why: str = '--pre-pad'  # Why this pre-pad (its default's reason).


def _label(path: str, used: set, suffix: str = '') -> str:
  """A model's name in the tables: a weights file's name without its
  extension, a workdir's whole name ('fft_0.3' stays 'fft_0.3')."""
  base = os.path.basename(os.path.normpath(path))
  if not os.path.isdir(path):
    base = os.path.splitext(base)[0]
  label, i = base + suffix, 2
  while label in used:
    label, i = f'{base}{suffix}-{i}', i + 1
  used.add(label)
  return label


def _runner(module, variables, scale: int, args, pre_pad: int) -> Callable:
  """LR uint8 [h, w, 3] -> SR uint8 [sh, sw, 3]: tiled, pre-padded,
  optionally ensembled, as `python -m sr_jax.upscale` runs it."""
  run_batch = generator_loading.make_run_batch(module, variables)
  network = functools.partial(
      tiling.upscale_tiled, run_batch, scale=scale, tile=args.tile,
      tile_pad=args.tile_pad, batch_tiles=1,
      multiple=generator_loading.input_multiple(module),
      pre_pad=pre_pad)

  def streamed(image, sink):
    if args.ensemble:
      tiling.self_ensemble(lambda im, s: network(im, sink=s), image, scale,
                           sink)
    else:
      network(image, sink=sink)

  def run(lr: np.ndarray) -> np.ndarray:
    # Quantised tile by tile into one uint8 output, as upscale writes it.
    return image_files.upscale_image_data(
        image_files.ImageData(lr), streamed, scale, bit_depth=8).pixels

  return run


def load_models(args) -> list[Model]:
  if not args.checkpoint and not args.weights:
    raise UsageError('Give at least one model: --checkpoint WORKDIR or '
                     '--weights FILE.')
  try:
    model_kwargs = json.loads(args.model_kwargs)
  except ValueError as e:
    raise UsageError(f'--model-kwargs: {e}') from None
  if args.scale is not None:
    model_kwargs['scale'] = args.scale
  models, used = [], set()
  for kind, path in ([('checkpoint', p) for p in args.checkpoint]
                     + [('weights', p) for p in args.weights]):
    try:
      if kind == 'checkpoint':
        path, phase = generator_loading.split_source(path)
        phase = phase or args.phase
        module, variables, scale = (
            generator_loading.load_generator_for_inference(
                checkpoint=path, dtype=args.dtype, which=args.which,
                phase=phase, step=args.step))
        suffix = (f':{phase}' if phase else '') + (
            f'@{args.step}' if args.step is not None else '')
      else:
        module, variables, scale = (
            generator_loading.load_generator_for_inference(
                weights=path, arch=args.arch, model_kwargs=model_kwargs,
                dtype=args.dtype))
        suffix = ''
    except (OSError, ValueError, ImportError) as e:
      raise UsageError(f'--{kind} {path}: {e}') from None
    pad, why = model_pre_pad(args.pre_pad, kind, path)
    models.append(Model(_label(path, used, suffix),
                        _runner(module, variables, scale, args, pad), scale,
                        pad, why))
  return models


def model_pre_pad(given: int | None, kind: str, path: str) -> tuple[int, str]:
  """(pre-pad, why) of one model: --pre-pad N for every model if given,
  else its source's default (sr_jax.inference.pre_pad.default_pre_pad, as
  `python -m sr_jax.upscale` picks it): a run is scored as its validation
  runs it, a release as its own inference does."""
  if given is not None:
    return given, '--pre-pad'
  if kind == 'checkpoint':
    return pre_pad_lib.default_pre_pad(checkpoint=path)
  return pre_pad_lib.default_pre_pad(weights=path)


def pre_pad_note(models: Sequence[Model], given: int | None) -> str:
  """results.md's line on the pre-pad each model was run with."""
  if given is not None:
    return f'Pre-pad {given} LR pixels for every model (--pre-pad).'
  why = {pre_pad_lib.RELEASE_PRE_PAD: 'released weights, as Real-ESRGAN\'s '
         'inference_realesrgan.py',
         pre_pad_lib.DEFAULT_PRE_PAD: 'sr_jax runs and weights not known to '
         'be released, as sr_jax\'s validation'}
  groups = {}
  for m in models:
    groups.setdefault(m.pre_pad, []).append(m.label)
  return ('Pre-pad in LR pixels, each model\'s default (--pre-pad N sets one '
          'for all): ' + '; '.join(
              f'{pad} for {", ".join(labels)} ({why.get(pad, "default")})'
              for pad, labels in sorted(groups.items())) + '.')


class _Progress:
  """`[model on set5] 3/14 images` on one stderr line."""

  def __init__(self, what: str, total: int, stream=None):
    self.what, self.total = what, total
    self.stream = stream or sys.stderr
    self.tty = self.stream.isatty()
    self.start = time.time()

  def __call__(self, done: int) -> None:
    if self.tty or done == self.total:
      end = '\n' if done == self.total else ''
      self.stream.write(f'\r  [{self.what}] {done}/{self.total} images, '
                        f'{time.time() - self.start:.1f} s{end}')
      self.stream.flush()


def load_metric_weights(names: Sequence[str], frozen_paths: dict
                        ) -> tuple[list[str], dict, dict]:
  """(metrics that can run, {network: variables}, {metric: why not})."""
  aux, missing, usable = {}, {}, []
  for name in names:
    network = sr_metrics.METRICS.get(name).frozen
    if network and network not in aux:
      try:
        aux[network] = weights.load_frozen(network, frozen_paths.get(network))
      except (weights.WeightsNotFoundError, OSError, ValueError) as e:
        missing[name] = f'{network} weights not found: {e}'
        continue
    usable.append(name)
  return usable, aux, missing


@contextlib.contextmanager
def _writing(path: str):
  """Any OSError in the block becomes one `error:` line naming `path` (or
  the file the error names): a full disk mid-table is no traceback."""
  try:
    yield
  except OSError as e:
    raise errors.SrJaxError(
        errors.cannot_write(e, path, instead='another --out')) from e


def _fmt(value) -> str:
  if value is None:
    return 'n/a'
  return f'{value:.4f}' if abs(value) < 100 else f'{value:.2f}'


def write_tables(out: str, names: Sequence[str], rows: Sequence[dict],
                 notes: Sequence[str]) -> None:
  """results.csv and results.md: one row per (dataset, model)."""
  path = os.path.join(out, 'results.csv')
  with _writing(path):
    os.makedirs(out, exist_ok=True)
    with open(path, 'w', newline='') as f:
      writer = csv.writer(f)
      writer.writerow(['dataset', 'model', 'images'] + list(names))
      for row in rows:
        writer.writerow([row['dataset'], row['model'], row['images']] + [
            '' if row['values'].get(n) is None else repr(row['values'][n])
            for n in names])
  arrows = {n: '↑' if sr_metrics.METRICS.get(n).higher_is_better else '↓'
            for n in names}
  lines = ['| dataset | model | images | ' + ' | '.join(
      f'{n.upper()} {arrows[n]}' for n in names) + ' |',
           '|' + ' --- |' * (3 + len(names))]
  for row in rows:
    lines.append(f'| {row["dataset"]} | {row["model"]} | {row["images"]} | '
                 + ' | '.join(_fmt(row['values'].get(n)) for n in names)
                 + ' |')
  text = '\n'.join(lines) + '\n'
  if notes:
    text += '\n' + '\n'.join(f'- {n}' for n in notes) + '\n'
  path = os.path.join(out, 'results.md')
  with _writing(path), open(path, 'w') as f:
    f.write(text)


def write_per_image(out: str, names: Sequence[str], rows: Sequence) -> None:
  """per_image.csv: model, dataset, image, then each metric."""
  path = os.path.join(out, 'per_image.csv')
  with _writing(path), open(path, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['model', 'dataset', 'image'] + list(names))
    writer.writerows([[('' if v is None else v) for v in row]
                      for row in rows])


def _save_image(path: str, image: np.ndarray) -> None:
  with _writing(path), io_utils.atomic_write(path) as f:
    Image.fromarray(image).save(f, format='PNG')


@dataclasses.dataclass
class Results:
  rows: list = dataclasses.field(default_factory=list)  # Table rows.
  per_image: list = dataclasses.field(default_factory=list)
  notes: list = dataclasses.field(default_factory=list)
  problems: int = 0  # Skipped images and metrics not computed.
  spectra: dict = dataclasses.field(default_factory=dict)  # {set: curves}


def evaluate_all(models: Sequence[Model], datasets: dict, lr_dirs: dict,
                 names: Sequence[str], aux: dict, args) -> Results:
  """Every model on every dataset, each dataset's bicubic row (and HR row
  for no-reference metrics) first."""
  results, loaded = Results(), {}
  keep_spectra = 'spectrum' in names
  for dataset_name, hr_dir in datasets.items():
    curves = results.spectra.setdefault(dataset_name, {})
    for model in models:
      crop = args.crop_border if args.crop_border is not None else (
          model.scale)
      key = (dataset_name, model.scale)
      if key not in loaded:
        try:
          loaded[key] = data = image_sets.load_image_set(
              hr_dir, lr_dirs.get(dataset_name), model.scale,
              args.lr_template, args.max_images)
        except (OSError, ValueError) as e:
          raise UsageError(f'--datasets {dataset_name}={hr_dir}: {e}'
                           ) from None
        for path, why in data.skipped:
          results.notes.append(f'{dataset_name}: skipped {path} ({why})')
          results.problems += 1
          print(f'  skipped {path}: {why}', file=sys.stderr)
        if not data.images:
          results.notes.append(f'{dataset_name}: no usable images')
          results.problems += 1
          continue
        label = f'bicubic x{model.scale}'
        bicubic = [(n, hr, image_sets.bicubic_up(lr, model.scale))
                   for n, hr, lr in data.images]
        baseline = eval_lib.score_set(
            ((n, hr, None, b) for n, hr, b in bicubic), names, crop, aux,
            on_image=_Progress(f'{label} on {dataset_name}',
                               len(data.images)), score_hr=True)
        results.rows.append(_row(dataset_name, label, len(data.images),
                                 baseline.means))
        hr_values = {n: baseline.means[f'{n}_hr'] for n in names
                     if f'{n}_hr' in baseline.means}
        if hr_values:
          results.rows.append(_row(dataset_name, 'HR', len(data.images),
                                   hr_values))
        _record(results, dataset_name, label, baseline, names)
        if keep_spectra and 'HR' not in curves:
          curves[label], curves['HR'] = spectrum.average_spectra(
              [b for _, _, b in bicubic], [hr for _, hr, _ in bicubic])
      data = loaded[key]
      if not data.images:
        continue
      image_dir = os.path.join(args.out, 'images', model.label, dataset_name)
      outputs_kept = []

      def outputs(model=model, data=data, image_dir=image_dir,
                  kept=outputs_kept):
        for name, hr, lr in data.images:
          sr = model.run(lr)
          if args.save_images:
            _save_image(os.path.join(image_dir, f'{name}.png'), sr)
          if keep_spectra:
            kept.append((sr, hr))
          yield name, hr, None, sr

      scores = eval_lib.score_set(
          outputs(), names, crop, aux,
          on_image=_Progress(f'{model.label} on {dataset_name}',
                             len(data.images)))
      results.rows.append(_row(dataset_name, model.label, len(data.images),
                               scores.means))
      _record(results, dataset_name, model.label, scores, names)
      if outputs_kept:
        curves[model.label] = spectrum.average_spectra(
            *zip(*outputs_kept))[0]
  return results


def _record(results: Results, dataset: str, model: str,
            scores: eval_lib.Scores, names: Sequence[str]) -> None:
  for metric, why in scores.failed.items():
    results.notes.append(f'{dataset} / {model}: {metric} not computed '
                         f'({why})')
    results.problems += 1
  for metric, skipped in scores.skipped.items():
    if metric in scores.failed:
      continue
    scored = len(scores.per_image) - len(skipped)
    for image, why in skipped:
      results.notes.append(f'{dataset} / {model}: {metric} skipped image '
                           f'{image} ({why}); its mean is over the other '
                           f'{scored} image(s)')
      print(f'  {metric} skipped image {image}: {why}', file=sys.stderr)
    results.problems += 1
  for image, values in scores.per_image.items():
    results.per_image.append([model, dataset, image] + [
        values.get(n) for n in names])


def _row(dataset, model, count, means) -> dict:
  return {'dataset': dataset, 'model': model, 'images': count,
          'values': dict(means)}


def plot_spectra(out: str, spectra: dict) -> list[str]:
  """spectra_<dataset>.png: HR, bicubic and each model's average spectrum."""
  written = []
  for dataset_name, curves in spectra.items():
    if curves:
      path = os.path.join(out, f'spectra_{dataset_name}.png')
      with _writing(path):
        spectrum.plot_spectra(path, curves,
                              f'Average spectra: {dataset_name}')
      written.append(path)
  return written


def check_folders(datasets: dict, lr_dirs: dict, out: str) -> None:
  """UsageError naming the flag for a --datasets / --lr-dirs folder that
  is missing or a file, or an --out that cannot be written (probed with a
  small file; nothing is left behind): before any model loads."""
  for flag, folders in (('--datasets', datasets), ('--lr-dirs', lr_dirs)):
    for name, path in folders.items():
      if not os.path.isdir(path):
        what = 'a file' if os.path.exists(path) else 'missing'
        raise UsageError(f'{flag} {name}={path}: the folder {path!r} is '
                         f'{what}; give {flag} NAME=DIR with DIR a folder '
                         'of images.')
  why = image_files.output_folder_problem(out)
  if why is not None:
    raise UsageError(f'--out {out}: cannot write to this folder ({why}); '
                     'use another --out.')


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  logging.set_verbosity(logging.ERROR)  # orbax's notes on read-only loads.
  try:
    if args.fid_patch < 0:
      raise UsageError(f'--fid-patch must be >= 0; got {args.fid_patch}.')
    names = metric_names(args.metrics, args.test_y, args.fid_patch)
    datasets = named_list(args.datasets, '--datasets')
    lr_dirs = named_list(args.lr_dirs, '--lr-dirs')
    unknown = sorted(set(lr_dirs) - set(datasets))
    if unknown:
      raise UsageError(f'--lr-dirs names {unknown}, which --datasets does '
                       f'not ({sorted(datasets)}).')
    for flag, value in (('--tile', args.tile), ('--tile-pad', args.tile_pad),
                        ('--pre-pad', args.pre_pad),
                        ('--max-images', args.max_images)):
      if value is not None and value < 0:
        raise UsageError(f'{flag} must be >= 0; got {value}.')
    frozen_paths = named_list(args.frozen, '--frozen')
    check_folders(datasets, lr_dirs, args.out)
    models = load_models(args)
  except UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for model in models:
    print(f'{model.label}: pre-pad {model.pre_pad} ({model.pre_pad_why}'
          + ('' if args.pre_pad is not None else
             '; --pre-pad N to change it') + ')', file=sys.stderr)
  usable, aux, missing = load_metric_weights(names, frozen_paths)
  for metric, why in missing.items():
    print(f'error: metric {metric} skipped: {why}', file=sys.stderr)
  try:
    results = evaluate_all(models, datasets, lr_dirs, usable, aux, args)
  except UsageError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  notes = [f'{m}: not computed ({why.splitlines()[0]})'
           for m, why in missing.items()] + results.notes
  crop = args.crop_border if args.crop_border is not None else ', '.join(
      sorted({str(m.scale) for m in models}))
  notes.append(f'Border cropped: {crop} px; PSNR / SSIM on '
               f'{"Y (BT.601)" if args.test_y else "RGB"}; LR: '
               f'{"from --lr-dirs" if lr_dirs else "MATLAB bicubic"}'
               f'{"; x8 self-ensemble" if args.ensemble else ""}.')
  notes.append(pre_pad_note(models, args.pre_pad))
  write_tables(args.out, names, results.rows, notes)
  write_per_image(args.out, usable, results.per_image)
  plot_spectra(args.out, results.spectra)
  with open(os.path.join(args.out, 'results.md')) as f:
    print(f.read())
  print(f'Wrote {args.out}/results.md, results.csv, per_image.csv.',
        file=sys.stderr)
  return 1 if missing or results.problems else 0


if __name__ == '__main__':
  sys.exit(main())
