"""Shared test fixtures."""
import importlib.util
import os
import subprocess
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

import jax  # pylint: disable=g-import-not-at-top
import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='session')
def compile_cache_dir(tmp_path_factory):
  """A persistent XLA cache shared by in-process runs and subprocesses."""
  path = str(tmp_path_factory.mktemp('xla_cache'))
  jax.config.update('jax_compilation_cache_dir', path)
  jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.0)
  return path


@pytest.fixture(scope='session')
def random_vgg19_weights(tmp_path_factory):
  """VGG19 weights with random values, written on purpose for tests.

  Real runs refuse to start without real weights; tests pass this file
  explicitly through --config.frozen.vgg19.
  """
  from sr_jax import models  # pylint: disable=g-import-not-at-top
  from sr_jax.weights import params_io  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp('weights') / 'vgg19_random.npz')
  variables = models.VGG19(layers=('conv5_4',)).init(
      jax.random.key(0), np.zeros((1, 32, 32, 3), np.float32))
  params_io.save_params(path, variables)
  return path


def run_python(args, env_extra=None, timeout=600, cwd=REPO):
  """Runs `python ARGS` in the repo (or cwd); returns the CompletedProcess."""
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in (REPO, env.get('PYTHONPATH', '')) if p)
  env.update(env_extra or {})
  return subprocess.run([sys.executable] + list(args), cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=timeout,
                        check=False)


def load_config(name, arg='runlocal'):
  """configs/<name>.py's get_config(arg), loaded by path."""
  path = os.path.join(REPO, 'configs', f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)
