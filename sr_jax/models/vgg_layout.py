"""Layer names of the VGG family, shared by VGG16 (LPIPS) and VGG19 (losses).

A VGG is five blocks of 3x3 convs, each conv followed by a ReLU and each
block by a 2x2 max-pool. `blocks` lists (block, number of convs, channels);
names follow the usual convB_I / reluB_I / poolB scheme, and the indices are
those of torchvision's `features` Sequential, whose state-dict keys
(`features.{i}.weight`) the converters read.
"""
from typing import Sequence

Blocks = Sequence[tuple[int, int, int]]


def conv_names(blocks: Blocks) -> tuple[str, ...]:
  """'conv1_1', 'conv1_2', ... in forward order."""
  return tuple(f'conv{b}_{i}' for b, n, _ in blocks for i in range(1, n + 1))


def torchvision_indices(blocks: Blocks) -> dict[str, int]:
  """Conv name -> index in torchvision's `features` (conv1_1: 0, ...)."""
  indices, i = {}, 0
  for b, n, _ in blocks:
    for j in range(1, n + 1):
      indices[f'conv{b}_{j}'] = i
      i += 2  # conv, ReLU
    i += 1  # MaxPool
  return indices


def layer_names(blocks: Blocks) -> tuple[str, ...]:
  """Every selectable layer (convs, ReLUs, pools) in forward order."""
  return tuple(
      name for b, n, _ in blocks
      for name in ([x for i in range(1, n + 1)
                    for x in (f'conv{b}_{i}', f'relu{b}_{i}')] + [f'pool{b}']))


def min_input_size(names: Sequence[str], layer: str) -> int:
  """Smallest H (or W) giving `layer` a non-empty output: 2^(pools before)."""
  pools = sum(1 for name in names[:list(names).index(layer) + 1]
              if name.startswith('pool'))
  return 2 ** pools
