"""Two JAX processes on this machine (CPU, gloo), trained through the
unchanged trainer, against one process on the same global batches.

tests/utils/multiprocess_check.py runs each process; see its docstring. Both
processes are on 127.0.0.1, one CPU device each: a 2-device mesh over 2
processes, as 2 hosts of a cluster would be.
"""
import csv
import json
import os
import socket
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from tests.helpers.repo import FAST_COMPILE_XLA_FLAGS
from tests.helpers.repo import REPO

# Three processes compiling the runlocal steps: ~2 minutes on 2 cores.
pytestmark = pytest.mark.slow

FILES = 8


def _level(k: int) -> int:
  return 20 + 25 * k


def _file_of(patch: np.ndarray) -> int:
  """Which training file a patch was cut from (each file is one grey level
  with +-3 of noise)."""
  return int(round((float(patch.mean()) - 20) / 25))


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def runs(tmp_path_factory, random_vgg19_weights):
  root = tmp_path_factory.mktemp('multiprocess')
  data_dir = root / 'train'
  data_dir.mkdir()
  rng = np.random.default_rng(0)
  for k in range(FILES):
    image = _level(k) + rng.integers(-3, 4, (48, 48, 3))
    Image.fromarray(image.astype(np.uint8)).save(data_dir / f'{k}.png')
  common = [f'--data={data_dir}', f'--vgg={random_vgg19_weights}',
            f'--out={root / "out"}']
  env = dict(os.environ, PYTHONPATH=REPO)
  env.setdefault('XLA_FLAGS', FAST_COMPILE_XLA_FLAGS)
  script = os.path.join(REPO, 'tests', 'utils', 'multiprocess_check.py')
  port = _free_port()
  commands = [[sys.executable, script, 'worker', f'--process_id={i}',
               f'--port={port}', f'--workdir={root / "run"}'] + common
              for i in (0, 1)]
  commands.append([sys.executable, script, 'reference',
                   f'--workdir={root / "reference"}'] + common)
  procs = [subprocess.Popen(c, cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
           for c in commands]
  logs = []
  try:
    for proc in procs:
      logs.append(proc.communicate(timeout=300)[0])
  finally:
    for proc in procs:
      proc.kill()
  for proc, log in zip(procs, logs):
    assert proc.returncode == 0, log[-5000:]
  out = root / 'out'
  results = {}
  for name in ('process_0', 'process_1', 'reference'):
    with open(out / f'{name}.json') as f:
      results[name] = dict(json.load(f), arrays=dict(np.load(
          out / f'{name}.npz')))
  return results, root, logs


def _scalars(workdir):
  """{(step, tag): value} of W/scalars.csv (the last value of each)."""
  with open(workdir / 'scalars.csv') as f:
    return {(int(r['step']), r['tag']): float(r['value'])
            for r in csv.DictReader(f)}


def test_losses_and_parameters_equal_one_process(runs):
  results, root, _ = runs
  multi, single = _scalars(root / 'run'), _scalars(root / 'reference')
  train = sorted(k for k in single if k[1].startswith('train/'))
  assert {s for s, _ in train} == {1, 2, 3}
  assert 'train/l_g_fft' in {t for _, t in train}
  for key in train:
    # D's logits after its first update move by O(lr_d) = 1e-4 when Adam's
    # first step meets rounding (see the parameters below).
    np.testing.assert_allclose(multi[key], single[key], rtol=1e-4,
                               atol=3e-4, err_msg=str(key))
  p0, p1, ref = (results[n]['arrays'] for n in
                 ('process_0', 'process_1', 'reference'))
  names = [k for k in ref if k.startswith('param')]
  assert len(names) > 50
  diff = norm = 0.0
  for name in names:
    assert np.array_equal(p0[name], p1[name]), name  # Replicated.
    diff += float(np.sum((p0[name] - ref[name]) ** 2))
    norm += float(np.sum(ref[name] ** 2))
    # Adam's first updates are lr * g / (|g| + eps): rounding in a near-zero
    # gradient (summed in another order over 2 processes) moves an entry by
    # up to lr (2e-4 here) per step.
    np.testing.assert_allclose(p0[name], ref[name], atol=3e-4, err_msg=name)
  # Over all parameters, the two runs agree to float rounding; a run whose
  # processes trained on their own halves is ~1e-2 away.
  assert np.sqrt(diff / norm) < 1e-4, np.sqrt(diff / norm)


def test_processes_read_disjoint_shards_and_resume_their_own(runs):
  results, _, _ = runs
  read = {}
  for i in (0, 1):
    arrays = results[f'process_{i}']['arrays']
    seen, expected = arrays['seen'], arrays['expected']
    assert seen.shape == (3, 2, 32, 32, 3)  # 3 steps of half the batch.
    # The resumed leg continued this process's own iterator.
    np.testing.assert_array_equal(seen, expected)
    read[i] = {_file_of(p) for p in seen.reshape(-1, 32, 32, 3)}
  assert read[0] and read[1] and not read[0] & read[1], read
  assert read[0] | read[1] <= set(range(FILES))


def test_a_signal_to_one_process_stops_both_at_the_same_step(runs):
  results, root, _ = runs
  for i in (0, 1):
    legs = results[f'process_{i}']['legs']
    assert [(leg['how'], leg['step']) for leg in legs] == [
        ('preempted', 2), ('finished', 3)], legs
  assert 'SIGTERM received' in results['process_1']['legs'][0]['message']
  assert 'another process' in results['process_0']['legs'][0]['message']
  saved = json.loads((root / 'run' / 'checkpoints' / '2' / 'data' /
                      'metadata').read_text())
  # Both iterator positions are in the checkpoint of the stop.
  assert len(saved['sr_jax_process_states']) == 2


def test_every_process_saves_and_only_process_0_logs(runs):
  results, root, logs = runs
  writes = {i: results[f'process_{i}']['writes'] for i in (0, 1)}
  # Process 1 wrote its part of every checkpoint (orbax's per-process
  # metadata of the arrays it holds) ...
  for step in (1, 2, 3):
    assert any(w.startswith(f'checkpoints/{step}') and
               w.endswith('process_1') for w in writes[1]), writes[1]
  # ... and nothing else: no scalars, TensorBoard events or images.
  others = [w for w in writes[1] if not w.startswith(
      ('checkpoints/', 'best/')) and not w.endswith('.probe')]
  assert not others, others
  assert 'scalars.csv' in writes[0]
  assert any(w.startswith('images/') for w in writes[0])
  assert os.listdir(root / 'run' / 'tensorboard')
  assert '[gan] step 3' in logs[0] and '[gan] step' not in logs[1]
  assert 'Resuming from step 2' in logs[0]
  assert 'Resuming' not in logs[1]
