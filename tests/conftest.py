"""Shared test fixtures, the session's XLA cache and the layout check.

Every folder under tests/ is a package (tests/ too): a module's tests are
tests/<package>/test_<module>.py, imported as tests.<package>.test_<module>,
so two folders may hold test files of the same name; helpers shared by
several test files are plain modules in tests/helpers/ (imported as
tests.helpers.<name>), fixtures shared within a folder its conftest.py.
"""
import atexit
import os
import shutil
import tempfile

from tests.helpers.repo import with_fast_compile  # No jax import.

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# One persistent XLA cache for the whole session, in-process and in every
# subprocess (python -m sr_jax.main, notebook kernels): tests that build
# the same programs (the runlocal steps, the evaluation's networks) compile
# them once. Removed at exit.
# Under pytest-xdist each worker has its own (no concurrent writers).
if ('JAX_COMPILATION_CACHE_DIR' not in os.environ
    or os.environ.get('PYTEST_XDIST_WORKER')):
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(
      prefix='sr_jax_tests_xla_cache_')
  atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'],
                  True)
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0')
# XLA's CPU backend tuned to compile fast (tests/helpers/repo.py), in-process
# and in every subprocess.
os.environ['XLA_FLAGS'] = with_fast_compile(os.environ.get('XLA_FLAGS', ''))

from absl import flags  # pylint: disable=g-import-not-at-top
import jax
import jax.numpy as jnp
import numpy as np
import pytest

# The test install (requirements-test.txt) has torch; a missing torch must
# fail the run, not skip the PyTorch parity tests.
import torch  # noqa: F401  pylint: disable=unused-import

# Fixtures shared by the test files of several packages: the PyTorch
# Inception (metrics, models, weights) and DISTS (metrics, weights) with
# random weights, and their conversions.
pytest_plugins = ('tests.helpers.torch_inception', 'tests.helpers.torch_dists',
                  'tests.helpers.onnx_models')


@pytest.fixture(scope='module')
def one_torch_thread():
  """On a loaded 2-core machine torch's two OpenMP threads wait on each
  other: a 299x299 Inception takes 4 s instead of 0.15 s. Use with
  pytestmark = pytest.mark.usefixtures('one_torch_thread')."""
  threads = torch.get_num_threads()
  torch.set_num_threads(1)
  yield
  torch.set_num_threads(threads)


# pytest is not an absl program: grain's worker processes (data.num_workers
# > 0) read absl flags, which must count as parsed (with their defaults).
flags.FLAGS.mark_as_parsed()

TESTS = os.path.dirname(os.path.abspath(__file__))


def pytest_configure(config):
  """Refuses a test folder without an `__init__.py`: its modules would be
  imported under their bare file names, which clash across folders
  (tests/test_main.py, tests/weights/test_main.py)."""
  del config
  missing = []
  for folder, subfolders, files in os.walk(TESTS):
    subfolders[:] = [d for d in subfolders if d != '__pycache__']
    if '__init__.py' not in files and any(f.endswith('.py') for f in files):
      missing.append(os.path.relpath(folder, os.path.dirname(TESTS)))
  if missing:
    raise pytest.UsageError(
        f'test folders without an __init__.py: {", ".join(sorted(missing))}; '
        'every folder under tests/ is a package.')


@pytest.fixture(autouse=True)
def _restore_absl_verbosity():
  """The commands' main() set absl's verbosity (evaluate: ERROR, for
  orbax's notes); a test that runs one must not hide later tests' warnings
  from caplog."""
  from absl import logging as absl_logging  # pylint: disable=g-import-not-at-top
  level = absl_logging.get_verbosity()
  yield
  absl_logging.set_verbosity(level)


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


@pytest.fixture(scope='session')
def random_lpips_alex_weights(tmp_path_factory):
  """LPIPS (AlexNet) weights with random values (linear layers >= 0, as
  LPIPS's are), written on purpose for tests, like random_vgg19_weights."""
  from sr_jax import metrics  # pylint: disable=g-import-not-at-top
  from sr_jax.weights import params_io  # pylint: disable=g-import-not-at-top
  path = str(tmp_path_factory.mktemp('weights') / 'lpips_alex_random.npz')
  variables = jax.tree.map(jnp.abs, metrics.LPIPS(net='alex').init(
      jax.random.key(1), np.zeros((1, 32, 32, 3), np.float32),
      np.zeros((1, 32, 32, 3), np.float32)))
  params_io.save_params(path, variables)
  return path
