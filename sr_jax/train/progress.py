"""Console progress: steps/s, ETA and the latest losses, on process 0 only."""
import time

import jax


def format_duration(seconds: float) -> str:
  seconds = int(max(seconds, 0))
  h, rem = divmod(seconds, 3600)
  m, s = divmod(rem, 60)
  return f'{h}h{m:02d}m{s:02d}s' if h else f'{m}m{s:02d}s'


def _format(name: str, value: float) -> str:
  unit = ' dB' if name.startswith('psnr') else ''
  digits = 2 if name.startswith('psnr') else 4
  return f'{name.upper()} {value:.{digits}f}{unit}'


class ProgressReporter:
  """Prints one line per logging step.

  Speed is measured between reports and excludes the first report, which
  includes compilation.
  """

  def __init__(self, start_step: int, end_step: int):
    self.end_step = end_step
    self.start_time = time.time()
    self._last = None  # (time, step) of the previous report.
    self.enabled = jax.process_index() == 0

  def report_train(self, step: int, phase: str, scalars: dict) -> None:
    now = time.time()
    if self._last is None or step == self._last[1]:
      speed = None
    else:
      speed = (step - self._last[1]) / max(now - self._last[0], 1e-9)
    self._last = (now, step)
    if not self.enabled:
      return
    parts = [f'[{phase}] step {step}/{self.end_step}']
    if speed:
      eta = format_duration((self.end_step - step) / speed)
      parts.append(f'{speed:.2f} steps/s, ETA {eta}')
    else:
      parts.append(f'elapsed {format_duration(now - self.start_time)} '
                   '(incl. compile)')
    parts.append(' '.join(f'{k} {v:.4g}' for k, v in sorted(scalars.items())))
    print(' | '.join(parts), flush=True)

  def report_eval(self, step: int, metrics: dict, name: str = 'val',
                  baseline: str = 'bicubic') -> None:
    """One line per evaluation: '[eval]' for config.evals.val, else
    '[eval NAME]'; the '<metric>_bicubic' values under `baseline` (at scale
    1 they are the input's own: 'input')."""
    if self.enabled:
      model = ' '.join(_format(k, v) for k, v in metrics.items()
                       if not k.endswith(('_bicubic', '_raw')))
      raw = ' '.join(_format(k[:-len('_raw')], v)
                     for k, v in metrics.items() if k.endswith('_raw'))
      bicubic = ' '.join(_format(k[:-len('_bicubic')], v)
                         for k, v in metrics.items() if k.endswith('_bicubic'))
      label = 'eval' if name == 'val' else f'eval {name}'
      print(f'[{label}] step {step} | '
            + (f'EMA {model} | raw {raw}' if raw else model)
            + f' | {baseline} {bicubic} (PSNR/SSIM on Y unless _rgb; '
            'border cropped)', flush=True)
    # Evaluation time must not count as training speed.
    if self._last is not None:
      self._last = (time.time(), self._last[1])

  def report_done(self, step: int) -> None:
    if self.enabled:
      print(f'Done at step {step} in '
            f'{format_duration(time.time() - self.start_time)}.', flush=True)
