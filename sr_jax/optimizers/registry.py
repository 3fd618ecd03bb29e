"""The optimizer registry (its own module so optimizer files can import it)."""
from sr_jax.registry import Registry

OPTIMIZERS = Registry('optimizer')


def register(name: str):
  """Decorator for `(schedule, **options) -> optax.GradientTransformation`."""
  return OPTIMIZERS.register(name)
