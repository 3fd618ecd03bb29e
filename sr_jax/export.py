"""`python -m sr_jax.export`: runs the command in
sr_jax/tools/export.py (see there)."""
import runpy

if __name__ == '__main__':
  runpy.run_module('sr_jax.tools.export', run_name='__main__', alter_sys=True)
