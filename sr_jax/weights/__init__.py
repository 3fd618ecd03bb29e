"""Pretrained weights: converted once from PyTorch, cached as torch-free .npz.

  vgg_variables = weights.load_vgg19_params()  # or (path) from the config

Command line (see `python -m sr_jax.weights --help`):
  python -m sr_jax.weights fetch vgg19          # download + convert + cache
  python -m sr_jax.weights fetch RealESRGAN_x4plus   # also realesr-general-
                                  # x4v3, RealESRGAN_x2plus, ESRGAN_x4, ...
  python -m sr_jax.weights convert vgg19 FILE   # offline, from a local .pth
  python -m sr_jax.weights where                # cache location and contents
"""
from sr_jax.weights.params_io import WeightsNotFoundError
from sr_jax.weights.params_io import cache_dir
from sr_jax.weights.params_io import load_metadata
from sr_jax.weights.params_io import load_params
from sr_jax.weights.params_io import save_params
from sr_jax.weights.pretrained import PRETRAINED
from sr_jax.weights.pretrained import fetch_pretrained
from sr_jax.weights.pretrained import load_pretrained
from sr_jax.weights.vgg19 import VGG19_URL
from sr_jax.weights.vgg19 import FetchError
from sr_jax.weights.vgg19 import cached_vgg19_path
from sr_jax.weights.vgg19 import convert_vgg19_file
from sr_jax.weights.vgg19 import fetch_vgg19
from sr_jax.weights.vgg19 import load_vgg19_params

__all__ = [
    'FetchError', 'PRETRAINED', 'VGG19_URL', 'WeightsNotFoundError',
    'cache_dir', 'cached_vgg19_path', 'convert_vgg19_file',
    'fetch_pretrained', 'fetch_vgg19', 'load_metadata', 'load_params',
    'load_pretrained', 'load_vgg19_params', 'save_params',
]
