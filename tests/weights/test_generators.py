"""sr_jax.weights.generators: a generator's architecture from its state
dict's keys."""
import numpy as np

from sr_jax.inference import generator_loading


def test_detect_arch_from_keys():
  conv, vec = np.zeros((4, 3, 3, 3)), np.zeros(4)
  assert generator_loading.detect_arch(
      {'body.0.rdb1.conv1.weight': conv, 'upconv1.weight': conv}) == 'rrdbnet'
  assert generator_loading.detect_arch(
      {'RRDB_trunk.0.RDB1.conv1.weight': conv}) == 'rrdbnet'
  assert generator_loading.detect_arch({'upconv1.weight': conv}) == 'msrresnet'
  assert generator_loading.detect_arch(
      {'body.0.weight': conv, 'body.1.weight': vec}) == 'srvgg'
  assert generator_loading.detect_arch(
      {'body.0.weight': conv, 'body.1.weight': conv}) is None
