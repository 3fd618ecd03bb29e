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

Released weights (Real-ESRGAN, ESRGAN, BasicSR: trained outside sr_jax) are
run as their release runs them: Real-ESRGAN's inference_realesrgan.py
defaults to `--pre_pad 0`, and those networks learnt their own border
behaviour, so pre-padding them changes a wide band along every edge (a
128 px crop of scikit-image's astronaut through RealESRGAN_x4plus: pre-pad
8 moves 43% of the output values, by up to 88 levels, still 17 levels 64
output pixels in from the border; realesr-animevideov3 on 256 px: 8% of
the values, up to 106 levels). `default_pre_pad` picks 0 for them (the
release's pixels, within one level) and DEFAULT_PRE_PAD for sr_jax's own
networks, whose validation pre-pads.
"""
import os
from typing import Callable

import jax
import jax.numpy as jnp

from sr_jax.weights import files
from sr_jax.weights import params_io

# LR pixels. 4 already takes the rocket top row from 7.8 to 0.7 levels; 8 is
# a margin (RRDBNet's receptive field is far wider, but the zero-padding
# effect is felt only in the outermost few pixels).
DEFAULT_PRE_PAD = 8
# Real-ESRGAN's inference_realesrgan.py --pre_pad default.
RELEASE_PRE_PAD = 0
# Weight files sr_jax does not train into: networks trained elsewhere
# (PyTorch checkpoints, safetensors, ncnn .param / .bin).
FOREIGN_SUFFIXES = ('.pth', '.pt', '.ckpt', '.bin', '.safetensors', '.param')


def default_pre_pad(weights: str | os.PathLike | None = None,
                    checkpoint: str | os.PathLike | None = None
                    ) -> tuple[int, str]:
  """(pre-pad, why) for a generator source when --pre-pad is not given.

  RELEASE_PRE_PAD for released weights: a PyTorch / safetensors / ncnn file,
  or an .npz converted from one (its metadata says format
  sr_jax.converted/1, as `python -m sr_jax.convert` / `sr_jax.weights
  fetch|convert` write it). DEFAULT_PRE_PAD for a training run
  (--checkpoint) and for weights not known to be released (a plain .npz,
  an interpolation of runs, an .onnx file).
  """
  if checkpoint is not None or weights is None:
    return DEFAULT_PRE_PAD, 'an sr_jax training run, as its validation'
  path = os.path.expanduser(os.fspath(weights))
  suffix = os.path.splitext(path)[1].lower()
  release = ("released weights, as Real-ESRGAN's inference_realesrgan.py "
             '(--pre_pad 0)')
  if suffix in FOREIGN_SUFFIXES:
    return RELEASE_PRE_PAD, f'{suffix} file: {release}'
  if suffix == '.npz':
    try:
      meta = params_io.load_metadata(path)
    except (OSError, ValueError):
      meta = {}
    if meta.get('format') == files.FORMAT:
      source = meta.get('source') or 'a PyTorch / ncnn file'
      return RELEASE_PRE_PAD, f'converted from {source}: {release}'
  return DEFAULT_PRE_PAD, ('not known to be released weights, as sr_jax\'s '
                           'validation')


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
