"""`python -m sr_jax.checkpoints W`: runs the command in
sr_jax/checkpoint/__main__.py (see there)."""
import runpy

if __name__ == '__main__':
  runpy.run_module('sr_jax.checkpoint', run_name='__main__', alter_sys=True)
