"""Image metrics by name, for validation and evaluation.

A metric has a `kind`, which says how it is called (all images uint8
HxWx3 RGB arrays, results Python floats):

  'full_reference'  fn(sr, hr, crop_border) per image (PSNR, SSIM, LPIPS);
  'no_reference'    fn(img, crop_border) per image (NIQE, BRISQUE);
  'set'             fn(sr_images, hr_images, crop_border) on a whole set
                    (FID, spectrum discrepancy).

Per-image scores are averaged over a set. `higher_is_better` says which
way is better. A metric that needs pretrained weights names its frozen
network (`frozen='lpips_alex'`) and takes them as `variables=`; the
evaluator loads them (sr_jax.weights.load_frozen). Training validation
(`config.evals`, `config.best_metric`), the interpolation sweep and
`python -m sr_jax.evaluate` all look metrics up here, so a new one is one
file with

  @registry.register('name', higher_is_better=False)
  def my_metric(sr, hr, crop_border): ...

plus its import in `sr_jax/metrics/__init__.py`.
"""
import dataclasses
from typing import Callable

from sr_jax.metrics import psnr_ssim
from sr_jax.registry import Registry


KINDS = ('full_reference', 'no_reference', 'set')


@dataclasses.dataclass(frozen=True)
class Metric:
  fn: Callable[..., float]
  higher_is_better: bool
  frozen: str | None = None  # Weights it needs, by frozen-network name.
  kind: str = 'full_reference'  # One of KINDS.


METRICS = Registry('metric')


def register(name: str, higher_is_better: bool = True,
             frozen: str | None = None, kind: str = 'full_reference'):
  if kind not in KINDS:
    raise ValueError(f'Metric {name!r}: kind {kind!r} is not one of {KINDS}.')

  def decorator(fn):
    METRICS.register(name)(Metric(fn, higher_is_better, frozen, kind))
    return fn
  return decorator


@register('psnr')
def psnr_y(sr, hr, crop_border):
  """PSNR on BT.601 Y (BasicSR's test_y_channel=True), dB."""
  return psnr_ssim.psnr(sr, hr, crop_border=crop_border, test_y_channel=True)


@register('ssim')
def ssim_y(sr, hr, crop_border):
  return psnr_ssim.ssim(sr, hr, crop_border=crop_border, test_y_channel=True)


@register('psnr_rgb')
def psnr_rgb(sr, hr, crop_border):
  """PSNR over R, G and B: sees colour casts that Y hides."""
  return psnr_ssim.psnr(sr, hr, crop_border=crop_border,
                        test_y_channel=False)


@register('ssim_rgb')
def ssim_rgb(sr, hr, crop_border):
  return psnr_ssim.ssim(sr, hr, crop_border=crop_border,
                        test_y_channel=False)
