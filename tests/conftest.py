"""Shared test fixtures."""
import atexit
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile

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

from absl import flags  # pylint: disable=g-import-not-at-top
import jax
import jax.numpy as jnp
import numpy as np
import pytest

# pytest is not an absl program: grain's worker processes (data.num_workers
# > 0) read absl flags, which must count as parsed (with their defaults).
flags.FLAGS.mark_as_parsed()

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# For the `python -m sr_jax.main ...:runlocal` runs the tests start
# (run_python): XLA's backend optimisations off. Their programs are tiny
# and compiling is most of their time (tests/test_main.py: 179 s -> 123 s,
# CPU time -42%). Only XLA's CPU code generation changes, not the HLO.
# Runs on faked devices too (fake_devices; the 4-device check: 77 s -> 38
# s). This process and the notebook kernels (hundreds of steps: optimised
# code pays there) compile as users' runs do.
FAST_COMPILE_XLA_FLAGS = '--xla_backend_optimization_level=0'


def fake_devices(n: int) -> dict[str, str]:
  """run_python's env_extra for a run on n faked CPU devices."""
  return {'XLA_FLAGS': f'--xla_force_host_platform_device_count={n} '
                       + FAST_COMPILE_XLA_FLAGS}


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


def random_variables(module, seed=0):
  """Variables of a generator `module` drawn in numpy (no per-leaf XLA
  compiles): conv kernels N(0, 1/fan_in) so activations stay O(1) through
  any depth and outputs near [0, 1], and biases, PReLU slopes and BN
  statistics visibly non-trivial, so a truncated receptive field shows in
  the output."""
  rng = np.random.default_rng(seed)
  shapes = jax.eval_shape(module.init, jax.random.key(0),
                          jnp.zeros((1, 16, 16, module.num_in_ch)))

  def draw(path, leaf):
    name = path[-1].key
    if name == 'kernel':
      fan_in = int(np.prod(leaf.shape[:-1]))
      return rng.normal(0, fan_in ** -0.5, leaf.shape).astype(np.float32)
    offset = {'var': 1.0, 'scale': 1.0, 'negative_slope': 0.2}.get(name, 0.0)
    return (offset + 0.1 * np.abs(rng.normal(size=leaf.shape))).astype(
        np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def filled_train_state(config, std=1.0):
  """config's TrainState with N(0, std) values in every float leaf (the
  EMA distinct from the generator), made without compiling the real
  init."""
  from sr_jax.train import state as ts  # pylint: disable=g-import-not-at-top
  from sr_jax.train import recipe as recipe_lib
  abstract = jax.eval_shape(lambda: ts.init_train_state(
      recipe_lib.Recipe.from_config(config), jax.random.key(0)))
  rng = np.random.default_rng(0)

  def fill(leaf):
    if jnp.issubdtype(leaf.dtype, jax.dtypes.prng_key):
      return jax.random.key(0)
    if not jnp.issubdtype(leaf.dtype, jnp.floating):
      return jnp.zeros(leaf.shape, leaf.dtype)
    return jnp.asarray(std * rng.normal(size=leaf.shape), leaf.dtype)

  return jax.tree.map(fill, abstract)


def save_tiny_run(workdir, std=1.0):
  """A training workdir holding one best checkpoint (phase psnr, step 3)
  of a tiny x2 rrdbnet run, its state filled with N(0, std) values without
  compiling the real init; returns that state."""
  from sr_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from sr_jax.train import config_lib  # pylint: disable=g-import-not-at-top
  config = config_lib.base_config()
  config.gan.steps = 0
  config = config_lib.apply_variant(config, 'runlocal')
  config.scale = 2
  state = filled_train_state(config, std)
  saver = checkpoint.Checkpointer(str(workdir))
  saver.save_best(3, state, 21.0, config, phase='psnr')
  saver.wait_until_finished()
  saver.close()
  return state


def unwritable_folder(path, how: str):
  """`path` made a place no file can be written under: a regular file
  (`how='under_a_file'`: ENOTDIR, for root too) or a folder of mode 0555
  (`'read_only'`; skipped as root, who writes anyway)."""
  if how == 'read_only' and os.geteuid() == 0:
    pytest.skip('root writes into read-only folders')
  if how == 'under_a_file':
    path.write_bytes(b'')
  else:
    path.mkdir()
    path.chmod(0o555)
  return path


def run_python(args, env_extra=None, timeout=600, cwd=REPO):
  """Runs `python ARGS` in the repo (or cwd); returns the CompletedProcess."""
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join(
      p for p in (REPO, env.get('PYTHONPATH', '')) if p)
  env.setdefault('XLA_FLAGS', FAST_COMPILE_XLA_FLAGS)
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


def execute_notebook(name, env):
  """Runs notebooks/NAME in a fresh Jupyter kernel (nbclient), in the
  notebooks folder as Jupyter would, with `env` added to the kernel's
  environment; returns the executed notebook. A failing cell raises
  nbclient's CellExecutionError with its traceback."""
  import nbclient  # pylint: disable=g-import-not-at-top
  import nbformat  # pylint: disable=g-import-not-at-top
  folder = os.path.join(REPO, 'notebooks')
  notebook = nbformat.read(os.path.join(folder, name), as_version=4)
  kernel_env = dict(os.environ, **env)
  kernel_env['PYTHONPATH'] = os.pathsep.join(
      p for p in (REPO, kernel_env.get('PYTHONPATH', '')) if p)
  kernel_env.setdefault('MPLBACKEND', 'module://matplotlib_inline.backend_inline')
  client = nbclient.NotebookClient(
      notebook, timeout=1200, kernel_name='python3',
      resources={'metadata': {'path': folder}})
  client.execute(env=kernel_env)
  return notebook


def notebook_outputs(notebook, output_type=None):
  """Every output of the notebook's code cells (of one type)."""
  return [o for cell in notebook.cells if cell.cell_type == 'code'
          for o in cell.outputs
          if output_type is None or o.output_type == output_type]

