"""The benchmark runs and reports sane figures (it is not timed here)."""
import pytest

from sr_jax.tools import bench
from sr_jax.train.recipe import Recipe
from tests.helpers.repo import FAST_COMPILE_XLA_FLAGS
from tests.helpers.repo import load_config
from tests.helpers.repo import run_python

pytestmark = pytest.mark.slow  # End-to-end runs.


def test_bench_train_reports_compile_time_and_speed():
  config = load_config('esrgan_fft')
  config.gan.losses.perceptual.weight = 0.0  # VGG19's compile: 20 s here.
  result = bench.bench_train(Recipe.from_config(config), 'gan',
                             num_steps=2)
  assert result['phase'] == 'gan' and result['batch'] == config.batch_size
  assert result['compile_s'] > 0 and result['steps_per_s'] > 0
  assert abs(result['gt_megapixels_per_s'] - result['steps_per_s'] *
             config.batch_size * config.data.gt_size**2 / 1e6) < 1e-9


def test_bench_data_times_the_input_and_each_pipeline():
  config = load_config('esrgan')
  recipe = Recipe.from_config(config)
  result = bench.bench_input(recipe, num_batches=3)
  assert result['batch'] == config.batch_size
  assert result['gt_size'] == config.data.gt_size
  assert result['hr_patches_per_s'] == pytest.approx(
      result['batches_per_s'] * config.batch_size)
  row = bench.bench_degradation(recipe, 'srrescgan', num_batches=2)
  assert row['stage'] == 'degradation srrescgan' and row['compile_s'] > 0
  assert row['hr_patches_per_s'] == pytest.approx(
      row['batches_per_s'] * config.batch_size)


def test_bench_upscale_reports_lr_megapixels_per_second():
  row = bench.bench_upscale(lr_size=24, tile=16, dtype='float32', num_runs=1,
                            batch_tiles=2, num_block=1)
  assert row['tile'] == 16 and row['first_run_s'] > 0
  assert row['lr_megapixels_per_s'] == pytest.approx(
      24 * 24 / row['seconds_per_image'] / 1e6)


def test_bench_metrics_times_each_metric_and_skips_missing_weights(
    tmp_path, monkeypatch):
  monkeypatch.setenv('SR_JAX_CACHE_DIR', str(tmp_path))
  rows = bench.bench_metrics(['psnr', 'niqe', 'spectrum', 'lpips'], 2, 200)
  by_name = {r['metric']: r for r in rows}
  assert set(by_name) == {'psnr', 'niqe', 'spectrum', 'lpips'}
  for name in ('psnr', 'niqe', 'spectrum'):
    assert by_name[name]['seconds_per_100_images'] > 0
  assert by_name['niqe']['kind'] == 'no_reference'
  assert by_name['lpips']['skipped'] == 'no lpips_alex weights'


# XLA's CPU backend without LLVM optimisation: the tiny programs below then
# compile in a fraction of the time (their speed is not what is tested).
FAST_COMPILE = {'XLA_FLAGS': FAST_COMPILE_XLA_FLAGS}


def _fields(line: str) -> dict:
  """A `_print_row` line -> {key: value string}."""
  return dict(part.split(': ', 1) for part in line.split(' | '))


def _table_rows(stdout: str) -> list[list[str]]:
  lines = [line for line in stdout.splitlines() if line.startswith('| ')]
  return [[c.strip() for c in line.strip('|').split('|')]
          for line in lines[2:]]  # After the header and its rule.


def test_peak_flops_by_device_kind():
  assert bench.peak_flops('NVIDIA H100 80GB HBM3', 'bfloat16') == 989e12
  assert bench.peak_flops('NVIDIA H100 PCIe', 'float32') == 378e12
  assert bench.peak_flops('NVIDIA H200', 'float32') == 495e12
  assert bench.peak_flops('NVIDIA A100-SXM4-80GB', 'bfloat16') == 312e12
  assert bench.peak_flops('TPU v5 lite', 'bfloat16') == 197e12
  assert bench.peak_flops('TPU v5p', 'bfloat16') == 459e12
  assert bench.peak_flops('TPU v6 lite', 'float32') == 918e12
  assert bench.peak_flops('cpu', 'float32') is None
  assert bench.peak_flops('NVIDIA H100 NVL', 'bfloat16') is None


def test_bench_suite_reduced_prints_every_row():
  done = run_python(['-m', 'sr_jax.tools.bench', 'suite', '--reduced'],
                    env_extra=FAST_COMPILE)
  assert done.returncode == 0, done.stderr[-3000:]
  rows = _table_rows(done.stdout)
  by_name = {}
  for row in rows:
    by_name.setdefault(row[0].split(' (')[0], []).append(row)
  assert set(by_name) == {'GAN step', 'PSNR step', 'upscale RRDBNet x4',
                          'input pipeline', 'torch ESRGAN step'}, rows
  gan = by_name['GAN step']
  assert sorted((int(r[1]), r[2]) for r in gan) == [
      (2, 'bfloat16'), (2, 'float32')]
  for row in gan + by_name['PSNR step']:
    assert float(row[3]) > 0  # Compile seconds.
    assert float(row[4].removesuffix(' steps/s')) > 0
    assert float(row[5]) > 0 and row[6] == 'n/a'  # GFLOP; MFU on a CPU.
    assert float(row[7]) > 0  # XLA's temporary buffers, GiB.
  flops = {(int(r[1]), r[2]): float(r[5]) for r in gan}
  # XLA's count, not a guess: the GAN step does more than the PSNR step.
  assert flops[(2, 'float32')] > 1.5 * float(by_name['PSNR step'][0][5])
  assert [r[2] for r in by_name['upscale RRDBNet x4']] == ['float32',
                                                           'bfloat16']
  for row in by_name['upscale RRDBNet x4']:
    assert float(row[4].removesuffix(' LR Mpx/s')) > 0
  (data_row,) = by_name['input pipeline']
  assert float(data_row[4].split(' HR patches/s')[0]) > 0
  assert 'x the GAN step' in data_row[4]
  torch_rows = by_name['torch ESRGAN step']
  assert [r[2] for r in torch_rows] == ['float32', 'bf16 autocast']
  for row in torch_rows:
    assert float(row[4].removesuffix(' steps/s')) > 0, row


def test_bench_compare_reports_both_sides_and_their_ratio():
  done = run_python(['-m', 'sr_jax.tools.bench', 'compare', '--repeats=1',
                     '--infer_size=16', '--infer_blocks=1', '--num_feat=8',
                     '--gan_batch=2', '--gan_gt_size=32', '--gan_blocks=1'],
                    env_extra=FAST_COMPILE)
  assert done.returncode == 0, done.stderr[-3000:]
  lines = done.stdout.splitlines()
  threads = int(lines[0].split('threads: ')[1].split()[0])
  rows = [_fields(line) for line in lines if line.startswith('stage: ')]
  assert [r['stage'].split(' (')[0] for r in rows] == [
      'RRDBNet x4 inference', 'ESRGAN GAN step']
  for row in rows:
    assert int(row['threads']) == threads >= 1
    torch_s, jax_s = float(row['torch_s']), float(row['jax_s'])
    assert torch_s > 0 and jax_s > 0
    assert float(row['ratio']) == pytest.approx(torch_s / jax_s, rel=0.02)
  # JAX ran the torch weights, converted: the same network.
  assert float(rows[0]['max_abs_diff']) < 1e-4


def test_bench_command_line_takes_config_overrides(capsys):
  assert bench.main(['data', '--config=configs/rrdb_psnr.py:runlocal',
                     '--config.batch_size=2', '--config.data.gt_size=16',
                     '--steps=1', '--pipelines=bicubic']) == 0
  out = capsys.readouterr().out
  assert 'stage: input | batch: 2 | gt_size: 16' in out
  assert 'stage: degradation bicubic | batch: 2 | gt_size: 16' in out


def test_bench_command_line_mistakes_are_one_line_errors(capsys):
  with pytest.raises(SystemExit) as e:
    bench.main(['--help'])
  assert e.value.code == 0 and 'train' in capsys.readouterr().out
  assert bench.main(['train']) == 2
  assert 'needs --config' in capsys.readouterr().err
  assert bench.main(['train', '--config=configs/esrgan_fft.py:runlocal',
                     '--config.gan.losses.ftt.weight=0.2']) == 2
  assert 'Did you mean gan.losses.fft?' in capsys.readouterr().err
  assert bench.main(['train', '--config=configs/esrgan_ftt.py']) == 2
  assert 'Did you mean configs/esrgan_fft.py?' in capsys.readouterr().err
  assert bench.main(['train', '--config=configs/esrgan_fft.py',
                     '--config.batch_size=many']) == 2
  assert 'batch_size must be of type int' in capsys.readouterr().err
