"""sr_jax.inference.tiling: tiled inference equals the untiled network,
pre-pad, the self-ensemble, output sizes, and the streamed output.

References: the untiled network applied directly (`module.apply` on the
whole image); hand-worked tile grids and sizes; the 8 dihedral transforms
written out in the test; the previous float path (the whole output in
float32, quantised at the end), kept here as it was, which the streamed,
quantise-as-placed path must match to the bit.
"""

import jax
import numpy as np
from PIL import Image
import pytest

from sr_jax import models
from sr_jax import upscale
from sr_jax.inference import generator_loading
from sr_jax.inference import image_files
from sr_jax.inference import tiling
from sr_jax.weights import params_io
from tests.helpers.runs import random_variables
from tests.helpers.upscale import direct
from tests.helpers.upscale import nearest
from tests.helpers.upscale import png16

# ------------------------------------------- the previous float path, as it was


def old_upscale_tiled(run_batch, image, scale, *, tile, tile_pad, batch_tiles,
                      multiple, pre_pad):
  """The whole [H s, W s, C] float32 output, from padded copies."""
  h, w = image.shape[:2]
  image = np.asarray(image, np.float32)
  if pre_pad:
    image = np.pad(image, ((pre_pad, pre_pad), (pre_pad, pre_pad), (0, 0)),
                   mode='edge')
  padded = tiling.pad_to_multiple(image, multiple)
  ph, pw = padded.shape[:2]
  tile = tiling.round_up(tile, multiple) if tile > 0 else 0
  tiles, (win_h, win_w) = tiling.tile_grid(
      ph, pw, tile, tiling.round_up(tile_pad, multiple))
  batch_size = min(batch_tiles, len(tiles))
  output = None
  for i in range(0, len(tiles), batch_size):
    batch = tiles[i:i + batch_size]
    batch = batch + [batch[-1]] * (batch_size - len(batch))
    windows = np.stack([padded[t.wy:t.wy + win_h, t.wx:t.wx + win_w]
                        for t in batch])
    result = np.asarray(run_batch(windows), np.float32)
    if output is None:
      output = np.empty((ph * scale, pw * scale, result.shape[3]), np.float32)
    for out, t in zip(result, batch):
      oy, ox = (t.y0 - t.wy) * scale, (t.x0 - t.wx) * scale
      output[t.y0 * scale:t.y1 * scale, t.x0 * scale:t.x1 * scale] = out[
          oy:oy + (t.y1 - t.y0) * scale, ox:ox + (t.x1 - t.x0) * scale]
  top = pre_pad * scale
  return output[top:top + h * scale, top:top + w * scale]


def old_self_ensemble(upscale_fn, image):
  total = None
  for flip in (False, True):
    for k in range(4):
      x = np.rot90(image[:, ::-1] if flip else image, k, axes=(0, 1))
      y = np.rot90(upscale_fn(np.ascontiguousarray(x)), -k, axes=(0, 1))
      y = y[:, ::-1] if flip else y
      total = y.astype(np.float32) if total is None else total + y
  return total / np.float32(8)


def old_resize(values, size, method='lanczos'):
  resample = {'lanczos': Image.Resampling.LANCZOS,
              'bicubic': Image.Resampling.BICUBIC}[method]
  planes = [np.asarray(Image.fromarray(np.ascontiguousarray(
      values[..., c], np.float32), 'F').resize(size[::-1], resample))
            for c in range(values.shape[-1])]
  return np.stack(planes, axis=-1)


def old_quantise(values, bit_depth):
  top = 65535 if bit_depth == 16 else 255
  out = np.clip(values, 0.0, 1.0) * np.float32(top)
  return np.round(out).astype(np.uint16 if bit_depth == 16 else np.uint8)


def as_read(values):
  """The float32 image the previous reader returned for stored values."""
  top = 65535.0 if values.dtype == np.uint16 else 255.0
  return values.astype(np.float32) / top


def old_path(pixels, alpha, upscale_rgb, *, outscale, alpha_upsampler,
             bit_depth):
  """Previous upscale_image_data + write's quantisation, on stored values."""
  pixels = as_read(pixels)
  rgb = np.repeat(pixels, 3, axis=-1) if pixels.shape[-1] == 1 else pixels
  out = upscale_rgb(rgb)
  if pixels.shape[-1] == 1:
    out = out.mean(axis=-1, keepdims=True)
  if alpha is not None:
    alpha = as_read(alpha)
    if alpha_upsampler == 'network':
      alpha = upscale_rgb(np.repeat(alpha[..., None], 3, axis=-1)).mean(-1)
    else:
      alpha = old_resize(alpha[..., None], out.shape[:2], 'bicubic')[..., 0]
  if outscale is not None:
    size = tiling.output_size(*pixels.shape[:2], outscale)
    if size != out.shape[:2]:
      out = old_resize(out, size)
      alpha = None if alpha is None else old_resize(alpha[..., None],
                                                    size)[..., 0]
  return (old_quantise(out, bit_depth),
          None if alpha is None else old_quantise(alpha, bit_depth))


# ------------------------------------------------------------------ helpers --


def fake_net(scale):
  """A numpy 'network' [K, h, w, 3] -> [K, s h, s w, 3]: a zero-padded 3x3
  stencil mixing channels (so window borders matter), upsampled, plus a
  ramp across the window (so window placement matters), leaving [0, 1]."""

  def run(x):
    p = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    y = (0.5 * x + 0.2 * p[:, :-2, 1:-1] + 0.15 * p[:, 2:, 1:-1]
         + 0.25 * p[:, 1:-1, :-2] - 0.1 * p[:, 1:-1, 2:])
    y = y + 0.3 * (y[..., [1, 2, 0]] - y[..., [2, 0, 1]])
    y = np.repeat(np.repeat(y, scale, axis=1), scale, axis=2)
    ramp = np.linspace(-0.1, 0.12, y.shape[2], dtype=np.float32)
    return (1.2 * y + ramp[None, None, :, None] - 0.05).astype(np.float32)

  return run


# ------------------------------------- bit-identical to the previous float path

CASES = {
    # name: (shape, dtype, alpha, tiled kwargs, ensemble, outscale,
    #        alpha_upsampler, output bit depth)
    'rgb8_tiled': ((13, 17, 3), np.uint8, False,
                   dict(tile=5, tile_pad=2, batch_tiles=3, multiple=2,
                        pre_pad=2), False, None, 'network', 8),
    'rgb8_ensemble': ((9, 12, 3), np.uint8, False,
                      dict(tile=4, tile_pad=1, batch_tiles=2, multiple=1,
                           pre_pad=1), True, None, 'network', 8),
    'rgba8_network_alpha': ((11, 7, 3), np.uint8, True,
                            dict(tile=4, tile_pad=2, batch_tiles=4,
                                 multiple=1, pre_pad=0), False, None,
                            'network', 8),
    'rgba8_bicubic_outscale': ((11, 7, 3), np.uint8, True,
                               dict(tile=6, tile_pad=1, batch_tiles=1,
                                    multiple=1, pre_pad=3), False, 1.5,
                               'bicubic', 8),
    'rgb16_tiled': ((10, 14, 3), np.uint16, False,
                    dict(tile=4, tile_pad=3, batch_tiles=2, multiple=4,
                         pre_pad=1), False, None, 'network', 16),
    'rgb16_to_8': ((10, 14, 3), np.uint16, False,
                   dict(tile=0, tile_pad=0, batch_tiles=1, multiple=1,
                        pre_pad=2), False, None, 'network', 8),
    'grey8_outscale': ((12, 9, 1), np.uint8, False,
                       dict(tile=5, tile_pad=2, batch_tiles=2, multiple=1,
                            pre_pad=2), False, 3.3, 'network', 8),
    'grey16_alpha_ensemble': ((8, 11, 1), np.uint16, True,
                              dict(tile=3, tile_pad=1, batch_tiles=3,
                                   multiple=2, pre_pad=1), True, None,
                              'network', 16),
    'grey8_ensemble_outscale': ((7, 10, 1), np.uint8, False,
                                dict(tile=4, tile_pad=1, batch_tiles=1,
                                     multiple=1, pre_pad=0), True, 1.25,
                                'network', 8),
}


@pytest.mark.parametrize('case', sorted(CASES))
def test_streamed_output_equals_the_float_path_bit_for_bit(case):
  shape, dtype, has_alpha, kw, ensemble, outscale, alpha_up, depth = (
      CASES[case])
  scale = 2
  rng = np.random.default_rng(sorted(CASES).index(case))
  top = np.iinfo(dtype).max
  pixels = rng.integers(0, top + 1, shape).astype(dtype)
  alpha = (rng.integers(0, top + 1, shape[:2]).astype(dtype)
           if has_alpha else None)
  run = fake_net(scale)
  calls = []

  def run_batch(x):
    calls.append((x.dtype, x.shape, x.min(), x.max()))
    return run(x)

  def old_rgb(x):
    tiled = lambda v: old_upscale_tiled(run, v, scale, **kw)
    return old_self_ensemble(tiled, x) if ensemble else tiled(x)

  def streamed(x, sink):
    def tiled(v, s):
      tiling.upscale_tiled(run_batch, v, scale, sink=s, **kw)
    if ensemble:
      tiling.self_ensemble(tiled, x, scale, sink)
    else:
      tiled(x, sink)

  ref_pixels, ref_alpha = old_path(pixels, alpha, old_rgb, outscale=outscale,
                                   alpha_upsampler=alpha_up, bit_depth=depth)
  out = image_files.upscale_image_data(
      image_files.ImageData(pixels, alpha, 8 * pixels.itemsize), streamed,
      scale, outscale=outscale, alpha_upsampler=alpha_up, bit_depth=depth)
  assert out.bit_depth == depth
  assert out.pixels.dtype == ref_pixels.dtype == (
      np.uint16 if depth == 16 else np.uint8)
  np.testing.assert_array_equal(out.pixels, ref_pixels)
  if has_alpha:
    np.testing.assert_array_equal(out.alpha, ref_alpha)
  else:
    assert out.alpha is None
  # The network saw float32 windows in [0, 1], tile-sized when tiled.
  largest = (tiling.round_up(kw['tile'], kw['multiple'])
             + 2 * tiling.round_up(kw['tile_pad'], kw['multiple']))
  for window_dtype, window_shape, low, high in calls:
    assert window_dtype == np.float32 and 0 <= low <= high <= 1
    assert window_shape[-1] == 3
    assert not kw['tile'] or max(window_shape[1:3]) <= largest
  if not ensemble and shape[-1] == 3:  # Clipping matters here too.
    assert ref_pixels.min() == 0 and ref_pixels.max() == np.iinfo(
        ref_pixels.dtype).max


@pytest.mark.parametrize('multiple', [1, 2, 4])
def test_padded_index_is_the_padded_image(multiple):
  """Indexing with the maps equals padding copies (np.pad, pad_to_multiple),
  thin images (mirrored with the edge repeated) included."""
  for h in range(1, 7):
    for pre_pad in range(4):
      image = np.arange(h * 5 * 2).reshape(h, 5, 2)
      padded = np.pad(image, ((pre_pad, pre_pad), (pre_pad, pre_pad), (0, 0)),
                      mode='edge')
      padded = tiling.pad_to_multiple(padded, multiple)
      rows = tiling.padded_index(h, pre_pad, multiple)
      cols = tiling.padded_index(5, pre_pad, multiple)
      np.testing.assert_array_equal(image[np.ix_(rows, cols)], padded)


def test_streamed_tiles_are_sensitive_to_window_placement():
  """The comparison above can fail: another tile grid changes the output."""
  image = np.random.default_rng(0).integers(0, 256, (9, 9, 3), np.uint8)
  kw = dict(tile=4, tile_pad=1, batch_tiles=1, multiple=1, pre_pad=0)
  ref = old_upscale_tiled(fake_net(2), as_read(image), 2, **kw)
  out = tiling.upscale_tiled(fake_net(2), image, 2, **kw)
  np.testing.assert_array_equal(out, ref)  # Float path, bit for bit.
  shifted = tiling.upscale_tiled(fake_net(2), image, 2, **dict(kw, tile=3))
  assert np.abs(shifted - ref).max() > 1e-3


@pytest.fixture(scope='module')
def rrdb_x2(tmp_path_factory):
  """A tiny RRDBNet x2 (pixel-unshuffle input: the mod pad is exercised)."""
  module = models.RRDBNet(scale=2, num_feat=4, num_block=0)
  variables = module.init(jax.random.key(1), np.zeros((1, 8, 8, 3)))
  rng = np.random.default_rng(1)
  variables = jax.tree.map(
      lambda v: (0.4 * rng.standard_normal(v.shape)).astype(np.float32),
      variables)
  path = tmp_path_factory.mktemp('w') / 'rrdb_x2.npz'
  params_io.save_params(path, variables)
  return str(path)


@pytest.mark.parametrize('kind,flags', [
    ('rgba8', ['--tile', '6', '--tile-pad', '4', '--batch-tiles', '3']),
    ('rgb16', ['--tile', '8', '--tile-pad', '2', '--ensemble']),
    ('grey8', ['--outscale', '1.5', '--alpha-upsampler', 'bicubic']),
])
def test_cli_files_equal_the_float_path(tmp_path, rrdb_x2, kind, flags):
  """End to end with a real network: read, stream, quantise, write, read."""
  rng = np.random.default_rng(3)
  if kind == 'rgba8':
    values = rng.integers(0, 256, (15, 13, 4), np.uint8)
    Image.fromarray(values).save(tmp_path / 'in.png')
    pixels, alpha = values[..., :3], values[..., 3]
  elif kind == 'rgb16':
    values = rng.integers(0, 65536, (11, 14, 3)).astype(np.uint16)
    (tmp_path / 'in.png').write_bytes(png16(values))
    pixels, alpha = values, None
  else:
    values = rng.integers(0, 256, (10, 9), np.uint8)
    Image.fromarray(values).save(tmp_path / 'in.png')
    pixels, alpha = values[..., None], None
  dst = tmp_path / 'out.png'
  assert upscale.main([str(tmp_path / 'in.png'), '-o', str(dst), '--weights',
                       rrdb_x2, '--arch', 'rrdbnet'] + flags) == 0
  module, variables, scale = generator_loading.load_generator_for_inference(
      weights=rrdb_x2, arch='rrdbnet')
  run_batch = generator_loading.make_run_batch(module, variables)
  args = upscale._parser().parse_args(['x', '-o', 'y', '--weights', 'z']
                                      + flags)
  upscale._release_defaults(args, scale)  # --pre-pad as the CLI resolves it
  assert args.pre_pad == 8
  kw = dict(tile=args.tile, tile_pad=args.tile_pad,
            batch_tiles=args.batch_tiles, multiple=2, pre_pad=args.pre_pad)

  def old_rgb(x):
    tiled = lambda v: old_upscale_tiled(run_batch, v, scale, **kw)
    return old_self_ensemble(tiled, x) if args.ensemble else tiled(x)

  ref_pixels, ref_alpha = old_path(
      pixels, alpha, old_rgb, outscale=args.outscale,
      alpha_upsampler=args.alpha_upsampler, bit_depth=8 * pixels.itemsize)
  back = image_files.read_image_file(dst)
  np.testing.assert_array_equal(back.pixels, ref_pixels)
  if alpha is not None:
    np.testing.assert_array_equal(back.alpha, ref_alpha)


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
