"""Degradations that turn high-resolution images into low-resolution inputs.

All are pure, jittable functions of float images in [0, 1] (HWC or NHWC), so
they can run inside the data pipeline or inside a jitted train step. Random
ops take an explicit `jax.random` key and draw per-sample parameters inside.
"""
from sr_jax.degradations.blur import apply_kernels
from sr_jax.degradations.imresize import imresize
from sr_jax.degradations.kernels import generalized_gaussian_kernel
from sr_jax.degradations.kernels import gaussian_kernel
from sr_jax.degradations.kernels import pad_kernel
from sr_jax.degradations.kernels import plateau_kernel
from sr_jax.degradations.kernels import random_kernels
from sr_jax.degradations.kernels import random_mixed_kernel
from sr_jax.degradations.kernels import random_sinc_kernels
from sr_jax.degradations.kernels import sinc_kernel
from sr_jax.degradations.noise import apply_with_prob
from sr_jax.degradations.noise import gaussian_noise
from sr_jax.degradations.noise import poisson_noise

__all__ = [
    'apply_kernels', 'apply_with_prob', 'gaussian_kernel', 'gaussian_noise',
    'generalized_gaussian_kernel', 'imresize', 'pad_kernel', 'plateau_kernel',
    'poisson_noise', 'random_kernels', 'random_mixed_kernel',
    'random_sinc_kernels', 'sinc_kernel',
]
