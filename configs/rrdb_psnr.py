r"""RRDBNet x4 trained for PSNR only (L1), BasicSR's RRDBNet_PSNR recipe.

L1 loss, Adam lr 2e-4 halved every 200k of 1M steps, batch 16, 128 px GT.
No discriminator or VGG is used. Variants: `:runlocal` and `:demo`.
"""
from sr_jax.train import config_lib


def get_config(arg=None):
  config = config_lib.base_config()
  config.gan.steps = 0
  return config_lib.apply_variant(config, arg)
