"""`python -m sr_jax.sweep`: runs the command in
sr_jax/tools/sweep.py (see there)."""
import runpy

if __name__ == '__main__':
  runpy.run_module('sr_jax.tools.sweep', run_name='__main__', alter_sys=True)
