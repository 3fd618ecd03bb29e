"""Inference on image files of any size: tiling, self-ensemble, file I/O.

  generator = load_generator('x4.pth')   # or a workdir W, W:phase
  module, variables, scale = load_generator_for_inference(weights='x4.pth')
  run_batch = make_run_batch(module, variables)
  image = read_image_file('photo.png')            # alpha, 16-bit, grey kept
  out = upscale_image_data(image, lambda rgb, sink: upscale_tiled(
      run_batch, rgb, scale, tile=256, tile_pad=16, sink=sink), scale)
  write_image_file('photo_x4.png', out)           # atomic, PNG streamed

upscale_tiled hands the output to `sink` tile by tile, and
upscale_image_data quantises each tile into the result at its bit depth:
host memory holds the output once, at uint8 / uint16 (float copies only for
an outscale resize and the self-ensemble's sum; see their docs).

The command line is `python -m sr_jax.upscale` (sr_jax/upscale.py).
"""
from sr_jax.inference.generator_loading import Generator
from sr_jax.inference.generator_loading import WeightsError
from sr_jax.inference.generator_loading import detect_arch
from sr_jax.inference.generator_loading import input_multiple
from sr_jax.inference.generator_loading import load_generator
from sr_jax.inference.generator_loading import load_generator_of
from sr_jax.inference.generator_loading import split_source
from sr_jax.inference.generator_loading import load_generator_for_inference
from sr_jax.inference.generator_loading import make_run_batch
from sr_jax.inference.image_files import ImageData
from sr_jax.inference.image_files import read_image_file
from sr_jax.inference.image_files import upscale_image_data
from sr_jax.inference.image_files import write_image_file
from sr_jax.inference.tiling import self_ensemble
from sr_jax.inference.tiling import tile_grid
from sr_jax.inference.tiling import upscale_tiled
from sr_jax.inference.tiling import whole_image

__all__ = [
    'Generator', 'ImageData', 'WeightsError', 'detect_arch',
    'input_multiple', 'load_generator', 'load_generator_for_inference',
    'load_generator_of', 'make_run_batch', 'read_image_file',
    'self_ensemble', 'split_source', 'tile_grid', 'upscale_image_data',
    'upscale_tiled',
    'whole_image', 'write_image_file',
]
