"""A fixture shared by the ONNX export and backend tests (tests/conftest.py
loads this module as a plugin)."""
import pytest

from tests.helpers.runs import write_weights


@pytest.fixture(scope='module')
def rrdb_x2(tmp_path_factory):
  """A tiny RRDBNet x2 (pixel-unshuffle by 2) as .npz and exported .onnx,
  through the CLI with its onnxruntime check."""
  # Here, not at the top: only the tests that use it need jax2onnx.
  from sr_jax.tools import export  # pylint: disable=g-import-not-at-top
  tmp = tmp_path_factory.mktemp('rrdb_x2')
  module, variables, weights = write_weights(
      tmp, 'rrdbnet', scale=2, num_feat=8, num_block=1, num_grow_ch=4)
  out = tmp / 'rrdb_x2.onnx'
  code = export.main(['--weights', weights, '--arch', 'rrdbnet',
                      '--onnx', str(out)])
  assert code == 0
  return module, variables, weights, out
