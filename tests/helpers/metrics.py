"""Image pairs for the metric tests."""
import numpy as np


def _random_pair(seed, shape=(40, 36, 3)):
  rng = np.random.default_rng(seed)
  a = rng.integers(0, 256, shape, dtype=np.uint8)
  # A correlated second image (a noisy, clipped copy), so SSIM is far from 0
  # and every term of the formula matters.
  noise = rng.normal(0, 20, shape)
  b = np.clip(a + noise, 0, 255).round().astype(np.uint8)
  return a, b
