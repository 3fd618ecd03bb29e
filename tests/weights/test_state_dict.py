"""Numerical parity of converted PyTorch weights with independent references
(sr_jax.weights.state_dict's converters), and their errors.

The PyTorch modules (sr_jax.tools.torch_reference, those of
tests/helpers/torch_nets.py and below) are written from the published
architectures (ESRGAN's RRDBNet as in BasicSR, BasicSR's
VGGStyleDiscriminator, torchvision's vgg19 `features`, Real-ESRGAN's
srvgg_arch.py, BasicSR's srresnet_arch.py, the SRGAN paper in
Lornatang/SRGAN-PyTorch's layout) with their state-dict names, given random
weights, converted with sr_jax.convert.convert_state_dict and run on the
same random (odd-sized) inputs.
"""
import math

import numpy as np
import pytest
import torch

from sr_jax import models
from sr_jax import weights
from sr_jax.tools import torch_reference  # noqa: E402  (needs torch)
from tests.helpers.torch_nets import assert_same_variables
from tests.helpers.torch_nets import rand_image
from tests.helpers.torch_nets import randomise_bn
from tests.helpers.torch_nets import rel_err
from tests.helpers.torch_nets import run_ref
from tests.helpers.torch_nets import to_nhwc
from tests.helpers.torch_nets import TorchRRDBNet
from tests.helpers.torch_nets import TorchSRVGG

tnn = torch.nn
F = torch.nn.functional


# ------------------------------------------------- PyTorch reference models --
# sr_jax.tools.torch_reference: BasicSR's RRDBNet, VGGStyleDiscriminator (stages
# generalised to any 4 * 2^k) and torchvision's vgg19 `features`, written
# from the published code; small sizes here.


TorchVGGStyle = torch_reference.VGGStyleDiscriminator


def torch_vgg19_features():
  """torchvision's vgg19().features: same module indices (features.0 ... 36)."""
  features = torch_reference.vgg19_features()
  for m in features:
    if isinstance(m, tnn.Conv2d):  # Keeps activations O(1) through 16 layers.
      tnn.init.kaiming_normal_(m.weight, nonlinearity='relu')
      tnn.init.uniform_(m.bias, -0.1, 0.1)
  return features


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


class TorchResidualBlockNoBN(tnn.Module):

  def __init__(self, nf):
    super().__init__()
    self.conv1 = tnn.Conv2d(nf, nf, 3, 1, 1)
    self.conv2 = tnn.Conv2d(nf, nf, 3, 1, 1)

  def forward(self, x):
    return x + self.conv2(F.relu(self.conv1(x)))


class TorchMSRResNet(tnn.Module):
  """BasicSR's MSRResNet."""

  def __init__(self, nin=3, nout=3, nf=8, nb=2, upscale=4):
    super().__init__()
    self.upscale = upscale
    self.conv_first = tnn.Conv2d(nin, nf, 3, 1, 1)
    self.body = tnn.Sequential(*[TorchResidualBlockNoBN(nf) for _ in range(nb)])
    if upscale in (2, 3):
      self.upconv1 = tnn.Conv2d(nf, nf * upscale * upscale, 3, 1, 1)
      self.pixel_shuffle = tnn.PixelShuffle(upscale)
    else:
      self.upconv1 = tnn.Conv2d(nf, nf * 4, 3, 1, 1)
      self.upconv2 = tnn.Conv2d(nf, nf * 4, 3, 1, 1)
      self.pixel_shuffle = tnn.PixelShuffle(2)
    self.conv_hr = tnn.Conv2d(nf, nf, 3, 1, 1)
    self.conv_last = tnn.Conv2d(nf, nout, 3, 1, 1)

  def forward(self, x):
    lrelu = lambda t: F.leaky_relu(t, 0.1)
    out = self.body(lrelu(self.conv_first(x)))
    out = lrelu(self.pixel_shuffle(self.upconv1(out)))
    if self.upscale == 4:
      out = lrelu(self.pixel_shuffle(self.upconv2(out)))
    out = self.conv_last(lrelu(self.conv_hr(out)))
    return out + F.interpolate(x, scale_factor=self.upscale, mode='bilinear',
                               align_corners=False)


class TorchResidualConvBlock(tnn.Module):

  def __init__(self, nf, prelu_ch, conv_bias):
    super().__init__()
    self.rcb = tnn.Sequential(
        tnn.Conv2d(nf, nf, 3, 1, 1, bias=conv_bias), tnn.BatchNorm2d(nf),
        tnn.PReLU(prelu_ch),
        tnn.Conv2d(nf, nf, 3, 1, 1, bias=conv_bias), tnn.BatchNorm2d(nf))

  def forward(self, x):
    return x + self.rcb(x)


class TorchUpsampleBlock(tnn.Module):

  def __init__(self, nf, prelu_ch):
    super().__init__()
    self.upsample_block = tnn.Sequential(
        tnn.Conv2d(nf, nf * 4, 3, 1, 1), tnn.PixelShuffle(2),
        tnn.PReLU(prelu_ch))

  def forward(self, x):
    return self.upsample_block(x)


class TorchSRGANSRResNet(tnn.Module):
  """SRGAN's SRResNet in Lornatang/SRGAN-PyTorch's layout (without its
  final clamp). prelu_ch=1 is nn.PReLU()'s shared slope; conv_bias puts a
  bias on the convs before BN (older forks)."""

  def __init__(self, nf=8, nb=2, upscale=4, prelu_ch=1, conv_bias=False):
    super().__init__()
    p = nf if prelu_ch != 1 else 1
    self.conv1 = tnn.Sequential(tnn.Conv2d(3, nf, 9, 1, 4), tnn.PReLU(p))
    self.trunk = tnn.Sequential(
        *[TorchResidualConvBlock(nf, p, conv_bias) for _ in range(nb)])
    self.conv2 = tnn.Sequential(tnn.Conv2d(nf, nf, 3, 1, 1, bias=conv_bias),
                                tnn.BatchNorm2d(nf))
    self.upsampling = tnn.Sequential(
        *[TorchUpsampleBlock(nf, p) for _ in range(int(math.log2(upscale)))])
    self.conv3 = tnn.Conv2d(nf, 3, 9, 1, 4)
    for m in self.modules():
      if isinstance(m, tnn.PReLU):
        m.weight.data.uniform_(-0.5, 0.5)

  def forward(self, x):
    out1 = self.conv1(x)
    out = out1 + self.conv2(self.trunk(out1))
    return self.conv3(self.upsampling(out))


@pytest.mark.parametrize('act,scale', [('prelu', 4), ('relu', 4),
                                       ('prelu', 2), ('lrelu', 3)])
def test_srvgg_parity(act, scale):
  torch.manual_seed(scale)
  ref = TorchSRVGG(upscale=scale, act=act).eval()
  x = rand_image(1, 3, 13, 11)
  kw = {} if act == 'prelu' else {'act_type': act}
  variables, config = weights.convert_with_config('srvgg', ref.state_dict(),
                                                  **kw)
  assert config == dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2,
                        scale=scale, act_type=act)
  out = models.get_generator('srvgg', **config).apply(variables, to_nhwc(x))
  assert out.shape == (1, 13 * scale, 11 * scale, 3)
  assert rel_err(out, run_ref(ref, x)) < 1e-4
  # BasicSR-style wrapper: params_ema wins over params.
  other = TorchSRVGG(upscale=scale, act=act).state_dict()
  assert_same_variables(
      weights.convert_state_dict(
          'srvgg', {'params': other, 'params_ema': ref.state_dict()}, **kw),
      variables)


def test_srvgg_without_prelu_needs_act_type():
  sd = TorchSRVGG(act='relu').state_dict()
  assert sorted(sd)[:3] == ['body.0.bias', 'body.0.weight', 'body.2.bias']
  with pytest.raises(ValueError, match="act_type='relu' or 'lrelu'"):
    weights.convert_state_dict('srvgg', sd)


@pytest.mark.parametrize('scale', [2, 3, 4])
def test_msrresnet_parity(scale):
  torch.manual_seed(10 + scale)
  ref = TorchMSRResNet(upscale=scale).eval()
  x = rand_image(1, 3, 13, 11, seed=scale)
  variables, config = weights.convert_with_config(
      'msrresnet', {'params_ema': ref.state_dict()})
  assert config == dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2,
                        scale=scale)
  out = models.get_generator('msrresnet', **config).apply(variables,
                                                          to_nhwc(x))
  assert out.shape == (1, 13 * scale, 11 * scale, 3)
  assert rel_err(out, run_ref(ref, x)) < 1e-4


@pytest.mark.parametrize('scale,prelu_ch,conv_bias', [(4, 1, False),
                                                      (2, 8, True)])
def test_srgan_srresnet_parity(scale, prelu_ch, conv_bias):
  torch.manual_seed(20 + scale)
  ref = randomise_bn(TorchSRGANSRResNet(upscale=scale, prelu_ch=prelu_ch,
                                        conv_bias=conv_bias))
  x = rand_image(1, 3, 13, 11, seed=scale)
  sd = ref.state_dict()
  assert 'trunk.1.rcb.4.running_var' in sd
  assert 'upsampling.0.upsample_block.2.weight' in sd
  # Lornatang's checkpoints hold the weights under 'state_dict'.
  variables, config = weights.convert_with_config(
      'srresnet', {'state_dict': sd})
  assert config == dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=2,
                        scale=scale)
  assert 'batch_stats' in variables
  model = models.get_generator('srresnet', **config)
  out = model.apply(variables, to_nhwc(x), train=False)
  assert rel_err(out, run_ref(ref, x)) < 1e-4
  # The folded conv bias must not leak into the caller's state dict.
  if conv_bias:
    assert 'trunk.0.rcb.0.bias' in sd
  # Forks without the inner .rcb / .upsample_block names convert the same.
  flat = {k.replace('.rcb.', '.').replace('.upsample_block.', '.'): v
          for k, v in sd.items()}
  assert_same_variables(weights.convert_state_dict('srresnet', flat),
                        variables)


def test_srgan_missing_key_is_named_in_its_layout():
  sd = TorchSRGANSRResNet().state_dict()
  del sd['trunk.1.rcb.2.weight']
  with pytest.raises(ValueError,
                     match=r'missing keys.*trunk\.1\.rcb\.2\.weight'):
    weights.convert_state_dict('srresnet', sd)


def test_training_checkpoint_needs_key():
  sd = TorchMSRResNet(nb=1).state_dict()
  with pytest.raises(ValueError, match=r"\['net_g'\].*--key"):
    weights.convert_state_dict('msrresnet', {'net_g': sd, 'iter': 5})
