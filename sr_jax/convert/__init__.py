"""Convert PyTorch (BasicSR / torchvision) weights to sr_jax's flax variables.

  variables = convert_state_dict('rrdbnet', torch.load('RRDB_ESRGAN_x4.pth'))
  sr = models.get_generator('rrdbnet').apply(variables, lr)

torch itself is not needed here: any mapping of arrays (or tensors) works.
"""
from sr_jax.convert.state_dict import SUPPORTED_ARCHS
from sr_jax.convert.state_dict import convert_state_dict
from sr_jax.convert.state_dict import unwrap_state_dict

__all__ = ['SUPPORTED_ARCHS', 'convert_state_dict', 'unwrap_state_dict']
