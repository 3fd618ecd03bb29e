"""`python -m sr_jax.bench`: runs the command in
sr_jax/tools/bench.py (see there)."""
import runpy

if __name__ == '__main__':
  runpy.run_module('sr_jax.tools.bench', run_name='__main__', alter_sys=True)
