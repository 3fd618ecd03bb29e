"""Losses as pure functions of arrays, and as registered terms.

Generator loss terms (`terms.LOSS_TERMS`): 'pixel', 'perceptual', 'fft' (norm
'l2', 'l1' or 'amplitude_phase'), 'spectral', 'focal_frequency', 'adversarial',
'lpips', 'tv', 'cycle', 'down_pixel', 'low_frequency'. Discriminator
regularisers (`regularisers.REGULARISERS`): 'gradient_penalty', 'r1'.
Adversarial objectives (`get_adversarial_loss`): vanilla, lsgan, hinge, wgan,
wgan_gp, ragan, ragan_basicsr, ragp, rsgan, ralsgan, rahinge, rcgan, rclsgan,
rchinge.

Adding a term or regulariser: one file in this package plus one import line
below (its registration runs on import). See CONTRIBUTING.md.
"""
from sr_jax.losses import terms
from sr_jax.losses import regularisers
from sr_jax.losses.terms import LOSS_TERMS
from sr_jax.losses.terms import LossContext
from sr_jax.losses.terms import LossTerm
from sr_jax.losses.regularisers import REGULARISERS
from sr_jax.losses.regularisers import Regulariser
from sr_jax.losses.regularisers import RegulariserContext
# Registrations: one import per term / regulariser file.
# pylint: disable=g-bad-import-order
from sr_jax.losses.adversarial import ADVERSARIAL_LOSSES
from sr_jax.losses.adversarial import AdversarialLoss
from sr_jax.losses.adversarial import get_adversarial_loss
from sr_jax.losses import cycle  # noqa: F401
from sr_jax.losses.fft import FFT_NORMS
from sr_jax.losses.fft import fft_loss
from sr_jax.losses.focal_frequency import focal_frequency_loss
from sr_jax.losses.gradient_penalty import gradient_penalty
from sr_jax.losses.dists_loss import make_dists_term
from sr_jax.losses.lpips_loss import make_lpips_term
from sr_jax.losses import low_frequency  # noqa: F401
from sr_jax.losses.perceptual import make_perceptual_loss_fn
from sr_jax.losses.perceptual import perceptual_loss
from sr_jax.losses.pixel import get_pixel_loss
from sr_jax.losses.pixel import l1_loss
from sr_jax.losses.pixel import mse_loss
from sr_jax.losses.r1 import r1_penalty
from sr_jax.losses.spectral import spectral_loss
from sr_jax.losses.ssim_loss import ssim_loss
from sr_jax.losses.tv import tv_loss
