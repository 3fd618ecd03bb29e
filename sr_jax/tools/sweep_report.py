"""The ablation notebooks' figures, from a sweep directory
(`python -m sr_jax.sweep`): its table, loss curves, average spectra, crop
grid and perception-distortion plane.

  from sr_jax.tools import sweep_report as report
  sweep = report.open_sweep('configs/ablations/adversarial.py', 'W')
  print(sweep.markdown)
  report.loss_curves(sweep)
  report.spectra(sweep)
  report.crop_grid(sweep)
  report.perception_distortion(sweep)

What it reads: W/sweep.json (the sweep's manifest: config, size, variants,
datasets, scale), W/results.md and W/evaluation/results.csv (the table),
W/<variant>/scalars.csv (training scalars) and W/evaluation/images/ (the
variants' SR outputs). Every figure is a matplotlib Figure.
"""
import csv
import dataclasses
import glob
import json
import os
from typing import Optional, Sequence

import matplotlib
from matplotlib import pyplot as plt
import numpy as np

from sr_jax.data import image_io
from sr_jax.evaluate import image_sets
from sr_jax.metrics import METRICS
from sr_jax.metrics import spectrum
from sr_jax.tools import sweep as sweep_lib
from sr_jax.utils import scalar_csv

# The thesis's loss figure: the generator's adversarial term and the
# discriminator's loss, per variant.
LOSS_TAGS = ('train/l_g_gan', 'train/l_d')


@dataclasses.dataclass
class Sweep:
  """A finished sweep: where it is and what it found."""
  workdir: str
  config: str
  size: str
  variants: list  # Trained variants, in table order.
  datasets: dict  # {name: HR folder}
  scale: int
  markdown: str  # W/results.md
  rows: list  # W/evaluation/results.csv: every model, bicubic and HR.

  @property
  def references(self) -> list:
    """The reference models of the evaluation (warm-up, bicubic, HR)."""
    return sweep_lib.references(list(dict.fromkeys(
        r['model'] for r in self.rows)))


def open_sweep(config_file: str, workdir: str, size: str = 'tiny',
               variants: Sequence[str] = (), run: bool = True,
               extra_args: Sequence[str] = ()) -> Sweep:
  """The sweep of ablation config file `config_file` in `workdir`. With
  run=True, runs (or resumes) `python -m sr_jax.sweep --size=SIZE` there
  first unless it has already finished; with run=False, a workdir without
  results is an error."""
  manifest = os.path.join(workdir, sweep_lib.MANIFEST)
  if not os.path.exists(manifest):
    if not run:
      raise FileNotFoundError(
          f'{workdir} has no finished sweep ({sweep_lib.MANIFEST}): run '
          f'python -m sr_jax.sweep --config={config_file} --workdir={workdir} '
          'first.')
    args = [f'--config={config_file}', f'--workdir={workdir}', f'--size={size}']
    if variants:
      args.append('--variants=' + ','.join(variants))
    code = sweep_lib.main(args + list(extra_args))
    if not os.path.exists(manifest):
      raise RuntimeError(f'the sweep in {workdir} failed (exit {code}); '
                         'see its output above.')
  return load_sweep(workdir)


def load_sweep(workdir: str) -> Sweep:
  """A finished sweep's manifest, table and evaluation rows."""
  with open(os.path.join(workdir, sweep_lib.MANIFEST)) as f:
    info = json.load(f)
  with open(os.path.join(workdir, 'results.md')) as f:
    markdown = f.read()
  with open(os.path.join(workdir, 'evaluation', 'results.csv'),
            newline='') as f:
    rows = list(csv.DictReader(f))
  return Sweep(workdir=workdir, config=info['config'], size=info['size'],
               variants=list(info['variants']),
               datasets=dict(info['datasets']), scale=int(info['scale']),
               markdown=markdown, rows=rows)


def loss_curves(sweep: Sweep, tags: Sequence[str] = LOSS_TAGS,
                variants: Sequence[str] = ()) -> matplotlib.figure.Figure:
  """One panel per tag (default: G's adversarial loss and D's loss), one
  line per variant, over the GAN phase's steps."""
  variants = list(variants) or sweep.variants
  figure, axes = plt.subplots(1, len(tags), figsize=(5.5 * len(tags), 3.8),
                              squeeze=False)
  # In step order, the last value of a step logged twice (a resume).
  scalars = {v: scalar_csv.read_scalars(os.path.join(sweep.workdir, v))
             for v in variants}
  for ax, tag in zip(axes[0], tags):
    for variant in variants:
      if scalars[variant].get(tag):
        ax.plot(*zip(*scalars[variant][tag]), label=variant)
    ax.set_title(tag)
    ax.set_xlabel('step')
    ax.grid(alpha=0.3)
    ax.legend(fontsize='small')
  figure.tight_layout()
  return figure


def _dataset(sweep: Sweep, dataset: Optional[str]) -> str:
  dataset = dataset or next(iter(sweep.datasets))
  if dataset not in sweep.datasets:
    raise KeyError(f'dataset {dataset!r}: the sweep has '
                   f'{", ".join(sweep.datasets)}.')
  return dataset


def sr_images(sweep: Sweep, model: str, dataset: str) -> dict:
  """{image name: the model's saved SR output (uint8)}."""
  root = os.path.join(sweep.workdir, 'evaluation', 'images', model, dataset)
  paths = sorted(glob.glob(os.path.join(root, '**', '*.png'),
                           recursive=True))
  return {os.path.relpath(p, root)[:-len('.png')]: image_io.read_image(p)
          for p in paths}


def test_images(sweep: Sweep, dataset: str) -> list:
  """[(name, HR, LR, bicubic)] of a dataset, as the evaluation made them."""
  images = image_sets.load_image_set(sweep.datasets[dataset], None,
                                     sweep.scale).images
  return [(name, hr, lr, image_sets.bicubic_up(lr, sweep.scale))
          for name, hr, lr in images]


def spectra(sweep: Sweep, dataset: Optional[str] = None
            ) -> matplotlib.figure.Figure:
  """The average normalised 1D power spectra of HR, bicubic and each
  variant (the evaluation's spectrum discrepancy compares these)."""
  dataset = _dataset(sweep, dataset)
  images = test_images(sweep, dataset)
  hr = [h for _, h, _, _ in images]
  curves = {'HR': spectrum.average_spectra(hr, hr)[1],
            'bicubic': spectrum.average_spectra(
                [b for _, _, _, b in images], hr)[0]}
  for variant in sweep.variants:
    outputs = sr_images(sweep, variant, dataset)
    if outputs:
      curves[variant] = spectrum.average_spectra(list(outputs.values()),
                                                 hr)[0]
  figure, (full, high) = plt.subplots(1, 2, figsize=(11, 3.8))
  for label, curve in curves.items():
    f = np.linspace(0, 1, len(curve))
    style = dict(color='black', lw=2) if label == 'HR' else (
        dict(color='grey', ls='--') if label == 'bicubic' else {})
    full.plot(f, curve, label=label, **style)
    keep = f >= 0.5
    high.plot(f[keep], curve[keep], label=label, **style)
  full.set_title(f'Average 1D power spectra ({dataset})')
  high.set_title('high frequencies')
  for ax in (full, high):
    ax.set_xlabel('normalised spatial frequency')
    ax.grid(alpha=0.3)
  full.set_ylabel('normalised log power')
  high.legend(fontsize='small')
  figure.tight_layout()
  return figure


def _texture_box(hr: np.ndarray, size: int) -> tuple[int, int]:
  """The top-left corner of the size x size HR crop with the most detail
  (mean absolute gradient), on a grid of half-crop steps."""
  grey = hr.astype(np.float32).mean(-1)
  detail = np.abs(np.diff(grey, axis=0))[:, :-1] + np.abs(
      np.diff(grey, axis=1))[:-1]
  best, corner = -1.0, (0, 0)
  for y in range(0, max(1, hr.shape[0] - size), max(1, size // 2)):
    for x in range(0, max(1, hr.shape[1] - size), max(1, size // 2)):
      value = detail[y:y + size, x:x + size].mean()
      if value > best:
        best, corner = value, (y, x)
  return corner


def crop_grid(sweep: Sweep, dataset: Optional[str] = None,
              images: Sequence[str] = (), size: int = 96,
              max_images: int = 2) -> matplotlib.figure.Figure:
  """Crops of LR (nearest) | bicubic | each variant | HR, one row per
  image (default: the first `max_images`), each at the size x size HR
  crop with the most detail (its LR crop is size / scale)."""
  dataset = _dataset(sweep, dataset)
  tests = test_images(sweep, dataset)
  names = list(images) or [n for n, *_ in tests][:max_images]
  by_name = {t[0]: t for t in tests}
  unknown = [n for n in names if n not in by_name]
  if unknown:
    raise KeyError(f'images {unknown} are not in {dataset}: '
                   f'{", ".join(by_name)}.')
  outputs = {v: sr_images(sweep, v, dataset) for v in sweep.variants}
  columns = ['LR', 'bicubic'] + sweep.variants + ['HR']
  s = sweep.scale
  size = size // s * s
  figure, axes = plt.subplots(len(names), len(columns), squeeze=False,
                              figsize=(1.6 * len(columns),
                                       1.8 * len(names)))
  for r, name in enumerate(names):
    row = axes[r]
    _, hr, lr, bicubic = by_name[name]
    y, x = _texture_box(hr, size)
    y, x = y // s * s, x // s * s
    box = np.s_[y:y + size, x:x + size]
    lr_crop = lr[y // s:(y + size) // s, x // s:(x + size) // s]
    panels = [np.repeat(np.repeat(lr_crop, s, 0), s, 1), bicubic[box]]
    panels += [outputs[v][name][box] if name in outputs[v] else
               np.zeros_like(hr[box]) for v in sweep.variants]
    panels.append(hr[box])
    for ax, panel, label in zip(row, panels, columns):
      ax.imshow(panel, interpolation='nearest')
      ax.set_xticks([])
      ax.set_yticks([])
      if r == 0:
        ax.set_title(label, fontsize='small')
    row[0].set_ylabel(name, fontsize='small')
  figure.tight_layout()
  return figure


def perception_distortion(sweep: Sweep, dataset: Optional[str] = None,
                          distortion: str = 'psnr',
                          perception: Optional[str] = None
                          ) -> matplotlib.figure.Figure:
  """The perception-distortion plane (Blau & Michaeli 2018): each variant
  and the references (warm-up, bicubic) at (distortion, perception).
  perception: 'lpips' when it was computed, else 'niqe'."""
  dataset = _dataset(sweep, dataset)
  rows = {r['model']: r for r in sweep.rows if r['dataset'] == dataset}

  value = lambda model, metric: sweep_lib.number(
      rows.get(model, {}).get(metric))

  if perception is None:
    perception = next((m for m in ('lpips', 'niqe', 'brisque')
                       if any(value(v, m) is not None
                              for v in sweep.variants)), None)
    if perception is None:
      raise ValueError('no perceptual metric (lpips, niqe, brisque) in '
                       f'{sweep.workdir}/evaluation/results.csv.')
  figure, ax = plt.subplots(figsize=(6, 4.5))
  refs = [m for m in sweep.references if m != 'HR']
  for model in sweep.variants + refs:
    x, y = value(model, distortion), value(model, perception)
    if x is None or y is None:
      continue
    ref = model in refs
    ax.scatter([x], [y], marker='s' if ref else 'o',
               color='grey' if ref else None)
    ax.annotate(sweep_lib.reference_label(model), (x, y),
                textcoords='offset points', xytext=(4, 4), fontsize='small',
                color='grey' if ref else 'black')
  arrow = lambda m: '↑' if METRICS.get(m).higher_is_better else '↓'
  ax.set_xlabel(f'{distortion.upper()} {arrow(distortion)} (distortion)')
  ax.set_ylabel(f'{perception.upper()} {arrow(perception)} (perception)')
  ax.set_title(f'Perception-distortion ({dataset})')
  ax.grid(alpha=0.3)
  figure.tight_layout()
  return figure
