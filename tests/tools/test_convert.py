"""python -m sr_jax.convert (sr_jax.tools.convert): Real-ESRGAN's RRDBNet x2
from .pth (with its metadata) and .safetensors (without torch) files, and
the errors that leave no file (`weights fetch` of released models:
tests/weights/test_pretrained.py)."""
import sys

import pytest
import torch

from sr_jax import weights
from sr_jax.tools import convert as convert_cli
from tests.helpers.files import write_safetensors
from tests.helpers.torch_nets import rand_image
from tests.helpers.torch_nets import rel_err
from tests.helpers.torch_nets import run_ref
from tests.helpers.torch_nets import to_nhwc
from tests.helpers.torch_nets import TorchRRDBNet

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
