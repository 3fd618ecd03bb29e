"""SSIM as a generator loss term: 1 - SSIM(G(lr), target), with dm-pix.

`dm_pix.ssim` is Wang et al. 2004's SSIM, differentiable: an 11x11
Gaussian window (sigma 1.5) normalised to sum 1, "valid" windows only,
C1 = (0.01 L)^2, C2 = (0.03 L)^2 with L = 1 for images in [0, 1], the mean
of the SSIM map over the image and its channels. That is the protocol of the
`ssim` / `ssim_rgb` metrics (sr_jax.metrics.psnr_ssim, BasicSR's
calculate_ssim on the 0-255 scale: SSIM does not change when the images and
L scale together), so the loss is 1 - the metric: to 1e-12 in float64, and
to float32's rounding of the variances E[x^2] - E[x]^2 (a few 1e-6) in
training (tests/losses/test_ssim_loss.py). dm-pix clips variances at
eps^2 and the covariance at the variances' geometric mean, which changes
nothing on real images and keeps the gradient finite on flat patches.

Options: `test_y_channel` (False: RGB, as `ssim_rgb`; True: BT.601 Y on the
[16, 235] / 255 scale, as the `ssim` metric and BasicSR's test_y_channel).
Registered as the loss term 'ssim' (SSIM-based losses are in neosr and
traiNNer-redux; Zhao et al. 2017 "Loss Functions for Image Restoration").
"""
import dm_pix
import jax
import jax.numpy as jnp

from sr_jax.losses import terms
from sr_jax.metrics import color


def ssim_loss(pred: jax.Array, target: jax.Array,
              test_y_channel: bool = False) -> jax.Array:
  """1 - the batch's mean SSIM; pred, target [N, H, W, C] in [0, 1], at
  least 11x11 (RGB for test_y_channel)."""
  dtype = jnp.promote_types(jnp.result_type(pred, target), jnp.float32)
  pred, target = pred.astype(dtype), target.astype(dtype)
  if test_y_channel:
    # Y on the 0-255 scale, brought back to [0, 1] so that L = 1.
    pred = color.rgb_to_y_jax(pred)[..., None] / 255.0
    target = color.rgb_to_y_jax(target)[..., None] / 255.0
  return 1.0 - jnp.mean(dm_pix.ssim(pred, target, max_val=1.0))


@terms.register('ssim')
def make_ssim_term(options, dtype) -> terms.LossTerm:
  """1 - SSIM(sr, target); option test_y_channel (default False)."""
  del dtype
  terms.unknown_options(options, ('test_y_channel',))
  on_y = bool(options.get('test_y_channel', False))
  return terms.LossTerm(lambda ctx: ssim_loss(ctx.sr, ctx.target, on_y),
                        log_name='ssim')
