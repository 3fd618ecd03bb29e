"""The trainer as data: terms, regularisers, optimizers, phases, checks.

Each new piece is checked against an independent reference: per-image
gradients for the penalties, an analytic critic for R1, numpy for TV,
torch.optim for AMSGrad, the LPIPS metric for the LPIPS term.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from tests.helpers.repo import load_config
from sr_jax import losses
from sr_jax import models
from sr_jax import optimizers
from sr_jax.train import state as ts
from sr_jax.train import recipe as recipe_lib
from sr_jax.metrics import dists_metric as dists_lib
from sr_jax.metrics import lpips as lpips_lib




def _critic(use_bn):
  module = models.get_discriminator('vgg_style', num_feat=4, input_size=16,
                                    use_bn=use_bn)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 16, 16, 3)))
  variables = jax.tree.map(  # Non-trivial BN scales, not all ones.
      lambda v: v + 0.3 * jax.random.normal(jax.random.key(1), v.shape),
      variables)

  def critic(x):
    if use_bn:
      return module.apply(variables, x, train=True,
                          mutable=['batch_stats'])[0]
    return module.apply(variables, x, train=True)
  return critic


def _images(n=4, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.random((n, 16, 16, 3)), jnp.float32),
          jnp.asarray(rng.random((n, 16, 16, 3)), jnp.float32))


def _per_image_penalty(critic, real, fake, key):
  """The penalty from each image's own gradient, one image at a time."""
  eps = jax.random.uniform(key, (real.shape[0], 1, 1, 1))
  x_hat = eps * real + (1 - eps) * fake
  total = 0.0
  for i in range(real.shape[0]):
    g = jax.grad(lambda x: critic(x).sum())(x_hat[i:i + 1])
    total += (float(jnp.sqrt(jnp.sum(g * g))) - 1.0) ** 2
  return total / real.shape[0]


@pytest.mark.slow
def test_gradient_penalty_equals_per_image_gradients():
  real, fake = _images()
  key = jax.random.key(5)
  critic = _critic(use_bn=False)
  batched = float(losses.gradient_penalty(critic, real, fake, key))
  np.testing.assert_allclose(batched,
                             _per_image_penalty(critic, real, fake, key),
                             rtol=1e-5, atol=1e-6)
  # With BatchNorm in train mode the batched form is not the per-image
  # penalty: why the config check refuses the combination.
  critic_bn = _critic(use_bn=True)
  batched_bn = float(losses.gradient_penalty(critic_bn, real, fake, key))
  one_at_a_time = _per_image_penalty(
      lambda x: critic_bn(jnp.concatenate([x, real[1:]]))[:1], real, fake,
      key)
  assert abs(batched_bn - one_at_a_time) > 1e-3 * abs(one_at_a_time)


def test_r1_on_an_analytic_critic():
  """C(x) = sum(w * x) + b has grad w at every x: R1 = sum(w^2)."""
  w = jax.random.normal(jax.random.key(2), (16, 16, 3))
  critic = lambda x: jnp.sum(x * w, axis=(1, 2, 3)) + 0.5
  real, _ = _images()
  np.testing.assert_allclose(float(losses.r1_penalty(critic, real)),
                             float(jnp.sum(w * w)), rtol=1e-5)
  # A quadratic critic C(x) = sum(x^2): grad 2x, R1 = mean_i 4 ||x_i||^2.
  quad = lambda x: jnp.sum(x * x, axis=(1, 2, 3))
  expected = np.mean(4 * np.sum(np.asarray(real) ** 2, axis=(1, 2, 3)))
  np.testing.assert_allclose(float(losses.r1_penalty(quad, real)), expected,
                             rtol=1e-5)


def test_tv_loss_against_numpy():
  pred, target = (np.asarray(x) for x in _images(seed=3))
  dh = lambda x: x[:, :, 1:] - x[:, :, :-1]
  dv = lambda x: x[:, 1:] - x[:, :-1]
  expected = (np.mean(np.abs(dh(pred) - dh(target))) +
              np.mean(np.abs(dv(pred) - dv(target))))
  np.testing.assert_allclose(float(losses.tv_loss(pred, target)), expected,
                             rtol=1e-6)
  assert float(losses.tv_loss(pred, pred + 0.25)) < 1e-6  # Shift-invariant.


@pytest.mark.parametrize('entry,make_torch', [
    (dict(name='amsgrad', lr=1e-2, b1=0.9, b2=0.99, weight_decay=1e-3),
     lambda torch, p: torch.optim.Adam([p], lr=1e-2, betas=(0.9, 0.99),
                                       eps=1e-8, amsgrad=True,
                                       weight_decay=1e-3)),
    # The original WGAN's critic optimizer.
    (dict(name='rmsprop', lr=1e-2),
     lambda torch, p: torch.optim.RMSprop([p], lr=1e-2, alpha=0.99,
                                          eps=1e-8)),
])
def test_optimizer_matches_torch(entry, make_torch):
  import torch  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  p0 = rng.normal(size=(5,)).astype(np.float32)
  grads = [rng.normal(size=(5,)).astype(np.float32) * s
           for s in (1.0, 0.1, 3.0, 0.01, 1.0, 0.2)]
  param = torch.nn.Parameter(torch.tensor(p0))
  opt = make_torch(torch, param)
  tx, _ = optimizers.build_optimizer(entry)
  params = jnp.asarray(p0)
  state = tx.init(params)
  for g in grads:
    opt.zero_grad()
    param.grad = torch.tensor(g)
    opt.step()
    updates, state = tx.update(jnp.asarray(g), state, params)
    params = params + updates
  np.testing.assert_allclose(np.asarray(params), param.detach().numpy(),
                             rtol=1e-5, atol=1e-6)


def test_optimizers_by_name_and_clear_errors():
  assert {'adam', 'adamw', 'amsgrad', 'rmsprop'} <= set(
      optimizers.OPTIMIZERS.names())
  tx, schedule = optimizers.build_optimizer(
      dict(name='adamw', lr=1e-3, milestones=(2,), gamma=0.1,
           clip_grad_norm=1.0))
  assert float(schedule(1)) == pytest.approx(1e-3)
  assert float(schedule(2)) == pytest.approx(1e-4)
  params = jnp.ones(3)
  updates, _ = tx.update(jnp.full(3, 100.0), tx.init(params), params)
  # Clipped to norm 1 before Adam: the first AdamW step is ~lr per element.
  assert np.all(np.abs(np.asarray(updates)) < 2e-3)
  with pytest.raises(ValueError, match="where.*'sgdx'"):
    optimizers.build_optimizer(dict(name='sgdx', lr=1.0), 'where')
  with pytest.raises(ValueError, match='bogus'):
    optimizers.build_optimizer(dict(name='adam', lr=1.0, bogus=2))


@pytest.mark.slow
def test_lpips_term_equals_the_metric():
  term = losses.LOSS_TERMS.get('lpips')({'net': 'vgg'}, jnp.float32)
  (frozen,) = term.frozen
  assert frozen.name == 'lpips_vgg'
  variables = frozen.random_init(jax.random.key(3))
  variables = jax.tree.map(jnp.abs, variables)  # LPIPS lins are >= 0.
  sr, target = _images(n=2)
  sr, target = (jax.image.resize(x, (2, 32, 32, 3), 'nearest')
                for x in (sr, target))
  ctx = losses.LossContext(sr=sr, target=target, real=target, lr=sr,
                           key=jax.random.key(0),
                           aux={'lpips_vgg': variables},
                           apply=lambda name, x: x)
  expected = np.mean(np.asarray(
      lpips_lib.make_lpips_fn(variables, 'vgg')(sr, target)))
  np.testing.assert_allclose(float(term.fn(ctx)), expected, rtol=1e-4)
  assert expected > 0


@pytest.mark.slow  # VGG16's gradient: ~20 s on 2 CPU cores.
def test_dists_term_equals_the_metric_and_has_gradients():
  term = losses.LOSS_TERMS.get('dists')({}, jnp.float32)
  (frozen,) = term.frozen
  assert frozen.name == 'dists'
  variables = frozen.random_init(jax.random.key(4))
  sr, target = _images(n=2)
  sr, target = (jax.image.resize(x, (2, 40, 40, 3), 'nearest')
                for x in (sr, target))

  def loss(x):
    return term.fn(losses.LossContext(
        sr=x, target=target, real=target, lr=x, key=jax.random.key(0),
        aux={'dists': variables}, apply=lambda name, y: y))

  expected = np.mean(np.asarray(
      dists_lib.make_dists_fn(variables)(sr, target)))
  np.testing.assert_allclose(float(loss(sr)), expected, rtol=1e-4)
  assert expected > 0
  grad = jax.grad(loss)(sr)
  assert np.all(np.isfinite(grad)) and float(jnp.abs(grad).max()) > 0


def test_terms_are_data_and_keep_their_log_names():
  config = load_config('esrgan_fft')
  recipe = recipe_lib.build_recipe(config)
  gan = recipe.phases[-1]
  assert {t.term.log_name: t.weight for t in gan.terms} == {
      'pix': 1e-2, 'percep': 1.0, 'fft': 0.1, 'gan': 5e-3}
  assert [r.key for r in gan.regularisers] == ['gradient_penalty']
  assert gan.regularisers[0].weight == 10.0
  assert set(recipe.frozen) == {'vgg19'}
  config.gan.losses.pixel.criterion = 'nope'
  with pytest.raises(ValueError, match=r'config.gan.losses.pixel.*nope'):
    recipe_lib.build_recipe(config)


def test_per_sample_regularisers_refuse_batchnorm_critics():
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  config = load_config('esrgan_fft')
  train.check_config(config)  # The shipped config is per-sample.
  config.discriminator.kwargs.use_bn = True
  with pytest.raises(train.ConfigError, match=(
      r"'gradient_penalty'.*adversarial_loss='ragp'.*config.discriminator.*"
      r'BatchNorm')):
    train.check_config(config)
  config = load_config('esrgan')  # BN critic, RaGAN: fine...
  train.check_config(config)
  config.gan.regularisers = {'r1': {'weight': 1.0}}  # ...until R1 is added.
  with pytest.raises(train.ConfigError,
                     match=r'config.gan.regularisers.r1.*use_bn=False'):
    train.check_config(config)


@pytest.mark.slow
def test_discriminator_only_warm_up_is_config():
  from sr_jax.train import step as train_step  # pylint: disable=g-import-not-at-top
  from sr_jax.train import config_lib  # pylint: disable=g-import-not-at-top
  config = load_config('esrgan')
  config.phases = ('psnr', 'd_warmup', 'gan')
  config.d_warmup = config_lib.phase(
      steps=1, train=('discriminator',), losses={},
      optimizers={'discriminator': config_lib.adam(1e-4)})
  config.frozen.vgg19 = 'unused'
  recipe = recipe_lib.build_recipe(config)
  assert [p.name for p in recipe.phases] == ['psnr', 'd_warmup', 'gan']
  warm = recipe.phases[1]
  state = ts.start_phase(ts.init_train_state(recipe, jax.random.key(0)),
                         warm)
  state = state.replace(step=state.step * 0 + warm.start)
  batch = {'hr': np.random.default_rng(0).integers(
      0, 256, (4, 32, 32, 3), np.uint8)}
  new, metrics = jax.jit(train_step.make_phase_step(
      recipe, warm, train_step.StepSettings.from_config(config)))(
      state, batch, {})
  assert 'l_d' in metrics and 'l_g_total' not in metrics
  same = jax.tree.map(np.array_equal, new.params['generator'],
                      state.params['generator'])
  assert all(jax.tree.leaves(same))  # G untouched.
  moved = jax.tree.map(lambda a, b: not np.array_equal(a, b),
                       new.params['discriminator'],
                       state.params['discriminator'])
  assert any(jax.tree.leaves(moved))


def test_missing_frozen_weights_stop_or_are_dropped_loudly(tmp_path,
                                                          monkeypatch,
                                                          capsys):
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  from sr_jax import weights  # pylint: disable=g-import-not-at-top
  monkeypatch.setenv('SR_JAX_CACHE_DIR', str(tmp_path / 'empty'))
  monkeypatch.setenv('SR_JAX_VGG19_WEIGHTS', '')
  config = load_config('esrgan')
  config.gan.losses.lpips = {'weight': 0.5, 'net': 'vgg'}
  recipe = recipe_lib.build_recipe(config)
  assert set(recipe.frozen) == {'vgg19', 'lpips_vgg'}
  with pytest.raises(weights.WeightsNotFoundError, match='fetch'):
    train.load_frozen_networks(recipe, config)
  config.frozen_drop_if_missing = True  # The offline demo only.
  kept, aux = train.load_frozen_networks(recipe, config)
  assert aux == {} and kept.frozen == {}
  assert [t.key for t in kept.phases[-1].terms] == [
      t.key for t in recipe.phases[-1].terms
      if t.key not in ('perceptual', 'lpips')]
  out = capsys.readouterr().out
  assert 'DISABLED' in out and 'gan.losses.perceptual' in out


def test_keep_checkpoints_zero_is_refused():
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  config = load_config('rrdb_psnr')
  assert config.variant == 'runlocal'
  config.keep_checkpoints = 0
  with pytest.raises(train.ConfigError, match='keep_checkpoints=0'):
    train.check_config(config)
