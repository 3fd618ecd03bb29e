"""A whole sr_jax run learns as BasicSR's does (sr_jax.tools.run_parity).

The slow test trains configs/esrgan.py:runlocal's recipe (PSNR phase, GAN
phase from its EMA, a GAN phase with net_d_iters=2 / net_d_init_iters=10;
milestones inside each) with sr_jax's trainer and with the PyTorch
reference of BasicSR's models and loop, on the same initial weights and
batches (`python -m sr_jax.bench learn`), and holds every step's losses,
the final networks and the validation PSNR to the float32 drift of the
PyTorch run itself (its distance to a float64 run). The fast tests check
the pieces: the JAX -> PyTorch weights, BasicSR's schedule and
net_d_iters, sr_jax's Adam bias corrections and skipped-update schedules.
"""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import torch

from tests.helpers.repo import run_python
from sr_jax import weights
from sr_jax import models
from sr_jax import optimizers
from sr_jax.train import recipe as recipe_lib
from sr_jax.optimizers.adam import bias_correction
from sr_jax.train.step import _advance_schedules

from sr_jax.tools import run_parity as rp  # noqa: E402  (needs torch)
from sr_jax.tools import torch_reference as tr  # noqa: E402


@pytest.fixture(autouse=True)
def one_torch_thread():
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


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


def test_adam_bias_correction_is_float32_accurate():
  """1 - b^t to ~1 ulp (torch computes it in float64); optax's float32
  1 - b^t is off by up to 2e-5 (relative) for b = 0.999."""
  t = np.arange(1, 100_001)
  for b in (0.9, 0.99, 0.999):
    exact = -np.expm1(t * np.log(b))
    ours = np.asarray(bias_correction(b, jnp.asarray(t, jnp.int32)),
                      np.float64)
    np.testing.assert_allclose(ours, exact, rtol=4e-7)
    if b > 0.9:
      naive = np.asarray(1 - jnp.float32(b) ** jnp.asarray(t, jnp.float32),
                         np.float64)
      assert np.max(np.abs(naive / exact - 1)) > 1e-6
  # Same state as optax.adam / adamw: checkpoints load either way.
  p = {'w': jnp.zeros((2, 3))}
  for name in ('adam', 'adamw'):
    tx, schedule = optimizers.build_optimizer(dict(name=name, lr=1e-3,
                                                   milestones=(5,)))
    assert (jax.tree.structure(tx.init(p)) ==
            jax.tree.structure(getattr(optax, name)(schedule).init(p)))


def test_adam_matches_torch_adam():
  """50 steps of sr_jax's Adam and torch.optim.Adam (b2 0.999, where
  optax's float32 bias correction is 2e-5 off) on the same gradients end
  within 3e-6 of the distance moved (optax.adam: 8e-6)."""
  rng = np.random.default_rng(0)
  p0 = rng.normal(size=(64,)).astype(np.float32)
  param = torch.nn.Parameter(torch.tensor(p0))
  opt = torch.optim.Adam([param], lr=1e-2, betas=(0.9, 0.999))
  tx, _ = optimizers.build_optimizer(dict(name='adam', lr=1e-2, b2=0.999))
  params, state = jnp.asarray(p0), tx.init(jnp.asarray(p0))
  update = jax.jit(tx.update)
  for i in range(50):
    g = (rng.normal(size=(64,)) * (0.01 + i % 5)).astype(np.float32)
    param.grad = torch.tensor(g)
    opt.step()
    updates, state = update(jnp.asarray(g), state, params)
    params = params + updates
  expected = param.detach().numpy()
  moved = np.max(np.abs(expected - p0))
  assert np.max(np.abs(np.asarray(params) - expected)) < 3e-6 * moved


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
def test_whole_run_learns_as_basicsr_does(tmp_path):
  """560 steps (300 PSNR, 200 GAN, 60 GAN with net_d_iters=2) on both
  sides, ~100 s on 2 cores. run_parity's tolerances and what they were
  measured on (9 seeds; an EMA decay, RaGAN form, milestone or skipped-
  update schedule changed on one side fails): see its PHASE_FACTOR."""
  out = tmp_path / 'parity.json'
  done = run_python(['-m', 'sr_jax.tools.bench', 'learn',
                     f'--workdir={tmp_path / "run"}', f'--json_out={out}',
                     '--every=100'], timeout=1200)
  report = done.stdout[-6000:] + done.stderr[-3000:]
  assert done.returncode == 0, report
  result = rp.Result.from_json(json.loads(out.read_text()))
  assert [p[0] for p in result.phases] == ['psnr', 'gan', 'gan_d_iters']
  assert result.steps[-1] >= 500
  t = result.torch
  # What the run exercises: every MultiStepLR milestone (BasicSR's
  # learning rates, which sr_jax's logged ones equal: `check`) ...
  np.testing.assert_allclose(t['lr_g'][[149, 150, 250, 300, 400, 500, 530]],
                             [2e-4, 1e-4, 5e-5, 1e-4, 5e-5, 1e-4, 5e-5])
  # ... skipped G updates (net_d_iters=2 after 10 D-only iterations) ...
  skipped = np.isnan(t['l_g_gan'][500:])
  assert skipped[:10].all() and skipped[10::2].all()
  assert not skipped[11::2].any()
  # ... a perceptual term that matters and learning on both sides.
  assert np.nanmin(t['l_g_percep']) > 0.1
  assert t['l_g_pix'][299] < 0.6 * t['l_g_pix'][0]
  assert result.jax['l_g_pix'][299] < 0.6 * result.jax['l_g_pix'][0]
  problems = rp.check(result)
  assert not problems, '\n'.join(problems) + '\n\n' + report
