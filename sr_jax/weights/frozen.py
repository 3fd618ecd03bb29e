"""Frozen (pretrained, never trained) networks by name, for loss terms
and metrics.

A loss term declares the frozen networks it reads (`losses.terms.
FrozenNetwork(name, ...)`); the trainer loads each once with `load_frozen`
and passes them to the step as one `aux` pytree. Adding a network: register
a loader `(path or None) -> variables` here that raises WeightsNotFoundError
with how-to-get-them when there are none.
"""
import functools
from typing import Any

from sr_jax.registry import Registry
from sr_jax.weights import dists
from sr_jax.weights import inception
from sr_jax.weights import lpips
from sr_jax.weights import vgg19

FROZEN_NETWORKS = Registry('frozen network')
FROZEN_NETWORKS.register('vgg19')(vgg19.load_vgg19_params)
FROZEN_NETWORKS.register('lpips_alex')(
    functools.partial(lpips.load_lpips_params, 'alex'))
FROZEN_NETWORKS.register('lpips_vgg')(
    functools.partial(lpips.load_lpips_params, 'vgg'))
FROZEN_NETWORKS.register('inception_fid')(inception.INCEPTION_FID.load)
FROZEN_NETWORKS.register('dists')(dists.DISTS_WEIGHTS.load)


def load_frozen(name: str, path: str | None = None) -> Any:
  """Variables of frozen network `name`, from `path` or its default place
  (environment variable, then the sr_jax cache). Raises
  WeightsNotFoundError saying how to get them."""
  return FROZEN_NETWORKS.get(name)(path or None)
