r"""The thesis's adversarial-loss ablation: ESRGAN with seven GAN objectives.

  python -m sr_jax.main --config=configs/ablations/adversarial.py:rcgan \
      --workdir=W/rcgan --config.data.train_dir=... --config.data.val_dir=...

Arg: 'VARIANT[,SIZE]'.
  VARIANT  ragan | rahinge | rals | rcgan | rchinge | rcls | ragp (default
           ragan): the adversarial loss, sr_jax.losses.get_adversarial_loss
           names 'ragan', 'rahinge', 'ralsgan', 'rcgan', 'rchinge',
           'rclsgan', 'ragp'. Every two-term objective averages its terms
           (adversarial.py), so the one adversarial weight means the same
           for all seven.
  SIZE     '' the thesis's size (RRDBNet 23 blocks, 128 px, batch 16);
           'tiny' a CPU size for the notebooks (minutes per variant on the
           embedded photos); 'runlocal' the tests' size.
Everything else is the shared base: ESRGAN's L1 + VGG19 conv5_4 perceptual
+ adversarial (weights 1e-2, 1, 5e-3), PSNR warm-up then GAN, and BasicSR's
VGG-style discriminator without BatchNorm for every variant (RaGP's
gradient penalty is per sample, and the variants must share the critic).
"""
from sr_jax.train import config_lib

VARIANTS = {'ragan': 'ragan', 'rahinge': 'rahinge', 'rals': 'ralsgan',
            'rcgan': 'rcgan', 'rchinge': 'rchinge', 'rcls': 'rclsgan',
            'ragp': 'ragp'}


def get_config(arg=None):
  name, size = config_lib.split_ablation_arg(arg, VARIANTS)
  config = config_lib.base_config()
  config.gan.adversarial_loss = VARIANTS[name]
  config.discriminator.kwargs.use_bn = False
  return config_lib.ablation_size(config, size)
