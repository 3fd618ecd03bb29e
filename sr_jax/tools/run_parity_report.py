"""The comparison half of sr_jax.tools.run_parity, torch-free: `Result`
(both runs' per-step curves, final distances and PSNRs, as `run` returns
it and `Result.from_json` reads it back), `check` (what breaks the parity,
against the float32 drift of the PyTorch run itself) and the reports
(`table`, `summary`, `plot`, `format_report`). See run_parity's docstring
for what the two runs are; everything here is re-exported from there.
"""
import dataclasses
from typing import Sequence

import numpy as np

# Per-step curves compared (sr_jax's log names; BasicSR's l_pix of the
# PSNR run is l_g_pix, its l_d_real + l_d_fake is l_d).
LOSSES = ('l_g_pix', 'l_g_percep', 'l_g_gan', 'l_d', 'out_d_real',
          'out_d_fake')
LEARNING_RATES = ('lr_g', 'lr_d')
NETWORKS = ('generator', 'generator_ema', 'discriminator')
# How far sr_jax may be from the float32 PyTorch run, in units of that
# run's own float32 drift (its distance to the float64 run); `check` says
# how each is used. Measured at the default Sizes over seeds 0-8 (the
# largest of each): per-phase geometric mean 3.6, single step 71, final
# parameters 2.6, validation PSNR 0.0007 dB. Deliberate semantic changes
# (same order): EMA decay 0.995 on one side 7187 / 254672 / 2108 / 1.49 dB;
# D's RaGAN not detached 76 / 200 / 3.9 / 0.0002 dB; skipped G updates not
# moving the schedule (the bug fixed in train_step) 11.2 / 86 / 18 / 0.012
# dB; GAN milestones one iteration late 2.9 / 56 / 1.9 / 0.003 dB, caught
# by the learning rates.
PHASE_FACTOR = 8.0
STEP_FACTOR = 300.0
PARAM_FACTOR = 5.0
PSNR_DB = 0.01
ULPS = 64


@dataclasses.dataclass
class Result:
  """Both runs (and the envelope run) of `run`."""
  phases: list[tuple[str, int, int]]  # (name, first step, last step), 1-based.
  scale: int
  jax: dict[str, np.ndarray]  # Per-step curves (index = global step - 1).
  torch: dict[str, np.ndarray]
  envelope: dict[str, np.ndarray] | None  # The float64 run's curves.
  distances: dict[str, float]  # sr_jax vs torch, final parameters.
  envelope_distances: dict[str, float] | None  # torch vs its float64 run.
  # 'trainer' (val/psnr: the EMA G), 'jax' (the same, recomputed), 'torch'
  # (its EMA G), 'torch_raw' (its G), 'trainer_raw' (val/psnr_raw, when
  # the trainer logs it).
  psnr: dict[str, float]
  seconds: dict[str, float]

  @property
  def steps(self) -> np.ndarray:
    return np.arange(1, len(self.torch['l_g_pix']) + 1)

  def phase_at(self, step: int) -> str:
    return next(n for n, a, b in self.phases if a <= step <= b)

  def to_json(self) -> dict:
    curves = lambda c: None if c is None else {
        k: [None if not np.isfinite(x) else float(x) for x in v]
        for k, v in c.items()}
    return dict(phases=self.phases, scale=self.scale,
                jax=curves(self.jax), torch=curves(self.torch),
                envelope=curves(self.envelope), distances=self.distances,
                envelope_distances=self.envelope_distances, psnr=self.psnr,
                seconds=self.seconds)

  @classmethod
  def from_json(cls, d: dict) -> 'Result':
    curves = lambda c: None if c is None else {
        k: np.array([np.nan if x is None else x for x in v], np.float64)
        for k, v in c.items()}
    return cls(phases=[tuple(p) for p in d['phases']], scale=d['scale'],
               jax=curves(d['jax']), torch=curves(d['torch']),
               envelope=curves(d['envelope']), distances=d['distances'],
               envelope_distances=d['envelope_distances'], psnr=d['psnr'],
               seconds=d['seconds'])


# ------------------------------------------------------- the comparison --


def running_max(x: np.ndarray, phases) -> np.ndarray:
  """max over the phase's steps <= t, NaN-skipping (0 before the first
  value); it starts again with each phase (a loss's weight may change)."""
  out = np.zeros_like(x)
  for _, a, b in phases:
    out[a - 1:b] = np.maximum.accumulate(np.nan_to_num(x[a - 1:b], nan=0.0))
  return out


def differences(result: Result) -> dict[str, dict[str, np.ndarray]]:
  """Per loss: |sr_jax - torch| ('diff'), |float64 - torch| ('env', its
  running max over the phase 'envelope'), each step; NaN where a side
  logged nothing."""
  out = {}
  for k in LOSSES:
    entry = {'diff': np.abs(result.jax[k] - result.torch[k])}
    if result.envelope is not None:
      entry['env'] = np.abs(result.envelope[k] - result.torch[k])
      entry['envelope'] = running_max(entry['env'], result.phases)
    out[k] = entry
  return out


def scale_of(result: Result, name: str) -> np.ndarray:
  """The size a loss's values have at each step: |torch|, but at least its
  median over the phase (logits cross zero; a difference of 1e-5 in a
  logit of 0.001 is no larger than in one of 1)."""
  values = np.abs(result.torch[name])
  floor = np.zeros_like(values)
  for _, a, b in result.phases:
    part = values[a - 1:b]
    if np.any(np.isfinite(part)):
      floor[a - 1:b] = np.nanmedian(part)
  return np.maximum(values, floor)


def _floor(result: Result, name: str) -> np.ndarray:
  """ULPS float32 ulps of the loss's size: the rounding of the logged
  values themselves, below which no difference means anything."""
  return ULPS * float(np.finfo(np.float32).eps) * scale_of(result, name)


def phase_ratios(result: Result) -> dict[tuple[str, str], float]:
  """{(loss, phase): geometric mean over the phase's steps of
  (|sr_jax - torch| + floor) / (|torch float64 - torch| + floor)}: how
  far sr_jax is from BasicSR, in units of BasicSR's own float32 drift."""
  out = {}
  for k in LOSSES:
    diff = np.abs(result.jax[k] - result.torch[k])
    env = np.abs(result.envelope[k] - result.torch[k])
    floor = _floor(result, k)
    for name, a, b in result.phases:
      part = slice(a - 1, b)
      ok = np.isfinite(diff[part]) & np.isfinite(env[part])
      if ok.any():
        out[k, name] = float(np.exp(np.mean(np.log(
            (diff[part][ok] + floor[part][ok]) /
            (env[part][ok] + floor[part][ok])))))
  return out


def step_ratios(result: Result) -> dict[str, np.ndarray]:
  """Per loss and step: (|sr_jax - torch| - floor) / envelope(t), with
  envelope(t) the running max of |torch float64 - torch| (float32 drift
  only grows); 0 where the difference is within the floor."""
  out = {}
  for k, d in differences(result).items():
    excess = d['diff'] - _floor(result, k)
    with np.errstate(divide='ignore', invalid='ignore'):
      out[k] = np.where(excess > 0, excess / d['envelope'], 0.0)
  return out


def check(result: Result) -> list[str]:
  """What breaks the parity (empty: none). Against the float32 drift of
  the PyTorch run itself (its distance to the float64 run):

  * every loss, every phase: geometric mean over the phase of
    (|sr_jax - torch| + floor) / (|float64 - torch| + floor) <=
    PHASE_FACTOR (floor: ULPS ulps of the loss's size);
  * every loss, every step: |sr_jax - torch| <= STEP_FACTOR x the running
    max (over the phase so far) of |float64 - torch| + floor (no single
    step off);
  * the learning rates sr_jax logs equal BasicSR's at every step;
  * final generator, EMA and discriminator: relative L2 distance <=
    PARAM_FACTOR x the float64 run's;
  * validation PSNR: the trainer's and the torch EMA's within PSNR_DB.
  """
  problems = []
  for (k, phase), ratio in phase_ratios(result).items():
    if not ratio <= PHASE_FACTOR:
      problems.append(f'{k} over phase {phase}: sr_jax is {ratio:.3g}x '
                      f'farther from torch than torch from float64 (> '
                      f'{PHASE_FACTOR:g})')
  diffs = differences(result)
  for k, ratio in step_ratios(result).items():
    bad = np.nonzero(ratio > STEP_FACTOR)[0]
    if bad.size:
      s = int(bad[0])
      problems.append(
          f'{k} at step {s + 1} ({result.phase_at(s + 1)}): sr_jax '
          f'{result.jax[k][s]:.7g}, torch {result.torch[k][s]:.7g}, |diff| '
          f'{diffs[k]["diff"][s]:.3g} > {STEP_FACTOR:g} x envelope '
          f'{diffs[k]["envelope"][s]:.3g} (+ {ULPS:g} ulp); {bad.size} such '
          'steps')
  for k in LEARNING_RATES:
    both = np.isfinite(result.torch[k]) & np.isfinite(result.jax[k])
    bad = np.nonzero(both & ~np.isclose(result.jax[k], result.torch[k],
                                        rtol=1e-6, atol=0))[0]
    if bad.size:
      s = int(bad[0])
      problems.append(f'{k} at step {s + 1}: sr_jax logs {result.jax[k][s]:g}'
                      f', BasicSR uses {result.torch[k][s]:g}')
  for n, dist in result.distances.items():
    bound = PARAM_FACTOR * result.envelope_distances[n]
    if not dist <= bound:
      problems.append(f'final {n}: relative distance {dist:.3g} > '
                      f'{PARAM_FACTOR:g} x float64 envelope '
                      f'{result.envelope_distances[n]:.3g}')
  for ours, theirs in (('trainer', 'torch'), ('trainer_raw', 'torch_raw')):
    if ours not in result.psnr:
      continue
    gap = abs(result.psnr[ours] - result.psnr[theirs])
    if not gap <= PSNR_DB:
      problems.append(f'val PSNR ({ours}): sr_jax {result.psnr[ours]:.4f} '
                      f'dB, {theirs} {result.psnr[theirs]:.4f} dB')
  return problems


def summary(result: Result) -> dict[str, dict[str, float]]:
  """Per loss: the largest relative difference (|diff| / scale_of) of
  sr_jax from torch ('<phase>_rel') and of torch from its float64 run
  ('<phase>_env_rel'), over the whole run ('run') and per phase; the
  largest per-step ratio of `check` ('step_ratio') and per-phase ratios
  ('<phase>_ratio')."""
  out = {}
  steps = step_ratios(result) if result.envelope is not None else {}
  phases = phase_ratios(result) if result.envelope is not None else {}
  for k, d in differences(result).items():
    scale = scale_of(result, k)
    row = {}
    if k in steps:
      row['step_ratio'] = float(np.nanmax(steps[k]))
    for name, a, b in [('run', 1, len(scale))] + result.phases:
      part = slice(a - 1, b)
      rel = d['diff'][part] / scale[part]
      if not np.any(np.isfinite(rel)):
        continue
      row[f'{name}_rel'] = float(np.nanmax(rel))
      if 'env' in d:
        row[f'{name}_env_rel'] = float(np.nanmax(d['env'][part] /
                                                 scale[part]))
      if (k, name) in phases:
        row[f'{name}_ratio'] = phases[k, name]
    out[k] = row
  return out


def table(result: Result, every: int = 25,
          names: Sequence[str] = LOSSES) -> str:
  """Markdown: each `every`-th step (and each phase's first and last),
  per loss sr_jax, torch and their difference."""
  marks = {1}
  for _, a, b in result.phases:
    marks.update((a, b))
  marks.update(range(every, len(result.steps) + 1, every))
  head = ['step', 'phase']
  for k in names:
    head += [f'{k} sr_jax', f'{k} torch', 'diff']
  lines = ['| ' + ' | '.join(head) + ' |',
           '|' + ' --- |' * len(head)]
  for s in sorted(marks):
    row = [str(s), result.phase_at(s)]
    for k in names:
      a, b = result.jax[k][s - 1], result.torch[k][s - 1]
      if not np.isfinite(b):
        row += ['-', '-', '-']
        continue
      row += [f'{a:.6g}', f'{b:.6g}', f'{a - b:+.2g}']
    lines.append('| ' + ' | '.join(row) + ' |')
  return '\n'.join(lines)


def plot(result: Result, path: str) -> str:
  """A PNG of the loss curves (sr_jax and torch per loss, top) and of
  |sr_jax - torch| against the envelope (bottom, log scale)."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')
  from matplotlib import pyplot as plt  # pylint: disable=g-import-not-at-top
  diffs = differences(result)
  fig, axes = plt.subplots(2, len(LOSSES), figsize=(4 * len(LOSSES), 6.5),
                           sharex=True)
  steps = result.steps
  for i, k in enumerate(LOSSES):
    top, bottom = axes[0, i], axes[1, i]
    top.plot(steps, result.torch[k], lw=1.6, label='torch (BasicSR)')
    top.plot(steps, result.jax[k], lw=0.8, ls='--', label='sr_jax')
    top.set_title(k)
    bottom.semilogy(steps, diffs[k]['diff'], lw=0.8, label='|sr_jax - torch|')
    if 'envelope' in diffs[k]:
      bottom.semilogy(steps, np.where(diffs[k]['envelope'] > 0,
                                      diffs[k]['envelope'], np.nan),
                      lw=0.8, label='envelope: running max |torch - torch '
                                    'float64|')
    for _, a, _ in result.phases[1:]:
      top.axvline(a, color='grey', lw=0.5)
      bottom.axvline(a, color='grey', lw=0.5)
    bottom.set_xlabel('step')
  axes[0, 0].legend(fontsize=8)
  axes[1, 0].legend(fontsize=8)
  fig.suptitle('sr_jax trainer vs BasicSR (PyTorch) on the same start and '
               'batches; grey lines: phase starts')
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)
  return path


def format_report(result: Result, every: int = 25) -> str:
  """The table, the per-loss summary, distances, PSNRs and `check`."""
  lines = [table(result, every), '',
           'per loss: max |sr_jax - torch| / size [max |torch - torch '
           'float64| / size] per phase; geometric-mean ratio over the phase '
           '(check: <= %g); max single-step ratio (check: <= %g)' % (
               PHASE_FACTOR, STEP_FACTOR)]
  for k, row in summary(result).items():
    parts = []
    for name in [p[0] for p in result.phases]:
      if f'{name}_rel' in row:
        env = row.get(f'{name}_env_rel')
        ratio = row.get(f'{name}_ratio')
        parts.append(f'{name} {row[f"{name}_rel"]:.2e}' +
                     (f' [{env:.2e}]' if env is not None else '') +
                     (f' x{ratio:.2f}' if ratio is not None else ''))
    if 'step_ratio' in row:
      parts.append(f'max step ratio {row["step_ratio"]:.1f}')
    lines.append(f'  {k}: ' + ', '.join(parts))
  lines.append('final parameters, relative L2 distance sr_jax - torch '
               '[torch - torch float64] (check: <= %g x):' % PARAM_FACTOR)
  for n, dist in result.distances.items():
    env = (result.envelope_distances or {}).get(n)
    lines.append(f'  {n}: {dist:.3e}' +
                 (f' [{env:.3e}]' if env is not None else ''))
  p = result.psnr
  lines.append(f'validation PSNR (Y, crop {result.scale}; check: within '
               f'{PSNR_DB:g} dB): EMA generator: trainer val/psnr '
               f'{p["trainer"]:.4f} dB (recomputed {p["jax"]:.4f}), torch '
               f'{p["torch"]:.4f} dB (diff {p["trainer"] - p["torch"]:+.4f})')
  if 'trainer_raw' in p:
    lines.append(f'  raw generator: trainer val/psnr_raw '
                 f'{p["trainer_raw"]:.4f} dB, torch {p["torch_raw"]:.4f} dB '
                 f'(diff {p["trainer_raw"] - p["torch_raw"]:+.4f})')
  lines.append('seconds: ' + ', '.join(f'{k} {v:.1f}'
                                       for k, v in result.seconds.items()))
  if result.envelope is not None:
    problems = check(result)
    lines.append('parity check: ' + ('OK' if not problems else
                                     'FAILED\n  ' + '\n  '.join(problems)))
  return '\n'.join(lines)
