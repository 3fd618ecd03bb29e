"""Degradations that turn high-resolution images into low-resolution inputs.

All are pure, jittable functions of float images in [0, 1] (HWC or NHWC), so
they can run inside the data pipeline or inside a jitted train step.
"""
from sr_jax.degradations.imresize import imresize

__all__ = ['imresize']
