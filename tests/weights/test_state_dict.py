"""Numerical parity of converted PyTorch weights with independent references.

The PyTorch modules (sr_jax.tools.torch_reference) are written from the
published
architectures (ESRGAN's RRDBNet as in BasicSR, BasicSR's VGGStyleDiscriminator,
torchvision's vgg19 `features`), given random weights, converted with
sr_jax.convert.convert_state_dict and run on the same random inputs.
"""
import jax.numpy as jnp
import numpy as np
import pytest
import torch

from sr_jax import weights
from sr_jax import models
from sr_jax.models import layers

from sr_jax.tools import torch_reference  # noqa: E402  (needs torch)


tnn = torch.nn
F = torch.nn.functional


def rel_err(ours, ref) -> float:
  ours, ref = np.asarray(ours), np.asarray(ref)
  assert ours.shape == ref.shape, (ours.shape, ref.shape)
  return float(np.abs(ours - ref).max() / np.abs(ref).max())


def to_nhwc(t):
  return jnp.asarray(t.detach().numpy().transpose(0, 2, 3, 1))


def rand_image(n, c, h, w, seed=0):
  return torch.rand(n, c, h, w, generator=torch.Generator().manual_seed(seed))


# ------------------------------------------------- PyTorch reference models --
# sr_jax.tools.torch_reference: BasicSR's RRDBNet, VGGStyleDiscriminator (stages
# generalised to any 4 * 2^k) and torchvision's vgg19 `features`, written
# from the published code; small sizes here.

def TorchRRDBNet(scale, nf=8, nb=2, gc=4, nin=3, nout=3):
  net = torch_reference.RRDBNet(nin, nout, scale, nf, nb, gc)
  # PyTorch's default init everywhere: BasicSR's 0.1-scaled dense blocks
  # would hide an error inside them behind the 0.2-scaled residuals.
  for m in net.modules():
    if isinstance(m, tnn.Conv2d):
      m.reset_parameters()
  return net


TorchVGGStyle = torch_reference.VGGStyleDiscriminator


def torch_vgg19_features():
  """torchvision's vgg19().features: same module indices (features.0 ... 36)."""
  features = torch_reference.vgg19_features()
  for m in features:
    if isinstance(m, tnn.Conv2d):  # Keeps activations O(1) through 16 layers.
      tnn.init.kaiming_normal_(m.weight, nonlinearity='relu')
      tnn.init.uniform_(m.bias, -0.1, 0.1)
  return features


def randomise_bn(module):
  for m in module.modules():
    if isinstance(m, tnn.BatchNorm2d):
      m.running_mean.normal_(0, 0.5)
      m.running_var.uniform_(0.5, 2.0)
      m.weight.data.uniform_(0.5, 1.5)
      m.bias.data.normal_(0, 0.1)
  return module.eval()


# ------------------------------------------------------------------ parity --

@pytest.mark.parametrize('scale,h,w', [(4, 7, 9), (2, 10, 14), (1, 8, 12),
                                       (8, 5, 7)])
def test_rrdbnet_parity(scale, h, w):
  torch.manual_seed(scale)
  ref = TorchRRDBNet(scale).eval()
  x = rand_image(2, 3, h, w)
  with torch.no_grad():
    expected = to_nhwc(ref(x))
  variables = weights.convert_state_dict('rrdbnet', ref.state_dict())
  model = models.get_generator('rrdbnet', scale=scale, num_feat=8,
                               num_block=2, num_grow_ch=4)
  out = model.apply(variables, to_nhwc(x), train=False)
  assert out.shape == (2, h * scale, w * scale, 3)
  assert rel_err(out, expected) < 1e-4


@pytest.mark.parametrize('size,use_bn', [(32, True), (128, True),
                                         (16, False)])
def test_vgg_style_parity(size, use_bn):
  torch.manual_seed(size)
  ref = randomise_bn(TorchVGGStyle(3, 8, size, use_bn))
  x = rand_image(3, 3, size, size)
  with torch.no_grad():
    expected = ref(x).numpy()
  variables = weights.convert_state_dict('vgg_style', ref.state_dict())
  assert ('batch_stats' in variables) == use_bn
  model = models.get_discriminator('vgg_style', num_feat=8, input_size=size,
                                   use_bn=use_bn)
  out = model.apply(variables, to_nhwc(x), train=False)
  assert rel_err(out, expected) < 1e-4


def test_vgg19_parity():
  torch.manual_seed(0)
  features = torch_vgg19_features()
  x = rand_image(1, 3, 37, 45)
  mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
  std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
  # torchvision indices of the layers compared below.
  index = {'conv1_1': 0, 'relu2_2': 8, 'pool3': 18, 'conv4_4': 25,
           'relu5_4': 35, 'pool5': 36}
  expected, h = {}, (x - mean) / std
  with torch.no_grad():
    for i, module in enumerate(features):
      h = module(h)
      expected.update({k: to_nhwc(h) for k, v in index.items() if v == i})
  state_dict = features.state_dict()
  variables = weights.convert_state_dict('vgg19', state_dict)
  assert len(variables['params']) == 16
  feats = models.VGG19(layers=tuple(index)).apply(variables, to_nhwc(x))
  for name in index:
    assert rel_err(feats[name], expected[name]) < 1e-4, name
  assert feats['pool5'].shape == (1, 1, 1, 512)

  # Full torchvision checkpoints also hold the classifier: it is skipped.
  full = {f'features.{k}': v for k, v in state_dict.items()}
  full['classifier.6.bias'] = torch.zeros(1000)
  converted = weights.convert_state_dict('vgg19', full)
  np.testing.assert_array_equal(converted['params']['conv5_4']['kernel'],
                                variables['params']['conv5_4']['kernel'])


@pytest.mark.parametrize('r', [2, 3])
def test_pixel_shuffle_matches_torch(r):
  x = rand_image(2, 4 * r * r, 3, 5)
  np.testing.assert_array_equal(layers.pixel_shuffle(to_nhwc(x), r),
                                to_nhwc(F.pixel_shuffle(x, r)))
  y = rand_image(2, 4, 3 * r, 5 * r)
  np.testing.assert_array_equal(layers.pixel_unshuffle(to_nhwc(y), r),
                                to_nhwc(F.pixel_unshuffle(y, r)))


# ------------------------------------------------------- inputs and errors --

def tiny_rrdbnet_state_dict(seed):
  torch.manual_seed(seed)
  return TorchRRDBNet(4, nb=1).state_dict()


def test_wrappers_numpy_and_module_prefix():
  sd, sd_ema = tiny_rrdbnet_state_dict(0), tiny_rrdbnet_state_dict(1)
  plain = weights.convert_state_dict('rrdbnet', sd)
  ema = weights.convert_state_dict('rrdbnet', sd_ema)
  kernel = lambda v: v['params']['body_0']['rdb2']['conv3']['kernel']
  np.testing.assert_array_equal(
      kernel(plain),
      sd['body.0.rdb2.conv3.weight'].numpy().transpose(2, 3, 1, 0))
  # BasicSR checkpoints: params_ema is preferred when both are present.
  both = weights.convert_state_dict('rrdbnet',
                                    {'params': sd, 'params_ema': sd_ema})
  np.testing.assert_array_equal(kernel(both), kernel(ema))
  only = weights.convert_state_dict('rrdbnet', {'params': sd})
  np.testing.assert_array_equal(kernel(only), kernel(plain))
  # numpy arrays and DataParallel's 'module.' prefix.
  as_numpy = {f'module.{k}': v.numpy() for k, v in sd.items()}
  np.testing.assert_array_equal(
      kernel(weights.convert_state_dict('rrdbnet', as_numpy)), kernel(plain))
  assert kernel(plain).dtype == np.float32
  # The original ESRGAN release's key names (RRDB_trunk.0.RDB1.conv1, ...).
  renames = [('conv_body', 'trunk_conv'), ('body.', 'RRDB_trunk.'),
             ('.rdb', '.RDB'), ('conv_up', 'upconv'), ('conv_hr', 'HRconv')]
  old_style = {}
  for key, value in sd.items():
    for new_name, old_name in renames:
      key = key.replace(new_name, old_name)
    old_style[key] = value
  assert 'RRDB_trunk.0.RDB2.conv3.weight' in old_style
  np.testing.assert_array_equal(
      kernel(weights.convert_state_dict('rrdbnet', old_style)), kernel(plain))


def test_missing_unexpected_and_misshaped_keys_are_named():
  sd = tiny_rrdbnet_state_dict(0)
  missing = dict(sd)
  del missing['body.0.rdb2.conv3.bias']
  with pytest.raises(ValueError,
                     match=r'missing keys.*body\.0\.rdb2\.conv3\.bias'):
    weights.convert_state_dict('rrdbnet', missing)

  misshaped = dict(sd, **{'conv_body.weight': torch.zeros(8, 8, 1, 1)})
  with pytest.raises(ValueError,
                     match=r'conv_body\.weight: got \(8, 8, 1, 1\), expected '
                           r'\(8, 8, 3, 3\)'):
    weights.convert_state_dict('rrdbnet', misshaped)

  extra = dict(sd, **{'conv_extra.weight': torch.zeros(8, 8, 3, 3)})
  with pytest.raises(ValueError, match=r'unexpected keys.*conv_extra\.weight'):
    weights.convert_state_dict('rrdbnet', extra)

  bn = randomise_bn(TorchVGGStyle(3, 4, 16)).state_dict()
  del bn['bn1_0.running_var']
  with pytest.raises(ValueError, match=r'bn1_0\.running_var'):
    weights.convert_state_dict('vgg_style', bn)

  with pytest.raises(ValueError, match=r'features\.34\.weight'):
    weights.convert_state_dict(
        'vgg19', {k: v for k, v in torch_vgg19_features().state_dict().items()
                  if k != '34.weight'})


def test_unknown_arch_lists_supported():
  with pytest.raises(ValueError, match="'rrdbnet', 'srrescgan', 'srresnet', "
                                       "'srvgg', "
                                       "'unet_sn', 'vgg19', 'vgg_style', "
                                       "'wdrn'"):
    weights.convert_state_dict('edsr', {})
