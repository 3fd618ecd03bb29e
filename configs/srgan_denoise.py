r"""SRGAN used for denoising: SRResNet at scale 1 on noisy images.

The input is the clean HR patch with additive Gaussian noise of the same
size (the `denoise` degradation, made on the device): sigma drawn per image
uniformly in 0.1-0.5 of the 0-255 range (25.5-127.5), or fixed with
--config.degradation.denoise.noise_range='(51.0, 51.0)'. The generator is
SRResNet without up-sampling blocks (scale 1); the rest is SRGAN's recipe
(configs/srgan.py): an MSE warm-up, then VGG54 content + 1e-3 adversarial
loss against SRGAN's discriminator.

Validation measures denoising: each validation image gets noise once, with
a fixed key (`config.evals.val.lr_from='degradation'`), and PSNR / SSIM are
reported for the model and, as 'input', for the noisy image itself.

  python -m sr_jax.main --config=configs/srgan_denoise.py --workdir=W \
      --config.data.train_dir=/data/DIV2K/DIV2K_train_HR \
      --config.data.val_dir=/data/DIV2K/DIV2K_valid_HR
Variants: `:runlocal` (tiny, 2 steps, tests) and `:demo`.
"""
import importlib.util
import os

_SRGAN = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'srgan.py')


def _srgan_config(arg):
  spec = importlib.util.spec_from_file_location('configs_srgan', _SRGAN)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config(arg)


def get_config(arg=None):
  config = _srgan_config(arg)
  config.scale = 1
  config.degradation.name = 'denoise'
  config.degradation.denoise.noise_range = (25.5, 127.5)
  config.evals.val.lr_from = 'degradation'
  return config
