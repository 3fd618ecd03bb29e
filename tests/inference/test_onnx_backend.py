"""sr_jax.inference.onnx_backend: the export's up-sampling against
resampling.resize, and `upscale --backend onnxruntime` against the JAX
backend."""
import numpy as np
from PIL import Image
import pytest

from sr_jax import upscale
from sr_jax.degradations import resampling
from sr_jax.inference import onnx_backend

# Skipped without them, as tests/tools/test_export.py is.
pytest.importorskip('onnxruntime')
pytest.importorskip('onnx')
pytest.importorskip('jax2onnx')


@pytest.mark.parametrize('mode', ['bicubic', 'bilinear', 'nearest'])
@pytest.mark.parametrize('factor', [2, 3, 4])
def test_symbolic_size_upsampling_equals_resize(mode, factor):
  """The export's shift-and-blend up-sampling is resampling.resize's
  (torch's, through its matrices), edges included; here on concrete
  sizes, 1 to 7 pixels."""
  rng = np.random.default_rng(factor)
  for h, w in ((1, 7), (2, 5), (6, 3)):
    x = rng.random((2, h, w, 3), dtype=np.float32)
    y = x
    for axis in (1, 2):
      y = onnx_backend._upsample_axis(y, factor, axis, mode)  # pylint: disable=protected-access
    want = np.einsum('oh,nhwc,pw->nopc',
                     resampling.resize_matrix(h, h * factor, mode), x,
                     resampling.resize_matrix(w, w * factor, mode))
    # x3: torch computes each source coordinate in float32 from
    # fl(1/3), so its cubic weights drift with the position by up to ~1e-6
    # (measured against this phase form in float64: 1.5e-6 bicubic, 2.2e-7
    # bilinear); x2 and x4 coordinates are exact in float32.
    atol = 1e-6 if factor in (2, 4) else 4e-6
    np.testing.assert_allclose(np.asarray(y), np.asarray(want), atol=atol)


@pytest.mark.slow
def test_upscale_backend_onnxruntime_equals_jax(tmp_path, rrdb_x2, capsys):
  """Tiles (aligned to RRDBNet x2's multiple), pre-pad, x8 ensemble, alpha
  through the network and 16 bits: the .onnx file and the in-memory export
  give the JAX backend's output to one level."""
  _, _, weights, onnx_file = rrdb_x2
  rng = np.random.default_rng(2)
  values = (rng.random((23, 19, 4)) * 65535).astype(np.uint16)
  Image.fromarray(values[..., 0]).save(tmp_path / 'grey16.png')
  rgba = (rng.random((23, 19, 4)) * 255).astype(np.uint8)
  Image.fromarray(rgba, 'RGBA').save(tmp_path / 'rgba.png')
  common = ['--tile', '8', '--tile-pad', '3', '--ensemble']
  outputs = {}
  for name, source in (
      ('jax', ['--backend', 'jax', '--weights', weights, '--arch',
               'rrdbnet']),
      ('file', ['--backend', 'onnxruntime', '--weights', str(onnx_file)]),
      ('memory', ['--backend', 'onnxruntime', '--weights', weights,
                  '--arch', 'rrdbnet'])):
    out = tmp_path / name
    assert upscale.main([str(tmp_path), '-o', str(out)] + source
                        + common) == 0, capsys.readouterr().err
    outputs[name] = {f: np.asarray(Image.open(out / f'{f}_out.png'))
                     for f in ('grey16', 'rgba')}
  assert 'rrdbnet x2 (onnxruntime' in capsys.readouterr().err
  for f, want in outputs['jax'].items():
    assert want.shape[:2] == (46, 38)
    level = 257 if want.dtype == np.uint16 else 1
    for name in ('file', 'memory'):
      got = outputs[name][f]
      assert got.dtype == want.dtype and got.shape == want.shape
      diff = np.abs(got.astype(np.int64) - want.astype(np.int64)).max()
      assert diff <= level, (f, name, diff)


@pytest.mark.slow
def test_upscale_backend_onnxruntime_errors(tmp_path, rrdb_x2, capsys):
  _, _, weights, onnx_file = rrdb_x2
  Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / 'a.png')
  img, out = str(tmp_path / 'a.png'), str(tmp_path / 'o')
  for args, message in (
      (['--weights', str(onnx_file), '--arch', 'rrdbnet'], 'do not apply'),
      (['--weights', str(onnx_file), '--dtype', 'bfloat16'], 'float32'),
      (['--weights', str(tmp_path / 'no.onnx')], 'does not exist'),
      (['--weights', weights], '--arch')):
    assert upscale.main([img, '-o', out, '--backend', 'onnxruntime']
                        + args) == 2, args
    assert message in capsys.readouterr().err, args
