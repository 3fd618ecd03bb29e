r"""SRResCycGAN (Umer and Micheloni, "Deep Cyclic Generative Adversarial
Residual Convolutional Networks for Real Image Super-Resolution", ECCVW /
AIM 2020): SRResCGAN trained in a cycle with a down-sampling generator.

Networks:
  generator      G_SR, SRResCGAN (`srrescgan`, depth 5, 380,356 params);
  generator_lr   G_LR, the down-sampling generator: MATLAB bicubic x1/4 and
                 DSGAN's residual network (`dsgan`, downscale=4). The
                 paper's G_LR training code is not released; this is the
                 down-sampler of the DSGAN pairs SRResCycGAN trains on;
  discriminator  BasicSR's VGG-style discriminator on 128 px HR patches.
G_SR's loss, as the paper: perceptual (VGG19 conv5_4, L1) + RaGAN + TV
+ 10 L1 + 10 cycle, cycle = ||G_LR(G_SR(y)) - y||_1 (the `cycle` term, whose
gradient also trains G_LR), plus G_LR's own 10 ||G_LR(x) - y||_1
(`down_pixel`). The weights are the paper's in the released code's units:
its images are in [0, 255] (rgb_range=255), sr_jax's in [0, 1], so the
pixel, TV, cycle and (nearly: VGG is positively homogeneous up to its
biases) perceptual terms there are 255 times sr_jax's while the GAN term is
scale-free. Dividing every weight by 255 keeps the released balance with
the same optimizer steps (Adam is invariant to the loss scale): pixel 10,
TV 1, cycle 10, perceptual 1, RaGAN 1 / 255.
AMSGrad (betas 0.9, 0.999) at 1e-4, halved at 5k, 10k, 20k and 30k, 51k
steps (the released SRResCGAN schedule), batch 16 of 32 px LR patches, the
training set repeated x3 per epoch, mixup (alpha 1.2) on every batch as the
released training (`--config.degradation.mixup_prob=0` turns it off).

LR inputs: `degradation.name='srrescgan'` (bicubic, then per image sensor
noise sigma 8 or JPEG q30: the NTIRE 2020 tracks) by default; with a trained
DSGAN (configs/dsgan.py) set `--config.degradation.name=dsgan
--config.degradation.dsgan.checkpoint=W_DSGAN` to train on DSGAN pairs made
on the fly. SRResCycGAN+ is the x8 self-ensemble at test time:
`python -m sr_jax.upscale --ensemble` / `python -m sr_jax.evaluate
--ensemble`.

  python -m sr_jax.main --config=configs/srrescycgan.py --workdir=W \
      --config.data.train_dir=/data/DIV2K/DIV2K_train_HR
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo`.
"""
import math

from sr_jax.train import config_lib


def get_config(arg=None):
  config = config_lib.base_config()
  config.batch_size = 16
  config.data.gt_size = 128
  config.data.dataset_repeat = 3
  config.degradation.name = 'srrescgan'
  config.degradation.mixup_prob = 1.0
  config.degradation.mixup_alpha = 1.2
  config.generator.name = 'srrescgan'
  config.generator.kwargs = dict(depth=5)
  config.generator_lr = dict(kind='generator', name='dsgan', input='hr',
                             kwargs=dict(num_feat=64, num_block=8,
                                         downscale=config.scale))
  config.discriminator.name = 'vgg_style'
  config.discriminator.kwargs = dict(num_feat=64)
  amsgrad = lambda: config_lib.adam(1e-4, (5_000, 10_000, 20_000, 30_000),
                                    gamma=0.5, name='amsgrad', b2=0.999)
  config.psnr.steps = 0  # The released training starts from a trained G.
  config.gan.steps = 51_000
  config.gan.start = 'continue'
  config.gan.train = ('generator', 'generator_lr', 'discriminator')
  config.gan.losses = {
      'perceptual': config_lib.esrgan_perceptual(1.0),
      'adversarial': dict(weight=1.0 / 255.0),
      'tv': dict(weight=1.0),
      'pixel': dict(weight=10.0, criterion='l1'),
      'cycle': dict(weight=10.0),
      'down_pixel': dict(weight=10.0)}
  config.gan.adversarial_loss = 'ragan'
  config.gan.optimizers = {'generator': amsgrad(), 'generator_lr': amsgrad(),
                           'discriminator': amsgrad()}
  # Validation LR of the real-world track (bicubic, then noise or JPEG,
  # fixed per image), also when training on DSGAN pairs: the model is
  # scored on the task it learns, against bicubic up-sampling of that LR.
  config.evals.val.lr_from = 'srrescgan'
  config = config_lib.apply_variant(config, arg)
  if arg == 'demo':
    # Minutes on a CPU: 32 features (not 64), and an L1 warm-up in place of
    # the released pretrained G_SR (pretrainedModelPath). From scratch, the
    # released alpha (log 2) holds the output to bilinear up-sampling (29.05
    # dB at every eval of a 1.7k-step demo, measured): the correction's RMS
    # is capped at exp(alpha) x the noise estimate of the x4 bilinear image,
    # 2e-5 to 7e-4 levels of 255 on the held-out photos (see
    # sr_jax/models/srrescgan.py). From log 2000 the demo reached 29.26 dB
    # against bicubic's 29.23; from log 1e6 (no cap at all) 29.24.
    config.generator.kwargs = dict(depth=5, num_feat=32,
                                   alpha_init=math.log(2000.0))
    config.psnr.steps = 2_500
    config.psnr.optimizers = {'generator': config_lib.adam(
        1e-3, (1_500, 2_000), name='amsgrad', b2=0.999)}
    config.gan.losses.pixel.weight = 10.0  # The demo variant's default is 1.
    # Mixup of every batch regularises a 51k-step run; in 2.7k steps on 8
    # photos it only blurs the targets.
    config.degradation.mixup_prob = 0.0
  return config
