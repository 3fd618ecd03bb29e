"""The repository's configs, commands and notebooks, as the tests run them."""
import importlib.util
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

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
