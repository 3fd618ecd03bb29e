"""`python -m sr_jax.upscale` (sr_jax.upscale): files, folders, errors,
pixel limits, out-of-memory hints and bounded host memory (the peak RSS of
a subprocess against the output's size)."""
import io
import json
import os
import struct
import zlib

import numpy as np
from PIL import Image
from PIL import ImageFile
import pytest

from sr_jax import models
from sr_jax import upscale
from sr_jax.data import image_io
from sr_jax.inference import generator_loading
from sr_jax.inference import image_files
from sr_jax.weights import params_io
from tests.helpers.files import unwritable_folder
from tests.helpers.repo import run_python
from tests.helpers.runs import random_variables
from tests.helpers.upscale import cli_args
from tests.helpers.upscale import direct
from tests.helpers.upscale import png16
from tests.helpers.upscale import png_bytes
from tests.helpers.upscale import png_header
from tests.helpers.upscale import tiny_srvgg_weights
from tests.helpers.weights_files import save_tiny_dsgan
from tests.helpers.weights_files import upscale_error

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


def png_claiming(path, width, height):
  """A small valid PNG whose IHDR then claims width x height (CRC fixed):
  nothing that large is ever allocated."""
  buf = io.BytesIO()
  Image.fromarray(np.zeros((2, 2, 3), np.uint8)).save(buf, 'PNG')
  data = bytearray(buf.getvalue())
  assert data[12:16] == b'IHDR'
  data[16:24] = struct.pack('>II', width, height)
  data[29:33] = struct.pack('>I', zlib.crc32(bytes(data[12:29])))
  path.write_bytes(bytes(data))


@pytest.mark.slow
def test_max_pixels_refuses_from_the_header(tmp_path, monkeypatch, capsys):
  bomb = tmp_path / 'bomb.png'
  png_claiming(bomb, 200_000, 150_000)  # 3e10 pixels in ~70 bytes.

  def no_decoding(self):
    raise AssertionError('pixel data was decoded')

  monkeypatch.setattr(ImageFile.ImageFile, 'load', no_decoding)
  with pytest.raises(image_io.ImageTooLargeError) as e:
    image_files.read_image_file(bomb)
  message = str(e.value)
  assert 'bomb.png' in message and '200000x150000' in message
  assert '30,000,000,000 pixels' in message and '100,000,000' in message
  assert '--max-pixels' in message and '\n' not in message
  # Through the CLI: skipped with that one line, exit status 1.
  weights = tiny_srvgg_weights(tmp_path / 'w.npz')
  code = upscale.main([str(bomb), '-o', str(tmp_path / 'out'), '--weights',
                       weights, '--arch', 'srvgg'])
  err = capsys.readouterr().err
  assert code == 1
  skipped = [line for line in err.splitlines() if 'skipped' in line]
  assert len(skipped) == 1 and '200000x150000' in skipped[0]
  assert 'Traceback' not in err and not (tmp_path / 'out').exists()


def test_max_pixels_small_limit_and_no_limit(tmp_path, capsys):
  Image.fromarray(np.zeros((12, 12, 3), np.uint8)).save(tmp_path / 'a.png')
  (tmp_path / 'b.png').write_bytes(png16(np.zeros((12, 12, 3), np.uint16)))
  for name in ('a.png', 'b.png'):  # Pillow and TensorFlow readers.
    with pytest.raises(image_io.ImageTooLargeError, match='144 pixels'):
      image_files.read_image_file(tmp_path / name, max_pixels=100)
    assert image_files.read_image_file(tmp_path / name,
                                       max_pixels=144).size == (12, 12)
  weights = tiny_srvgg_weights(tmp_path / 'w.npz')
  base = [str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'), '--weights',
          weights, '--arch', 'srvgg']
  assert upscale.main(base + ['--max-pixels', '100']) == 1
  assert 'above the limit of 100' in capsys.readouterr().err
  assert upscale.main(base + ['--max-pixels', '0']) == 0


def _device_oom():
  return RuntimeError('RESOURCE_EXHAUSTED: Out of memory while trying to '
                      'allocate 25769803776 bytes.')


@pytest.mark.parametrize('flags,expected,absent', [
    (dict(tile=0), ['--tile 512', '--dtype bfloat16'], ['--batch-tiles']),
    (dict(tile=256, batch_tiles=4),
     ['--tile 128 --batch-tiles 1', 'or --dtype bfloat16'], ['--tile 512']),
    (dict(tile=512, batch_tiles=1, dtype='bfloat16'), ['--tile 256'],
     ['--batch-tiles', 'bfloat16']),
])
def test_device_oom_hint(flags, expected, absent):
  hint = upscale.memory_hint(_device_oom(), cli_args(**flags), 4)
  assert 'out of device memory' in hint
  for text in expected:
    assert text in hint
  for text in absent:
    assert text not in hint


def test_host_oom_hint_says_what_the_output_needs():
  image = image_files.ImageData(np.zeros((3000, 4000, 3), np.uint8))
  error = MemoryError('Unable to allocate 25.7 GiB')
  hint = upscale.memory_hint(error, cli_args(tile=512), 4, image, 8)
  # 16000 x 12000 x 3 bytes.
  assert 'out of host memory' in hint and '16000x12000' in hint
  assert '0.6 GB at 8 bits' in hint and '--tile' not in hint
  assert '--outscale' in hint and 'PNG' in hint
  grey16 = image_files.ImageData(np.zeros((12000, 12000, 1), np.uint16),
                                 np.zeros((12000, 12000), np.uint16), 16)
  hint = upscale.memory_hint(error, cli_args(ensemble=True), 4, grey16, 16)
  # 48000^2 x 2 channels x 2 bytes; the ensemble's sum 48000^2 x 12 bytes.
  assert '9.2 GB at 16 bits' in hint and '--ensemble adds 27.6 GB' in hint
  assert 'reading' in upscale.memory_hint(error, cli_args(), 4)
  assert upscale.memory_hint(ValueError('bad'), cli_args(), 4) == ''
  assert upscale.memory_hint(OSError('disk'), cli_args(), 4, image) == ''


@pytest.mark.slow
def test_cli_prints_the_hint_and_goes_on(tmp_path, monkeypatch, capsys):
  for name in ('a.png', 'b.png'):
    Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / name)
  weights = tiny_srvgg_weights(tmp_path / 'w.npz')
  real = image_files.upscale_image_data

  def fails_once(image, *args, **kwargs):
    monkeypatch.setattr(image_files, 'upscale_image_data', real)
    raise MemoryError('Unable to allocate 1.0 TiB')

  monkeypatch.setattr(image_files, 'upscale_image_data', fails_once)
  code = upscale.main([str(tmp_path), '-o', str(tmp_path / 'o'), '--weights',
                       weights, '--arch', 'srvgg', '--tile', '4'])
  err = capsys.readouterr().err
  assert code == 1
  assert 'skipped' in err and 'out of host memory' in err and '20x24' in err
  assert (tmp_path / 'o' / 'b_out.png').exists()


# Runs the small image (compiles, warms up), resets the peak RSS (Linux:
# /proc/self/clear_refs), runs the big one; prints [RSS before, peak during].
_MEASURE = r'''
import json, sys
from sr_jax import upscale

def status(key):
  with open('/proc/self/status') as f:
    for line in f:
      if line.startswith(key + ':'):
        return int(line.split()[1]) * 1024

def run(src, dst):
  assert upscale.main([src, '-o', dst, '--weights', sys.argv[5], '--arch',
                       'srvgg', '--tile', '64', '--tile-pad', '4']) == 0

run(sys.argv[1], sys.argv[2])
try:
  with open('/proc/self/clear_refs', 'w') as f:
    f.write('5')  # Resets VmHWM, the peak RSS, to the current RSS.
except OSError as e:
  print(json.dumps(f'cannot reset the peak RSS: {e}'))
  sys.exit(0)
before = status('VmRSS')
run(sys.argv[3], sys.argv[4])
print(json.dumps([before, status('VmHWM')]))
'''


@pytest.mark.slow  # ~5 s alone: a subprocess importing JAX, a 36 MB PNG.
def test_peak_rss_stays_near_the_output_size(tmp_path):
  """A 4000x3000x3 (36 MB) output: the peak RSS may grow by at most 1.5x
  that plus 24 MB over the RSS after a run of a small image with the same
  tiles (which compiled everything). The previous float path grew by 461
  MiB here; one extra uint8 copy of the output would fail this too."""
  y, x = np.mgrid[0:750, 0:1000]
  big = np.stack([x % 256, y % 256, (x + y) % 256], -1).astype(np.uint8)
  Image.fromarray(big).save(tmp_path / 'big.png')
  Image.fromarray(big[:100, :100]).save(tmp_path / 'small.png')
  weights = tiny_srvgg_weights(tmp_path / 'w.npz')
  result = run_python(['-c', _MEASURE, str(tmp_path / 'small.png'),
                       str(tmp_path / 's.png'), str(tmp_path / 'big.png'),
                       str(tmp_path / 'b.png'), weights], timeout=120,
                      # A fixed threshold: glibc then returns every freed
                      # block over 128 KiB at once, instead of raising the
                      # threshold and keeping freed blocks (~50 MB of tile
                      # and band buffers here) in its heap, which would
                      # add allocator slack to what our arrays take.
                      env_extra={'MALLOC_MMAP_THRESHOLD_': '131072'})
  assert result.returncode == 0, result.stderr
  measured = json.loads(result.stdout.strip().splitlines()[-1])
  if isinstance(measured, str):
    pytest.skip(measured)
  before, peak = measured
  output_bytes = 4000 * 3000 * 3
  growth = peak - before
  print(f'RSS {before / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB '
        f'(+{growth / 2**20:.0f} MiB) for a {output_bytes / 2**20:.0f} MiB '
        'output')
  assert output_bytes < growth < 1.5 * output_bytes + (24 << 20)
  with Image.open(tmp_path / 'b.png') as img:
    assert img.size == (4000, 3000)


def test_upscale_refuses_a_down_sampling_generator(tmp_path, capsys):
  weights = save_tiny_dsgan(tmp_path / 'x4.npz', downscale=4)
  line = upscale_error(tmp_path, weights, capsys)
  assert 'down-sampling' in line and 'sr_jax.data.make_lr' in line
