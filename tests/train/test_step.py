"""sr_jax.train.step: the train step's random streams (the keys every run so
far has drawn: resumed runs and checkpoints depend on them) and settings;
the EMA (ema_pytorch's warm-up, BasicSR's constant decay); a
discriminator-only phase; skipped updates advance the schedules only; the
discriminator runs once over each batch; 1 device and 4 give the same step."""
import collections
import os
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from sr_jax import optimizers
from sr_jax.tools import bench
from sr_jax.train import config_lib
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from sr_jax.train.step import _advance_schedules
from sr_jax.train.step import ema_decay_schedule
from sr_jax.train.step import make_phase_step
from sr_jax.train.step import step_keys
from sr_jax.train.step import StepSettings
from tests.helpers.repo import fake_devices
from tests.helpers.repo import load_config
from tests.helpers.repo import REPO
from tests.helpers.repo import run_python


def test_step_keys_are_the_fold_in_streams():
  rng, step = jax.random.key(3), 17
  data = jax.random.key_data
  root = jax.random.fold_in(rng, step)
  keys = step_keys(rng, jax.numpy.int32(step))
  np.testing.assert_array_equal(data(keys.root), data(root))
  np.testing.assert_array_equal(data(keys.pairs),
                                data(jax.random.fold_in(root, 1)))
  np.testing.assert_array_equal(data(keys.g_terms),
                                data(jax.random.fold_in(root, 2)))
  for i in (0, 1):
    d = jax.random.fold_in(root, 100 + i)
    np.testing.assert_array_equal(data(keys.d_regularisers(i)), data(d))
    for k in (0, 2):
      np.testing.assert_array_equal(data(keys.regulariser(i, k)),
                                    data(jax.random.fold_in(d, k)))


def test_step_settings_read_the_config_and_its_defaults():
  config = config_lib.base_config()
  assert recipe_lib.Recipe.from_config(config).settings.step == StepSettings(
      ema_decay=config.ema_decay)
  config.ema_update_after_step, config.ema_power = 5, 0.5
  config.on_nonfinite = 'skip'
  settings = recipe_lib.Recipe.from_config(config).settings.step
  assert (settings.ema_update_after_step, settings.ema_power,
          settings.skip_nonfinite) == (5, 0.5, True)
  # Configs without the optional fields (older ones) get today's defaults.
  del (config['ema_update_after_step'], config['ema_power'],
       config['on_nonfinite'])
  config.ema_decay = 0.9
  bare = recipe_lib.Recipe.from_config(config).settings.step
  assert bare == StepSettings(0.9, 0, 0.0, 'stop')
  assert not bare.skip_nonfinite
  with pytest.raises(ValueError, match='ema_power'):
    make_phase_step(None, None, StepSettings(0.999, ema_power=-1.0))


@pytest.mark.slow  # Compiles a GAN step (not-slow budget).
def test_gan_step_runs_the_discriminator_over_each_batch_once():
  """BasicSR's ESRGAN step at tiny sizes: every forward conv of the
  BatchNorm VGG-style D appears twice in the compiled step (the reals, the
  fakes), not three times (XLA does not merge the G loss's plain pass over
  the reals with the D update's differentiated one), and the backward
  passes are the three needed (the G loss through the fakes, the D update
  through both)."""
  config = bench.compare_config(gan_batch=2, gan_gt_size=32, gan_blocks=1,
                                num_feat=8)
  config.discriminator.kwargs = dict(config.discriminator.kwargs,
                                     num_feat=8)
  assert config.discriminator.kwargs.get('use_bn', True)
  step = bench.build_train_step(recipe_lib.Recipe.from_config(config), 'gan')
  hlo = step.compiled.as_text()
  counts = collections.Counter()
  # Convolution instructions (in the entry computation or a fusion's body;
  # a library fusion's call site names its conv too, so is not counted).
  for op in re.findall(r' convolution\([^\n]*op_name="([^"]*'
                       r'VGGStyleDiscriminator[^"]*/conv\d_\d/[^"]*)"', hlo):
    layer = re.search(r'/(conv\d_\d)/', op).group(1)
    counts[(layer, 'bwd' if 'transpose(' in op else 'fwd')] += 1
  layers_seen = sorted({layer for layer, _ in counts})
  assert len(layers_seen) == 6, counts  # conv0_0 .. conv2_1 at 32 px.
  for layer in layers_seen:
    assert counts[(layer, 'fwd')] == 2, (layer, counts)


def _ema_pytorch_decay(step, beta, update_after_step, power):
  """lucidrains' ema_pytorch EMA.get_current_decay (inv_gamma 1,
  min_value 0), as traiNNer-redux configures it, for its `step`-th update:
  the EMA copies the model while step <= update_after_step."""
  if step <= update_after_step:
    return 0.0
  epoch = max(step - update_after_step - 1, 0)
  if epoch <= 0:
    return 0.0
  return float(np.clip(1 - (1 + epoch) ** -power, 0.0, beta))


@pytest.mark.parametrize('after, power', [(0, 2 / 3), (100, 2 / 3),
                                          (0, 0.75), (5, 1.0)])
def test_warm_up_is_ema_pytorch_decay(after, power):
  schedule = jax.jit(ema_decay_schedule(0.999, after, power))
  steps = np.arange(1, 40_001, 37)
  got = np.asarray(jax.vmap(schedule)(jnp.asarray(steps)))
  want = np.array([_ema_pytorch_decay(k, 0.999, after, power)
                   for k in steps])
  np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
  assert got[0] == 0.0 and got.max() == np.float32(0.999)


def test_no_warm_up_is_basicsr_constant_decay():
  # A Python float, so 1 - decay is BasicSR's (computed in double).
  assert ema_decay_schedule(0.999)(jnp.int32(1)) == 0.999
  copy_until_3 = ema_decay_schedule(0.99, update_after_step=3)
  assert [float(copy_until_3(k)) for k in (1, 3, 4, 10)] == [
      0.0, 0.0, np.float32(0.99), np.float32(0.99)]
  with pytest.raises(ValueError, match='ema_power'):
    ema_decay_schedule(0.999, power=-1.0)


@pytest.mark.slow
def test_the_step_copies_then_averages():
  config = load_config('rrdb_psnr')
  config.ema_decay = 0.9
  config.ema_update_after_step = 2
  recipe = recipe_lib.Recipe.from_config(config)
  phase = recipe.phases[0]
  step = jax.jit(make_phase_step(recipe, phase,
                                 recipe.settings.step))
  state = ts.init_train_state(recipe, jax.random.key(0))
  hr = np.random.default_rng(0).integers(
      0, 256, (config.batch_size, config.data.gt_size, config.data.gt_size,
               3), np.uint8)
  leaves = lambda tree: [np.asarray(x) for x in jax.tree.leaves(tree)]
  for _ in range(2):  # Steps 1 and 2: the EMA is a copy.
    state, _ = step(state, {'hr': hr}, {})
    for e, p in zip(leaves(state.ema_params['generator']),
                    leaves(state.params['generator'])):
      np.testing.assert_array_equal(e, p)
  before = leaves(state.ema_params['generator'])
  state, _ = step(state, {'hr': hr}, {})  # Step 3: decay 0.9.
  moved = 0
  for e, b, p in zip(leaves(state.ema_params['generator']), before,
                     leaves(state.params['generator'])):
    np.testing.assert_allclose(e, 0.9 * b + 0.1 * p, rtol=1e-6, atol=1e-7)
    moved += int(not np.array_equal(e, p))
  assert moved  # No longer a copy.


def test_skipped_update_advances_only_the_schedules():
  """net_d_iters / net_d_init_iters: BasicSR's schedulers step every
  iteration, Adam only with the updates."""
  tx, _ = optimizers.build_optimizer(dict(name='adam', lr=1.0,
                                          milestones=(2,)))
  # A multi_transform state.
  frozen = recipe_lib._freeze(tx, {'trunk': 'vgg19'})
  for t in (tx, frozen):
    params = {'trunk': jnp.zeros(2), 'head': jnp.ones(3)}
    state = t.init(params)
    skipped = _advance_schedules(_advance_schedules(state))

    def counts(s, kind):
      is_kind = lambda n: isinstance(n, kind)
      return [int(n.count) for n in jax.tree.leaves(s, is_leaf=is_kind)
              if is_kind(n)]

    assert counts(skipped, optax.ScaleByScheduleState) == [2]
    assert counts(skipped, optax.ScaleByAdamState) == [0]
    assert jax.tree.structure(skipped) == jax.tree.structure(state)


@pytest.mark.slow
def test_one_device_and_four_devices_give_the_same_step(random_vgg19_weights):
  result = run_python(
      [os.path.join(REPO, 'tests', 'train', 'multidevice_check.py'),
       random_vgg19_weights],
      env_extra=fake_devices(4))
  assert result.returncode == 0, result.stdout + result.stderr
  assert 'devices=4 same as devices=1' in result.stdout, result.stdout
  # The comparison can fail: with every device fed the first device's shard
  # (unreduced gradients), it does.
  assert 'a sharding error is caught' in result.stdout, result.stdout
  # The per-sample losses stay on their shards (and the check can fail).
  assert 'no image-sized all-gather in the 4-device GAN step' in \
      result.stdout, result.stdout
  assert 'the check finds the gathers of a plain FFT loss' in result.stdout
  assert 'frequency losses on 4 shards equal the whole batch' in \
      result.stdout


@pytest.mark.slow
def test_discriminator_only_warm_up_is_config():
  from sr_jax.train import config_lib  # pylint: disable=g-import-not-at-top
  from sr_jax.train import step as train_step  # pylint: disable=g-import-not-at-top
  config = load_config('esrgan')
  config.phases = ('psnr', 'd_warmup', 'gan')
  config.d_warmup = config_lib.phase(
      steps=1, train=('discriminator',), losses={},
      optimizers={'discriminator': config_lib.adam(1e-4)})
  config.frozen.vgg19 = 'unused'
  recipe = recipe_lib.Recipe.from_config(config)
  assert [p.name for p in recipe.phases] == ['psnr', 'd_warmup', 'gan']
  warm = recipe.phases[1]
  state = ts.start_phase(ts.init_train_state(recipe, jax.random.key(0)),
                         warm)
  state = state.replace(step=state.step * 0 + warm.start)
  batch = {'hr': np.random.default_rng(0).integers(
      0, 256, (4, 32, 32, 3), np.uint8)}
  new, metrics = jax.jit(train_step.make_phase_step(
      recipe, warm, recipe.settings.step))(
      state, batch, {})
  assert 'l_d' in metrics and 'l_g_total' not in metrics
  same = jax.tree.map(np.array_equal, new.params['generator'],
                      state.params['generator'])
  assert all(jax.tree.leaves(same))  # G untouched.
  moved = jax.tree.map(lambda a, b: not np.array_equal(a, b),
                       new.params['discriminator'],
                       state.params['discriminator'])
  assert any(jax.tree.leaves(moved))
