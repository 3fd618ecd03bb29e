"""Convert PyTorch weights to sr_jax's flax variables: the public names of the
issues' contract (`sr_jax.convert.convert_state_dict`, ...), re-exported from
`sr_jax.weights`, which owns conversion, files, fetching and caching).

  variables = convert_state_dict('rrdbnet', load_torch_file('x4plus.pth'))
  sr = models.get_generator('rrdbnet').apply(variables, lr)

Or once, on the command line, into a torch-free .npz that records what model
it is for (see `python -m sr_jax.convert --help`):

  python -m sr_jax.convert rrdbnet RealESRGAN_x4plus.pth x4plus.npz
  arch, kwargs, variables = load_converted('x4plus.npz')
  sr = build_model(arch, **kwargs).apply(variables, lr)

torch is only needed to read .pth files; .safetensors are read with numpy,
and the converters take any mapping of arrays (or tensors). ncnn models
(the released Real-ESRGAN .param / .bin pairs) are read by read_ncnn.
"""
from sr_jax.weights import CONVERSION_HINTS
from sr_jax.weights import SUPPORTED_ARCHS
from sr_jax.weights import build_model
from sr_jax.weights import convert_file
from sr_jax.weights import convert_state_dict
from sr_jax.weights import convert_with_config
from sr_jax.weights import load_converted
from sr_jax.weights import load_like
from sr_jax.weights import load_torch_file
from sr_jax.weights import read_ncnn
from sr_jax.weights import read_safetensors
from sr_jax.weights import save_converted
from sr_jax.weights import unwrap_state_dict

__all__ = [
    'CONVERSION_HINTS', 'SUPPORTED_ARCHS', 'build_model', 'convert_file',
    'convert_state_dict', 'convert_with_config', 'load_converted',
    'load_like', 'load_torch_file', 'read_ncnn', 'read_safetensors',
    'save_converted',
    'unwrap_state_dict',
]
