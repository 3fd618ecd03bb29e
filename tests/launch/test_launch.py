"""launch/: the SLURM script's process layout, argument forwarding and
requeue, and the TPU pod script's quoting, run with stand-ins for srun,
scontrol, gcloud and python."""
import json
import os
import re
import shlex
import subprocess
import sys

import pytest

from tests.helpers.repo import REPO

SBATCH = os.path.join(REPO, 'launch', 'slurm_multi_gpu.sbatch')
TPU_POD = os.path.join(REPO, 'launch', 'tpu_pod.sh')

# Starts SLURM_NTASKS tasks on this machine with what a real srun gives
# each: rank, local rank, node, the step's node list; with BIND_GPUS=1 each
# task sees only its own GPU (as --gpu-bind / --gpus-per-task do).
FAKE_SRUN = r'''#!/usr/bin/env bash
printf '%s\n' "$@" > "$FAKE_LOG/srun_args"
per=$SLURM_NTASKS_PER_NODE
for ((i = 0; i < SLURM_NTASKS; i++)); do
  node=node$((i / per))
  extra=()
  if [ "${BIND_GPUS:-0}" = 1 ]; then
    extra=(CUDA_VISIBLE_DEVICES=$((i % per)))
  fi
  env SLURM_PROCID=$i SLURM_LOCALID=$((i % per)) SLURMD_NODENAME=$node \
    SLURM_STEP_NODELIST="$SLURM_JOB_NODELIST" "${extra[@]}" "$@" \
    > "$FAKE_LOG/task_$i" 2>&1 &
done
code=0
for job in $(jobs -p); do wait "$job" || code=$?; done
exit ${FAKE_SRUN_EXIT:-$code}
'''

FAKE_SCONTROL = '''#!/usr/bin/env bash
echo "$@" >> "$FAKE_LOG/scontrol"
'''


def _tools(tmp_path, **scripts):
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir(exist_ok=True)
  for name, text in scripts.items():
    (bin_dir / name).write_text(text)
    (bin_dir / name).chmod(0o755)
  log = tmp_path / 'log'
  log.mkdir(exist_ok=True)
  return bin_dir, log


def _slurm_env(tmp_path, nodes, gpus, **extra):
  bin_dir, log = _tools(tmp_path, srun=FAKE_SRUN, scontrol=FAKE_SCONTROL)
  env = {k: v for k, v in os.environ.items()
         if not k.startswith(('SLURM', 'CUDA_VISIBLE'))}
  env.update(
      PATH=f'{bin_dir}{os.pathsep}{env["PATH"]}', FAKE_LOG=str(log),
      PYTHONPATH=REPO, SLURM_JOB_ID='123456', SLURM_NTASKS=str(nodes * gpus),
      SLURM_NTASKS_PER_NODE=str(gpus),
      SLURM_JOB_NODELIST='node[0-%d]' % (nodes - 1) if nodes > 1 else 'node0',
      **extra)
  # The script runs `python`: this interpreter. A wrapper that execs it,
  # not a symlink: a symlink to a venv's python outside the venv's bin/
  # starts the base interpreter, without the venv's packages.
  (bin_dir / 'python').write_text(
      f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n')
  (bin_dir / 'python').chmod(0o755)
  return env, log


def _layouts(log, tasks):
  rows = []
  for i in range(tasks):
    text = (log / f'task_{i}').read_text()
    match = re.search(r'rank (\d+)/(\d+) on (\S+) .*coordinator (\S+), '
                      r'local_device_ids \[(\d+)\] -> GPU (\d+)', text)
    assert match, text
    rows.append(match.groups())
  return rows


@pytest.mark.slow
def test_slurm_dry_run_gives_8_processes_8_distinct_gpus(tmp_path):
  env, log = _slurm_env(tmp_path, nodes=1, gpus=8)
  result = subprocess.run(
      ['bash', SBATCH, '--dry-run', 'configs/esrgan_fft.py', '/shared/run',
       '--config.batch_size=64'], env=env, cwd=REPO, capture_output=True,
      text=True, timeout=300, check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  rows = _layouts(log, 8)
  assert sorted(int(r[0]) for r in rows) == list(range(8))
  assert {r[1] for r in rows} == {'8'}
  assert len({(r[2], r[5]) for r in rows}) == 8  # 8 distinct GPUs.
  # One coordinator for all, on the first node, at JAX's port of the job.
  assert {r[3] for r in rows} == {'node0:%d' % (123456 % 4096 + 61440)}
  text = (log / 'task_0').read_text()
  assert ('would run: python -m sr_jax.main --jax_distributed '
          '--config=configs/esrgan_fft.py --workdir=/shared/run '
          '--config.batch_size=64') in text


@pytest.mark.slow
def test_slurm_layout_when_each_task_is_bound_to_its_gpu(tmp_path):
  env, log = _slurm_env(tmp_path, nodes=2, gpus=2, BIND_GPUS='1')
  result = subprocess.run(
      ['bash', SBATCH, '--dry-run', 'configs/esrgan_fft.py', '/shared/run'],
      env=env, cwd=REPO, capture_output=True, text=True, timeout=300,
      check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  rows = _layouts(log, 4)
  # Each task drives device 0 of what it sees: its own GPU.
  assert [(r[2], r[4], r[5]) for r in sorted(rows, key=lambda r: int(r[0]))
          ] == [('node0', '0', '0'), ('node0', '0', '1'),
                ('node1', '0', '0'), ('node1', '0', '1')]


def test_slurm_forwards_every_argument_and_requeues_on_143(tmp_path):
  env, log = _slurm_env(tmp_path, nodes=1, gpus=1, FAKE_SRUN_EXIT='143')
  # The task itself: a stand-in that exits at once (srun's exit is faked).
  (tmp_path / 'bin' / 'python').unlink()
  (tmp_path / 'bin' / 'python').write_text('#!/usr/bin/env bash\nexit 0\n')
  (tmp_path / 'bin' / 'python').chmod(0o755)
  args = ['configs/esrgan_fft.py', '/shared/my run',
          '--config.data.train_dir=/data/DIV2K train', '--config.seed=3',
          "--config.name=it's"]
  result = subprocess.run(['bash', SBATCH] + args, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          check=False)
  assert result.returncode == 0, result.stdout + result.stderr
  forwarded = (log / 'srun_args').read_text().splitlines()
  assert forwarded == ['python', '-m', 'sr_jax.main', '--jax_distributed',
                       '--config=configs/esrgan_fft.py',
                       '--workdir=/shared/my run'] + args[2:]
  assert (log / 'scontrol').read_text().split() == ['requeue', '123456']
  assert 'requeueing job 123456' in result.stdout
  # Any other failure is the job's exit status, without a requeue.
  env['FAKE_SRUN_EXIT'] = '3'
  (log / 'scontrol').unlink()
  result = subprocess.run(['bash', SBATCH] + args, env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=60,
                          check=False)
  assert result.returncode == 3
  assert not (log / 'scontrol').exists()


def test_tpu_pod_command_keeps_arguments_intact(tmp_path):
  args = ['--config.data.train_dir=/data/my photos', "--config.name=it's",
          '--config.note=a "quoted" $HOME; rm -rf /']
  result = subprocess.run(
      ['bash', TPU_POD, '--dry-run', 'tpu-1', 'us-central2-b',
       'configs/esrgan_fft.py', 'gs://bucket/run'] + args,
      capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stderr
  remote = result.stdout.strip()
  # What each TPU host's shell does with it: the stand-in python prints
  # the arguments it received.
  home = tmp_path / 'home'
  (home / 'sr_jax').mkdir(parents=True)
  bin_dir, _ = _tools(tmp_path, python=(
      '#!/usr/bin/env bash\n'
      f'exec {sys.executable} -c "import json, sys; '
      'print(json.dumps(sys.argv[1:]))" "$@"\n'))
  got = subprocess.run(
      ['bash', '-c', remote], capture_output=True, text=True, timeout=60,
      check=False, env=dict(os.environ, HOME=str(home),
                            PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}'))
  assert got.returncode == 0, got.stderr
  assert json.loads(got.stdout) == [
      '-m', 'sr_jax.main', '--jax_distributed',
      '--config=configs/esrgan_fft.py', '--workdir=gs://bucket/run'] + args


GPU_SINGLE_HOST = os.path.join(REPO, 'launch', 'gpu_single_host.sh')


def _pins(name: str) -> dict[str, str]:
  """{package (extras dropped): version} of a requirements file's == pins."""
  pins = {}
  with open(os.path.join(REPO, name)) as f:
    for line in f:
      match = re.match(r'([A-Za-z0-9_.-]+)(\[[^\]]*\])?==(\S+)', line.strip())
      if match:
        pins[match.group(1)] = match.group(3)
  return pins


def test_gpu_and_tpu_requirements_pin_the_tested_jax():
  cpu, gpu, tpu = (_pins(f) for f in ('requirements.txt',
                                      'requirements-gpu.txt',
                                      'requirements-tpu.txt'))
  version = cpu['jax']
  assert cpu['jaxlib'] == version
  assert gpu['jax'] == gpu['jax-cuda12-plugin'] == version
  assert gpu['jax-cuda12-pjrt'] == version
  assert tpu['jax'] == version and tpu['libtpu'].startswith('0.0.')
  for name in ('requirements-gpu.txt', 'requirements-tpu.txt'):
    with open(os.path.join(REPO, name)) as f:
      assert '-r requirements.txt' in f.read().splitlines(), name


def test_gpu_launch_stops_without_a_gpu_and_runs_with_one(tmp_path):
  bin_dir, _ = _tools(tmp_path, python=(
      # This interpreter: JAX on the CPU, so the check fails.
      f'#!/bin/sh\nexec {shlex.quote(sys.executable)} "$@"\n'))
  env = dict(os.environ, PATH=f'{bin_dir}{os.pathsep}{os.environ["PATH"]}',
             PYTHONPATH=REPO, JAX_PLATFORMS='cpu')
  args = ['bash', GPU_SINGLE_HOST, 'configs/esrgan_fft.py', str(tmp_path / 'w'),
          '--config.seed=3']
  result = subprocess.run(args, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
  assert result.returncode == 2
  assert result.stderr.strip() == (
      'error: JAX sees no GPU here; install its CUDA plugin at the pinned JAX '
      'version: pip install -r requirements-gpu.txt')
  assert not (tmp_path / 'w').exists()
  # A JAX that sees a GPU (a stand-in): the trainer gets every argument.
  (bin_dir / 'python').write_text(
      '#!/usr/bin/env bash\n[ "$1" = -c ] && exit 0\n'
      'printf "%s\\n" "$@"\n')
  result = subprocess.run(args, env=env, capture_output=True, text=True,
                          timeout=60, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.splitlines() == [
      '-m', 'sr_jax.main', '--config=configs/esrgan_fft.py',
      f'--workdir={tmp_path / "w"}', '--config.seed=3']


def test_tpu_pod_install_runs_the_pinned_tpu_requirements_first():
  result = subprocess.run(
      ['bash', TPU_POD, '--dry-run', '--install', 'tpu-1', 'us-central2-b',
       'configs/esrgan_fft.py', 'gs://bucket/run'],
      capture_output=True, text=True, timeout=60, check=False)
  assert result.returncode == 0, result.stderr
  assert result.stdout.strip() == (
      'cd ~/sr_jax && pip install -q -r requirements-tpu.txt && python -m '
      'sr_jax.main --jax_distributed --config=configs/esrgan_fft.py '
      '--workdir=gs://bucket/run')
