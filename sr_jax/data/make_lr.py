"""`python -m sr_jax.data.make_lr` (the command the DSGAN issue names): runs
sr_jax/tools/make_lr.py. The data layer imports nothing from it."""
import runpy

if __name__ == '__main__':
  runpy.run_module('sr_jax.tools.make_lr', run_name='__main__', alter_sys=True)
