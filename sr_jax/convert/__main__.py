"""`python -m sr_jax.convert ARCH SRC OUT`: runs the command in
sr_jax/tools/convert.py (see there)."""
import runpy

if __name__ == '__main__':
  runpy.run_module('sr_jax.tools.convert', run_name='__main__', alter_sys=True)
