"""Edge pre-padding of the LR input: no zero-padding line at image borders.

Every conv of the SR generators zero-pads, so the outermost output pixels see
zeros instead of image. The network learns to compensate for that only for
the colours it was trained on: on a flat dark-blue sky (scikit-image's rocket)
a demo RRDBNet trained on the embedded photos puts a yellowish line along the
image edge (top row 7.8 levels off HR, bicubic 0.5), while on grey or warm
flat inputs its edge rows are within ~1.5 levels. Replicating the LR border
for `pad` pixels before the network and cropping `scale * pad` pixels from
each side of the output moves the zero padding out of the kept region
(Real-ESRGAN's `pre_pad`, with edge instead of reflect padding so a 1-pixel
image still works). Interior pixels farther than the receptive field from the
border are unchanged.
"""
from typing import Callable

import jax
import jax.numpy as jnp

# LR pixels. 4 already takes the rocket top row from 7.8 to 0.7 levels; 8 is
# a margin (RRDBNet's receptive field is far wider, but the zero-padding
# effect is felt only in the outermost few pixels).
DEFAULT_PRE_PAD = 8


def apply_pre_padded(fn: Callable[[jax.Array], jax.Array], lr: jax.Array,
                     scale: int, pad: int = DEFAULT_PRE_PAD) -> jax.Array:
  """fn(edge-padded lr) cropped back: [N, h, w, C] -> [N, h*scale, w*scale, C].

  fn maps [N, h', w', C] LR to [N, h'*scale, w'*scale, C'] (a generator's
  apply). Traceable under jit; pad=0 calls fn(lr) as it is.
  """
  if pad < 0:
    raise ValueError(f'pre-pad must be >= 0, got {pad}.')
  if pad == 0:
    return fn(lr)
  padded = jnp.pad(lr, ((0, 0), (pad, pad), (pad, pad), (0, 0)), mode='edge')
  out = fn(padded)
  p = pad * scale
  return out[:, p:out.shape[1] - p, p:out.shape[2] - p]
