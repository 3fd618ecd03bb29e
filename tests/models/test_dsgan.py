"""DSGAN's generator, high-pass discriminator and frequency filters against
PyTorch modules written here from the published architecture (Fritsche et
al. 2019, dsgan/model.py), on random weights; the cycle and low-frequency
terms against their formulas in numpy; SRResCycGAN trains through main."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from tests.helpers.repo import load_config
from tests.helpers.repo import run_python
from sr_jax import weights
from sr_jax import degradations
from sr_jax import inference
from sr_jax import losses
from sr_jax import models
from sr_jax.degradations import frequency_split
from sr_jax.degradations import imresize


nn = torch.nn


class TorchResBlock(nn.Module):
  def __init__(self, ch):
    super().__init__()
    self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
    self.prelu = nn.PReLU()
    self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

  def forward(self, x):
    return x + self.conv2(self.prelu(self.conv1(x)))


class TorchGenerator(nn.Module):
  def __init__(self, nf, blocks):
    super().__init__()
    self.block_input = nn.Sequential(nn.Conv2d(3, nf, 3, padding=1),
                                     nn.PReLU())
    self.res_blocks = nn.ModuleList([TorchResBlock(nf)
                                     for _ in range(blocks)])
    self.block_output = nn.Conv2d(nf, 3, 3, padding=1)

  def forward(self, x):
    x = self.block_input(x)
    for block in self.res_blocks:
      x = block(x)
    return torch.sigmoid(self.block_output(x))


def torch_high_pass(x, k=5):
  low = nn.functional.avg_pool2d(x, k, 1, k // 2, count_include_pad=False)
  return 0.5 + 0.5 * (x - low)


class TorchDiscriminator(nn.Module):
  def __init__(self, nf):
    super().__init__()
    self.net = nn.Sequential(
        nn.Conv2d(3, nf, 5, padding=2), nn.LeakyReLU(0.2),
        nn.Conv2d(nf, 2 * nf, 5, padding=2), nn.BatchNorm2d(2 * nf),
        nn.LeakyReLU(0.2),
        nn.Conv2d(2 * nf, 4 * nf, 5, padding=2), nn.BatchNorm2d(4 * nf),
        nn.LeakyReLU(0.2), nn.Conv2d(4 * nf, 1, 1))

  def forward(self, x):
    return self.net(torch_high_pass(x))


def _nchw(x):
  return torch.from_numpy(np.asarray(x).transpose(0, 3, 1, 2).copy())


def _nhwc(t):
  return t.detach().numpy().transpose(0, 2, 3, 1)


def _randomise(net, seed):
  gen = torch.Generator().manual_seed(seed)
  with torch.no_grad():
    for p in net.parameters():
      p.copy_(torch.randn(p.shape, generator=gen) * 0.1)
  return net


@pytest.mark.parametrize('downscale', [1, 2])
def test_generator_matches_torch(downscale):
  net = _randomise(TorchGenerator(8, 2), 0).eval()
  sd = {k: v.numpy() for k, v in net.state_dict().items()}
  variables = weights.convert_state_dict('dsgan', sd, downscale=downscale)
  x = np.random.default_rng(0).random((2, 12, 16, 3), np.float32)
  module = models.get_generator('dsgan', num_feat=8, num_block=2,
                                downscale=downscale)
  ours = np.asarray(module.apply(variables, jnp.asarray(x)))
  lr = np.asarray(imresize(jnp.asarray(x), 1 / downscale)) if (
      downscale > 1) else x
  with torch.no_grad():
    ref = _nhwc(net(_nchw(lr)))
  assert ours.shape == (2, 12 // downscale, 16 // downscale, 3)
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-6)


def test_generator_parameter_count_as_released():
  # DSGAN's generator (8 blocks of 64): 594,380 PyTorch parameters, with
  # one shared slope per PReLU; sr_jax keeps one slope per channel.
  torch_count = sum(p.numel() for p in TorchGenerator(64, 8).parameters())
  variables = jax.eval_shape(
      lambda: models.get_generator('dsgan').init(
          jax.random.key(0), jnp.zeros((1, 8, 8, 3))))
  ours = sum(int(np.prod(x.shape)) for x in jax.tree.leaves(variables))
  assert torch_count == 594_380
  assert ours == torch_count + 9 * 63  # 9 PReLUs, 63 more slopes each.


@pytest.mark.parametrize('train', [False, True])
def test_highpass_discriminator_matches_torch(train):
  net = _randomise(TorchDiscriminator(4), 1)
  with torch.no_grad():  # Non-trivial running statistics.
    for m in net.modules():
      if isinstance(m, nn.BatchNorm2d):
        m.running_mean.uniform_(-0.1, 0.1)
        m.running_var.uniform_(0.5, 1.5)
  net.train(train)
  x = np.random.default_rng(1).random((3, 10, 12, 3), np.float32)
  with torch.no_grad():
    ref = _nhwc(net(_nchw(x)))
  sd = {k: v.numpy() for k, v in net.state_dict().items()}
  convs = {0: 'conv0', 2: 'conv1', 5: 'conv2', 8: 'conv_last'}
  params, stats = {}, {}
  for i, name in convs.items():
    params[name] = {'kernel': sd[f'net.{i}.weight'].transpose(2, 3, 1, 0),
                    'bias': sd[f'net.{i}.bias']}
  for i, name in ((3, 'bn1'), (6, 'bn2')):
    params[name] = {'scale': sd[f'net.{i}.weight'],
                    'bias': sd[f'net.{i}.bias']}
    stats[name] = {'mean': sd[f'net.{i}.running_mean'],
                   'var': sd[f'net.{i}.running_var']}
  module = models.get_discriminator('dsgan_highpass', num_feat=4)
  variables = {'params': params, 'batch_stats': stats}
  if train:
    ours, _ = module.apply(variables, jnp.asarray(x), train=True,
                           mutable=['batch_stats'])
  else:
    ours = module.apply(variables, jnp.asarray(x))
  assert ours.shape == (3, 10, 12, 1)
  np.testing.assert_allclose(np.asarray(ours), ref, rtol=1e-4, atol=1e-5)


def test_frequency_filters_match_torch():
  x = np.random.default_rng(2).random((2, 9, 11, 3), np.float32)
  t = _nchw(x)
  np.testing.assert_allclose(
      np.asarray(frequency_split.high_pass(jnp.asarray(x))),
      _nhwc(torch_high_pass(t)), atol=1e-6)
  valid = nn.functional.avg_pool2d(t, 5, 1, 0)
  np.testing.assert_allclose(
      np.asarray(frequency_split.low_pass(jnp.asarray(x), pad=False)),
      _nhwc(valid), atol=1e-6)
  # A constant image has no high frequencies, borders included.
  flat = frequency_split.high_pass(jnp.full((1, 7, 7, 3), 0.3), 5)
  np.testing.assert_allclose(np.asarray(flat), 0.5, atol=1e-6)


def _context(sr, lr, target, apply):
  return losses.LossContext(sr=sr, target=target, real=target, lr=lr,
                            key=jax.random.key(0), aux={}, apply=apply)


def test_cycle_and_down_pixel_terms_follow_their_formulas():
  rng = np.random.default_rng(3)
  sr, target = rng.random((2, 2, 8, 8, 3), np.float32)
  lr = rng.random((2, 4, 4, 3), np.float32)
  down = lambda x: x[:, ::2, ::2] * 0.9  # Any 'G_LR'.
  calls = []

  def apply(name, x):
    calls.append(name)
    return down(x)

  ctx = _context(jnp.asarray(sr), jnp.asarray(lr), jnp.asarray(target), apply)
  cycle = losses.LOSS_TERMS.get('cycle')({}, jnp.float32)
  down_pix = losses.LOSS_TERMS.get('down_pixel')(
      {'network': 'g_lr', 'criterion': 'mse'}, jnp.float32)
  np.testing.assert_allclose(float(cycle.fn(ctx)),
                             np.mean(np.abs(down(sr) - lr)), rtol=1e-6)
  np.testing.assert_allclose(float(down_pix.fn(ctx)),
                             np.mean((down(target) - lr)**2), rtol=1e-6)
  assert calls == ['generator_lr', 'g_lr']
  assert cycle.networks == ('generator_lr',)
  with pytest.raises(ValueError, match='unknown option'):
    losses.LOSS_TERMS.get('cycle')({'netwrk': 'x'}, jnp.float32)


def test_low_frequency_term_ignores_high_frequencies():
  rng = np.random.default_rng(4)
  target = rng.random((1, 20, 20, 3), np.float32)
  term = losses.LOSS_TERMS.get('low_frequency')({}, jnp.float32)
  # A zero-mean pattern of period 5 averages to 0 in every 5x5 window.
  pattern = np.tile(np.array([2, -1, -1, 1, -1], np.float32), 4)
  sr = target + 0.05 * pattern[None, :, None, None]
  ctx = _context(jnp.asarray(sr), None, jnp.asarray(target), None)
  assert float(term.fn(ctx)) < 1e-6
  ctx = _context(jnp.asarray(target + 0.05), None, jnp.asarray(target), None)
  np.testing.assert_allclose(float(term.fn(ctx)), 0.05, rtol=1e-4)


def test_a_cycle_term_without_its_network_is_named(tmp_path):
  from sr_jax.train import recipe as recipe_lib  # pylint: disable=g-import-not-at-top
  config = load_config('srrescycgan')
  config.gan.train = ('generator', 'discriminator')
  del config.gan.optimizers['generator_lr']
  with pytest.raises(ValueError, match=r'gan\.losses\.cycle runs the '
                     r"network\(s\) \['generator_lr'\]"):
    recipe_lib.build_recipe(config)


def _dsgan_config(**degradation):
  config = load_config('dsgan')
  for key, value in degradation.items():
    config.degradation[key] = value
  return config


@pytest.mark.slow
def test_pairs_of_a_down_sampling_generator():
  from sr_jax.train import pairs as training_pairs  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(5)
  hr = rng.integers(0, 256, (3, 32, 32, 3), np.uint8)
  real = rng.integers(0, 256, (3, 8, 8, 3), np.uint8)
  config = _dsgan_config(real_domain='')
  config.data.gt_size = 32
  with pytest.raises(ValueError, match='data.real_dir'):
    training_pairs.make_training_pairs(config)
  config.data.real_dir = '/unused/here'
  pairs = training_pairs.make_training_pairs(config)
  lr, target, d_real = pairs(jax.random.key(0), {'hr': hr, 'real': real})
  np.testing.assert_array_equal(target, lr)  # Aims at its own input.
  np.testing.assert_allclose(lr, np.round(imresize(hr / 255.0, 0.25) * 255)
                             / 255.0, atol=1e-6)
  np.testing.assert_allclose(d_real, real / 255.0, atol=1e-7)
  # A synthetic real domain: sensor noise on the bicubic LR of the OTHER
  # images of the batch (rolled by one), so no pair is aligned.
  config = _dsgan_config()
  config.data.gt_size = 32
  pairs = training_pairs.make_training_pairs(config)
  lr, _, d_real = pairs(jax.random.key(0), {'hr': hr})
  noise = np.asarray(d_real) - np.roll(np.asarray(lr), 1, axis=0)
  assert 5 / 255 < noise.std() < 11 / 255  # Sigma 8, clipped, 8-bit.
  with pytest.raises(ValueError, match="target='x'"):
    training_pairs.make_training_pairs(_dsgan_config(target='x'))


def test_real_dir_batches_are_unpaired_real_patches(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  from sr_jax import data  # pylint: disable=g-import-not-at-top
  (tmp_path / 'real').mkdir()
  for i, value in enumerate((10, 200)):  # Flat images: known patches.
    Image.fromarray(np.full((20, 24, 3), value, np.uint8)).save(
        tmp_path / 'real' / f'{i}.png')
  config = load_config('dsgan').data
  config.gt_size, config.real_dir = 32, str(tmp_path / 'real')
  it = iter(data.make_train_dataset(config, global_batch_size=4, seed=0,
                                    scale=4))
  batch = next(it)
  assert set(batch) == {'hr', 'real'} == set(data.batch_keys(config))
  assert batch['hr'].shape == (4, 32, 32, 3)
  assert batch['real'].shape == (4, 8, 8, 3)
  assert set(np.unique(batch['real'])) <= {10, 200}
  state = it.get_state()
  after = next(it)
  it2 = iter(data.make_train_dataset(config, global_batch_size=4, seed=0,
                                     scale=4))
  it2.set_state(state)
  again = next(it2)
  for k in after:
    np.testing.assert_array_equal(after[k], again[k])  # Resumes exactly.


@pytest.mark.slow
def test_dsgan_pipeline_is_bicubic_then_the_generator():
  module = models.get_generator('dsgan', num_feat=4, num_block=1)
  variables = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 3)))
  network = lambda x: module.apply(variables, x)
  fn = degradations.get_pipeline('dsgan', scale=4, checkpoint='w')
  hr = np.random.default_rng(6).random((2, 16, 16, 3), np.float32)
  lr, target = fn(None, jnp.asarray(hr), network)
  expected = np.round(np.asarray(network(imresize(hr, 0.25))) * 255) / 255
  np.testing.assert_allclose(lr, expected, atol=1e-6)
  np.testing.assert_array_equal(target, hr)
  with pytest.raises(ValueError, match="trained 'dsgan' generator"):
    fn(None, jnp.asarray(hr))


@pytest.mark.slow
def test_dsgan_then_srrescycgan_on_its_pairs_then_make_lr(
    tmp_path, random_vgg19_weights, random_lpips_alex_weights):
  """configs/dsgan.py trains (no SR validation: checkpoints by step);
  SRResCycGAN trains on its pairs made in the step; make_lr writes the
  same pairs."""
  dsgan = tmp_path / 'dsgan'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/dsgan.py:runlocal',
       f'--workdir={dsgan}',
       f'--config.frozen.lpips_alex={random_lpips_alex_weights}'])
  output = result.stdout + result.stderr
  assert result.returncode == 0, output
  assert 'Done at step 2' in result.stdout, output
  for name in ('l_g_low_freq', 'l_g_gan', 'l_g_lpips', 'l_d'):
    assert name in result.stdout, (name, output)
  assert '[eval]' not in result.stdout
  assert (dsgan / 'checkpoints' / '2').is_dir()
  assert not (dsgan / 'best').exists()

  cyc = tmp_path / 'cyc'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/srrescycgan.py:runlocal',
       f'--workdir={cyc}', f'--config.frozen.vgg19={random_vgg19_weights}',
       '--config.degradation.name=dsgan',
       f'--config.degradation.dsgan.checkpoint={dsgan}'])
  output = result.stdout + result.stderr
  assert result.returncode == 0, output
  assert 'Done at step 2' in result.stdout, output
  assert "degradation_dsgan: the EMA generator of phase 'gan' at step 2" in (
      result.stdout)
  for name in ('l_g_cycle', 'l_g_down_pix', 'l_g_tv', 'l_g_percep',
               'l_g_gan', 'grad_norm_generator_lr', 'lr_generator_lr'):
    assert name in result.stdout, (name, output)
  assert '[eval] step 2 | EMA PSNR' in result.stdout

  hr_dir, lr_dir = tmp_path / 'hr', tmp_path / 'lr'
  hr_dir.mkdir()
  from PIL import Image  # pylint: disable=g-import-not-at-top
  hr = np.random.default_rng(7).integers(0, 256, (34, 41, 3), np.uint8)
  Image.fromarray(hr).save(hr_dir / 'x.png')
  result = run_python(['-m', 'sr_jax.data.make_lr', '--dsgan', str(dsgan),
                       '--input', str(hr_dir), '--output', str(lr_dir)])
  assert result.returncode == 0, result.stdout + result.stderr
  written = np.asarray(Image.open(lr_dir / 'x.png'))
  assert written.shape == (8, 10, 3)  # 32 x 40 after the mod crop.
  loaded = inference.load_generator_of(str(dsgan), 'dsgan', 'test')
  module, variables = loaded.module, loaded.variables
  cropped = hr[:32, :40][None] / 255.0
  expected = np.round(np.asarray(module.apply(
      variables, imresize(jnp.asarray(cropped, jnp.float32), 0.25)))[0]
                      * 255)
  assert np.abs(written.astype(int) - expected).max() <= 1
  # Not a super-resolution model: inference says what to use instead.
  with pytest.raises(ValueError, match='sr_jax.data.make_lr --dsgan'):
    inference.load_generator_for_inference(checkpoint=str(dsgan),
                                           which='latest')
