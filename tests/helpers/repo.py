"""The repository's configs, commands and notebooks, as the tests run them."""
import importlib.util
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))

# XLA flags for every test (tests/conftest.py puts them in XLA_FLAGS, which
# the runs the tests start inherit): the tests' programs are tiny and
# compiling is most of their time. They change XLA's CPU code generation
# only, not the HLO: LLVM's optimisation passes off (level 0; LLVM
# reassociates no floating-point arithmetic at any level, fast math being
# off), the loop emitters instead of the fusion emitters, and the
# fast-compile preset. `python -m sr_jax.main
# --config=configs/realesrgan.py:runlocal` on this 2-core machine: its PSNR
# and GAN steps compile in 8.4 s and 15.2 s at level 0 alone, 5.8 s and 8.8
# s with all three; the whole run takes 51.9 s -> 42.6 s, with the same
# losses to the printed digit. A big network's step can compile slower with
# the loop emitters (RealESRGAN_x4plus's 23 blocks: 73 s against 45 s):
# tests/configs/test_realesrgan.py's fine-tuning run leaves them out.
# The benchmarks, not the tests, measure speed.
FAST_COMPILE_XLA_FLAGS = ('--xla_backend_optimization_level=0 '
                          '--xla_cpu_use_fusion_emitters=false '
                          '--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_COMPILE')


def with_fast_compile(xla_flags: str) -> str:
  """xla_flags plus each of FAST_COMPILE_XLA_FLAGS it does not set."""
  given = {f.split('=')[0] for f in xla_flags.split()}
  return ' '.join([xla_flags] + [f for f in FAST_COMPILE_XLA_FLAGS.split()
                                 if f.split('=')[0] not in given]).strip()


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
