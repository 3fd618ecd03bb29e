"""The commands' one error boundary (sr_jax.errors.cli): sr_jax's own errors
are one `error:` line and their exit code, a bug keeps its traceback."""
import errno
import glob
import os

import numpy as np
from PIL import Image
import pytest

from sr_jax import checkpoint
from sr_jax import errors
from sr_jax import upscale
from sr_jax.evaluate import cli as evaluate_cli
from sr_jax.tools import export
from tests.helpers.runs import save_tiny_run


def _one_error_line(err: str) -> str:
  lines = [line for line in err.splitlines() if line.startswith('error:')]
  assert len(lines) == 1 and 'Traceback' not in err, err
  return lines[0]


def test_the_boundary_maps_sr_jax_errors_and_keeps_bugs(capsys):

  @errors.cli
  def main(error):
    raise error

  assert main(checkpoint.CorruptCheckpointError('W/best/psnr/3: bad.\n'
                                                'Rerun.')) == 2
  assert _one_error_line(capsys.readouterr().err) == (
      'error: W/best/psnr/3: bad. Rerun.')
  assert main(errors.SrJaxError('x')) == 2
  capsys.readouterr()
  non_finite = type('NonFinite', (errors.SrJaxError,), {'exit_code': 3})
  assert main(non_finite('nan')) == 3
  capsys.readouterr()
  assert main(PermissionError(errno.EACCES, 'Permission denied',
                              '/ro/out.csv')) == 2
  assert _one_error_line(capsys.readouterr().err) == (
      'error: cannot write /ro/out.csv: Permission denied. Free space (or '
      'use another folder) and rerun.')
  assert main(KeyboardInterrupt()) == 130
  # A bug in sr_jax, or an OSError about no file of the user's: a traceback.
  for bug in (ZeroDivisionError('x'), TypeError('x'), KeyError('x'),
              OSError(errno.EIO, 'I/O error')):
    with pytest.raises(type(bug)):
      main(bug)


@pytest.fixture(scope='module')
def corrupt_run(tmp_path_factory):
  """A workdir whose only (best) checkpoint has one flipped bit."""
  workdir = tmp_path_factory.mktemp('corrupt') / 'run'
  save_tiny_run(workdir)
  files = glob.glob(os.path.join(workdir, 'best', 'psnr', '3', 'state',
                                 'ocdbt.process_0', 'd', '*'))
  path = max(files, key=os.path.getsize)
  data = bytearray(open(path, 'rb').read())
  data[len(data) // 2] ^= 0x04
  open(path, 'wb').write(bytes(data))
  return workdir


@pytest.mark.slow  # Each failed read waits 1 s for orbax's stragglers.
def test_a_corrupt_best_checkpoint_is_one_line_in_every_command(
    corrupt_run, tmp_path, capsys):
  hr = tmp_path / 'hr'
  hr.mkdir()
  Image.fromarray(np.full((16, 16, 3), 100, np.uint8)).save(hr / 'a.png')
  for name, main, argv in (
      ('upscale', upscale.main,
       [str(hr / 'a.png'), '-o', str(tmp_path / 'up'), '--checkpoint',
        str(corrupt_run)]),
      ('export', export.main,
       ['--checkpoint', str(corrupt_run), '--onnx',
        str(tmp_path / 'g.onnx'), '--no-verify']),
      ('evaluate', evaluate_cli.main,
       ['--checkpoint', str(corrupt_run), '--datasets', f'd={hr}',
        '--metrics', 'psnr', '--out', str(tmp_path / 'eval')])):
    assert main(argv) == 2, name
    line = _one_error_line(capsys.readouterr().err)
    assert str(corrupt_run) in line, (name, line)
