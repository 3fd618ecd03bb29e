"""Natural HR batches for the degradation and training-pair tests."""
import functools

import numpy as np

from sr_jax.data import sample_images

SIZE = 64


@functools.lru_cache(maxsize=None)
def _hr_batch(n=4, size=SIZE):
  """[n, size, size, 3] float32: crops of a natural photo, on the 8-bit grid."""
  image = sample_images.load_sample('astronaut')
  crops = [image[40 * i:40 * i + size, 60 * i + 100:60 * i + 100 + size]
           for i in range(n)]
  return np.stack(crops).astype(np.float32) / 255.0
