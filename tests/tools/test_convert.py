"""Official-weight layouts: SRVGGNetCompact, MSRResNet, SRGAN's SRResNet,
Real-ESRGAN's RRDBNet x2; .safetensors / .pth files, the convert CLI and
generator.init_from (`weights fetch` of released models: test_weights.py).

The PyTorch modules below are written from the published architectures
(Real-ESRGAN's srvgg_arch.py, BasicSR's srresnet_arch.py, the SRGAN paper
in Lornatang/SRGAN-PyTorch's layout) with their state-dict names, given random
weights, and compared with the converted sr_jax models on odd-sized inputs.
"""
import importlib.util
import json
import math
import os
import struct
import sys

import jax
import numpy as np
import pytest
import torch

from tests.helpers.repo import REPO
from sr_jax import models
from sr_jax import weights
from sr_jax.tools import convert as convert_cli
from tests.weights.test_state_dict import TorchRRDBNet
from tests.weights.test_state_dict import randomise_bn
from tests.weights.test_state_dict import rand_image
from tests.weights.test_state_dict import rel_err
from tests.weights.test_state_dict import to_nhwc


tnn = torch.nn
F = torch.nn.functional


# ------------------------------------------------- PyTorch reference models --

class TorchSRVGG(tnn.Module):
  """Real-ESRGAN's SRVGGNetCompact: one `body` ModuleList."""

  def __init__(self, nin=3, nout=3, nf=8, nc=2, upscale=4, act='prelu'):
    super().__init__()
    self.upscale = upscale

    def activation():
      return {'prelu': lambda: tnn.PReLU(num_parameters=nf),
              'relu': lambda: tnn.ReLU(inplace=True),
              'lrelu': lambda: tnn.LeakyReLU(0.1, inplace=True)}[act]()

    self.body = tnn.ModuleList([tnn.Conv2d(nin, nf, 3, 1, 1), activation()])
    for _ in range(nc):
      self.body.append(tnn.Conv2d(nf, nf, 3, 1, 1))
      self.body.append(activation())
    self.body.append(tnn.Conv2d(nf, nout * upscale * upscale, 3, 1, 1))
    self.upsampler = tnn.PixelShuffle(upscale)
    for m in self.body:  # Slopes away from 0.25, so they must be converted.
      if isinstance(m, tnn.PReLU):
        m.weight.data.uniform_(-0.5, 0.5)

  def forward(self, x):
    out = x
    for layer in self.body:
      out = layer(out)
    out = self.upsampler(out)
    return out + F.interpolate(x, scale_factor=self.upscale, mode='nearest')


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


def run_ref(ref, x):
  with torch.no_grad():
    return to_nhwc(ref(x))


def kernel_leaves(variables):
  return jax.tree_util.tree_flatten_with_path(variables)[0]


def assert_same_variables(a, b):
  leaves_a, leaves_b = kernel_leaves(a), kernel_leaves(b)
  assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
  for (path, x), (_, y) in zip(leaves_a, leaves_b):
    np.testing.assert_array_equal(x, y, err_msg=jax.tree_util.keystr(path))


# ------------------------------------------------------------------ parity --

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


# --------------------------------------------------- safetensors by hand --

_ST_CODES = {np.dtype('<f4'): 'F32', np.dtype('<f2'): 'F16',
             np.dtype('<i8'): 'I64', np.dtype('u1'): 'U8'}


def write_safetensors(path, tensors, metadata=None, raw=None):
  """Writes the safetensors layout byte by byte (no library).

  tensors: {name: numpy array} stored in their own dtype; raw: {name:
  (dtype code, shape, bytes)} for entries written verbatim (BF16, F8...).
  """
  header, chunks, offset = {}, [], 0
  entries = [(name, _ST_CODES[a.dtype], list(a.shape),
              np.ascontiguousarray(a).tobytes()) for name, a in tensors.items()]
  entries += [(name, *spec) for name, spec in (raw or {}).items()]
  for name, code, shape, data in entries:
    header[name] = {'dtype': code, 'shape': list(shape),
                    'data_offsets': [offset, offset + len(data)]}
    chunks.append(data)
    offset += len(data)
  if metadata is not None:
    header['__metadata__'] = metadata
  text = json.dumps(header).encode()
  text += b' ' * (-len(text) % 8)  # The spec pads the header with spaces.
  with open(path, 'wb') as f:
    f.write(struct.pack('<Q', len(text)) + text + b''.join(chunks))


def test_safetensors_dtypes_by_hand(tmp_path):
  path = tmp_path / 'w.safetensors'
  f32 = np.arange(6, dtype='<f4').reshape(2, 3) - 2.5
  # bfloat16 bit patterns worked out by hand: 0x3FC0 = 1.5, 0xC010 = -2.25,
  # 0x0000 = 0, 0x7F80 = +inf.
  bf16 = struct.pack('<4H', 0x3FC0, 0xC010, 0x0000, 0x7F80)
  write_safetensors(
      path, {'a.weight': f32, 'half': np.array([0.5, -1.0], '<f2'),
             'count': np.array([7, -3], '<i8'),
             'bytes': np.arange(3, dtype='u1')},
      metadata={'format': 'pt'}, raw={'b': ('BF16', [2, 2], bf16)})
  tensors, meta = weights.read_safetensors(path)
  assert meta == {'format': 'pt'}
  np.testing.assert_array_equal(tensors['a.weight'], f32)
  assert tensors['a.weight'].flags.writeable
  np.testing.assert_array_equal(tensors['b'], [[1.5, -2.25], [0.0, np.inf]])
  assert tensors['b'].dtype == tensors['half'].dtype == np.float32
  np.testing.assert_array_equal(tensors['half'], [0.5, -1.0])
  assert tensors['count'].dtype == np.int64
  np.testing.assert_array_equal(tensors['count'], [7, -3])
  np.testing.assert_array_equal(tensors['bytes'], [0, 1, 2])
  assert sorted(weights.load_torch_file(path)) == sorted(tensors)


def test_safetensors_bad_files_are_named(tmp_path):
  good = tmp_path / 'good.safetensors'
  write_safetensors(good, {'w': np.ones((4, 4), '<f4')})
  data = good.read_bytes()
  cases = {
      'truncated': (data[:-5], 'data offsets'),
      'tiny': (data[:5], 'less than the 8-byte'),
      'header_too_long': (struct.pack('<Q', 1 << 40) + data[8:],
                          'header length'),
      'not_json': (data[:8] + b'x' * (len(data) - 8), 'not JSON'),
  }
  for name, (content, message) in cases.items():
    path = tmp_path / f'{name}.safetensors'
    path.write_bytes(content)
    with pytest.raises(ValueError, match=message) as info:
      weights.load_torch_file(path)
    assert str(path) in str(info.value)
  fp8 = tmp_path / 'fp8.safetensors'
  write_safetensors(fp8, {}, raw={'w': ('F8_E4M3', [2], b'\x00\x01')})
  with pytest.raises(ValueError, match='F8_E4M3.*supported'):
    weights.load_torch_file(fp8)


def test_safetensors_matches_the_library_if_installed(tmp_path):
  st_numpy = pytest.importorskip('safetensors.numpy')
  tensors = {'x': np.random.rand(3, 5).astype(np.float32),
             'y': np.arange(4, dtype=np.int64),
             'z': np.random.rand(2).astype(np.float16)}
  path = tmp_path / 'lib.safetensors'
  st_numpy.save_file(tensors, str(path), metadata={'k': 'v'})
  ours, meta = weights.read_safetensors(path)
  assert meta == {'k': 'v'}
  for key, value in tensors.items():
    np.testing.assert_array_equal(ours[key], value)


# --------------------- files, the CLI and Real-ESRGAN's RRDBNet x2 layout --

@pytest.fixture(scope='module')
def rrdb_x2():
  """Real-ESRGAN x2plus's layout (pixel-unshuffle: conv_first takes 12
  channels) at toy size, with EMA and non-EMA weights as BasicSR saves."""
  torch.manual_seed(2)
  ema, plain = TorchRRDBNet(2, nb=1).eval(), TorchRRDBNet(2, nb=1).eval()
  assert ema.state_dict()['conv_first.weight'].shape[1] == 12
  x = rand_image(1, 3, 14, 10)
  return ema, plain, x, run_ref(ema, x), run_ref(plain, x)


def check_rrdb_x2(path, x, expected):
  arch, kwargs, variables = weights.load_converted(path)
  assert arch == 'rrdbnet'
  assert kwargs == dict(num_in_ch=3, num_out_ch=3, scale=2, num_feat=8,
                        num_block=1, num_grow_ch=4)
  out = weights.build_model(arch, **kwargs).apply(variables, to_nhwc(x))
  assert out.shape == (1, 28, 20, 3)
  assert rel_err(out, expected) < 1e-4


def test_cli_converts_pth_with_metadata(rrdb_x2, tmp_path, capsys):
  ema, plain, x, expected_ema, expected_plain = rrdb_x2
  src = tmp_path / 'RealESRGAN_x2plus_tiny.pth'
  torch.save({'params_ema': ema.state_dict(), 'params': plain.state_dict()},
             src)
  out = tmp_path / 'x2.npz'
  assert convert_cli.main(['rrdbnet', str(src), str(out)]) == 0
  assert '"scale": 2' in capsys.readouterr().out
  check_rrdb_x2(out, x, expected_ema)
  assert weights.load_metadata(out)['source'] == src.name
  # --key params takes BasicSR's non-EMA weights instead.
  assert convert_cli.main(['rrdbnet', str(src), str(out), '--key',
                           'params']) == 0
  check_rrdb_x2(out, x, expected_plain)


def test_cli_converts_safetensors_without_torch(rrdb_x2, tmp_path,
                                                monkeypatch):
  ema, _, x, expected, _ = rrdb_x2
  src = tmp_path / 'x2.safetensors'
  write_safetensors(src, {k: v.numpy() for k, v in ema.state_dict().items()
                          if v.dtype == torch.float32})
  monkeypatch.setitem(sys.modules, 'torch', None)  # import torch fails.
  out = tmp_path / 'x2.npz'
  assert convert_cli.main(['rrdbnet', str(src), str(out)]) == 0
  check_rrdb_x2(out, x, expected)


def test_cli_errors_leave_no_file(rrdb_x2, tmp_path, capsys, monkeypatch):
  ema = rrdb_x2[0]
  src = tmp_path / 'x2.pth'
  torch.save({'params_ema': ema.state_dict()}, src)
  out = tmp_path / 'out.npz'

  def fails(argv, *needles):
    assert convert_cli.main(argv) == 2
    err = capsys.readouterr().err
    for needle in needles:
      assert needle in err, (needle, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['x2.pth']

  fails(['srvgg', str(src), str(out)], "as 'srvgg'", 'x2.pth')
  fails(['rrdbnet', str(src), str(out), '--key', 'nope'], "'nope'",
        "['params_ema']")
  fails(['rrdbnet', str(tmp_path / 'missing.pth'), str(out)], 'missing.pth',
        'does not exist')
  fails(['rrdbnet', str(src), str(out), '--kwarg', 'num_blocks=3'],
        "no setting(s) ['num_blocks']")
  fails(['rrdbnet', str(src), str(tmp_path / 'out.pth')], 'must end in .npz')
  monkeypatch.setitem(sys.modules, 'torch', None)
  fails(['rrdbnet', str(src), str(out)], 'pip install torch')


def test_training_checkpoint_needs_key():
  sd = TorchMSRResNet(nb=1).state_dict()
  with pytest.raises(ValueError, match=r"\['net_g'\].*--key"):
    weights.convert_state_dict('msrresnet', {'net_g': sd, 'iter': 5})


def test_old_npz_without_metadata(tmp_path):
  path = tmp_path / 'old.npz'
  weights.save_params(path, {'params': {'a': {'kernel': np.ones(2)}}})
  assert weights.load_metadata(path) == {}
  assert list(weights.load_params(path)) == ['params']
  with pytest.raises(ValueError, match='no arch metadata'):
    weights.load_converted(path)


# ------------------------------------------------ generator.init_from --

def psnr_config(**generator):
  # Not test_train.load_config: importing sr_jax.train.loop loads TensorFlow.
  spec = importlib.util.spec_from_file_location(
      'configs_rrdb_psnr', os.path.join(REPO, 'configs', 'rrdb_psnr.py'))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('runlocal')  # RRDBNet nf 8, 1 block, gc 4.
  config.generator.update(generator)
  return config


def init_state(config):
  from sr_jax.train import state as ts  # pylint: disable=g-import-not-at-top
  from sr_jax.train import recipe as recipe_lib
  from sr_jax.train import warm_start
  recipe = recipe_lib.build_recipe(config)
  init = jax.jit(lambda rng: ts.init_train_state(recipe, rng))
  # As train.py does on a fresh start (never on resume).
  return warm_start.apply_init_from(config, recipe, init(jax.random.key(0)))


@pytest.mark.slow
def test_init_from_converted_file_and_pth(tmp_path):
  torch.manual_seed(3)
  src = tmp_path / 'g.pth'
  torch.save({'params_ema': TorchRRDBNet(4, nb=1).state_dict()}, src)
  npz = tmp_path / 'g.npz'
  weights.convert_file('rrdbnet', src, npz)
  expected = weights.load_converted(npz)[2]['params']
  # A jitted init, as train.py runs it, starts from exactly these params
  # (a random init would differ everywhere).
  state = init_state(psnr_config(init_from=str(npz)))
  assert int(state.step) == 0
  assert_same_variables(jax.device_get(state.params['generator']), expected)
  assert_same_variables(jax.device_get(state.ema_params['generator']),
                        expected)
  # The .pth itself works too (converted on the fly as generator.name).
  state = init_state(psnr_config(init_from=str(src)))
  assert_same_variables(jax.device_get(state.params['generator']), expected)
  # Without init_from the init is random: the test above can fail.
  random_state = init_state(psnr_config())
  with pytest.raises(AssertionError):
    assert_same_variables(jax.device_get(random_state.params['generator']),
                          expected)


@pytest.mark.slow
def test_init_from_mismatch_names_params_and_both_sides(tmp_path):
  torch.manual_seed(4)
  npz = tmp_path / 'x2.npz'
  weights.save_converted(
      npz, 'rrdbnet', weights.convert_state_dict(
          'rrdbnet', TorchRRDBNet(2, nb=2).state_dict()), {'scale': 2})
  with pytest.raises(ValueError) as info:
    init_state(psnr_config(init_from=str(npz)))
  message = str(info.value)
  for needle in (str(npz), "name='rrdbnet'", 'scale=4', "'num_block': 1",
                 'params/conv_first/kernel: file (3, 3, 12, 8) vs model '
                 '(3, 3, 3, 8)', "in the file but not in the model: "
                 "['params/body_1/"):
    assert needle in message, (needle, message)
  srvgg = tmp_path / 'srvgg.npz'
  variables, kwargs = weights.convert_with_config(
      'srvgg', TorchSRVGG().state_dict())
  weights.save_converted(srvgg, 'srvgg', variables, kwargs)
  with pytest.raises(ValueError, match="converted as 'srvgg'.*not 'rrdbnet'"):
    init_state(psnr_config(init_from=str(srvgg)))
