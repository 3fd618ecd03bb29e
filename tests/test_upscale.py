"""Tiled inference, self-ensemble, image files and `python -m sr_jax.upscale`.

References: the untiled network applied directly (`module.apply` on the
whole image); hand-worked tile grids and sizes; the 8 dihedral transforms
written out in the test; PNG bytes built by hand with zlib and read back by
Pillow; a PyTorch RRDBNet written here from the published architecture.
"""
import os
import struct
import zlib

import jax
import jax.numpy as jnp
import numpy as np
from PIL import Image
import pytest

from tests.helpers.runs import random_variables
from tests.helpers.runs import save_tiny_run
from tests.helpers.files import unwritable_folder

from sr_jax import models
from sr_jax import upscale
from sr_jax.inference import generator_loading
from sr_jax.inference import image_files
from sr_jax.inference import tiling
from sr_jax.weights import params_io
from tests.helpers.repo import run_python

# --------------------------------------------------------------- helpers --


def direct(module, variables, image, multiple=1):
  """The untiled reference: the whole (mod-padded) image in one apply."""
  h, w = image.shape[:2]
  padded = tiling.pad_to_multiple(image, multiple)
  out = np.asarray(module.apply(variables, padded[None], train=False))[0]
  s = module.scale
  return out[:h * s, :w * s]


def png_bytes(values: np.ndarray, filters=(0,)) -> bytes:
  """A PNG built by hand: uint8/uint16 [H, W, C], rows cycling `filters`
  (0 None, 1 Sub), so the reader is tested on more than one filter type."""
  h, w, c = values.shape
  depth = 16 if values.dtype == np.uint16 else 8
  raw = values.astype('>u2' if depth == 16 else 'u1').view(np.uint8)
  raw = raw.reshape(h, -1)
  bpp = c * depth // 8
  rows = []
  for y in range(h):
    f = filters[y % len(filters)]
    row = raw[y].copy()
    if f == 1:
      row[bpp:] = raw[y, bpp:] - raw[y, :-bpp]
    rows.append(bytes([f]) + row.tobytes())

  def chunk(tag, data):
    return (struct.pack('>I', len(data)) + tag + data +
            struct.pack('>I', zlib.crc32(tag + data)))

  colour_type = {1: 0, 2: 4, 3: 2, 4: 6}[c]
  return (b'\x89PNG\r\n\x1a\n' +
          chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, depth, colour_type,
                                     0, 0, 0)) +
          chunk(b'IDAT', zlib.compress(b''.join(rows))) + chunk(b'IEND', b''))


def png_header(path):
  """(width, height, bit depth, colour type) from the IHDR bytes."""
  with open(path, 'rb') as f:
    head = f.read(26)
  return struct.unpack('>II', head[16:24]) + (head[24], head[25])


def nearest(x, s):
  return np.repeat(np.repeat(x, s, axis=0), s, axis=1)


# ------------------------------------------------------------------ tiling --


def test_tile_grid_hand_worked():
  # 10 x 7, tile 4, pad 2: windows min(4 + 4, size) = 8 x 7; row windows
  # start at max(0, y0 - 2) slid back inside: 0, 2, 2 (not 6, which would
  # end past the border).
  tiles, window = tiling.tile_grid(10, 7, 4, 2)
  assert window == (8, 7)
  assert [(t.y0, t.y1, t.wy) for t in tiles[::2]] == [(0, 4, 0), (4, 8, 2),
                                                       (8, 10, 2)]
  assert {(t.x0, t.x1, t.wx) for t in tiles} == {(0, 4, 0), (4, 7, 0)}
  covered = np.zeros((10, 7), int)
  for t in tiles:
    covered[t.y0:t.y1, t.x0:t.x1] += 1
    assert 0 <= t.wy <= t.y0 and t.y1 <= t.wy + window[0] <= 10
  np.testing.assert_array_equal(covered, 1)
  # tile <= 0: one tile, the whole image.
  assert tiling.tile_grid(5, 3, 0, 9) == ([tiling.Tile(0, 5, 0, 3, 0, 0)],
                                          (5, 3))


def test_pad_to_multiple_reflects():
  x = np.arange(5, dtype=np.float32)[None, :, None]  # 1 x 5: 1 row.
  padded = tiling.pad_to_multiple(x, 4)
  assert padded.shape == (4, 8, 1)
  np.testing.assert_array_equal(padded[0, :, 0], [0, 1, 2, 3, 4, 3, 2, 1])
  np.testing.assert_array_equal(padded[:, 0, 0], 0)  # Too thin: repeated.
  assert tiling.pad_to_multiple(x, 1) is x


@pytest.fixture(scope='module')
def tiny_nets():
  """{name: (module, variables, input multiple)}; the receptive field radius
  is ~19 LR px (rrdb_x4, 1 block), ~14 (rrdb_x1/x2, no blocks; their trunk
  runs at 1/4 and 1/2 resolution), ~9 (srresnet_x2, BN in eval mode)."""
  nets = {}
  for name, module in (
      ('rrdb_x4', models.RRDBNet(scale=4, num_feat=8, num_block=1,
                                 num_grow_ch=4)),
      ('rrdb_x2', models.RRDBNet(scale=2, num_feat=8, num_block=0)),
      ('rrdb_x1', models.RRDBNet(scale=1, num_feat=8, num_block=0)),
      ('srresnet_x2', models.SRResNet(scale=2, num_feat=8, num_block=1))):
    nets[name] = (module, random_variables(module),
                  generator_loading.input_multiple(module))
  return nets


@pytest.mark.slow
@pytest.mark.parametrize('net,hw,tile,pad,batch', [
    ('rrdb_x4', (61, 83), 16, 20, 1),    # 4 x 6 tiles, edges not multiples
    ('rrdb_x4', (61, 83), 16, 20, 5),    # last batch filled up
    ('rrdb_x4', (61, 83), 200, 20, 2),   # tile larger than the image
    ('rrdb_x2', (37, 50), 12, 16, 3),    # mod pad 37 -> 38
    ('rrdb_x1', (37, 50), 10, 14, 4),    # tile 10 -> 12, pad 14 -> 16
    ('srresnet_x2', (30, 45), 8, 10, 6),
])
def test_tiled_equals_untiled(tiny_nets, net, hw, tile, pad, batch):
  module, variables, multiple = tiny_nets[net]
  image = np.random.default_rng(0).random((*hw, 3), dtype=np.float32)
  calls = []

  def run_batch(x):
    calls.append(x.shape)
    return module.apply(variables, x, train=False)

  out = tiling.upscale_tiled(run_batch, image, module.scale, tile=tile,
                             tile_pad=pad, batch_tiles=batch,
                             multiple=multiple)
  ref = direct(module, variables, image, multiple)
  assert out.shape == ref.shape == (hw[0] * module.scale,
                                    hw[1] * module.scale, 3)
  np.testing.assert_allclose(out, ref, rtol=0, atol=1e-5)
  assert len(set(calls)) == 1  # One window shape: one compilation.
  assert calls[0][0] == batch or tile >= max(hw)


@pytest.mark.parametrize('net', ['rrdb_x2', 'srresnet_x2'])
def test_pre_pad_is_the_network_on_the_edge_replicated_image(tiny_nets, net):
  """pre_pad=p: the output is the network's on the image with its edges
  replicated p pixels, cropped back to the image (numpy np.pad reference);
  tiled or not, and unlike the plain output near the edges only."""
  module, variables, multiple = tiny_nets[net]
  image = np.random.default_rng(3).random((21, 30, 3), np.float32)
  run_batch = generator_loading.make_run_batch(module, variables)
  s = module.scale
  ref = direct(module, variables, np.pad(image, ((5, 5), (5, 5), (0, 0)),
                                         mode='edge'), multiple)
  ref = ref[5 * s:5 * s + 21 * s, 5 * s:5 * s + 30 * s]
  for tile in (0, 8):
    out = tiling.upscale_tiled(run_batch, image, s, tile=tile, tile_pad=16,
                               multiple=multiple, pre_pad=5)
    assert out.shape == (21 * s, 30 * s, 3)
    np.testing.assert_allclose(out, ref, atol=2e-5)
  plain = direct(module, variables, image, multiple)
  assert np.abs(plain - ref)[:s].max() > 1e-3  # The edges change...
  np.testing.assert_allclose(plain[12 * s:-12 * s, 12 * s:-12 * s],
                             ref[12 * s:-12 * s, 12 * s:-12 * s],
                             atol=2e-5)  # ...the middle does not.


@pytest.mark.slow
def test_tiling_is_sensitive_to_a_too_small_pad(tiny_nets):
  """The comparison above can fail: context below the receptive field."""
  module, variables, multiple = tiny_nets['rrdb_x4']
  image = np.random.default_rng(1).random((40, 40, 3), dtype=np.float32)
  out = tiling.upscale_tiled(
      lambda x: module.apply(variables, x), image, 4, tile=8, tile_pad=2,
      batch_tiles=4, multiple=multiple)
  assert np.abs(out - direct(module, variables, image)).max() > 1e-3


def test_progress_reports_every_batch():
  seen = []
  tiling.upscale_tiled(lambda x: nearest(x[0], 2)[None].repeat(len(x), 0),
                       np.zeros((9, 9, 3), np.float32), 2, tile=3,
                       tile_pad=1, batch_tiles=4,
                       progress=lambda d, t: seen.append((d, t)))
  assert seen == [(4, 9), (8, 9), (9, 9)]


# ---------------------------------------------------------------- ensemble --

# The dihedral group written out independently: (forward, inverse) on HWC.
def _T(x):  # pylint: disable=invalid-name
  return x.transpose(1, 0, 2)


_DIHEDRAL = [
    (lambda x: x, lambda y: y),
    (lambda x: x[::-1], lambda y: y[::-1]),
    (lambda x: x[:, ::-1], lambda y: y[:, ::-1]),
    (lambda x: x[::-1, ::-1], lambda y: y[::-1, ::-1]),
    (_T, _T),
    (lambda x: _T(x)[::-1], lambda y: _T(y[::-1])),
    (lambda x: _T(x)[:, ::-1], lambda y: _T(y[:, ::-1])),
    (lambda x: _T(x)[::-1, ::-1], lambda y: _T(y[::-1, ::-1])),
]


def lopsided(x):
  """x2 'network' that is not equivariant: mixes in the pixel above."""
  above = np.concatenate([np.zeros_like(x[:1]), x[:-1]], axis=0)
  return nearest(0.6 * x + 0.4 * above, 2) + np.linspace(
      0, 0.1, 2 * x.shape[1], dtype=np.float32)[None, :, None]


def test_ensemble_of_upsampling_is_upsampling():
  x = np.random.default_rng(2).random((5, 7, 3), dtype=np.float32)
  out = tiling.self_ensemble(tiling.whole_image(lambda v: nearest(v, 3)), x, 3)
  np.testing.assert_allclose(out, nearest(x, 3), atol=1e-6)


def test_ensemble_is_the_mean_of_the_inverted_outputs():
  x = np.random.default_rng(3).random((5, 7, 3), dtype=np.float32)
  expected = np.mean([inv(lopsided(np.ascontiguousarray(fwd(x))))
                      for fwd, inv in _DIHEDRAL], axis=0)
  out = tiling.self_ensemble(tiling.whole_image(lopsided), x, 2)
  np.testing.assert_allclose(out, expected, atol=1e-6)
  assert np.abs(out - lopsided(x)).max() > 1e-2  # Not a no-op.


def test_output_size_rounds_halves_up():
  assert tiling.output_size(7, 5, 1.5) == (11, 8)  # 10.5 -> 11, 7.5 -> 8
  assert tiling.output_size(3, 3, 0.1) == (1, 1)
  with pytest.raises(ValueError, match='outscale'):
    tiling.output_size(3, 3, 0)


# ------------------------------------------------------------- image files --


def test_reads_hand_made_16bit_rgba_png(tmp_path):
  values = np.random.default_rng(4).integers(0, 65536, (6, 5, 4)
                                             ).astype(np.uint16)
  path = tmp_path / 'a.png'
  path.write_bytes(png_bytes(values, filters=(0, 1)))
  image = image_files.read_image_file(path)
  assert image.bit_depth == 16 and not image.grey
  np.testing.assert_array_equal(image.pixels, values[..., :3])
  np.testing.assert_array_equal(image.alpha, values[..., 3])


@pytest.mark.parametrize('channels', [1, 2, 3, 4])
def test_16bit_png_written_and_read_back(tmp_path, channels):
  rng = np.random.default_rng(channels)
  values = rng.integers(0, 65536, (300, 7, channels)).astype(np.uint16)
  colour = values[..., :3] if channels >= 3 else values[..., :1]
  image = image_files.ImageData(
      colour.astype(np.float32) / 65535,
      values[..., -1].astype(np.float32) / 65535 if channels in (2, 4)
      else None, 16)
  path = tmp_path / 'b.png'
  assert image_files.write_image_file(path, image) == []
  assert png_header(path) == (7, 300, 16, {1: 0, 2: 4, 3: 2, 4: 6}[channels])
  back = image_files.read_image_file(path)
  np.testing.assert_array_equal(back.pixels, colour)
  # Pillow, an independent decoder: 16-bit grey exactly, colour as v >> 8.
  with Image.open(path) as pil:
    pil_values = np.asarray(pil)
  if channels == 1:
    np.testing.assert_array_equal(pil_values, values[..., 0])
  else:
    high = (values >> 8).astype(np.uint8)
    np.testing.assert_array_equal(pil_values[..., :3] if channels >= 3
                                  else pil_values[..., 0], high[..., 0]
                                  if channels == 2 else high[..., :3])


def test_modes_palette_grey_alpha(tmp_path):
  rgb = np.random.default_rng(5).integers(0, 256, (6, 8, 3), dtype=np.uint8)
  pal = Image.fromarray(rgb).quantize(8)
  pal.save(tmp_path / 'p.png')
  pal.save(tmp_path / 'pt.png', transparency=0)
  Image.fromarray(rgb).convert('LA').save(tmp_path / 'la.png')
  p = image_files.read_image_file(tmp_path / 'p.png')
  assert p.pixels.shape == (6, 8, 3) and p.alpha is None
  np.testing.assert_array_equal(p.pixels, np.asarray(pal.convert('RGB')))
  pt = image_files.read_image_file(tmp_path / 'pt.png')
  assert pt.alpha is not None and pt.alpha.min() == 0 and not pt.grey
  la = image_files.read_image_file(tmp_path / 'la.png')
  assert la.grey and la.alpha is not None and la.bit_depth == 8


def test_upscale_image_data_grey_alpha_outscale():
  rng = np.random.default_rng(6)
  image = image_files.ImageData(rng.random((5, 7, 1), dtype=np.float32),
                                rng.random((5, 7), dtype=np.float32))

  def fake(rgb):  # x2, weights the channels differently.
    return nearest(rgb * np.array([0.5, 1.0, 1.5], np.float32), 2)

  def as_uint8(x):
    return np.round(np.clip(x, 0, 1) * 255).astype(np.uint8)

  out = image_files.upscale_image_data(image, tiling.whole_image(fake), 2)
  grey3 = nearest(image.pixels, 2) * np.array([0.5, 1.0, 1.5], np.float32)
  assert out.pixels.dtype == np.uint8 and out.bit_depth == 8
  assert np.abs(out.pixels.astype(int) - as_uint8(grey3.mean(
      -1, keepdims=True))).max() <= 1
  np.testing.assert_array_equal(out.alpha, as_uint8(nearest(image.alpha, 2)))
  resized = image_files.upscale_image_data(
      image, tiling.whole_image(fake), 2, outscale=1.5,
      alpha_upsampler='bicubic', bit_depth=16)
  assert resized.pixels.shape == (8, 11, 1)  # round(7.5), round(10.5)
  assert resized.alpha.shape == (8, 11)
  assert resized.pixels.dtype == resized.alpha.dtype == np.uint16


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
  def broken(f, *args):
    f.write(b'\x89PNG half an image')
    raise OSError('disk full (simulated)')

  monkeypatch.setattr(image_files, '_encode', broken)
  image = image_files.ImageData(np.zeros((4, 4, 3), np.float32))
  with pytest.raises(OSError, match='simulated'):
    image_files.write_image_file(tmp_path / 'x.png', image)
  assert os.listdir(tmp_path) == []


# -------------------------------------------------------- generator loading --


def test_detect_arch_from_keys():
  conv, vec = np.zeros((4, 3, 3, 3)), np.zeros(4)
  assert generator_loading.detect_arch(
      {'body.0.rdb1.conv1.weight': conv, 'upconv1.weight': conv}) == 'rrdbnet'
  assert generator_loading.detect_arch(
      {'RRDB_trunk.0.RDB1.conv1.weight': conv}) == 'rrdbnet'
  assert generator_loading.detect_arch({'upconv1.weight': conv}) == 'msrresnet'
  assert generator_loading.detect_arch(
      {'body.0.weight': conv, 'body.1.weight': vec}) == 'srvgg'
  assert generator_loading.detect_arch(
      {'body.0.weight': conv, 'body.1.weight': conv}) is None


def torch_rrdbnet(torch, nf=8, nb=1, gc=4):
  """BasicSR's RRDBNet x4 (ESRGAN), written from the paper / BasicSR."""
  tnn, F = torch.nn, torch.nn.functional

  class RDB(tnn.Module):

    def __init__(self):
      super().__init__()
      for i in range(1, 5):
        setattr(self, f'conv{i}', tnn.Conv2d(nf + (i - 1) * gc, gc, 3, 1, 1))
      self.conv5 = tnn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x):
      feats = [x]
      for i in range(1, 5):
        conv = getattr(self, f'conv{i}')
        feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
      return self.conv5(torch.cat(feats, 1)) * 0.2 + x

  class RRDB(tnn.Module):

    def __init__(self):
      super().__init__()
      self.rdb1, self.rdb2, self.rdb3 = RDB(), RDB(), RDB()

    def forward(self, x):
      return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x

  class Net(tnn.Module):

    def __init__(self):
      super().__init__()
      self.conv_first = tnn.Conv2d(3, nf, 3, 1, 1)
      self.body = tnn.Sequential(*[RRDB() for _ in range(nb)])
      self.conv_body = tnn.Conv2d(nf, nf, 3, 1, 1)
      self.conv_up1 = tnn.Conv2d(nf, nf, 3, 1, 1)
      self.conv_up2 = tnn.Conv2d(nf, nf, 3, 1, 1)
      self.conv_hr = tnn.Conv2d(nf, nf, 3, 1, 1)
      self.conv_last = tnn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x):
      feat = self.conv_first(x)
      feat = feat + self.conv_body(self.body(feat))
      for conv in (self.conv_up1, self.conv_up2):
        up = F.interpolate(feat, scale_factor=2, mode='nearest')
        feat = F.leaky_relu(conv(up), 0.2)
      return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

  return Net()


def test_load_pth_and_npz_match_torch(tmp_path):
  import torch
  torch.manual_seed(0)
  net = torch_rrdbnet(torch).eval()
  x = torch.rand(1, 3, 11, 13)
  with torch.no_grad():
    ref = net(x).numpy().transpose(0, 2, 3, 1)
  pth = tmp_path / 'rrdb.pth'
  torch.save({'params_ema': net.state_dict()}, pth)
  x_nhwc = x.numpy().transpose(0, 2, 3, 1)

  module, variables, scale = generator_loading.load_generator_for_inference(
      weights=pth)  # Arch detected from the key names.
  assert (scale, module.num_feat, module.num_block) == (4, 8, 1)
  out = np.asarray(jax.jit(module.apply)(variables, x_nhwc))
  assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-4

  npz = tmp_path / 'plain.npz'  # No metadata: --arch needed.
  params_io.save_params(npz, variables)
  with pytest.raises(ValueError, match='--arch'):
    generator_loading.load_generator_for_inference(weights=npz)
  module2, variables2, scale2 = generator_loading.load_generator_for_inference(
      weights=npz, arch='rrdbnet', dtype='bfloat16')
  assert scale2 == 4 and module2.dtype == jnp.bfloat16
  out2 = np.asarray(jax.jit(module2.apply)(variables2, x_nhwc))
  assert np.abs(out2 - ref).max() / np.abs(ref).max() < 3e-2  # bfloat16

  with pytest.raises(ValueError, match='does not fit'):
    generator_loading.load_generator_for_inference(
        weights=npz, arch='rrdbnet', model_kwargs={'scale': 2})
  with pytest.raises(FileNotFoundError, match='sr_jax.convert'):
    generator_loading.load_generator_for_inference(weights=tmp_path / 'no.npz')


@pytest.mark.slow
def test_load_from_a_training_checkpoint(tmp_path, capsys):
  """--checkpoint WORKDIR: the EMA generator of a (tiny, untrained) run."""
  workdir = str(tmp_path / 'run')
  state = save_tiny_run(workdir)
  module, variables, scale = generator_loading.load_generator_for_inference(
      checkpoint=workdir, dtype='bfloat16')
  assert scale == 2 and module.dtype == jnp.bfloat16
  for x, y in zip(jax.tree.leaves(variables['params']),
                  jax.tree.leaves(state.ema_params['generator'])):
    np.testing.assert_array_equal(x, y)  # The EMA weights, not g_params.
  Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / 'a.png')
  assert upscale.main([str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'),
                       '--checkpoint', workdir]) == 0
  with Image.open(tmp_path / 'o' / 'a_out.png') as img:
    assert img.size == (10, 12)
  assert upscale.main([str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'),
                       '--checkpoint', workdir, '--which', 'latest']) == 2
  assert 'No finished checkpoint' in capsys.readouterr().err


# --------------------------------------------------------------------- CLI --


@pytest.fixture(scope='module')
def tiny_weights(tmp_path_factory):
  """Plain .npz weights of tiny RRDBNets, x1 and x2 ({scale: path}).

  x1 has no RRDB block, so its receptive field (~14 LR px) fits a small
  tile_pad and the 2000x1500 test can check tiled == untiled cheaply."""
  folder = tmp_path_factory.mktemp('weights')
  paths = {}
  for scale in (1, 2):
    module = models.RRDBNet(scale=scale, num_feat=4, num_block=scale - 1,
                            num_grow_ch=4)
    paths[scale] = str(folder / f'rrdb_x{scale}.npz')
    params_io.save_params(paths[scale], random_variables(module))
  return paths


@pytest.mark.slow
def test_cli_big_16bit_rgba_png_with_tiles(tmp_path, tiny_weights):
  """2000x1500 RGBA 16-bit through the CLI. Scale 1 keeps it fast on CPU:
  RRDBNet x1 runs its trunk at 1/4 resolution."""
  y, x = np.mgrid[0:1500, 0:2000]
  values = np.stack([x * 32, y * 43, (x + y) * 18, 65535 - x * 32], axis=-1)
  values = values + ((x * 7919 + y * 104729) % 257 * 3)[..., None]
  values = values.astype(np.uint16)
  src = tmp_path / 'big.png'
  src.write_bytes(png_bytes(values))
  out_dir = tmp_path / 'out'
  code = upscale.main([str(src), '-o', str(out_dir), '--weights',
                       tiny_weights[1], '--arch', 'rrdbnet', '--tile', '256',
                       '--tile-pad', '16', '--batch-tiles', '4',
                       '--alpha-upsampler', 'bicubic', '--pre-pad', '0'])
  assert code == 0
  dst = out_dir / 'big_out.png'
  assert png_header(dst) == (2000, 1500, 16, 6)
  assert sorted(os.listdir(out_dir)) == ['big_out.png']  # No temp files.
  back = image_files.read_image_file(dst)
  # Bicubic alpha at scale 1 is the identity: alpha kept to the last bit.
  np.testing.assert_array_equal(back.alpha, values[..., 3])
  # Colour: the whole image through the network at once, quantised.
  module, variables, _ = generator_loading.load_generator_for_inference(
      weights=tiny_weights[1], arch='rrdbnet')
  ref = direct(module, variables, values[..., :3].astype(np.float32) / 65535,
               multiple=4)
  ref = np.round(np.clip(ref, 0, 1) * 65535)
  assert np.abs(back.pixels - ref).max() <= 1


def test_cli_grey_jpeg_outscale_and_file_output(tmp_path, tiny_weights):
  grey = np.random.default_rng(7).integers(0, 256, (20, 30), dtype=np.uint8)
  Image.fromarray(grey).save(tmp_path / 'g.jpg')
  out = tmp_path / 'sub' / 'result.png'  # One input: OUT may be a file.
  assert upscale.main([str(tmp_path / 'g.jpg'), '-o', str(out), '--weights',
                       tiny_weights[2], '--arch', 'rrdbnet', '--outscale',
                       '3.5', '--ensemble']) == 0
  with Image.open(out) as img:
    assert img.mode == 'L' and img.size == (105, 70)  # 30 * 3.5, 20 * 3.5
  assert upscale.main([str(tmp_path / 'g.jpg'), '-o', str(tmp_path / 'o'),
                       '--weights', tiny_weights[2], '--arch', 'rrdbnet',
                       '--tile', '8']) == 0
  with Image.open(tmp_path / 'o' / 'g_out.jpg') as img:
    assert img.mode == 'L' and img.size == (60, 40)


def test_cli_skips_unreadable_images_and_fails_at_the_end(tmp_path,
                                                          tiny_weights,
                                                          capsys):
  folder = tmp_path / 'in'
  folder.mkdir()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / 'a.png')
  (folder / 'b.png').write_bytes(b'not an image')
  code = upscale.main([str(folder), '-o', str(tmp_path / 'out'), '--weights',
                       tiny_weights[2], '--arch', 'rrdbnet'])
  err = capsys.readouterr().err
  assert code == 1 and 'b.png' in err and 'Could not read image' in err
  assert sorted(os.listdir(tmp_path / 'out')) == ['a_out.png']


def test_cli_failure_mid_run_leaves_no_partial_file(tmp_path, tiny_weights,
                                                    monkeypatch):
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'a.png')

  def broken(f, *args):
    f.write(b'\x89PNG partial')
    raise OSError('simulated crash while encoding')

  monkeypatch.setattr(image_files, '_encode', broken)
  out = tmp_path / 'out'
  assert upscale.main([str(tmp_path / 'a.png'), '-o', str(out), '--weights',
                       tiny_weights[2], '--arch', 'rrdbnet']) == 1
  assert os.listdir(out) == []


@pytest.mark.parametrize('args,message', [
    (['missing.png', '--weights', 'w.npz'], 'does not exist'),
    (['{img}', '--weights', 'nowhere.npz'], 'Weights file'),
    (['{img}', '--weights', '{w}'], '--arch'),
    (['{img}', '--weights', '{w}', '--arch', 'rrdbnet', '--tile', '-1'],
     '--tile must be'),
    (['{img}', '--weights', '{w}', '--model-kwargs', '[1]'], 'JSON object'),
])
def test_cli_bad_input_errors(tmp_path, tiny_weights, capsys, args, message):
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'i.png')
  args = [a.format(img=tmp_path / 'i.png', w=tiny_weights[2]) for a in args]
  assert upscale.main(args + ['-o', str(tmp_path / 'out')]) == 2
  assert message in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


@pytest.mark.slow
def test_module_entry_point(tmp_path, tiny_weights):
  """The public contract: python -m sr_jax.upscale IN -o OUT --weights W
  [--tile N --tile-pad P]."""
  rgba = np.random.default_rng(8).integers(0, 256, (12, 10, 4), np.uint8)
  Image.fromarray(rgba, 'RGBA').save(tmp_path / 'c.png')
  result = run_python(['-m', 'sr_jax.upscale', str(tmp_path / 'c.png'), '-o',
                       str(tmp_path / 'out'), '--weights', tiny_weights[2],
                       '--arch', 'rrdbnet', '--tile', '4', '--tile-pad', '2'])
  assert result.returncode == 0, result.stderr
  with Image.open(tmp_path / 'out' / 'c_out.png') as img:
    assert img.mode == 'RGBA' and img.size == (20, 24)


def test_cli_gif_in_a_folder_first_frame_with_a_note(tmp_path, tiny_weights,
                                                     capsys):
  """A folder's .gif is upscaled, not left out without a word; of an
  animated one only frame 1 is, and a note says so (written as PNG)."""
  folder = tmp_path / 'in'
  folder.mkdir()
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / 'a.png')
  frames = [Image.fromarray(np.full((8, 6, 3), v, np.uint8)) for v in (0, 255)]
  frames[0].save(folder / 'anim.gif', save_all=True,
                 append_images=frames[1:], duration=100, loop=0)
  code = upscale.main([str(folder), '-o', str(tmp_path / 'out'), '--weights',
                       tiny_weights[2], '--arch', 'rrdbnet'])
  err = capsys.readouterr().err
  assert code == 0, err
  assert sorted(os.listdir(tmp_path / 'out')) == ['a_out.png', 'anim_out.png']
  with Image.open(tmp_path / 'out' / 'anim_out.png') as img:
    assert img.size == (12, 16)
  assert 'note: only frame 1 of 2 was upscaled' in err
  assert err.count('only frame 1') == 1  # Not for the PNG.


@pytest.mark.parametrize('how', ['under_a_file', 'read_only'])
@pytest.mark.parametrize('output', ['out', 'out/result.png'])
def test_cli_unwritable_output_fails_before_the_model_loads(
    tmp_path, tiny_weights, capsys, monkeypatch, how, output):
  """-o below a regular file (ENOTDIR, as root too) or in a read-only folder
  (chmod; root writes anyway, so skipped there): one error line naming the
  folder, exit 2, before the model loads or any image is computed."""
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / 'i.png')
  base = unwritable_folder(
      tmp_path / ('a_file' if how == 'under_a_file' else 'ro'), how)
  monkeypatch.setattr(generator_loading, 'load_generator_for_inference',
                      lambda **kw: pytest.fail('the model was loaded'))
  try:
    code = upscale.main([str(tmp_path / 'i.png'), '-o', str(base / output),
                         '--weights', tiny_weights[2], '--arch', 'rrdbnet'])
  finally:
    if how == 'read_only':
      base.chmod(0o755)
  err = capsys.readouterr().err
  assert code == 2, err
  assert err.count('error:') == 1 and str(base) in err
  assert 'cannot write to folder' in err
