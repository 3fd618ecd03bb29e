r"""ESRGAN, the BasicSR recipe (train_ESRGAN_x4.yml).

GAN phase: L1 1e-2, perceptual (VGG19 conv5_4 before ReLU) 1.0, RaGAN 5e-3
in BasicSR's form (`ragan_basicsr`: D's loss holds the other set's mean
constant, as esrgan_model.py detaches it;
tests/tools/test_run_parity.py trains a whole run against BasicSR's code
with it),
Adam lr 1e-4 (beta 0.9, 0.99) halved at 50k/100k/200k/300k of 400k, batch 16,
128 px GT patches, EMA 0.999. The PSNR warm-up follows the ESRGAN paper
(L1, lr 2e-4 halved every 200k); set --config.psnr.steps=0 to skip it.
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo`.
"""
from sr_jax.train import config_lib


def get_config(arg=None):
  config = config_lib.base_config()
  config.gan.adversarial_loss = 'ragan_basicsr'
  config.gan.losses.fft.weight = 0.0
  return config_lib.apply_variant(config, arg)
