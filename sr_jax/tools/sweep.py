r"""python -m sr_jax.sweep: train every variant of an ablation config, then
tabulate them as the thesis does.

  python -m sr_jax.sweep --config=configs/ablations/adversarial.py \
      --workdir=W [--variants=ragan,ragp] [--size=tiny|full] \
      [--set data.train_dir=DIR --set data.val_dir=DIR ...] \
      [--datasets=set5=DIR,...] [--metrics=niqe,fid,lpips,...] \
      [--max-images=N]

An ablation config has `VARIANTS` (its variant names, in table order) and
takes the arg 'VARIANT[,SIZE]' (sr_jax.train.config_lib.split_ablation_arg).

1. The shared warm-up: the leading phases that every variant runs
   identically (ESRGAN's PSNR warm-up: only the GAN phase differs between
   the thesis's variants) are trained once, in W/_warmup, and every
   variant's GAN phase starts from its best EMA generator, as the thesis
   and BasicSR (pretrain_network_g) start every GAN run from one PSNR
   model. --no-shared-warmup trains each variant from scratch.
2. Training: each variant in W/<variant>/, one after another, each on all
   devices and hosts, with the --set overrides (dotted config fields, values
   as Python literals or plain strings) applied to every variant. It
   resumes like any run; a variant that finished (W/<variant>/DONE) is
   skipped, and one that crashes is reported (its error in
   W/<variant>/sweep_error.txt) without stopping the others.
3. Evaluation: `python -m sr_jax.evaluate --save-images` of every trained
   variant and the warm-up on --datasets (default: the ten scikit-image
   photos of `python -m sr_jax.data.benchmarks fetch photos10`, written to
   W/data), into W/evaluation/ (SR images in W/evaluation/images/);
   --max-images=N: on the first N images of each only, for a quick look.
4. W/results.md and W/results.csv: rows are the variants finished in W
   (those of earlier runs with other --variants too), columns the thesis's
   metrics (NIQE, FID, LPIPS, PSNR, SSIM, BRISQUE, spectrum discrepancy),
   per dataset; the best variant of each column in bold, the second
   underlined; then the references, unmarked: the PSNR warm-up, bicubic
   and (no-reference metrics) HR. Metrics whose weights are not cached
   show n/a (see the evaluation's notes).

Exit status: 0 when every variant trained and was evaluated, 1 otherwise.
"""
import argparse
import copy
import csv
import functools
import json
import os
import sys
import traceback
from typing import Any, Callable, Mapping, Optional, Sequence

from absl import flags
import ml_collections

from sr_jax import errors
from sr_jax.data import benchmarks
from sr_jax.evaluate import cli as evaluate_cli
from sr_jax.metrics import METRICS
from sr_jax.train import config_lib
from sr_jax.train import loop as train

THESIS_METRICS = 'niqe,fid,lpips,psnr,ssim,brisque,spectrum'
DONE = 'DONE'
WARMUP = '_warmup'
MANIFEST = 'sweep.json'  # What sr_jax.tools.sweep_report reads.


def load_ablation(path: str):
  """The config module at `path` (with VARIANTS and get_config)."""
  module = config_lib.load_config_module(path)
  if not hasattr(module, 'VARIANTS'):
    raise ValueError(f'--config {path} has no VARIANTS: not an ablation '
                     'config (see configs/ablations/).')
  return module


def parse_overrides(items: Sequence[str]) -> list[tuple[str, object]]:
  """['data.train_dir=/d', 'batch_size=8'] -> [(field, value)]."""
  out = []
  for item in items:
    key, sep, text = item.partition('=')
    if not sep or not key:
      raise ValueError(f'--set {item!r}: expected FIELD=VALUE, e.g. '
                       'data.train_dir=/data/DIV2K_train_HR.')
    out.append((key, config_lib.parse_value(text)))
  return out


def shared_warmup(configs: Mapping[str, ml_collections.ConfigDict]
                  ) -> tuple[str, ...]:
  """The leading phases that every variant runs identically, which the
  sweep trains once: phases that train only the generator, are followed by
  a phase starting from their EMA generator ('ema', ESRGAN's GAN phase),
  and whose variants' configs agree on everything but the later phases.
  () when there are none (or a single variant)."""
  if len(configs) < 2:
    return ()
  first = next(iter(configs.values()))
  phases = tuple(first.phases)
  if any(tuple(c.phases) != phases for c in configs.values()):
    return ()

  def without(c, later):
    d = c.to_dict()
    for name in later + ('variant',):
      d.pop(name, None)
    return d

  shared = ()
  for k in range(1, len(phases)):
    head, later = phases[:k], phases[k:]
    if (any(tuple(first[p].train) != ('generator',) for p in head)
        or first[head[-1]].steps <= 0
        or any(c[later[0]].start != 'ema' for c in configs.values())):
      continue
    reference = without(first, later)
    if all(without(c, later) == reference for c in configs.values()):
      shared = head
  return shared


def warmup_overrides(phases: Sequence[str]) -> list[tuple[str, Any]]:
  """The shared warm-up's run: a variant's config cut to its first
  `phases` (config_lib.apply_overrides' fields and values)."""
  return [('phases', tuple(phases))]


def after_warmup_overrides(phases: Sequence[str], warmup_dir: str
                           ) -> list[tuple[str, Any]]:
  """A variant that starts from the shared warm-up's best EMA generator
  (BasicSR's pretrain_network_g) instead of training `phases` itself."""
  return ([(f'{name}.steps', 0) for name in phases]
          + [('generator.init_from', warmup_dir)])


def _failure(run_dir: str, failed: dict, error: Exception) -> None:
  """Records a variant's failure (its traceback in sweep_error.txt)."""
  name = os.path.basename(run_dir)
  failed[name] = f'{type(error).__name__}: {error}'
  os.makedirs(run_dir, exist_ok=True)
  with open(os.path.join(run_dir, 'sweep_error.txt'), 'w') as f:
    f.write(traceback.format_exc())
  print(f'  {name} failed ({failed[name][:200]}); going on with the '
        'others.', file=sys.stderr, flush=True)


def _train_one(label: str, run_dir: str, train_fn: Callable[[str], Any],
               failed: dict) -> bool:
  """Runs train_fn(run_dir) unless it finished earlier; False when it
  failed (recorded in `failed` and run_dir/sweep_error.txt)."""
  if os.path.exists(os.path.join(run_dir, DONE)):
    print(f'{label}: finished earlier, skipped.', flush=True)
    return True
  print(f'{label}: training in {run_dir}', flush=True)
  try:
    train_fn(run_dir)
  except Exception as e:  # pylint: disable=broad-except
    _failure(run_dir, failed, e)
    return False
  with open(os.path.join(run_dir, DONE), 'w') as f:
    f.write('trained\n')
  return True


def train_variants(module, names: Sequence[str], size: str,
                   workdir: str, overrides=(),
                   share_warmup: bool = True) -> dict[str, str]:
  """Trains each variant (skipping finished ones); {variant: error} of
  those that failed. With share_warmup, the phases all variants run
  identically (`shared_warmup`, e.g. ESRGAN's PSNR warm-up) are trained
  once in W/_warmup and every variant starts from its generator."""
  failed, configs = {}, {}
  # Every variant of the config decides what is shared (a rerun of a
  # subset starts from the same warm-up as the rest).
  for name in dict.fromkeys(list(module.VARIANTS) + list(names)):
    try:
      configs[name] = module.get_config(f'{name},{size}' if size else name)
      config_lib.apply_overrides(configs[name], overrides, '--set ')
    except Exception as e:  # pylint: disable=broad-except
      configs.pop(name, None)
      if name in names:
        _failure(os.path.join(workdir, name), failed, e)
  shared = shared_warmup(configs) if share_warmup else ()
  configs = {name: c for name, c in configs.items() if name in names}
  if shared and configs:
    warmup_dir = os.path.join(workdir, WARMUP)
    warmup = copy.deepcopy(next(iter(configs.values())))
    config_lib.apply_overrides(warmup, warmup_overrides(shared))
    label = f'[warm-up] {"+".join(shared)}, shared by every variant'
    if not _train_one(label, warmup_dir, functools.partial(
        train.train_and_evaluate, warmup), failed):
      return {name: failed.get(name) or
              f'the shared warm-up failed: {failed[WARMUP]}'
              for name in names}
    for c in configs.values():
      config_lib.apply_overrides(c, after_warmup_overrides(shared,
                                                           warmup_dir))
  for i, name in enumerate(names, 1):
    if name in configs:
      _train_one(f'[{i}/{len(names)}] {name}', os.path.join(workdir, name),
                 functools.partial(train.train_and_evaluate, configs[name]),
                 failed)
  return failed


def _format(v) -> str:
  if v is None:
    return 'n/a'
  return f'{v:.4f}' if abs(v) < 100 else f'{v:.2f}'


def _mark(values: list, higher_is_better: bool) -> list[str]:
  """Formatted values, the best in bold and the second underlined."""
  present = sorted({v for v in values if v is not None},
                   reverse=higher_is_better)
  out = []
  for v in values:
    text = _format(v)
    if v is not None and v == present[0]:
      text = f'**{text}**'
    elif v is not None and len(present) > 1 and v == present[1]:
      text = f'<u>{text}</u>'
    out.append(text)
  return out


def references(models: Sequence[str]) -> list[str]:
  """The evaluation's reference rows, in table order: the warm-up, bicubic
  and HR (the no-reference metrics of the ground truth)."""
  return ([WARMUP] * (WARMUP in models)
          + [m for m in models if m.startswith('bicubic')]
          + ['HR'] * ('HR' in models))


def reference_label(model: str) -> str:
  """A model's name in the tables and plots ('PSNR warm-up' for W/_warmup)."""
  return 'PSNR warm-up' if model == WARMUP else model


def thesis_table(rows: list[dict], variants: Sequence[str],
                 metrics: Sequence[str]) -> tuple[str, list[list]]:
  """(markdown, csv rows) of the evaluation rows: variants as rows, the
  best and second marked, then the references (`references`) unmarked."""
  md, table = [], []
  for dataset in dict.fromkeys(r['dataset'] for r in rows):
    by_model = {r['model']: r for r in rows if r['dataset'] == dataset}
    present = [v for v in variants if v in by_model]
    md += [f'### {dataset}', '',
           '| variant | ' + ' | '.join(
               f'{m.upper()} {"↑" if METRICS.get(m).higher_is_better else "↓"}'
               for m in metrics) + ' |',
           '|' + ' --- |' * (1 + len(metrics))]
    columns = [_mark([number(by_model[v].get(m)) for v in present],
                     METRICS.get(m).higher_is_better) for m in metrics]
    for i, variant in enumerate(present):
      md.append(f'| {variant} | ' + ' | '.join(c[i] for c in columns) + ' |')
    for ref in references(list(by_model)):
      md.append(f'| *{reference_label(ref)}* | ' + ' | '.join(
          _format(number(by_model[ref].get(m))) for m in metrics) + ' |')
    for model in present + references(list(by_model)):
      table.append([dataset, model] + [by_model[model].get(m, '')
                                       for m in metrics])
    md.append('')
  return '\n'.join(md), table


def number(text):
  """A results.csv cell as a float; None where the metric is missing."""
  return float(text) if text not in (None, '') else None


def _parser() -> argparse.ArgumentParser:
  p = argparse.ArgumentParser(
      prog='python -m sr_jax.sweep', description=__doc__.split('\n\n')[0],
      epilog=__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument('--config', required=True, help='an ablation config file')
  p.add_argument('--workdir', required=True)
  p.add_argument('--variants', default='', help='comma list (default all)')
  p.add_argument('--size', choices=('full', 'tiny', 'runlocal'),
                 default='full')
  p.add_argument('--set', action='append', default=[], metavar='FIELD=VALUE',
                 help='a config override for every variant (repeatable)')
  p.add_argument('--datasets', default='', metavar='NAME=DIR,...',
                 help='test sets (default: photos10 written to W/data)')
  p.add_argument('--metrics', default=THESIS_METRICS)
  p.add_argument('--max-images', type=int, default=0, metavar='N',
                 help='evaluate on the first N images of each dataset '
                      '(default 0: all), for a quicker look')
  p.add_argument('--shared-warmup', action=argparse.BooleanOptionalAction,
                 default=True,
                 help='train the phases every variant runs identically '
                      '(the PSNR warm-up) once, in W/_warmup (default)')
  return p


def _default_datasets(workdir: str) -> str:
  """--datasets when none is given: photos10, fetched into W/data once."""
  root = os.path.join(workdir, 'data')
  if not os.path.isdir(benchmarks.hr_dir(root, 'photos10')):
    benchmarks.fetch('photos10', root, scales=())
  return f'photos10={benchmarks.hr_dir(root, "photos10")}'


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  # An argparse program: grain's workers (data.num_workers > 0) read absl
  # flags, with their defaults.
  flags.FLAGS.mark_as_parsed()
  try:
    module = load_ablation(args.config)
    variants = list(module.VARIANTS)
    names = [v for v in args.variants.split(',') if v] or variants
    unknown = [v for v in names if v not in variants]
    if unknown:
      raise ValueError(f'--variants {unknown}: {args.config} has '
                       f'{", ".join(variants)}.')
    metrics = evaluate_cli.metric_names(args.metrics, test_y=True)
    overrides = parse_overrides(args.set)
    size = '' if args.size == 'full' else args.size
    first = module.get_config(f'{names[0]},{size}' if size else names[0])
    config_lib.apply_overrides(first, overrides, '--set ')
    scale = int(first.scale)
  except (OSError, ValueError, KeyError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  failed = train_variants(module, names, size, args.workdir, overrides,
                          args.shared_warmup)
  # The table has every finished variant in W (a rerun of a subset keeps
  # the others' rows), in the config's order.
  trained = [v for v in variants if v not in failed and os.path.exists(
      os.path.join(args.workdir, v, DONE))]
  if not trained:
    print('error: no variant trained.', file=sys.stderr)
    return 1
  datasets = args.datasets or _default_datasets(args.workdir)
  out = os.path.join(args.workdir, 'evaluation')
  runs = trained + [WARMUP] * os.path.exists(
      os.path.join(args.workdir, WARMUP, DONE))
  code = evaluate_cli.main(
      sum((['--checkpoint', os.path.join(args.workdir, v)] for v in runs),
          []) + ['--datasets', datasets, '--metrics', ','.join(metrics),
                 '--max-images', str(args.max_images), '--save-images',
                 '--out', out])
  if code == 2 or not os.path.exists(os.path.join(out, 'results.csv')):
    print('error: the evaluation failed; see above.', file=sys.stderr)
    return 1
  with open(os.path.join(out, 'results.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  markdown, table = thesis_table(rows, trained, metrics)
  with open(os.path.join(out, 'results.md')) as f:
    notes = [line for line in f.read().splitlines() if line.startswith('- ')]
  if args.max_images:
    notes.append(f'- Evaluated on the first {args.max_images} images of '
                 'each dataset (--max-images).')
  notes += [f'- {v}: training failed ({why[:300]})' for v, why in
            failed.items()]
  evaluated = {r['model'] for r in rows}
  unscored = [v for v in trained if v not in evaluated]
  notes += [f'- {v}: trained but not in the evaluation' for v in unscored]
  title = f'# {os.path.basename(args.config)} ({args.size})'
  text = '\n\n'.join([title, markdown, '\n'.join(notes)]) + '\n'
  with open(os.path.join(args.workdir, 'results.md'), 'w') as f:
    f.write(text)
  with open(os.path.join(args.workdir, 'results.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['dataset', 'variant'] + list(metrics))
    writer.writerows(table)
  with open(os.path.join(args.workdir, MANIFEST), 'w') as f:
    json.dump(dict(config=os.path.abspath(args.config), size=args.size,
                   variants=trained, failed=failed,
                   datasets=evaluate_cli.named_list(datasets, '--datasets'),
                   metrics=list(metrics), scale=scale), f, indent=1)
  print(text)
  return 1 if failed or unscored else 0


if __name__ == '__main__':
  sys.exit(main())
