r"""ESRGAN with an FFT loss and RaGP: the main sr_jax job.

RRDBNet (23 blocks) x4, PSNR warm-up then GAN with L1 + VGG19 conv5_4
(pre-activation) perceptual + FFT loss + RaGP (RaGAN with a gradient penalty).

  python -m sr_jax.main --config=configs/esrgan_fft.py --workdir=W \
      --config.data.train_dir=/data/DIV2K/DIV2K_train_HR \
      --config.data.val_dir=/data/DIV2K/DIV2K_valid_HR
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo` (offline, ~10 min CPU).

The discriminator is BasicSR's VGG-style one WITHOUT BatchNorm (use_bn=False,
the convs get biases instead). The gradient penalty is a per-sample
quantity: E over samples of (||grad_x C(x_hat_i)||_2 - 1)^2, each image's
gradient of its own logit. With BatchNorm in train mode every logit depends
on the whole batch, so the gradient of the summed logits is no longer each
image's own gradient (measured: 18% off). Gulrajani et al. drop BatchNorm
from the critic for the same reason; sr_jax refuses the combination.
"""
from sr_jax import config_lib


def get_config(arg=None):
  config = config_lib.base_config()
  config.gan.adversarial_loss = 'ragp'  # RaGAN + gradient_penalty (gp_weight).
  config.gan.losses.fft.weight = 0.1
  config.discriminator.kwargs.use_bn = False  # Per-sample critic (see above).
  return config_lib.apply_variant(config, arg)
