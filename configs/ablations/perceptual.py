r"""The thesis's perceptual-loss ablation: ESRGAN with the VGG19 loss (before
or after the ReLU), LPIPS or DISTS as its perceptual term.

  python -m sr_jax.sweep --config=configs/ablations/perceptual.py --workdir=W

Arg: 'VARIANT[,SIZE]', VARIANT one of vgg, vgg_relu, lpips, dists (default
vgg); SIZE '', 'tiny' or 'runlocal' (sr_jax.train.config_lib.ablation_size).
- vgg: VGG19 conv5_4 before its ReLU (ESRGAN's choice), weight 1;
- vgg_relu: relu5_4, after the ReLU (SRGAN's), weight 1;
- lpips: LPIPS with the VGG backbone (the LPIPS authors' advice for a
  loss), weight 1, no VGG19 term;
- dists: DISTS, weight 1, no VGG19 term.
Weights needed: vgg19, lpips_vgg or dists (`python -m sr_jax.weights fetch
NAME`); the 'tiny' size runs without them on the embedded photos, the
missing term dropped with a warning (as the :demo configs do).
The rest is ESRGAN's: L1 1e-2, RaGAN 5e-3, a BatchNorm-free VGG-style
critic as in the other ablations.
"""
from sr_jax.train import config_lib

VARIANTS = {
    'vgg': ('perceptual', dict(layer_weights={'conv5_4': 1.0})),
    'vgg_relu': ('perceptual', dict(layer_weights={'relu5_4': 1.0})),
    'lpips': ('lpips', dict(net='vgg')),
    'dists': ('dists', {}),
}


def get_config(arg=None):
  name, size = config_lib.split_ablation_arg(arg, VARIANTS)
  config = config_lib.base_config()
  config.discriminator.kwargs.use_bn = False
  term, options = VARIANTS[name]
  if term != 'perceptual':
    config.gan.losses.perceptual.weight = 0.0
  config.gan.losses[term] = dict(config.gan.losses.get(term, {}),
                                 weight=1.0, **options)
  return config_lib.ablation_size(config, size)
