"""Losses as pure functions of arrays: pixel, perceptual, FFT, adversarial."""
from sr_jax.losses.adversarial import ADVERSARIAL_LOSSES
from sr_jax.losses.adversarial import AdversarialLoss
from sr_jax.losses.adversarial import get_adversarial_loss
from sr_jax.losses.adversarial import gradient_penalty
from sr_jax.losses.fft import fft_loss
from sr_jax.losses.perceptual import make_perceptual_loss_fn
from sr_jax.losses.perceptual import perceptual_loss
from sr_jax.losses.pixel import get_pixel_loss
from sr_jax.losses.pixel import l1_loss
from sr_jax.losses.pixel import mse_loss
