"""The checks of a config that need more than one setting at a time, run
by `Recipe.from_config` on the parts they read (before any data is read or
any file written), and `config_changes`, which a resume runs on the config
a checkpoint recorded. Each raises ConfigError naming the setting and what
to do.
"""
import json
from typing import Any, Mapping

import jax
import ml_collections

from sr_jax import data
from sr_jax import errors
from sr_jax.train import config_lib
from sr_jax.train.pairs import make_training_pairs

# Raised by every check (sr_jax.errors.ConfigError, here for the trainer's
# callers).
ConfigError = errors.ConfigError


def checked_training_pairs(degradation: ml_collections.ConfigDict | None,
                           data_config: ml_collections.ConfigDict,
                           scale: int):
  """The training-pairs function of config.degradation (make_training_pairs),
  shape-checked now by an abstract evaluation on one batch of
  config.data's patches, rather than mid-compile."""
  where = (f"config.degradation ('{degradation.name}')"
           if degradation is not None else 'the bicubic degradation')
  batch = data.batch_spec(data_config, 1, scale)
  try:
    training_pairs = make_training_pairs(
        degradation, scale, data_config.get('real_dir', ''))
    # Abstract evaluation: catches bad options and kernels too large for the
    # patch size without running or compiling anything.
    aux = {f.name: jax.eval_shape(f.random_init, jax.random.key(0))
           for f in training_pairs.frozen}
    jax.eval_shape(training_pairs, jax.random.key(0), batch, aux)
  except errors.ConfigError as e:
    raise errors.ConfigError(
        f'{where} does not work with scale {scale} and data.gt_size '
        f'{data_config.gt_size}: {e}') from None
  return training_pairs


def check_per_sample(phases, networks, phase_configs, entries) -> None:
  """Per-sample regularisers need discriminators that keep samples apart.

  phases, networks: the recipe's (Recipe.phases, Recipe.networks);
  phase_configs, entries: config.<phase> and config.<network> by name.
  """
  for p in phases:
    for reg in p.regularisers:
      if not reg.regulariser.per_sample:
        continue
      for name in p.train:
        net = networks[name]
        if net.kind == 'discriminator' and net.mixes_samples:
          cfg = phase_configs[p.name]
          implied = (f'config.{p.name}.adversarial_loss='
                     f'{cfg.adversarial_loss!r} implies it'
                     if reg.key not in cfg.regularisers else
                     f'config.{p.name}.regularisers.{reg.key}')
          raise errors.ConfigError(
              f'The regulariser {reg.key!r} ({implied}) needs a per-sample '
              f'critic, but config.{name} ({entries[name].name!r}, kwargs '
              f'{dict(entries[name].kwargs)}) has BatchNorm in train mode, '
              'which mixes the samples of a batch, so the penalty would be '
              'wrong. Use a discriminator without BatchNorm (vgg_style: '
              f'--config.{name}.kwargs.use_bn=False) or drop the '
              'regulariser.')


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


def config_changes(saved: Mapping[str, Any], record: Mapping[str, Any]
                   ) -> list[str]:
  """'field: saved -> now' for each setting that differs between a
  checkpoint's config `saved` and this run's (`record`, both as JSON:
  Recipe.record), except RESUMABLE_CHANGES and the last phase's steps
  (training longer is a resume)."""
  now = _flatten(json.loads(json.dumps(record)))
  before = _flatten(json.loads(json.dumps(saved)))
  free = list(RESUMABLE_CHANGES)
  active = [p for p in record.get('phases', ()) if now[f'{p}.steps'] > 0]
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
