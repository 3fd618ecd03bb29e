"""The benchmark runs and reports sane figures (it is not timed here)."""
import pytest

from sr_jax import bench
from conftest import load_config


pytestmark = pytest.mark.slow  # End-to-end runs.


def test_bench_train_reports_compile_time_and_speed():
  config = load_config('esrgan_fft')
  result = bench.bench_train(config, 'gan', num_steps=2)
  assert result['phase'] == 'gan' and result['batch'] == config.batch_size
  assert result['compile_s'] > 0 and result['steps_per_s'] > 0
  assert abs(result['gt_megapixels_per_s'] - result['steps_per_s'] *
             config.batch_size * config.data.gt_size**2 / 1e6) < 1e-9


def test_bench_data_times_the_input_and_each_pipeline():
  config = load_config('esrgan')
  result = bench.bench_input(config, num_batches=3)
  assert result['batch'] == config.batch_size
  assert result['gt_size'] == config.data.gt_size
  assert result['hr_patches_per_s'] == pytest.approx(
      result['batches_per_s'] * config.batch_size)
  row = bench.bench_degradation(config, 'srrescgan', num_batches=2)
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
