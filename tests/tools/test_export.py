"""ONNX export (`python -m sr_jax.export`, sr_jax.tools.export).

References: the JAX generators themselves (module.apply under XLA, with
numpy's reflect padding for pixel-unshuffle networks) against onnxruntime
running the exported file through its own session, NCHW, at two input
sizes of one file (dynamic batch, height and width).
"""
import json

import jax
import numpy as np
import pytest

from sr_jax.inference import onnx_backend
from tests.helpers.runs import save_tiny_run
from tests.helpers.runs import write_weights

ort = pytest.importorskip('onnxruntime')
onnx = pytest.importorskip('onnx')
pytest.importorskip('jax2onnx')
from sr_jax.tools import export  # noqa: E402  (needs jax2onnx)

# (batch, height, width): odd, unequal sizes, so x2 / x1 RRDBNets pad.
SIZES = ((1, 13, 18), (2, 22, 9))


def jax_reference(module, variables, x, multiple=1):
  """[N, H, W, 3] -> the generator's output, each image reflect-padded at
  the bottom / right to `multiple` (np.pad) and the output cropped."""
  _, h, w, _ = x.shape
  pad_h, pad_w = -h % multiple, -w % multiple
  x = np.pad(x, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode='reflect')
  out = np.asarray(jax.jit(lambda v, x: module.apply(v, x, train=False))(
      variables, x))
  s = module.scale
  return out[:, :h * s, :w * s]


def onnx_run(path, x):
  """onnxruntime on an NHWC batch, through the file's NCHW interface."""
  session = ort.InferenceSession(str(path),
                                 providers=['CPUExecutionProvider'])
  (inp,), (out,) = session.get_inputs(), session.get_outputs()
  assert (inp.name, out.name) == ('input', 'output')
  y = session.run(None, {'input': x.transpose(0, 3, 1, 2).copy()})[0]
  return y.transpose(0, 2, 3, 1)


def assert_round_trip(path, module, variables, multiple=1):
  model = onnx.load(str(path))
  dims = model.graph.input[0].type.tensor_type.shape.dim
  assert [d.dim_param or d.dim_value for d in dims] == [
      'batch', 3, 'height', 'width']
  meta = {p.key: p.value for p in model.metadata_props}
  assert meta[onnx_backend.META_SCALE] == str(module.scale)
  assert meta[onnx_backend.META_MULTIPLE] == str(multiple)
  rng = np.random.default_rng(1)
  for n, h, w in SIZES:
    x = rng.random((n, h, w, 3), dtype=np.float32)
    want = jax_reference(module, variables, x, multiple)
    got = onnx_run(path, x)
    assert got.shape == want.shape == (n, h * module.scale,
                                       w * module.scale, 3)
    assert np.abs(want).max() > 0.05  # Not a trivially flat output.
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-4)


@pytest.mark.slow
def test_rrdbnet_x2_any_size(rrdb_x2):
  module, variables, _, out = rrdb_x2
  assert_round_trip(out, module, variables, multiple=2)


@pytest.mark.slow
@pytest.mark.parametrize('arch, kwargs, options', [
    # Its bicubic skip (no parameters, so given on the command line) is
    # the export's rewritten resize.
    ('rrdbnet', dict(scale=4, num_feat=8, num_block=2, num_grow_ch=4),
     dict(upsample_skip='bicubic')),
    ('srvgg', dict(scale=4, num_feat=8, num_conv=2), {}),
    ('srresnet', dict(scale=4, num_feat=8, num_block=2), {}),
    # Its bilinear base image is the export's rewritten resize.
    ('msrresnet', dict(scale=4, num_feat=8, num_block=1), {}),
])
def test_round_trip(tmp_path, capsys, arch, kwargs, options):
  module, variables, weights = write_weights(tmp_path, arch, **kwargs,
                                             **options)
  out = tmp_path / f'{arch}.onnx'
  more = ['--model-kwargs', json.dumps(options)] if options else []
  assert export.main(['--weights', weights, '--arch', arch, '--onnx',
                      str(out), '--no-verify'] + more) == 0
  assert 'max |onnxruntime - jax|' not in capsys.readouterr().out
  assert_round_trip(out, module, variables)


@pytest.mark.slow
def test_cli_prints_the_check(tmp_path, capsys):
  _, _, weights = write_weights(tmp_path, 'srvgg', scale=2, num_feat=4,
                                num_conv=1)
  assert export.main(['--weights', weights, '--arch', 'srvgg', '--onnx',
                      str(tmp_path / 'a.onnx')]) == 0
  line = capsys.readouterr().out.strip()
  assert line.startswith('max |onnxruntime - jax| 1x37x29: ')
  diffs = [float(part.split(': ')[1].split()[0])
           for part in line.split(', ')]
  assert len(diffs) == 2 and max(diffs) <= 1e-4
  # An impossible tolerance fails the check, keeping the file.
  assert export.main(['--weights', weights, '--arch', 'srvgg', '--onnx',
                      str(tmp_path / 'b.onnx'), '--tolerance', '0']) == 1
  assert 'differs from the JAX generator' in capsys.readouterr().err
  assert (tmp_path / 'b.onnx').exists()


def test_cli_errors(tmp_path, capsys):
  _, _, weights = write_weights(tmp_path, 'srvgg', scale=2, num_feat=4,
                                num_conv=1)
  out = str(tmp_path / 'x.onnx')
  cases = [
      (['--weights', str(tmp_path / 'no.npz'), '--arch', 'srvgg'],
       'does not exist'),
      (['--weights', weights, '--arch', 'nonet'], "Unknown generator 'nonet'"),
      (['--weights', weights], '--arch'),
      (['--weights', weights, '--arch', 'srvgg', '--opset', '13'],
       'opset >= 15'),
      (['--weights', weights, '--arch', 'srvgg', '--model-kwargs', '[1]'],
       'not a JSON object'),
  ]
  for args, message in cases:
    assert export.main(args + ['--onnx', out]) == 2, args
    err = capsys.readouterr().err
    assert message in err and err.count('\n') == 1, (args, err)
  assert not (tmp_path / 'x.onnx').exists()


@pytest.mark.slow  # jax2onnx's first import: 6 s.
def test_srrescgan_refused_with_a_reason(tmp_path, capsys):
  """Its noise estimate and projection need a fixed size: a one-line error,
  no file."""
  _, _, weights = write_weights(tmp_path, 'srrescgan', depth=1, num_feat=4)
  out = tmp_path / 'c.onnx'
  assert export.main(['--weights', weights, '--arch', 'srrescgan',
                      '--onnx', str(out)]) == 2
  assert 'dynamic height and width' in capsys.readouterr().err
  assert not out.exists()


@pytest.mark.slow  # Not-slow budget (upscale's test shares the loader).
def test_export_from_a_training_checkpoint(tmp_path, capsys):
  """--checkpoint WORKDIR: the EMA generator of a (tiny, untrained) run, as
  upscale loads it."""
  from sr_jax.inference import generator_loading  # pylint: disable=g-import-not-at-top
  workdir = str(tmp_path / 'run')
  save_tiny_run(workdir, std=0.1)
  out = tmp_path / 'run.onnx'
  assert export.main(['--checkpoint', workdir, '--onnx', str(out)]) == 0
  module, variables, _ = generator_loading.load_generator_for_inference(
      checkpoint=workdir)
  assert_round_trip(out, module, variables,
                    multiple=generator_loading.input_multiple(module))
