"""sr_jax: GAN-based single-image super-resolution in JAX/Flax."""
