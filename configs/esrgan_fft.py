r"""ESRGAN with an FFT loss and RaGP: the main sr_jax job.

RRDBNet (23 blocks) x4, PSNR warm-up then GAN with L1 + VGG19 conv5_4
(pre-activation) perceptual + FFT loss + RaGP (RaGAN with a gradient penalty).

  python -m sr_jax.main --config=configs/esrgan_fft.py --workdir=W \
      --config.data.train_dir=/data/DIV2K/DIV2K_train_HR \
      --config.data.val_dir=/data/DIV2K/DIV2K_valid_HR
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo` (offline, ~10 min CPU).
"""
from sr_jax import config_lib


def get_config(arg=None):
  config = config_lib.base_config()
  config.gan.adversarial_loss = 'ragp'
  config.gan.fft_weight = 0.1
  return config_lib.apply_variant(config, arg)
