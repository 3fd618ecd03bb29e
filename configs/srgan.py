r"""SRGAN (Ledig et al. 2017): SRResNet x4 trained for MSE, then SRGAN.

Generator: SRResNet with 16 residual blocks (BatchNorm, PReLU, sub-pixel
up-sampling). Discriminator: the paper's (`srgan`: eight 3x3 convolutions
64 -> 512, dense 1024, one logit) on 96 px HR patches, batch 16.
Warm-up (`psnr`): MSE, Adam (beta1 0.9) lr 1e-4 for 10^6 steps.
GAN: VGG54 content loss (VGG19 relu5_4, i.e. after the activation, MSE on
features scaled by 1 / 12.75) + 1e-3 vanilla adversarial loss; lr 1e-4 for
10^5 steps then 1e-5 for 10^5, from the warm-up's generator.

  python -m sr_jax.main --config=configs/srgan.py --workdir=W \
      --config.data.train_dir=/data/DIV2K/DIV2K_train_HR
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo`.
"""
from sr_jax.train import config_lib


def get_config(arg=None):
  config = config_lib.base_config()
  config.batch_size = 16
  config.data.gt_size = 96
  config.generator.name = 'srresnet'
  config.generator.kwargs = dict(num_feat=64, num_block=16)
  config.discriminator.name = 'srgan'
  config.discriminator.kwargs = dict(num_feat=64, dense_features=1024)
  adam = lambda lr, milestones=(): config_lib.adam(lr, milestones, gamma=0.1,
                                                   b2=0.999)
  config.psnr.steps = 1_000_000
  config.psnr.losses = {'pixel': dict(weight=1.0, criterion='mse')}
  config.psnr.optimizers = {'generator': adam(1e-4)}
  config.gan.steps = 200_000
  config.gan.start = 'continue'  # SRGAN starts from the trained SRResNet.
  config.gan.losses = {
      'perceptual': dict(weight=1.0, layer_weights={'relu5_4': 1.0},
                         criterion='mse', use_input_norm=True,
                         range_norm=False, feature_scale=1 / 12.75),
      'adversarial': dict(weight=1e-3)}
  config.gan.adversarial_loss = 'vanilla'
  config.gan.optimizers = {'generator': adam(1e-4, (100_000,)),
                           'discriminator': adam(1e-4, (100_000,))}
  config = config_lib.apply_variant(config, arg)
  if arg == 'demo':
    config.generator.kwargs = dict(num_feat=32, num_block=4)
    config.data.gt_size = 64
  return config
