r"""SRGAN with a weighted dense residual network (WDRN) generator, a
discriminator on pretrained VGG19 features and a Wasserstein critic.

Generator (`wdrn`, sr_jax/models/wdrn.py): SRGAN-style, with densely
connected residual blocks (each conv sees the block input and every earlier
conv's output) joined by a learned weighted concatenation (one scalar per
block, then a 1x1 fusion) instead of a sum.
Discriminator (`vgg19_feature`): torchvision's VGG19 up to relu5_4, loaded
from the pretrained weights (`config.frozen.vgg19`, as the perceptual loss)
and frozen, and a trainable head (conv, LeakyReLU, average pool, dense).

Critic loss: Wasserstein (the critic's mean on real minus on fake), with the
gradient penalty (`wgan_gp`, lambda 10, Gulrajani et al. 2017) by default.
Why the penalty and not clipping: the Lipschitz constraint is what makes the
critic's output a Wasserstein estimate. Clipping every weight to [-c, c]
(Arjovsky et al. 2017) enforces it crudely: it pushes the weights to +-c,
caps the critic's capacity, and trains poorly with momentum optimizers like
Adam (the WGAN paper uses RMSProp at 5e-5). The penalty constrains the
critic's gradient norm on real-fake interpolates directly, without limiting
capacity, and works with Adam. The frozen VGG19 trunk is never clipped (it
is not trained), so clipping only bounds the head. Clipping stays an
option, for comparison: `--config.gan.adversarial_loss=wgan
--config.gan.optimizers.discriminator.weight_clip=0.01` (and, as the paper,
an RMSprop critic: `--config.gan.optimizers.discriminator='{"name":
"rmsprop", "lr": 5e-5, "weight_clip": 0.01}'`).
Both need a per-sample critic: the head has no BatchNorm.

Recipe otherwise SRGAN's (configs/srgan.py): SRResNet-style MSE warm-up,
then VGG54 content loss + 1e-3 adversarial, Adam (0.9, 0.999) at 1e-4; the
critic is updated at every step (net_d_iters=1).

  python -m sr_jax.main --config=configs/srgan_wdrn.py --workdir=W \
      --config.data.train_dir=/data/DIV2K/DIV2K_train_HR
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo`.
"""
import importlib.util
import os

from sr_jax.train import config_lib

_SRGAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'srgan.py')


def _srgan_config():
  spec = importlib.util.spec_from_file_location('configs_srgan', _SRGAN)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(None)


def get_config(arg=None):
  config = _srgan_config()
  config.generator.name = 'wdrn'
  config.generator.kwargs = dict(num_feat=64, num_block=8, num_layer=4,
                                 num_grow_ch=32)
  config.discriminator.name = 'vgg19_feature'
  config.discriminator.kwargs = dict(num_feat=64, feature_layer='relu5_4')
  config.gan.adversarial_loss = 'wgan_gp'
  config.gan.gp_weight = 10.0
  config = config_lib.apply_variant(config, arg)
  if arg == 'demo':
    config.generator.kwargs = dict(num_feat=32, num_block=3, num_layer=3,
                                   num_grow_ch=16)
    config.discriminator.kwargs = dict(num_feat=32, feature_layer='relu3_4')
  return config
