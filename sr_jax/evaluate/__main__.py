"""`python -m sr_jax.evaluate`: see sr_jax/evaluate/cli.py."""
import sys

from sr_jax.evaluate import cli

if __name__ == '__main__':
  sys.exit(cli.main())
