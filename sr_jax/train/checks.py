"""Every check of a config that can run before any data is read or any file
written: `check_config(config)` raises ConfigError naming the setting and
what to do, and returns the recipe (networks, phases, the degradation),
built once for the whole run.
"""
import dataclasses
import json

import jax
import ml_collections

from sr_jax import data
from sr_jax import errors
from sr_jax import evaluate as eval_lib
from sr_jax.train import config_lib
from sr_jax.train import recipe as recipe_lib
from sr_jax.train.pairs import make_training_pairs


class ConfigError(errors.SrJaxError, ValueError):
  """A setting that cannot work; the message names it and what to do."""


BEST_WEIGHTS = eval_lib.BEST_WEIGHTS


def check_config(config: ml_collections.ConfigDict) -> recipe_lib.Recipe:
  """Checks every setting that can be checked without data; returns the
  recipe (networks and phases), built once for the whole run."""
  n = jax.device_count()
  if config.batch_size % n:
    raise ConfigError(
        f'config.batch_size={config.batch_size} must be divisible by the '
        f'{n} devices; set --config.batch_size to a multiple of {n}.')
  if config.scale not in (1, 2, 4, 8):
    raise ConfigError(f'config.scale={config.scale}; use 1, 2, 4 or 8.')
  if config.data.gt_size % config.scale:
    raise ConfigError(f'config.data.gt_size={config.data.gt_size} must be a '
                      f'multiple of config.scale={config.scale}.')
  if config.get('on_nonfinite', 'stop') not in ('stop', 'skip'):
    raise ConfigError(f'config.on_nonfinite={config.on_nonfinite!r}; use '
                      '"stop" or "skip".')
  if config.get('best_weights', 'ema') not in BEST_WEIGHTS:
    raise ConfigError(f'config.best_weights={config.best_weights!r}; use one '
                      f'of {", ".join(BEST_WEIGHTS)}.')
  if config.get('ema_update_after_step', 0) < 0 or config.get(
      'ema_power', 0.0) < 0 or not 0 <= config.ema_decay < 1:
    raise ConfigError('config.ema_decay must be in [0, 1), and '
                      'config.ema_update_after_step and config.ema_power '
                      '>= 0.')
  if config.keep_checkpoints < 1:
    raise ConfigError(f'config.keep_checkpoints={config.keep_checkpoints} '
                      'would keep nothing to resume from; use 1 or more.')
  for name in ('log_every', 'eval_every', 'checkpoint_every'):
    if config[name] <= 0:
      raise ConfigError(f'config.{name} must be positive.')
  try:
    eval_lib.check_metric_names(config)
    eval_lib.best_metric(config)
  except ValueError as e:
    raise ConfigError(str(e)) from None
  training_pairs = _check_degradation(config)
  try:
    recipe = recipe_lib.build_recipe(config, training_pairs)
  except (ValueError, KeyError) as e:
    raise ConfigError(str(e)) from None
  except TypeError as e:  # A module given settings it does not have.
    raise ConfigError(
        f'{e} (each generator and discriminator has its own kwargs: set '
        "them with --config.generator.kwargs='{...}' when changing "
        'generator.name.)') from None
  if not recipe.phases:
    raise ConfigError(f'Nothing to train: every phase in config.phases '
                      f'{tuple(config.phases)} has 0 steps.')
  _check_per_sample(recipe, config)
  return dataclasses.replace(recipe,
                             settings=recipe_lib.RunSettings.from_config(config))


# Fields a resume may change freely: cadence, data loading, evaluation,
# weight paths, how long the run goes on, and rematerialisation (same
# numbers, less memory: e.g. to resume on a smaller accelerator).
RESUMABLE_CHANGES = (
    'stop_at_step', 'log_every', 'eval_every', 'checkpoint_every',
    'keep_checkpoints', 'num_val_strips', 'evals', 'best_metric',
    'best_weights', 'frozen',
    'variant', 'remat', 'generator.init_from',
    'frozen_drop_if_missing', 'on_nonfinite', 'max_nonfinite_skips',
    'data.num_workers', 'data.val_dir', 'data.val_max_images',
    'data.val_max_size', 'data.cache_images', 'data.max_bad_fraction')


# Fields added since checkpoints recorded their config, with the default
# that behaves as before they existed.
NEW_FIELDS = ('ema_update_after_step', 'ema_power', 'data.color_jitter_prob',
              'data.color_jitter_saturation')


def _flatten(tree, prefix=''):
  if isinstance(tree, dict):
    out = {}
    for k, v in tree.items():
      out.update(_flatten(v, f'{prefix}{k}.'))
    return out
  return {prefix[:-1]: tree}


def config_changes(saved: dict, config: ml_collections.ConfigDict
                   ) -> list[str]:
  """'field: saved -> now' for each setting that differs from a
  checkpoint's config, except RESUMABLE_CHANGES and the last phase's steps
  (training longer is a resume)."""
  now = _flatten(json.loads(config.to_json_best_effort()))
  before = _flatten(json.loads(json.dumps(saved)))
  free = list(RESUMABLE_CHANGES)
  active = [p for p in config.get('phases', ()) if config[p].steps > 0]
  if active:
    free.append(f'{active[-1]}.steps')
  # A field added to sr_jax after the checkpoint was written, at the
  # default that keeps the old behaviour, is no change.
  defaults = _flatten(json.loads(config_lib.base_config()
                                 .to_json_best_effort()))
  changes = []
  for key in sorted(set(now) | set(before)):
    if any(key == f or key.startswith(f + '.') for f in free):
      continue
    a, b = before.get(key, '<absent>'), now.get(key, '<absent>')
    if a == '<absent>' and key in NEW_FIELDS and b == defaults.get(key):
      continue
    if a != b:
      changes.append(f'{key}: {a!r} -> {b!r}')
  return changes


def _check_per_sample(recipe: recipe_lib.Recipe, config) -> None:
  """Per-sample regularisers need discriminators that keep samples apart."""
  for p in recipe.phases:
    for reg in p.regularisers:
      if not reg.regulariser.per_sample:
        continue
      for name in p.train:
        net = recipe.networks[name]
        if net.kind == 'discriminator' and net.mixes_samples:
          implied = (f'config.{p.name}.adversarial_loss='
                     f'{config[p.name].adversarial_loss!r} implies it'
                     if reg.key not in config[p.name].regularisers else
                     f'config.{p.name}.regularisers.{reg.key}')
          raise ConfigError(
              f'The regulariser {reg.key!r} ({implied}) needs a per-sample '
              f'critic, but config.{name} ({config[name].name!r}, kwargs '
              f'{dict(config[name].kwargs)}) has BatchNorm in train mode, '
              'which mixes the samples of a batch, so the penalty would be '
              'wrong. Use a discriminator without BatchNorm (vgg_style: '
              f'--config.{name}.kwargs.use_bn=False) or drop the '
              'regulariser.')


def _check_degradation(config: ml_collections.ConfigDict):
  """Builds the training-pairs function (the degradation) once, and
  shape-checks it now rather than mid-compile; returns it."""
  deg = config.get('degradation')
  where = (f"config.degradation ('{deg.name}')" if deg is not None
           else 'the bicubic degradation')
  batch = data.batch_spec(config.data, 1, config.scale)
  try:
    training_pairs = make_training_pairs(config)
    # Abstract evaluation: catches bad options and kernels too large for the
    # patch size without running or compiling anything.
    aux = {f.name: jax.eval_shape(f.random_init, jax.random.key(0))
           for f in training_pairs.frozen}
    jax.eval_shape(training_pairs, jax.random.key(0), batch, aux)
  except (ValueError, TypeError) as e:
    raise ConfigError(
        f'{where} does not work with scale {config.scale} and '
        f'data.gt_size {config.data.gt_size}: {e}') from None
  return training_pairs
