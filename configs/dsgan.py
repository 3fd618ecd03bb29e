r"""DSGAN (Fritsche, Gu and Timofte, "Frequency Separation for Real-World
Super-Resolution", ICCVW 2019): learns the real-world degradation from
unpaired images, to make training pairs for a real-world SR model.

The generator (`dsgan`: 3x3 conv + PReLU, 8 residual blocks of 64, 3x3 conv,
sigmoid) maps the MATLAB-bicubic x1/4 LR of a clean HR patch to an LR image
of the real domain, at the same size. Its loss separates frequencies:
  - `low_frequency` (weight 1): L1 between the 5x5 box low-pass of G(x) and
    of x, the bicubic input: the colours and coarse content stay;
  - `adversarial` (weight 0.005, vanilla GAN): the discriminator
    (`dsgan_highpass`: 5x5 box high-pass, then a small patch network with
    BatchNorm) sees only the high frequencies of G(x) and of real LR-domain
    patches: the texture (noise, compression artefacts) is learned;
  - `lpips` (weight 0.01, AlexNet LPIPS, the released perceptual loss).
Adam (0.5, 0.999) at 2e-4, batch 16 of 512 px HR crops (128 px LR), 300
epochs with the rate decayed linearly over the last 150: here 200k steps,
constant then linear to 0 over the last half (`schedule='linear_decay'`
where registered; else a step schedule halving at 100k / 150k).

Data: `data.train_dir` is the clean HR folder (the source domain, e.g.
DIV2K/DF2K); `data.real_dir` an unpaired folder of real LR-domain images
(the target domain, e.g. an NTIRE 2020 real-world track's source images).
`degradation.target='lr'` makes the terms aim at the generator's input.
There is no SR validation (the output is an LR image): checkpoints are kept
by step. Use the trained generator as SRResCycGAN's degradation
(`--config.degradation.name=dsgan --config.degradation.dsgan.checkpoint=W`)
or write pairs to disk: `python -m sr_jax.data.make_lr --dsgan W --input
HR --output LR`.

  python -m sr_jax.main --config=configs/dsgan.py --workdir=W \
      --config.data.train_dir=/data/DF2K_HR \
      --config.data.real_dir=/data/NTIRE2020_track1/train_source
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo`. Both use a
synthetic real domain, as the paper's own artefact experiments: bicubic LR
with sensor noise of sigma 8 (`degradation.real_domain='srrescgan'` with
noise_prob 1) on other images of the batch.
"""
from sr_jax.train import config_lib


def get_config(arg=None):
  config = config_lib.base_config()
  config.batch_size = 16
  config.data.gt_size = 512
  config.degradation.name = 'bicubic'
  config.degradation.target = 'lr'
  config.generator.name = 'dsgan'
  config.generator.kwargs = dict(num_feat=64, num_block=8, downscale=1)
  config.discriminator.name = 'dsgan_highpass'
  config.discriminator.kwargs = dict(num_feat=64, kernel_size=5)
  adam = lambda: config_lib.adam(2e-4, (100_000, 150_000), gamma=0.5,
                                 b1=0.5, b2=0.999)
  config.phases = ('gan',)
  config.psnr.steps = 0
  config.gan.steps = 200_000
  config.gan.start = 'continue'
  config.gan.losses = {
      'low_frequency': dict(weight=1.0, kernel_size=5),
      'adversarial': dict(weight=0.005),
      'lpips': dict(weight=0.01, net='alex')}
  config.gan.adversarial_loss = 'vanilla'
  config.gan.optimizers = {'generator': adam(), 'discriminator': adam()}
  # The output is an LR image of another domain: no SR validation.
  config.evals = {}
  config.best_metric = ''
  if arg in ('runlocal', 'demo'):
    config.degradation.real_domain = 'srrescgan'
    config.degradation.srrescgan.noise_prob = 1.0
  config = config_lib.apply_variant(config, arg)
  if arg == 'runlocal':
    config.data.gt_size = 128  # LPIPS (AlexNet) needs 31 px LR patches.
  if arg == 'demo':
    config.generator.kwargs = dict(num_feat=32, num_block=4, downscale=1)
    config.discriminator.kwargs = dict(num_feat=32, kernel_size=5)
    config.gan.steps = 4_000
    for entry in config.gan.optimizers.values():
      entry.milestones = (3_000, 3_500)
    # 4k steps instead of 300 epochs: at the paper's 0.005 the texture term
    # had not moved the noise level of the outputs by then (0.6 levels of
    # 255 against the real domain's 8.4, measured); 0.2 reaches 6.3.
    config.gan.losses.adversarial.weight = 0.2
  return config
