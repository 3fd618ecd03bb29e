"""The benchmark runs and reports sane figures (it is not timed here)."""
from sr_jax import bench
from test_train import load_config


def test_bench_train_reports_compile_time_and_speed():
  config = load_config('esrgan_fft')
  result = bench.bench_train(config, 'gan', num_steps=2)
  assert result['phase'] == 'gan' and result['batch'] == config.batch_size
  assert result['compile_s'] > 0 and result['steps_per_s'] > 0
  assert abs(result['gt_megapixels_per_s'] - result['steps_per_s'] *
             config.batch_size * config.data.gt_size**2 / 1e6) < 1e-9
