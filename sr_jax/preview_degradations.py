"""`python -m sr_jax.preview_degradations`: runs the command in
sr_jax/tools/preview_degradations.py (see there)."""
import runpy

if __name__ == '__main__':
  runpy.run_module('sr_jax.tools.preview_degradations', run_name='__main__',
                   alter_sys=True)
