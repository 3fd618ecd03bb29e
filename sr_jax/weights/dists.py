"""DISTS weights: torchvision's VGG16 (fetched) + the released alpha / beta.

The VGG16 is torchvision's `vgg16-397923af.pth`, the same file LPIPS (vgg)
uses as its backbone (metrics.lpips.BACKBONE_URLS['vgg']); alpha and beta
ship with sr_jax (metrics.dists.released_alpha_beta). Converted once into
`<cache>/dists.npz` (~59 MB: the conv layers and alpha / beta) for
metrics.dists:

  python -m sr_jax.weights fetch dists
  variables = weights.load_frozen('dists')

A DISTS_pytorch `DISTS().state_dict()` saved to a file converts too (with
its own alpha / beta).
"""
import re

import jax
import jax.numpy as jnp

from sr_jax.metrics import dists_metric as dists_lib
from sr_jax.metrics import lpips as lpips_lib
from sr_jax.weights.frozen_file import FrozenFile

VGG16_URL = lpips_lib.BACKBONE_URLS['vgg']


def _like():
  x = jnp.zeros((1, 16, 16, 3))
  return jax.eval_shape(lambda: dists_lib.DISTS().init(jax.random.key(0), x,
                                                       x))


DISTS_WEIGHTS = FrozenFile(
    name='dists', what='DISTS (torchvision VGG16 + alpha / beta)',
    url=VGG16_URL,
    # torchvision names files <name>-<first 8 hex digits of the SHA-256>.
    sha256_prefix=re.search(r'-([0-9a-f]{8})\.pth$', VGG16_URL).group(1),
    like=_like)
