"""Images and loss contexts for the loss-term and regulariser tests."""
import jax
import jax.numpy as jnp
import numpy as np

from sr_jax import losses


def _context(sr, lr, target, apply):
  return losses.LossContext(sr=sr, target=target, real=target, lr=lr,
                            key=jax.random.key(0), aux={}, apply=apply)


def _pair(shape=(2, 8, 12, 3), seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random(shape).astype(np.float32),
          rng.random(shape).astype(np.float32))


def _images(n=4, seed=0):
  rng = np.random.default_rng(seed)
  return (jnp.asarray(rng.random((n, 16, 16, 3)), jnp.float32),
          jnp.asarray(rng.random((n, 16, 16, 3)), jnp.float32))
