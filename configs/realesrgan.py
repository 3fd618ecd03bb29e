r"""Real-ESRGAN x4plus: the second-order degradation model, on the fly.

Real-ESRNet (warm-up, train_realesrnet_x4plus.yml): L1, Adam lr 2e-4, 1M
steps; Real-ESRGAN (GAN, train_realesrgan_x4plus.yml): L1 1.0, perceptual
1.0 on VGG19 conv1_2/conv2_2 (0.1 each) and conv3_4/conv4_4/conv5_4 (1.0
each), vanilla GAN 0.1, Adam lr 1e-4, 400k steps, EMA 0.999, 256 px GT.
LR inputs are made on the accelerator by `degradation.name='realesrgan'`
with Real-ESRGAN's defaults (`config.degradation.realesrgan.*`).

The GT is USM-sharpened (l1_gt_usm / percep_gt_usm; D sees the plain GT).
The discriminator is Real-ESRGAN's U-Net with spectral normalisation
(`unet_sn`, num_feat 64, skip connections), giving one logit per pixel.
Difference from the official recipe: one device batch of 12 (the official
run uses 4 GPUs x 12; set --config.batch_size=48 on a multi-device host).
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo`.
"""
from sr_jax import config_lib


def get_config(arg=None):
  config = config_lib.base_config()
  config.degradation.name = 'realesrgan'
  config.degradation.usm_sharpen_gt = True
  config.batch_size = 12
  config.data.gt_size = 256
  config.psnr.optimizers.generator = config_lib.adam(2e-4, (1_000_000,))
  config.gan.losses.pixel.weight = 1.0
  config.gan.losses.perceptual = config_lib.esrgan_perceptual(
      1.0, {'conv1_2': 0.1, 'conv2_2': 0.1, 'conv3_4': 1.0, 'conv4_4': 1.0,
            'conv5_4': 1.0})
  config.discriminator.name = 'unet_sn'
  config.discriminator.kwargs = dict(num_feat=64, skip_connection=True)
  config.gan.adversarial_loss = 'vanilla'
  config.gan.losses.adversarial.weight = 0.1
  config.gan.optimizers = {'generator': config_lib.adam(1e-4, (400_000,)),
                           'discriminator': config_lib.adam(1e-4, (400_000,))}
  config = config_lib.apply_variant(config, arg)
  if arg in ('runlocal', 'demo'):
    # The 21 x 21 blur kernels need LR patches wider than 10 pixels.
    config.data.gt_size = 64
  return config
