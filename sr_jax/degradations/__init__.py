"""Degradations that turn high-resolution images into low-resolution inputs.

All are pure, jittable functions of float images in [0, 1] (HWC or NHWC), so
they can run inside the data pipeline or inside a jitted train step. Random
ops take an explicit `jax.random` key and draw per-sample parameters inside.

  resize        MATLAB bicubic (`imresize`), torch-style nearest / bilinear /
                bicubic / area (`resize`), Real-ESRGAN's per-sample random
                resize on a static canvas (`random_resize`, `resize_canvas`)
  kernels/blur  Gaussian, generalized Gaussian, plateau and sinc kernels,
                applied per sample (`random_kernels`, `apply_kernels`)
  noise         Gaussian and Poisson noise (`gaussian_noise`, `poisson_noise`)
  jpeg          a JPEG round trip (`jpeg`, `random_jpeg`)
  perspective   rotation of the image plane (`random_perspective`)
  mixing        `coarse_dropout`, `mixup`
  sharpen       `usm_sharpen` (Real-ESRGAN's sharpened targets)
  pipelines     whole LR-making pipelines by name (`get_pipeline`,
                registered in `DEGRADATIONS`)
"""
from sr_jax.degradations.blur import apply_kernels
from sr_jax.degradations.imresize import imresize
from sr_jax.degradations.jpeg_compression import jpeg
from sr_jax.degradations.jpeg_compression import quality_to_tables
from sr_jax.degradations.jpeg_compression import random_jpeg
from sr_jax.degradations.kernels import generalized_gaussian_kernel
from sr_jax.degradations.kernels import gaussian_kernel
from sr_jax.degradations.kernels import pad_kernel
from sr_jax.degradations.kernels import plateau_kernel
from sr_jax.degradations.kernels import random_kernels
from sr_jax.degradations.kernels import random_mixed_kernel
from sr_jax.degradations.kernels import random_sinc_kernels
from sr_jax.degradations.kernels import sinc_kernel
from sr_jax.degradations.mixing import coarse_dropout
from sr_jax.degradations.mixing import mixup
from sr_jax.degradations.noise import apply_with_prob
from sr_jax.degradations.noise import gaussian_noise
from sr_jax.degradations.noise import poisson_noise
from sr_jax.degradations.perspective import random_perspective
from sr_jax.degradations.perspective import rotation_homography
from sr_jax.degradations.perspective import scale_homography
from sr_jax.degradations.perspective import warp_perspective
from sr_jax.degradations.pipelines import DEGRADATIONS
from sr_jax.degradations.pipelines import default_degradation_config
from sr_jax.degradations.pipelines import get_pipeline
from sr_jax.degradations.pipelines import NetworkPipeline
from sr_jax.degradations.pipelines import pipeline_from_config
from sr_jax.degradations.pipelines import PIPELINES
from sr_jax.degradations.resampling import random_resize
from sr_jax.degradations.resampling import random_resize_to
from sr_jax.degradations.resampling import refill
from sr_jax.degradations.resampling import resize
from sr_jax.degradations.resampling import resize_canvas
from sr_jax.degradations.sharpen import usm_sharpen

__all__ = [
    'DEGRADATIONS', 'apply_kernels', 'apply_with_prob', 'coarse_dropout',
    'default_degradation_config', 'gaussian_kernel', 'gaussian_noise',
    'generalized_gaussian_kernel', 'get_pipeline', 'imresize', 'jpeg',
    'mixup', 'NetworkPipeline', 'pad_kernel', 'pipeline_from_config',
    'PIPELINES', 'plateau_kernel', 'poisson_noise', 'quality_to_tables',
    'random_jpeg', 'random_kernels', 'random_mixed_kernel',
    'random_perspective', 'random_resize', 'random_resize_to',
    'random_sinc_kernels', 'refill', 'resize', 'resize_canvas',
    'rotation_homography', 'scale_homography', 'sinc_kernel',
    'usm_sharpen', 'warp_perspective',
]
