"""sr_jax.metrics.registry: the contract every registered metric keeps (a new
one is checked with no test to edit)."""
import math

import numpy as np
import pytest

from sr_jax import metrics
from sr_jax import weights


@pytest.mark.parametrize('name', metrics.METRICS.names())
def test_metric_contract(name):
  metric = metrics.METRICS.get(name)
  assert metric.kind in metrics.registry.KINDS
  assert isinstance(metric.higher_is_better, bool)
  if metric.frozen:  # Needs pretrained weights: loadable by name.
    weights.FROZEN_NETWORKS.get(metric.frozen)
    return
  rng = np.random.default_rng(0)
  # 96x192: NIQE's two 96x96 blocks, the smallest any metric needs.
  image = lambda: rng.integers(0, 256, (96, 192, 3), dtype=np.uint8)
  if metric.kind == 'full_reference':
    value = metric.fn(image(), image(), 4)
  elif metric.kind == 'no_reference':
    value = metric.fn(image(), 0)
  else:
    value = metric.fn([image(), image()], [image(), image()], 4)
  assert isinstance(value, float) and math.isfinite(value)
