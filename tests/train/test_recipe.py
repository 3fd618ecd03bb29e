"""sr_jax.train.recipe: the recipe a config builds (terms and their log names,
the networks each term runs, frequency terms), the settings the loop reads
from it, and config.remat reaching the train step: per-block
rematerialisation changes memory, not numbers (the program really holds a
rematerialised block, JAX's remat primitive).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models
from sr_jax.train import config_lib
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from sr_jax.train.step import make_phase_step
from sr_jax.train.step import StepSettings
from tests.helpers.remat import has_remat
from tests.helpers.remat import KEEP_RECOMPUTATION
from tests.helpers.repo import load_config


def _psnr_step(remat: bool):
  """The tiny rrdbnet PSNR-phase step of configs/esrgan.py:runlocal, jitted
  and traced, with its inputs (random parameters: numbers, not speed)."""
  config = load_config('esrgan')
  config.remat = remat
  recipe = recipe_lib.Recipe.from_config(config)
  phase = recipe.phases[0]
  abstract = jax.eval_shape(lambda: ts.init_train_state(
      recipe, jax.random.key(0), phase))
  rng = np.random.default_rng(0)
  params = jax.tree.map(
      lambda s: jnp.asarray(0.1 * rng.standard_normal(s.shape), s.dtype),
      abstract.params)
  state = ts.TrainState(
      step=jnp.zeros((), jnp.int32), params=params,
      model_state=jax.tree.map(jnp.zeros_like, abstract.model_state),
      opt_state={n: phase.optimizers[n].init(params[n]) for n in phase.train},
      ema_params={n: jax.tree.map(jnp.copy, params[n])
                  for n in recipe.generators()},
      rng=jax.random.key(0), health=ts.initial_health())
  hr = rng.integers(0, 256, (config.batch_size, config.data.gt_size,
                             config.data.gt_size, 3), np.uint8)
  traced = jax.jit(make_phase_step(
      recipe, phase, recipe.settings.step)).trace(
      state, {'hr': hr}, {})
  return recipe, traced, state, hr


@pytest.mark.slow
def test_config_remat_reaches_the_train_step_and_changes_no_number():
  runs, flops = {}, {}
  for remat in (False, True):
    recipe, traced, state, hr = _psnr_step(remat)
    assert recipe.generator.remat == remat
    assert has_remat(traced.jaxpr) == remat
    compiled = traced.lower().compile(KEEP_RECOMPUTATION)
    flops[remat] = compiled.cost_analysis()['flops']
    new_state, metrics = compiled(state, {'hr': hr}, {})
    runs[remat] = (metrics, new_state.params['generator'])
  assert flops[True] > flops[False]
  (m0, p0), (m1, p1) = runs[False], runs[True]
  for key in ('l_g_pix', 'l_g_total', 'grad_norm_g'):
    np.testing.assert_allclose(m1[key], m0[key], rtol=1e-5, err_msg=key)
  # Adam's first step is lr * g / (|g| + eps) per parameter: the same
  # gradients give the same update.
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, atol=1e-7), p1,
               p0)


def test_remat_on_a_generator_without_blocks_says_which_have_them():
  config = load_config('esrgan')
  config.remat = True
  config.generator.name = 'wdrn'
  config.generator.kwargs = dict(models.arch_spec('wdrn').tiny_kwargs)
  with pytest.raises(ValueError, match=r"config\.remat=True.*'wdrn'.*"
                                       r"'msrresnet', 'rrdbnet'"):
    recipe_lib.Recipe.from_config(config)


def test_a_cycle_term_without_its_network_is_named(tmp_path):
  from sr_jax.train import recipe as recipe_lib  # pylint: disable=g-import-not-at-top
  config = load_config('srrescycgan')
  config.gan.train = ('generator', 'discriminator')
  del config.gan.optimizers['generator_lr']
  with pytest.raises(ValueError, match=r'gan\.losses\.cycle runs the '
                     r"network\(s\) \['generator_lr'\]"):
    recipe_lib.Recipe.from_config(config)


def test_recipe_with_frequency_terms():
  config = load_config('esrgan_fft')
  with config.unlocked():
    config.gan.losses.fft.norm = 'amplitude_phase'
    config.gan.losses.spectral = {'weight': 0.01}
    config.gan.losses.focal_frequency = {'weight': 1.0, 'alpha': 2.0}
  recipe = recipe_lib.Recipe.from_config(config)
  gan = recipe.phases[-1]
  assert {t.term.log_name: t.weight for t in gan.terms} == {
      'pix': 1e-2, 'percep': 1.0, 'fft': 0.3, 'gan': 5e-3,
      'spectral': 0.01, 'focal_frequency': 1.0}


def test_the_loop_reads_its_settings_once_from_the_checked_config():
  from tests.helpers.repo import load_config  # pylint: disable=g-import-not-at-top
  config = load_config('esrgan_fft')
  config.stop_at_step, config.seed = 3, 11
  settings = recipe_lib.Recipe.from_config(config).settings
  assert (settings.seed, settings.scale, settings.batch_size,
          settings.log_every, settings.eval_every, settings.checkpoint_every,
          settings.keep_checkpoints, settings.stop_at_step) == (
              11, config.scale, config.batch_size, config.log_every,
              config.eval_every, config.checkpoint_every,
              config.keep_checkpoints, 3)
  assert settings.step == StepSettings(
      config.ema_decay, config.ema_update_after_step, config.ema_power,
      config.on_nonfinite)
  assert settings.validate_raw == (config.ema_decay > 0)
  assert settings.best_weights == config.best_weights
  # Configs of checkpoints older than the optional fields: their defaults.
  del config['max_nonfinite_skips'], config['best_weights']
  settings = recipe_lib.Recipe.from_config(config).settings
  assert (settings.max_nonfinite_skips, settings.best_weights) == (10, 'ema')


def test_terms_are_data_and_keep_their_log_names():
  config = load_config('esrgan_fft')
  recipe = recipe_lib.Recipe.from_config(config)
  gan = recipe.phases[-1]
  assert {t.term.log_name: t.weight for t in gan.terms} == {
      'pix': 1e-2, 'percep': 1.0, 'fft': 0.3, 'gan': 5e-3}
  assert [r.key for r in gan.regularisers] == ['gradient_penalty']
  # lambda 10 on the summed RaGAN loss: 5 on sr_jax's averaged one.
  assert config.gan.gp_weight == 10.0 and gan.regularisers[0].weight == 5.0
  assert set(recipe.frozen) == {'vgg19'}
  config.gan.losses.pixel.criterion = 'nope'
  with pytest.raises(ValueError, match=r'config.gan.losses.pixel.*nope'):
    recipe_lib.Recipe.from_config(config)


@pytest.mark.parametrize('objective', ['ragp', 'wgan_gp'])
def test_gp_weight_is_the_papers_lambda_on_their_summed_d_loss(objective):
  """RaGP as AlexiaJM's code writes it: the SUM of RaGAN's two terms +
  lambda * penalty; WGAN-GP: E[C(fake)] - E[C(real)] + lambda * penalty.
  sr_jax averages RaGAN's terms, so its D objective must be the papers'
  times a constant (1/2), the same ratio of penalty to GAN loss."""
  config = config_lib.apply_variant(config_lib.base_config(), 'runlocal')
  config.gan.adversarial_loss = objective
  config.discriminator.kwargs.use_bn = False
  config.gan.gp_weight = 10.0
  gan = recipe_lib.Recipe.from_config(config).phases[-1]
  (penalty,) = gan.regularisers
  assert penalty.key == 'gradient_penalty'
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=6), rng.normal(size=6) - 1
  log_sigmoid = lambda x: -np.log1p(np.exp(-x))
  if objective == 'ragp':
    papers_gan = (-np.mean(log_sigmoid(real - fake.mean()))
                  - np.mean(log_sigmoid(-(fake - real.mean()))))
  else:
    papers_gan = fake.mean() - real.mean()
  ratios = []
  for p in (0.0, 0.37, 2.5):  # Any value of the penalty term.
    ours = float(gan.adversarial.d_loss(jnp.asarray(real), jnp.asarray(fake))
                 ) + penalty.weight * p
    ratios.append(ours / (papers_gan + 10.0 * p))
  np.testing.assert_allclose(ratios, ratios[0], rtol=1e-6)
  assert ratios[0] == pytest.approx(0.5 if objective == 'ragp' else 1.0,
                                    rel=1e-6)
