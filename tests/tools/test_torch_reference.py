"""The PyTorch reference (sr_jax.tools.torch_reference) computes what sr_jax
does.

`python -m sr_jax.bench compare | suite` time these modules and BasicSR's
ESRGAN iteration against sr_jax: here the same random weights, converted
with sr_jax.convert, give the same outputs, losses and gradient norms, so
the timings compare the same computation.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import models
from sr_jax import optimizers
from sr_jax import weights
from sr_jax.tools import torch_reference as tr  # noqa: E402  (needs torch)
from sr_jax.train import recipe as recipe_lib
from sr_jax.train import state as ts
from sr_jax.train.step import make_phase_step
from tests.helpers.repo import load_config


@pytest.fixture(autouse=True, scope='module')
def one_torch_thread():
  # Tiny networks: OpenMP's threads only contend (seconds per step on a
  # loaded 2-core machine, against 0.06 s on one thread).
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


def nchw(x):
  return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


def nhwc(t):
  return np.asarray(t.detach().numpy()).transpose(0, 2, 3, 1)


@pytest.mark.slow
def test_esrgan_networks_match_sr_jax_at_their_default_sizes():
  """bench's networks (BasicSR's ESRGAN sizes and initialisation)."""
  torch.manual_seed(0)
  net_g, net_d, _ = tr.esrgan_networks(num_block=2)
  for m in net_d.modules():  # Running statistics other than 0 / 1.
    if isinstance(m, torch.nn.BatchNorm2d):
      m.running_mean.normal_(0, 0.5)
      m.running_var.uniform_(0.5, 2.0)
  net_g.eval()
  net_d.eval()
  rng = np.random.default_rng(0)
  lr = rng.random((2, 12, 12, 3), np.float32)
  hr = rng.random((2, 128, 128, 3), np.float32)
  with torch.no_grad():
    sr_ref, logits_ref = nhwc(net_g(nchw(lr))), net_d(nchw(hr)).numpy()
  generator = models.get_generator('rrdbnet', num_block=2)
  sr = generator.apply(weights.convert_state_dict('rrdbnet',
                                                  net_g.state_dict()), lr)
  discriminator = models.get_discriminator('vgg_style')  # 64 feat, 128 px.
  logits = discriminator.apply(
      weights.convert_state_dict('vgg_style', net_d.state_dict()), hr)
  np.testing.assert_allclose(sr, sr_ref, atol=2e-5 * np.abs(sr_ref).max())
  np.testing.assert_allclose(logits, logits_ref, rtol=1e-4,
                             atol=1e-4 * np.abs(logits_ref).max())


def _tiny_gan_setup():
  """configs/esrgan.py:runlocal with BasicSR's RaGAN discriminator loss,
  the torch networks with random weights, and sr_jax's GAN-phase state
  holding the same weights (converted)."""
  config = load_config('esrgan')
  config.gan.adversarial_loss = 'ragan_basicsr'  # D detaches the means.
  config.batch_size = 2
  recipe = recipe_lib.Recipe.from_config(config)
  phase = recipe.phases[-1]
  assert phase.name == 'gan' and config.degradation.name == 'bicubic'
  g, d = config.generator.kwargs, config.discriminator.kwargs
  torch.manual_seed(0)
  net_g = tr.RRDBNet(num_feat=g.num_feat, num_block=g.num_block,
                     num_grow_ch=g.num_grow_ch)
  net_d = tr.VGGStyleDiscriminator(num_feat=d.num_feat,
                                   input_size=config.data.gt_size)
  vgg = tr.VGGFeatureExtractor(('conv5_4',)).eval()
  for m in vgg.features:  # Features O(1) through 16 convs.
    if isinstance(m, torch.nn.Conv2d):
      torch.nn.init.kaiming_normal_(m.weight, nonlinearity='relu')
  variables = {
      'generator': weights.convert_state_dict('rrdbnet', net_g.state_dict()),
      'discriminator': weights.convert_state_dict('vgg_style',
                                                  net_d.state_dict())}
  params = {k: v.pop('params') for k, v in variables.items()}
  state = ts.TrainState(
      step=jnp.asarray(phase.start, jnp.int32), params=params,
      model_state=variables,
      opt_state={n: phase.optimizers[n].init(params[n]) for n in phase.train},
      ema_params={'generator': jax.tree.map(jnp.copy, params['generator'])},
      rng=jax.random.key(0), health=ts.initial_health())
  aux = {'vgg19': weights.convert_state_dict('vgg19', vgg.state_dict())}
  hr = np.random.default_rng(0).integers(
      0, 256, (2, config.data.gt_size, config.data.gt_size, 3), np.uint8)
  # Bicubic LR (deterministic: the key does not matter).
  pairs = recipe.training_pairs(jax.random.key(0), {'hr': hr}, aux)
  return config, recipe, phase, state, aux, hr, pairs, (net_g, net_d, vgg)


def _grad_norm(module):
  return float(torch.sqrt(sum(torch.sum(p.grad.double()**2)
                              for p in module.parameters())))


@pytest.mark.slow
def test_gan_step_matches_sr_jax_gan_step():
  config, recipe, phase, state, aux, hr, pairs, nets = _tiny_gan_setup()
  net_g, net_d, vgg = nets
  step = tr.make_esrgan_gan_step(net_g, net_d, vgg, 'fp32')
  before = next(net_g.parameters()).detach().clone()
  losses = {k: float(v) for k, v in step(nchw(pairs.lr),
                                         nchw(pairs.target)).items()}
  _, metrics = jax.jit(make_phase_step(
      recipe, phase, recipe.settings.step))(
      state, {'hr': hr}, aux)
  metrics = {k: float(v) for k, v in metrics.items()}
  expected = {
      'l_g_pix': losses['l_g_pix'], 'l_g_percep': losses['l_g_percep'],
      'l_g_gan': losses['l_g_gan'], 'l_g_total': losses['l_g_total'],
      'l_d': losses['l_d_real'] + losses['l_d_fake'],
      'out_d_real': losses['out_d_real'],
      'out_d_fake': losses['out_d_fake'],
      'grad_norm_g': _grad_norm(net_g), 'grad_norm_d': _grad_norm(net_d)}
  assert expected['l_g_percep'] > 0.01 and expected['grad_norm_d'] > 0
  for name, value in expected.items():
    assert metrics[name] == pytest.approx(value, rel=2e-4, abs=1e-7), name
  # BasicSR's EMA of G (decay 0.999) after G's Adam step.
  after = next(net_g.parameters()).detach()
  assert not torch.equal(after, before)
  torch.testing.assert_close(step.ema[0], 0.999 * before + 0.001 * after)


@pytest.mark.slow
def test_gan_step_in_bf16_autocast_is_close_to_fp32():
  _, _, _, _, _, _, pairs, nets = _tiny_gan_setup()
  state_dicts = [n.state_dict() for n in nets]
  fp32 = tr.make_esrgan_gan_step(*nets, 'fp32')(nchw(pairs.lr),
                                                nchw(pairs.target))
  for net, sd in zip(nets, state_dicts):
    net.load_state_dict(sd)
  bf16 = tr.make_esrgan_gan_step(*nets, 'bf16')(nchw(pairs.lr),
                                                nchw(pairs.target))
  for name in ('l_g_pix', 'l_g_percep'):
    assert float(bf16[name]) == pytest.approx(float(fp32[name]), rel=0.02)
    assert float(bf16[name]) != float(fp32[name]), name  # Ran in bf16.
  # The tiny D's BatchNorm over 2 samples amplifies bf16's rounding.
  for name in ('l_g_gan', 'l_d_real', 'l_d_fake'):
    assert float(bf16[name]) == pytest.approx(float(fp32[name]), rel=0.25)
  with pytest.raises(ValueError, match='precision'):
    tr.make_esrgan_gan_step(*nets, 'fp16')


@pytest.mark.parametrize('arch,make_module,make_torch', [
    ('rrdbnet',
     lambda: models.get_generator('rrdbnet', num_feat=8, num_block=2,
                                  num_grow_ch=4),
     lambda: tr.RRDBNet(3, 3, 4, num_feat=8, num_block=2, num_grow_ch=4)),
    ('vgg_style',
     lambda: models.get_discriminator('vgg_style', num_feat=4,
                                      input_size=32),
     lambda: tr.VGGStyleDiscriminator(3, 4, 32)),
    ('vgg19', lambda: models.VGG19(layers=('conv5_4',)),
     lambda: tr.VGGFeatureExtractor(('conv5_4',))),
])
def test_jax_to_torch_weights_round_trip(arch, make_module, make_torch):
  module, net = make_module(), make_torch()
  rng = np.random.default_rng(0)
  # Random values in the module's variable shapes (no XLA compile).
  variables = jax.tree.map(
      lambda leaf: rng.normal(size=leaf.shape).astype(np.float32),
      jax.eval_shape(module.init, jax.random.key(0),
                     jnp.zeros((1, 32, 32, 3))))
  # sr_jax -> torch -> sr_jax is the identity, bit for bit (BatchNorm's
  # running statistics included).
  net.load_state_dict(tr.torch_state_dict(arch, variables, net))
  back = weights.convert_state_dict(arch, net.state_dict())
  assert (jax.tree.structure(back) == jax.tree.structure(variables))
  jax.tree.map(np.testing.assert_array_equal, back, variables)
  # torch -> sr_jax -> torch too.
  torch.manual_seed(1)
  for p in net.parameters():
    p.data.normal_()
  sd = {k: v.clone() for k, v in net.state_dict().items()}
  again = tr.torch_state_dict(arch, weights.convert_state_dict(arch, sd), net)
  assert list(again) == list(sd)
  for k in sd:
    assert torch.equal(again[k], sd[k]), k


def test_torch_state_dict_names_what_is_missing():
  net = tr.RRDBNet(3, 3, 4, num_feat=8, num_block=1, num_grow_ch=4)
  variables = weights.convert_state_dict('rrdbnet', net.state_dict())
  del variables['params']['conv_last']
  with pytest.raises(ValueError, match='conv_last'):
    tr.torch_state_dict('rrdbnet', variables, net)


def _tiny_sr_model(**kwargs):
  torch.manual_seed(0)
  net = torch.nn.Conv2d(3, 3, 3, padding=1)
  return tr.SRModel(net, **kwargs)


def test_basicsr_schedule_counts_iterations_from_one():
  """BasicSR's train.py: current_iter from 1, update_learning_rate steps
  the schedulers from the second iteration on; sr_jax's MultiStepLR at
  update count (iteration - 1) gives the same learning rate."""
  milestones = (2, 4)
  model = _tiny_sr_model(lr=1.0, milestones=milestones, gamma=0.5)
  batches = iter([(torch.rand(1, 3, 4, 4), torch.rand(1, 3, 4, 4))] * 6)
  logs = tr.train_iterations(model, batches, 6)
  assert [log['lr_g'] for log in logs] == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]
  _, schedule = optimizers.build_optimizer(
      dict(name='adam', lr=1.0, milestones=milestones, gamma=0.5))
  assert [float(schedule(it - 1)) for it in range(1, 7)] == [
      log['lr_g'] for log in logs]


def test_basicsr_net_d_iters_gates_generator_updates():
  torch.manual_seed(0)
  net_g = tr.RRDBNet(3, 3, 4, num_feat=4, num_block=1, num_grow_ch=2)
  net_d = tr.VGGStyleDiscriminator(3, 2, 16)
  vgg = tr.VGGFeatureExtractor(('conv1_2',))
  model = tr.ESRGANModel(net_g, net_d, vgg, lr_g=1e-3, lr_d=1e-3,
                         layer_weights={'conv1_2': 1.0}, net_d_iters=2,
                         net_d_init_iters=3, milestones=(2,))
  before = [p.detach().clone() for p in net_g.parameters()]
  batches = iter([(torch.rand(2, 3, 4, 4), torch.rand(2, 3, 16, 16))] * 6)
  logs = tr.train_iterations(model, batches, 6)
  # G steps where iteration % 2 == 0 and iteration > 3: 4 and 6.
  assert ['l_g_gan' in log for log in logs] == [False] * 3 + [True, False,
                                                             True]
  assert all('l_d_real' in log for log in logs)
  # The schedulers step every iteration, G's update or not.
  assert [log['lr_g'] for log in logs] == [1e-3] * 2 + [5e-4] * 4
  assert model.optimizer_g.state[next(net_g.parameters())]['step'] == 2
  assert not all(torch.equal(a, b) for a, b in zip(before,
                                                   net_g.parameters()))
