r"""python -m sr_jax.sweep: train every variant of an ablation config, then
tabulate them as the thesis does.

  python -m sr_jax.sweep --config=configs/ablations/adversarial.py \
      --workdir=W [--variants=ragan,ragp] [--size=tiny|full] \
      [--set data.train_dir=DIR --set data.val_dir=DIR ...] \
      [--datasets=set5=DIR,...] [--metrics=niqe,fid,lpips,...]

An ablation config has `VARIANTS` (its variant names, in table order) and
takes the arg 'VARIANT[,SIZE]' (sr_jax.config_lib.split_ablation_arg).

1. Training: each variant in W/<variant>/, one after another, each on all
   devices and hosts, with the --set overrides (dotted config fields, values
   as Python literals or plain strings) applied to every variant. It
   resumes like any run; a variant that finished (W/<variant>/DONE) is
   skipped, and one that crashes is reported (its error in
   W/<variant>/sweep_error.txt) without stopping the others.
2. Evaluation: `python -m sr_jax.evaluate` of every trained variant on
   --datasets (default: the ten scikit-image photos of `python -m
   sr_jax.data.benchmarks fetch photos10`, written to W/data), into
   W/evaluation/.
3. W/results.md and W/results.csv: rows are variants, columns the thesis's
   metrics (NIQE, FID, LPIPS, PSNR, SSIM, BRISQUE, spectrum discrepancy),
   per dataset; the best of each column in bold, the second underlined.
   Metrics whose weights are not cached show n/a (see the evaluation's
   notes).

Exit status: 0 when every variant trained and was evaluated, 1 otherwise.
"""
import argparse
import ast
import csv
import difflib
import importlib.util
import os
import sys
import traceback
from typing import Optional, Sequence

from sr_jax import train
from sr_jax.data import benchmarks
from sr_jax.evaluate import cli as evaluate_cli
from sr_jax.metrics import METRICS

THESIS_METRICS = 'niqe,fid,lpips,psnr,ssim,brisque,spectrum'
DONE = 'DONE'


def load_ablation(path: str):
  """The config module at `path` (with VARIANTS and get_config)."""
  if not os.path.isfile(path):
    raise FileNotFoundError(f'--config {path} does not exist.')
  spec = importlib.util.spec_from_file_location('ablation_config', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
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
    try:
      value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
      value = text
    out.append((key, value))
  return out


def apply_overrides(config, overrides) -> None:
  """Sets each dotted field, which must exist (with a did-you-mean)."""
  for key, value in overrides:
    *parents, leaf = key.split('.')
    node = config
    for part in parents:
      node = node[part]
    if leaf not in node:
      close = difflib.get_close_matches(leaf, list(node.keys()), n=1)
      hint = f' Did you mean {".".join(parents + close)}?' if close else ''
      raise ValueError(f'--set {key}: the config has no such field.{hint}')
    node[leaf] = value


def train_variants(module, names: Sequence[str], size: str,
                   workdir: str, overrides=()) -> dict[str, str]:
  """Trains each variant (skipping finished ones); {variant: error} of
  those that failed."""
  failed = {}
  for i, name in enumerate(names, 1):
    run_dir = os.path.join(workdir, name)
    if os.path.exists(os.path.join(run_dir, DONE)):
      print(f'[{i}/{len(names)}] {name}: finished earlier, skipped.',
            flush=True)
      continue
    print(f'[{i}/{len(names)}] {name}: training in {run_dir}', flush=True)
    try:
      config = module.get_config(f'{name},{size}' if size else name)
      apply_overrides(config, overrides)
      train.train_and_evaluate(config, run_dir)
    except Exception as e:  # pylint: disable=broad-except
      failed[name] = f'{type(e).__name__}: {e}'
      os.makedirs(run_dir, exist_ok=True)
      with open(os.path.join(run_dir, 'sweep_error.txt'), 'w') as f:
        f.write(traceback.format_exc())
      print(f'  {name} failed ({failed[name][:200]}); going on with the '
            'others.', file=sys.stderr, flush=True)
      continue
    with open(os.path.join(run_dir, DONE), 'w') as f:
      f.write('trained\n')
  return failed


def _mark(values: list, higher_is_better: bool) -> list[str]:
  """Formatted values, the best in bold and the second underlined."""
  present = sorted({v for v in values if v is not None},
                   reverse=higher_is_better)
  out = []
  for v in values:
    if v is None:
      out.append('n/a')
      continue
    text = f'{v:.4f}' if abs(v) < 100 else f'{v:.2f}'
    if present and v == present[0]:
      text = f'**{text}**'
    elif len(present) > 1 and v == present[1]:
      text = f'<u>{text}</u>'
    out.append(text)
  return out


def thesis_table(rows: list[dict], variants: Sequence[str],
                 metrics: Sequence[str]) -> tuple[str, list[list]]:
  """(markdown, csv rows) of the evaluation rows, variants as rows."""
  md, table = [], []
  for dataset in dict.fromkeys(r['dataset'] for r in rows):
    by_model = {r['model']: r for r in rows if r['dataset'] == dataset}
    present = [v for v in variants if v in by_model]
    md += [f'### {dataset}', '',
           '| variant | ' + ' | '.join(
               f'{m.upper()} {"↑" if METRICS.get(m).higher_is_better else "↓"}'
               for m in metrics) + ' |',
           '|' + ' --- |' * (1 + len(metrics))]
    columns = [_mark([_number(by_model[v].get(m)) for v in present],
                     METRICS.get(m).higher_is_better) for m in metrics]
    for i, variant in enumerate(present):
      md.append(f'| {variant} | ' + ' | '.join(c[i] for c in columns) + ' |')
      table.append([dataset, variant] + [by_model[variant].get(m, '')
                                         for m in metrics])
    md.append('')
  return '\n'.join(md), table


def _number(text):
  return float(text) if text not in (None, '') else None


def main(argv: Optional[Sequence[str]] = None) -> int:
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
  args = p.parse_args(argv)
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
    apply_overrides(module.get_config(f'{names[0]},runlocal'), overrides)
  except (OSError, ValueError, KeyError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  size = '' if args.size == 'full' else args.size
  failed = train_variants(module, names, size, args.workdir, overrides)
  trained = [v for v in names if v not in failed]
  if not trained:
    print('error: no variant trained.', file=sys.stderr)
    return 1
  datasets = args.datasets
  if not datasets:
    root = os.path.join(args.workdir, 'data')
    if not os.path.isdir(benchmarks.hr_dir(root, 'photos10')):
      benchmarks.fetch('photos10', root, scales=())
    datasets = f'photos10={benchmarks.hr_dir(root, "photos10")}'
  out = os.path.join(args.workdir, 'evaluation')
  code = evaluate_cli.main(
      sum((['--checkpoint', os.path.join(args.workdir, v)] for v in trained),
          []) + ['--datasets', datasets, '--metrics', ','.join(metrics),
                 '--out', out])
  if code == 2 or not os.path.exists(os.path.join(out, 'results.csv')):
    print('error: the evaluation failed; see above.', file=sys.stderr)
    return 1
  with open(os.path.join(out, 'results.csv'), newline='') as f:
    rows = list(csv.DictReader(f))
  markdown, table = thesis_table(rows, trained, metrics)
  with open(os.path.join(out, 'results.md')) as f:
    notes = [line for line in f.read().splitlines() if line.startswith('- ')]
  notes += [f'- {v}: training failed ({why[:300]})' for v, why in
            failed.items()]
  title = f'# {os.path.basename(args.config)} ({args.size})'
  with open(os.path.join(args.workdir, 'results.md'), 'w') as f:
    f.write('\n\n'.join([title, markdown, '\n'.join(notes)]) + '\n')
  with open(os.path.join(args.workdir, 'results.csv'), 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['dataset', 'variant'] + list(metrics))
    writer.writerows(table)
  print(open(os.path.join(args.workdir, 'results.md')).read())
  return 1 if failed else 0


if __name__ == '__main__':
  sys.exit(main())
