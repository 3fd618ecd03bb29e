"""python -m sr_jax.checkpoints WORKDIR

Lists every checkpoint of a training run: the resumable ones
(W/checkpoints/), the best of each phase (W/best/<phase>/) and those moved
aside as corrupt on a resume (W/corrupt_checkpoints/). Each is restored on
this host and checked against the checksums recorded when it was saved:

  step, phase, status (intact / CORRUPT and why / unverified for
  checkpoints of older sr_jax versions), whether all arrays are finite,
  and the validation metrics of that step.

Exit status: 0 when every checkpoint in use is intact, 1 when one is
corrupt (those already moved aside do not count), 2 for a bad WORKDIR.
"""
import argparse
import os
import sys
from typing import Optional, Sequence

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

from absl import logging  # pylint: disable=g-import-not-at-top

from sr_jax import checkpoint  # pylint: disable=g-import-not-at-top
from sr_jax import errors


def _status(c: checkpoint.CheckpointStatus) -> str:
  if c.problem is not None:
    return f'CORRUPT: {c.problem}'
  return 'intact' if c.verified else 'unverified (no checksums: older sr_jax)'


def _metrics(metrics: dict) -> str:
  """The model's metrics (the bicubic baselines logged beside them are
  the same at every step, so they are left out)."""
  return ', '.join(f'{k} {v:.4g}' for k, v in sorted(metrics.items())
                   if not k.endswith('_bicubic')) or '-'


def format_table(statuses: Sequence[checkpoint.CheckpointStatus],
                 workdir: str) -> str:
  """The listing, one block per folder."""
  lines, current = [], None
  for c in statuses:
    aside = checkpoint.CORRUPT_DIR in c.directory
    folder = (checkpoint.CORRUPT_DIR if aside
              else os.path.relpath(c.directory, workdir))
    if folder != current:
      current = folder
      title = {'checkpoints': 'resumable', checkpoint.CORRUPT_DIR:
               'moved aside, never deleted'}.get(folder, 'best')
      lines.append(f'{folder}/ ({title})')
      lines.append(f'  {"step":>8}  {"phase":<8} {"finite":<7} status; '
                   'metrics')
    finite = {True: 'yes', False: 'NO', None: '?'}[c.finite]
    step = '?' if c.step is None else str(c.step)
    where = f' [{os.path.basename(c.directory)}]' if aside else ''
    lines.append(f'  {step:>8}  {c.phase or "?":<8} {finite:<7} '
                 f'{_status(c)}{where}; {_metrics(c.metrics)}')
  return '\n'.join(lines)


@errors.cli
def main(argv: Optional[Sequence[str]] = None) -> int:
  parser = argparse.ArgumentParser(
      prog='python -m sr_jax.checkpoints',
      description=__doc__.split('\n\n', 1)[1],
      formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument('workdir', metavar='WORKDIR',
                      help="a training run's --workdir")
  args = parser.parse_args(argv)
  logging.set_verbosity(logging.ERROR)
  if not os.path.isdir(os.path.join(args.workdir, 'checkpoints')) and not (
      os.path.isdir(os.path.join(args.workdir, 'best'))):
    print(f'error: {args.workdir} holds no checkpoints/ or best/: is it the '
          '--workdir of a training run?', file=sys.stderr)
    return 2
  statuses = checkpoint.inspect_workdir(args.workdir)
  print(format_table(statuses, os.path.abspath(args.workdir)))
  in_use = [c for c in statuses if checkpoint.CORRUPT_DIR not in c.directory]
  bad = [c for c in in_use if not c.intact]
  print(f'{len(in_use)} checkpoint(s) in use, {len(bad)} corrupt, '
        f'{len(statuses) - len(in_use)} moved aside.')
  return 1 if bad else 0


if __name__ == '__main__':
  sys.exit(main())
