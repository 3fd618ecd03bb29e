"""Faults a long run meets, injected: nothing trained is lost or corrupted,
and each ends with one clear line."""
import glob
import os

import jax
import numpy as np
import orbax.checkpoint as ocp
import pytest

from conftest import load_config
from conftest import run_python
from sr_jax import train


def _gan_config(vgg, **overrides):
  config = load_config('esrgan')
  config.psnr.steps = 1
  config.gan.steps = 6
  config.log_every = 100
  config.eval_every = 100
  config.checkpoint_every = 1
  config.keep_checkpoints = 10
  config.frozen.vgg19 = vgg
  # lr 1e30: the first GAN update makes parameters ~1e30, the next inf/NaN.
  config.gan.optimizers.generator.lr = 1e30
  for k, v in overrides.items():
    config[k] = v
  return config


def _saved_states(workdir):
  """{step: all leaves finite} of every checkpoint in the workdir."""
  result = {}
  for path in sorted(glob.glob(os.path.join(workdir, 'checkpoints', '*'))):
    step = int(os.path.basename(path))
    tree = ocp.StandardCheckpointer().restore(os.path.join(path, 'state'))
    leaves = [np.asarray(x) for x in jax.tree.leaves(tree)
              if jax.numpy.issubdtype(x.dtype, jax.numpy.floating)]
    result[step] = all(np.all(np.isfinite(x)) for x in leaves)
  return result


@pytest.mark.slow
def test_a_nan_mid_gan_stops_and_saves_nothing_broken(tmp_path,
                                                      random_vgg19_weights):
  workdir = str(tmp_path / 'run')
  with pytest.raises(train.NonFiniteError) as info:
    train.train_and_evaluate(_gan_config(random_vgg19_weights), workdir)
  message = str(info.value)
  assert 'at step 3' in message and 'l_g_' in message, message
  assert 'the last checkpoint is step 2' in message
  saved = _saved_states(workdir)
  assert sorted(saved) == [1, 2] and all(saved.values()), saved


@pytest.mark.slow
def test_skip_drops_non_finite_updates_then_stops(tmp_path,
                                                 random_vgg19_weights):
  workdir = str(tmp_path / 'run')
  config = _gan_config(random_vgg19_weights, on_nonfinite='skip',
                       max_nonfinite_skips=2)
  with pytest.raises(train.NonFiniteError, match='2 updates in a row'):
    train.train_and_evaluate(config, workdir)
  saved = _saved_states(workdir)
  assert saved and all(saved.values()), saved


@pytest.mark.slow
def test_non_finite_exits_3_with_one_line(tmp_path, random_vgg19_weights):
  result = run_python(
      ['-m', 'sr_jax.main', '--config=configs/esrgan.py:runlocal',
       f'--workdir={tmp_path / "run"}',
       f'--config.frozen.vgg19={random_vgg19_weights}',
       '--config.gan.optimizers.generator.lr=1e30', '--config.gan.steps=3',
       '--config.psnr.steps=1'])
  assert result.returncode == 3, result.stdout + result.stderr
  assert 'Traceback' not in result.stderr
  assert 'became non-finite' in result.stderr
