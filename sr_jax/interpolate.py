"""`python -m sr_jax.interpolate`: runs the command in
sr_jax/tools/interpolate.py (see there)."""
import runpy

if __name__ == '__main__':
  runpy.run_module('sr_jax.tools.interpolate', run_name='__main__',
                   alter_sys=True)
