"""TensorFlow, imported only where it is used and kept off the GPUs.

sr_jax computes with JAX; TensorFlow comes in through clu's TensorBoard
writer (a training run that writes), 16-bit PNG decoding and TFDS. Each
imports it through `tensorflow()`, so a command that never needs it (one
that stops at a config error, an evaluation, a notebook reading a finished
run) does not pay its import (about 5 s), and TF never reserves the
accelerators' memory, which JAX owns.
"""
import functools
import os


@functools.cache
def tensorflow():
  """Returns the tensorflow module, with every GPU hidden from it.

  Raises ImportError when TensorFlow is not installed.
  """
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')  # Its banner is noise.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  try:
    tf.config.set_visible_devices([], 'GPU')
  except RuntimeError:  # TF's devices were initialised elsewhere already.
    pass
  return tf
