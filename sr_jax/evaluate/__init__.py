"""Evaluators: registered metrics of the generator and of bicubic on an
image set, shared by training validation, the interpolation sweep and
evaluation tools.

`config.evals` names each evaluation (`EvalSettings`, `build_evaluators`):
its HR images (`hr_dir`, default data.val_dir or the held-out sample
photos), its LR
source (`lr_dir` matched by `lr_filename_tmpl`, or '' for MATLAB bicubic of
the HR quantised to 8 bits, BasicSR's protocol), its metrics
(sr_jax.metrics.METRICS: psnr / ssim on Y, psnr_rgb / ssim_rgb, lpips, ...)
and how many labelled LR | bicubic | SR | HR strips to write. SR outputs
are rounded to uint8; bicubic up-sampling of the same LR is the baseline
('<metric>_bicubic'). `config.best_metric` ('<eval>/<metric>') picks each
phase's best checkpoint, lower-is-better metrics included.
"""
import dataclasses
import io
import os
from typing import Callable, Iterable, Mapping, Sequence

from absl import logging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
from PIL import ImageDraw

from sr_jax import data as data_lib
from sr_jax import errors
from sr_jax import degradations
from sr_jax.utils import io_utils
from sr_jax import metrics as sr_metrics
from sr_jax import weights
# to_uint8 is part of this module's API.
from sr_jax.evaluate.image_sets import to_uint8  # noqa: F401
from sr_jax.degradations.pipelines import bicubic_lr
from sr_jax.inference.pre_pad import DEFAULT_PRE_PAD
from sr_jax.inference.pre_pad import apply_pre_padded
from sr_jax.data.image_io import hr_to_float


def make_super_resolve_fn(generator, pre_pad: int = DEFAULT_PRE_PAD
                          ) -> Callable:
  """Returns jitted fn(variables, hr uint8 [1,H,W,3], lr=None) -> (lr,
  bicubic, sr); without lr, the LR is MATLAB bicubic of the HR.

  All three are float32 [1, ., ., 3] in [0, 1]; shapes differ per image, so
  each new size compiles once. The LR is edge-padded by `pre_pad` pixels
  for the generator and its output cropped back (inference.pre_pad): the
  generator's zero padding then leaves no line along the image edges.
  """
  scale = generator.scale

  @jax.jit
  def run(variables, hr_uint8, lr_uint8=None):
    hr = hr_to_float(hr_uint8)
    lr = bicubic_lr(hr, scale) if lr_uint8 is None else hr_to_float(lr_uint8)
    sr = apply_pre_padded(
        lambda x: generator.apply(variables, x, train=False), lr, scale,
        pre_pad).astype(jnp.float32)
    bicubic = degradations.imresize(lr, float(scale))
    return lr, jnp.clip(bicubic, 0.0, 1.0), jnp.clip(sr, 0.0, 1.0)

  return run




STRIP_LABELS = ('LR (nearest)', 'bicubic', 'SR', 'HR')
LABEL_HEIGHT = 14


def image_strip(lr: np.ndarray, bicubic: np.ndarray, sr: np.ndarray,
                hr: np.ndarray, labels: bool = True) -> np.ndarray:
  """LR (nearest-upscaled) | bicubic | SR | HR side by side, uint8 HxWx3,
  under a band naming each panel (labels=False: the bare images)."""
  s = hr.shape[0] // lr.shape[0]
  lr_big = np.repeat(np.repeat(lr, s, axis=0), s, axis=1)
  strip = np.concatenate([lr_big, bicubic, sr, hr], axis=1)
  if not labels:
    return strip
  band = Image.new('RGB', (strip.shape[1], LABEL_HEIGHT), (255, 255, 255))
  draw = ImageDraw.Draw(band)
  for k, text in enumerate(STRIP_LABELS):
    draw.text((k * hr.shape[1] + 3, 1), text, fill=(0, 0, 0))
  return np.concatenate([np.asarray(band), strip], axis=0)


DEFAULT_METRICS = ('psnr', 'ssim', 'psnr_rgb')


@dataclasses.dataclass
class Scores:
  """Metrics of one model on one image set.

  means: {metric: value} of the model, '<metric>_bicubic' of bicubic
    up-sampling of the same LR and, for no-reference metrics,
    '<metric>_hr' of the HR images; per-image metrics are averaged, set
    metrics computed on the whole set.
  per_image: {image name: {metric: value, ...}} for per-image metrics.
  skipped: {metric: [(image name, why), ...]} for images a per-image
    metric cannot score (too small for the border crop or NIQE's blocks):
    left out of that metric (for the model, bicubic and HR alike), whose
    mean is over the other images.
  failed: {metric: why} for metrics that could not be computed at all
    (every image skipped, a set metric's error); the others still are.
  """
  means: dict = dataclasses.field(default_factory=dict)
  per_image: dict = dataclasses.field(default_factory=dict)
  skipped: dict = dataclasses.field(default_factory=dict)
  failed: dict = dataclasses.field(default_factory=dict)


def _call(metric, images: Sequence, crop_border: int, aux: dict | None):
  kw = {'variables': aux[metric.frozen]} if metric.frozen else {}
  return float(metric.fn(*images, crop_border, **kw))


def score_set(outputs: Iterable[tuple], metric_names: Sequence[str],
              crop_border: int, aux: dict | None = None,
              on_image: Callable[[int], None] | None = None,
              score_hr: bool = False) -> Scores:
  """Registered metrics of SR outputs (and of bicubic) against HR.

  outputs: (name, hr, bicubic, sr) uint8 HxWx3 tuples; each is scored as
    it comes (only set metrics keep the images). bicubic may be None.
  crop_border: pixels cropped off each side before full-reference and
    no-reference metrics (BasicSR: the scale).
  aux: frozen networks' variables by name, for metrics with `frozen`.
  on_image: called with the count of images scored so far (progress).
  score_hr: also score the HR images with no-reference metrics
    ('<metric>_hr'), the reference row of a table.
  """
  found = [(n, sr_metrics.METRICS.get(n)) for n in metric_names]
  scores = Scores()
  kept = {'sr': [], 'bicubic': [], 'hr': []}
  keep = any(m.kind == 'set' for _, m in found)
  for count, (name, hr, bicubic, sr) in enumerate(outputs, 1):
    row = scores.per_image.setdefault(name, {})
    for metric_name, metric in found:
      if metric.kind == 'set' or metric_name in scores.failed:
        continue
      pairs = {metric_name: sr, f'{metric_name}_bicubic': bicubic}
      if metric.kind == 'no_reference' and score_hr:
        pairs[f'{metric_name}_hr'] = hr
      values = {}
      try:
        for key, image in pairs.items():
          if image is not None:
            values[key] = _call(metric, (image,) if metric.kind ==
                                'no_reference' else (image, hr), crop_border,
                                aux)
      except ValueError as e:  # This image only: the others still count.
        scores.skipped.setdefault(metric_name, []).append(
            (name, ' '.join(str(e).split()).rstrip('.')))
        continue
      row.update(values)
    if keep:
      kept['sr'].append(sr)
      kept['hr'].append(hr)
      kept['bicubic'].append(bicubic)
    if on_image is not None:
      on_image(count)
  for metric_name, metric in found:  # In the order asked for.
    if metric_name in scores.failed:
      continue
    if metric.kind != 'set':
      skipped = scores.skipped.get(metric_name)
      if skipped and not any(metric_name in row
                             for row in scores.per_image.values()):
        scores.failed[metric_name] = (
            f'no image could be scored: {skipped[0][0]}: {skipped[0][1]}')
        continue
      for key in (metric_name, f'{metric_name}_bicubic',
                  f'{metric_name}_hr'):
        values = [row[key] for row in scores.per_image.values() if key in row]
        if values:
          scores.means[key] = float(np.mean(values))
      continue
    if not kept['sr']:
      continue
    try:
      scores.means[metric_name] = _call(metric, (kept['sr'], kept['hr']),
                                        crop_border, aux)
      if all(b is not None for b in kept['bicubic']):
        scores.means[f'{metric_name}_bicubic'] = _call(
            metric, (kept['bicubic'], kept['hr']), crop_border, aux)
    except ValueError as e:
      scores.failed[metric_name] = str(e)
  return scores


def evaluate(super_resolve: Callable, variables,
             val_set: Sequence[tuple], scale: int,
             num_strips: int = 0, metric_names: Sequence[str] = DEFAULT_METRICS,
             aux: dict | None = None
             ) -> tuple[dict, list[tuple[str, np.ndarray]]]:
  """Each registered metric over the set (`score_set`), for the model and
  as '<name>_bicubic' for bicubic up-sampling, and the labelled strips of
  the first `num_strips` images.

  val_set: (name, hr uint8) or (name, hr uint8, lr uint8) tuples.
  aux: frozen networks' variables for metrics that need them (LPIPS).
  """
  strips = []

  def outputs():
    for i, (name, hr, *lr_given) in enumerate(val_set):
      lr_in = lr_given[0][None] if lr_given else None
      lr, bicubic, sr = jax.device_get(super_resolve(variables, hr[None],
                                                     lr_in))
      lr, bicubic, sr = to_uint8(lr[0]), to_uint8(bicubic[0]), to_uint8(sr[0])
      if i < num_strips:
        strips.append((name, image_strip(lr, bicubic, sr, hr)))
      yield name, hr, bicubic, sr

  scores = score_set(outputs(), metric_names, scale, aux)
  for metric, skipped in scores.skipped.items():
    if metric not in scores.failed:
      logging.warning('%s: images left out of the mean: %s', metric, skipped)
  if scores.failed:
    logging.warning('Metrics not computed: %s', scores.failed)
  return scores.means, strips


@dataclasses.dataclass(frozen=True)
class Evaluator:
  """One named evaluation: an image set, its metrics, its strips."""
  name: str
  images: list  # (name, hr) or (name, hr, lr) tuples, uint8.
  metrics: tuple[str, ...]
  num_strips: int
  aux: dict  # Frozen networks the metrics need.

  def run(self, super_resolve: Callable, variables, scale: int,
          raw_variables=None):
    """({metric: value, '<metric>_bicubic': value}, strips) of the
    generator `variables` (the EMA one in training); with raw_variables
    (the raw generator), also '<metric>_raw' for those, without strips."""
    values, strips = evaluate(super_resolve, variables, self.images, scale,
                              self.num_strips, self.metrics, self.aux)
    if raw_variables is not None:
      raw, _ = evaluate(super_resolve, raw_variables, self.images, scale, 0,
                        self.metrics, self.aux)
      values.update({f'{k}{RAW_SUFFIX}': v for k, v in raw.items()
                     if not k.endswith('_bicubic')})
    return values, strips


# Training validation's scores of the raw (non-EMA) generator.
RAW_SUFFIX = '_raw'
# config.best_weights: which generator picks (and is kept as) a phase's
# best checkpoint.
BEST_WEIGHTS = ('ema', 'raw', 'better')


def pick_best(values: dict, metric: str, higher_is_better: bool,
              best_weights: str) -> tuple[float, str]:
  """(value, 'ema' or 'raw'): the score a best checkpoint is ranked by and
  the generator it keeps. values: one validation's {metric: value,
  '<metric>_raw': value} (no '_raw' entry: the EMA's alone counts)."""
  if best_weights not in BEST_WEIGHTS:
    raise errors.ConfigError(
        f'config.best_weights={best_weights!r}; use one of '
        f'{", ".join(BEST_WEIGHTS)}.')
  ema, raw = values[metric], values.get(f'{metric}{RAW_SUFFIX}')
  if raw is None or best_weights == 'ema':
    return ema, 'ema'
  if best_weights == 'raw':
    return raw, 'raw'
  raw_wins = raw > ema if higher_is_better else raw < ema
  return (raw, 'raw') if raw_wins else (ema, 'ema')


def _fallback(value, default):
  return default if value in (None, '', -1) else value


def check_metric_names(evals: ml_collections.ConfigDict) -> None:
  """ConfigError naming the first unknown metric of `evals` (config.evals)."""
  for name, entry in evals.items():
    for metric in entry.metrics:
      if metric not in sr_metrics.METRICS.names():
        raise errors.ConfigError(
            f'config.evals.{name}.metrics names {metric!r}; known metrics: '
            f'{sr_metrics.METRICS.names()}.')


def best_metric(evals: ml_collections.ConfigDict,
                value: str) -> tuple[str, str, bool]:
  """(evaluation, metric, higher_is_better) of config.best_metric `value`:
  '<eval>/<metric>', or a metric of the first evaluation. A run without
  evaluations (`evals` empty, e.g. a down-sampling generator's) keeps no
  best checkpoints: ('', '', True), with config.best_metric ''."""
  if not evals:
    if value:
      raise errors.ConfigError(
          f'config.best_metric={value!r} but config.evals is empty; set '
          "--config.best_metric=''.")
    return '', '', True
  eval_name, _, metric = value.rpartition('/')
  eval_name = eval_name or next(iter(evals))
  if eval_name not in evals or metric not in evals[eval_name].metrics:
    raise errors.ConfigError(
        f'config.best_metric={value!r} is not one of the evaluations\' '
        'metrics: ' + ', '.join(f'{n}/{m}' for n, e in evals.items()
                                for m in e.metrics) + '.')
  return eval_name, metric, sr_metrics.METRICS.get(metric).higher_is_better


@dataclasses.dataclass(frozen=True)
class EvalSettings:
  """A run's evaluations as its config gives them, checked once (`parse`):
  the entries of config.evals, what their empty fields fall back to
  (config.data's validation settings, config.num_val_strips), the run's
  degradation (for `lr_from`), the frozen weights' paths (config.frozen),
  and the metric that picks each phase's best checkpoint."""
  evals: ml_collections.ConfigDict  # config.evals
  data: ml_collections.ConfigDict  # config.data
  degradation: ml_collections.ConfigDict | None  # config.degradation
  scale: int
  frozen: Mapping[str, str]  # Weights files by frozen network name.
  num_strips: int  # config.num_val_strips
  best_eval: str  # '' when there are no evaluations.
  best_name: str
  higher_is_better: bool

  @classmethod
  def parse(cls, evals: ml_collections.ConfigDict, best: str, *,
            data: ml_collections.ConfigDict, degradation, scale: int,
            frozen: Mapping[str, str], num_strips: int) -> 'EvalSettings':
    """Checks the metric names and config.best_metric `best`."""
    check_metric_names(evals)
    return cls(evals, data, degradation, scale, dict(frozen), num_strips,
               *best_metric(evals, best))


def build_evaluators(settings: EvalSettings) -> list[Evaluator]:
  """The evaluations of `settings`, with their images and frozen weights
  loaded (before training starts, so a missing folder or weight file stops
  the run early). Empty fields of an entry fall back to data.val_dir /
  val_max_images / val_max_size and num_val_strips.

  Raises ConfigError naming the setting (an unmatched LR folder, an
  unknown lr_from) and WeightsNotFoundError for a metric's missing weights.
  """
  evaluators = []
  for name, entry in settings.evals.items():
    where = f'config.evals.{name}'
    data_config = settings.data.copy_and_resolve_references()
    with data_config.unlocked():
      data_config.val_dir = _fallback(entry.get('hr_dir'),
                                      settings.data.val_dir)
      data_config.val_max_images = _fallback(entry.get('max_images'),
                                             settings.data.val_max_images)
      data_config.val_max_size = _fallback(entry.get('max_size'),
                                           settings.data.val_max_size)
    if entry.get('lr_dir'):
      if not data_config.val_dir:
        raise errors.ConfigError(
            f'{where}.lr_dir is set; set {where}.hr_dir (or data.val_dir) to '
            'the matching HR folder.')
      images = data_lib.load_paired_validation_set(
          data_config.val_dir, entry.lr_dir, settings.scale,
          entry.get('lr_filename_tmpl', '{}'), data_config.val_max_images,
          data_config.get('max_image_pixels'))
    else:
      lr_from = entry.get('lr_from', 'bicubic')
      if lr_from not in ('bicubic', 'degradation') + degradations.PIPELINES:
        raise errors.ConfigError(
            f"{where}.lr_from={lr_from!r}: use 'bicubic', 'degradation' (the "
            "run's) or a degradation pipeline: "
            f'{", ".join(degradations.PIPELINES)}.')
      images = data_lib.load_validation_set(data_config, settings.scale)
      if lr_from != 'bicubic':
        try:
          images = degraded_validation_set(
              images, settings.degradation, settings.scale,
              pipeline=None if lr_from == 'degradation' else lr_from)
        except errors.ConfigError as e:
          raise errors.ConfigError(
              f'{where}.lr_from={lr_from!r}: {e}'
              ) from None
    aux = {}
    for metric in entry.metrics:
      frozen = sr_metrics.METRICS.get(metric).frozen
      if frozen and frozen not in aux:
        aux[frozen] = weights.load_frozen(
            frozen, settings.frozen.get(frozen, '') or None)
    evaluators.append(Evaluator(
        name=name, images=images, metrics=tuple(entry.metrics),
        num_strips=int(_fallback(entry.get('num_strips'),
                                 settings.num_strips)), aux=aux))
  return evaluators


def degraded_validation_set(images: Sequence[tuple],
                            degradation: ml_collections.ConfigDict | None,
                            scale: int, seed: int = 0,
                            pipeline: str | None = None) -> list[tuple]:
  """(name, target, lr) uint8 of each (name, hr): the run's degradation
  (config.degradation, at `scale`), or the pipeline named `pipeline` with
  its options from config.degradation.<pipeline>, applied once with a key
  fixed per image, so every evaluation scores the same inputs."""
  # A pipeline that runs a trained network (dsgan) raises ConfigError on
  # the first call, saying to use another pipeline or an LR folder.
  pipeline = jax.jit(degradations.pipeline_from_config(degradation, scale,
                                                       pipeline))
  out = []
  for i, (name, hr) in enumerate(images):
    key = jax.random.fold_in(jax.random.key(seed), i)
    lr, target = pipeline(key, hr_to_float(hr[None]))
    out.append((name, to_uint8(target[0]), to_uint8(lr[0])))
  return out


def save_strips(directory: str, strips: Sequence[tuple[str, np.ndarray]]):
  """Writes each strip as DIRECTORY/<name>.png (a local or remote
  folder)."""
  folder = io_utils.path(directory)
  folder.mkdir(parents=True, exist_ok=True)
  for name, strip in strips:
    stem = os.path.splitext(os.path.basename(name))[0]
    png = io.BytesIO()
    Image.fromarray(strip).save(png, format='PNG')
    (folder / f'{stem}.png').write_bytes(png.getvalue())
