"""LPIPS (Zhang et al. 2018, "The Unreasonable Effectiveness of Deep Features
as a Perceptual Metric"), as the `lpips` package v0.1 computes it.

  variables = weights.load_lpips_params('alex')  # sr_jax.weights
  lpips_fn = make_lpips_fn(variables, 'alex')
  d = lpips_fn(sr, hr)                        # [N]; lower is more similar

For images x, y in [-1, 1] (our API takes [0, 1] and maps v -> 2v - 1):
  1. ScalingLayer: (x - shift) / scale per RGB channel, with the constants
     below (the ImageNet statistics re-expressed for [-1, 1] inputs).
  2. Features f_l at five layers of an ImageNet backbone: AlexNet relu1..relu5
     or VGG16 relu1_2, relu2_2, relu3_3, relu4_3, relu5_3.
  3. Each f_l unit-normalised over channels: f / (||f||_2 + 1e-10).
  4. d_l = (f_l(x) - f_l(y))^2, weighted per channel by the learned 1x1 conv
     'lin{l}' (no bias, non-negative weights), averaged over space.
  5. LPIPS = sum over l of d_l (eq. 1 of the paper).

Weights: the backbone is torchvision's ImageNet model; the lin layers are
the `lpips` package's v0.1 `alex.pth` / `vgg.pth`. `sr_jax.convert.lpips`
turns both into one `.npz` in the sr_jax cache, and
`sr_jax.weights.load_lpips_params(net)` loads it.
"""
from typing import Any, Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from sr_jax.models import alexnet as alexnet_lib
from sr_jax.models import vgg16 as vgg16_lib
from sr_jax.metrics import learned
from sr_jax.metrics import registry
from sr_jax.models.layers import Conv

# `lpips` ScalingLayer constants, for inputs in [-1, 1].
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
# lpips.normalize_tensor's epsilon, added to the norm (not under the sqrt).
NORM_EPS = 1e-10

# net -> the backbone layers LPIPS reads (64, 192, 384, 256, 256 channels
# for alex; 64, 128, 256, 512, 512 for vgg).
NET_LAYERS: dict[str, tuple[str, ...]] = {
    'alex': ('relu1', 'relu2', 'relu3', 'relu4', 'relu5'),
    'vgg': ('relu1_2', 'relu2_2', 'relu3_3', 'relu4_3', 'relu5_3'),
}
NETS: tuple[str, ...] = tuple(NET_LAYERS)

# Where the original PyTorch weights live (for the how-to message and fetch).
LIN_URLS = {
    'alex': 'https://github.com/richzhang/PerceptualSimilarity/raw/master/'
            'lpips/weights/v0.1/alex.pth',
    'vgg': 'https://github.com/richzhang/PerceptualSimilarity/raw/master/'
           'lpips/weights/v0.1/vgg.pth',
}
BACKBONE_URLS = {
    'alex': 'https://download.pytorch.org/models/alexnet-owt-7be5be79.pth',
    'vgg': 'https://download.pytorch.org/models/vgg16-397923af.pth',
}


def check_net(net: str) -> str:
  if net not in NET_LAYERS:
    raise ValueError(f'LPIPS net={net!r} is not supported; use one of '
                     f'{list(NETS)} (squeeze is not implemented).')
  return net


def min_image_size(net: str) -> int:
  """Smallest H and W LPIPS accepts: 31 for 'alex', 16 for 'vgg'."""
  if check_net(net) == 'alex':
    return alexnet_lib.min_input_size('relu5')
  return vgg16_lib.min_input_size('relu5_3')


def _unit_normalize(f: jax.Array) -> jax.Array:
  norm = jnp.sqrt(jnp.sum(f * f, axis=-1, keepdims=True))
  return f / (norm + NORM_EPS)


class LPIPS(nn.Module):
  """LPIPS distance: x, y [N, H, W, 3] float in [0, 1] -> [N] float32 >= 0.

  Variables: {'params': {'net': backbone convs ('conv1'..'conv5' for alex,
  'conv1_1'..'conv5_3' for vgg), 'lin0'..'lin4': {'kernel': [1, 1, C, 1]}}}.
  H, W >= min_image_size(net). per_layer=True returns the five terms d_l
  as [N, 5] instead of their sum (the package's retPerLayer).

  `__call__` runs the backbone once on [x; y] (for use inside your jitted
  code, at your matmul precision); it equals `distance(features(x),
  features(y))`, which make_lpips_fn uses, to float32 rounding.
  """
  net: str = 'alex'
  per_layer: bool = False

  def __post_init__(self):
    check_net(self.net)  # At construction, not at the first apply.
    super().__post_init__()

  def setup(self):
    layers = NET_LAYERS[self.net]
    if self.net == 'alex':
      self.backbone = alexnet_lib.AlexNet(layers=layers, name='net')
    else:
      self.backbone = vgg16_lib.VGG16(layers=layers, name='net')
    self.lins = [Conv(1, 1, use_bias=False, name=f'lin{k}')
                 for k in range(len(layers))]

  def _check(self, x: jax.Array) -> None:
    if x.ndim != 4 or x.shape[-1] != 3:
      raise ValueError(f'LPIPS expects [N, H, W, 3] images; got {x.shape}.')
    need = min_image_size(self.net)
    if min(x.shape[1:3]) < need:
      raise ValueError(
          f'LPIPS ({self.net}) needs H and W >= {need}; got '
          f'{x.shape[1]}x{x.shape[2]}.')

  def features(self, x: jax.Array) -> list[jax.Array]:
    """x [N, H, W, 3] in [0, 1] -> five unit-normalised [N, h, w, C_l]."""
    self._check(x)
    x = x.astype(jnp.float32) * 2.0 - 1.0
    x = (x - jnp.array(SHIFT)) / jnp.array(SCALE)
    feats = self.backbone(x)
    return [_unit_normalize(feats[layer]) for layer in NET_LAYERS[self.net]]

  def distance(self, fx: list[jax.Array], fy: list[jax.Array]) -> jax.Array:
    """Features of x and y (from `features`) -> [N] (or [N, 5])."""
    per_layer = jnp.stack(
        [jnp.mean(lin((a - b) ** 2), axis=(1, 2, 3))
         for lin, a, b in zip(self.lins, fx, fy)], axis=-1)
    return per_layer if self.per_layer else jnp.sum(per_layer, axis=-1)

  def __call__(self, x: jax.Array, y: jax.Array) -> jax.Array:
    if x.shape != y.shape:
      raise ValueError(f'LPIPS needs two batches of the same shape; got '
                       f'{x.shape} and {y.shape}.')
    n = x.shape[0]
    feats = self.features(jnp.concatenate([x, y]))
    return self.distance([f[:n] for f in feats], [f[n:] for f in feats])


def make_lpips_fn(variables: Any, net: str = 'alex'
                  ) -> Callable[[jax.Array, jax.Array], jax.Array]:
  """fn(x, y) -> [N] float32 LPIPS distances, with `variables` bound.

  x, y: [N, H, W, 3] float in [0, 1] (uint8 is not accepted: divide by 255);
  see learned.make_feature_distance_fn (exact fn(x, x) == 0, symmetric,
  full float32 on every backend, one compile per image shape).
  """
  return learned.make_feature_distance_fn(LPIPS(net=net), variables, 'LPIPS')


def _lpips_metric(net: str):
  def metric(sr, hr, crop_border, variables) -> float:
    """LPIPS of uint8 RGB images on the whole image (as the lpips package
    and BasicSR's calculate_lpips compute it: no border crop)."""
    del crop_border
    return learned.image_distance(
        lambda v: make_lpips_fn(v, net), f'lpips_{net}', sr, hr, variables)
  return metric


# Lower is better; weights: python -m sr_jax.weights fetch lpips_alex / _vgg.
registry.register('lpips', higher_is_better=False, frozen='lpips_alex')(
    _lpips_metric('alex'))
registry.register('lpips_vgg', higher_is_better=False, frozen='lpips_vgg')(
    _lpips_metric('vgg'))
