"""Convert PyTorch weights to sr_jax's flax variables.

  variables = convert_state_dict('rrdbnet', load_torch_file('x4plus.pth'))
  sr = models.get_generator('rrdbnet').apply(variables, lr)

Or once, on the command line, into a torch-free .npz that records what model
it is for (see `python -m sr_jax.convert --help`):

  python -m sr_jax.convert rrdbnet RealESRGAN_x4plus.pth x4plus.npz
  arch, kwargs, variables = load_converted('x4plus.npz')
  sr = build_model(arch, **kwargs).apply(variables, lr)

torch is only needed to read .pth files; .safetensors are read with numpy,
and the converters take any mapping of arrays (or tensors).
"""
from sr_jax.convert.state_dict import CONVERSION_HINTS
from sr_jax.convert.state_dict import SUPPORTED_ARCHS
from sr_jax.convert.state_dict import build_model
from sr_jax.convert.state_dict import convert_state_dict
from sr_jax.convert.state_dict import convert_with_config
from sr_jax.convert.state_dict import unwrap_state_dict
# After state_dict: files imports sr_jax.weights, which imports state_dict.
# pylint: disable-next=g-bad-import-order
from sr_jax.convert.files import convert_file
from sr_jax.convert.files import load_converted
from sr_jax.convert.files import load_like
from sr_jax.convert.files import load_torch_file
from sr_jax.convert.files import save_converted
from sr_jax.convert.safetensors_io import read_safetensors

__all__ = [
    'CONVERSION_HINTS', 'SUPPORTED_ARCHS', 'build_model', 'convert_file',
    'convert_state_dict', 'convert_with_config', 'load_converted',
    'load_like', 'load_torch_file', 'read_safetensors', 'save_converted',
    'unwrap_state_dict',
]
