"""The code-shape figures of issue 23, measured the same way each time.

  python .ci/code_metrics.py static   # modules, file and function lengths
  python .ci/code_metrics.py trace    # where one training run's config goes

`static` reads sr_jax/ with `ast`: the top-level modules, files over 600
lines, functions over 80 lines, functions with a parameter named `config`,
and `importorskip('torch')` calls in tests/.

`trace` trains configs/esrgan_fft.py:runlocal for two steps in a temporary
workdir, then resumes it for one more, with a profiler that records every
sr_jax function called with the run's whole ConfigDict as an argument (the
object itself, or a ConfigDict with the same top-level fields). It prints
those functions, and the module re-entries of the config's path: the
functions' unique call tree, walked depth first, as a sequence of modules;
a module is re-entered each time the walk comes back to it from another.
"""
import ast
import collections
import os
import pathlib
import sys
import tempfile

ROOT = pathlib.Path(__file__).resolve().parents[1]
PACKAGE = ROOT / 'sr_jax'


def static() -> None:
  top = sorted(p.name for p in PACKAGE.glob('*.py') if p.name != '__init__.py')
  print(f'top-level modules ({len(top)}): {" ".join(top)}')
  long_files, long_functions, config_params = [], [], []
  for path in sorted(PACKAGE.rglob('*.py')):
    text = path.read_text()
    rel = path.relative_to(ROOT)
    if text.count('\n') > 600:
      long_files.append((text.count('\n'), str(rel)))
    for node in ast.walk(ast.parse(text)):
      if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
        continue
      length = node.end_lineno - node.lineno + 1
      if length > 80:
        long_functions.append((length, f'{rel}:{node.name}'))
      args = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
      if any(a.arg == 'config' for a in args):
        config_params.append(f'{rel}:{node.name}')
  print(f'files over 600 lines ({len(long_files)}): {sorted(long_files)}')
  print(f'functions over 80 lines ({len(long_functions)}): '
        f'{sorted(long_functions, reverse=True)}')
  print(f'functions with a `config` parameter ({len(config_params)}):')
  for name in config_params:
    print(f'  {name}')
  skips = sum(p.read_text().count("importorskip('torch')")
              for p in (ROOT / 'tests').rglob('*.py'))
  print(f"importorskip('torch') in tests: {skips}")


def trace() -> None:
  os.environ.setdefault('JAX_PLATFORMS', 'cpu')
  sys.path.insert(0, str(ROOT))
  from absl import flags  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from sr_jax.train import loop  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.spec_from_file_location(
      'esrgan_fft', ROOT / 'configs' / 'esrgan_fft.py')
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config('runlocal')
  config.frozen_drop_if_missing = True  # No VGG19 weights offline.
  fields = set(config.keys())
  package = str(PACKAGE) + os.sep
  calls = []  # (depth, module, qualname)
  frames = {}

  def whole(value) -> bool:
    return value is config or (
        isinstance(value, (ml_collections.ConfigDict,
                           ml_collections.FrozenConfigDict))
        and set(value.keys()) == fields)

  def profile(frame, event, arg):
    del arg
    code = frame.f_code
    if event == 'call' and code.co_filename.startswith(package):
      n = code.co_argcount + code.co_kwonlyargcount
      if any(whole(frame.f_locals.get(v)) for v in code.co_varnames[:n]):
        module = code.co_filename[len(str(ROOT)) + 1:-3].replace(os.sep, '.')
        calls.append((len(frames), module, code.co_qualname))
        frames[id(frame)] = True
    elif event == 'return' and frames.pop(id(frame), False):
      pass

  with tempfile.TemporaryDirectory() as workdir:
    for stop in (1, 0):  # Step 1, then a resume to the end.
      config.stop_at_step = stop
      sys.setprofile(profile)
      try:
        loop.train_and_evaluate(config, workdir, allow_config_change=True)
      finally:
        sys.setprofile(None)
  functions = sorted({(m, q) for _, m, q in calls})
  print(f'functions given the whole config ({len(functions)}):')
  for m, q in functions:
    print(f'  {m}:{q}')
  # The unique call tree, walked depth first: its sequence of modules.
  seen_edges, walk, stack = set(), [], []
  for d, m, q in calls:
    del stack[d:]
    edge = (tuple(stack), (m, q))
    stack.append((m, q))
    if edge not in seen_edges:
      seen_edges.add(edge)
      walk.append((d, m))
  sequence, path = [], []
  for d, m in walk:
    while len(path) > d:  # Returns to the callers.
      path.pop()
      if path:
        sequence.append(path[-1])
    path.append(m)
    sequence.append(m)
  runs = [m for i, m in enumerate(sequence) if i == 0 or sequence[i - 1] != m]
  entries = collections.Counter(runs)
  reentries = {m: c - 1 for m, c in entries.items() if c > 1}
  print(f'modules on the path: {len(entries)}; re-entries: '
        f'{sum(reentries.values())}; most: '
        f'{max(reentries.values(), default=0)} '
        f'{dict(sorted(reentries.items(), key=lambda kv: -kv[1]))}')


if __name__ == '__main__':
  {'static': static, 'trace': trace}[sys.argv[1]]()
