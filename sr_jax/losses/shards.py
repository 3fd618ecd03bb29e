"""Per-sample losses on each device's shard of the batch.

The trainer splits the batch over the mesh's 'data' axis. XLA propagates
that split through convolutions, but not through FFTs: left alone it
all-gathers the whole batch for an FFT loss and every device computes it
on the global batch. `per_shard(fn)` runs a batch-mean loss on each
device's shard under `jax.shard_map` and averages the shards' means
(equal shards: the global mean). A loss with batch-wide statistics (a
mean spectrum, a max over the batch) reduces them over `axis_name` with
`jax.lax.pmean` / `pmax`; it is None outside a mesh, where fn runs as is.

The mesh is the one the step is traced under (`train_step.jit_for_mesh`
sets it); without one, or with one device, nothing changes.
"""
import functools
from typing import Callable

import jax
from jax.sharding import PartitionSpec as P

DATA_AXIS = 'data'


def data_axis_size() -> int:
  """Devices on the current mesh's 'data' axis (1 without a mesh)."""
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or DATA_AXIS not in mesh.axis_names:
    return 1
  return mesh.shape[DATA_AXIS]


def per_shard(fn: Callable[..., jax.Array]) -> Callable[..., jax.Array]:
  """fn(*batched_arrays, axis_name=..., **options) -> scalar batch mean,
  evaluated shard by shard (arrays split on their leading axis)."""

  @functools.wraps(fn)
  def wrapped(*arrays, **options):
    if data_axis_size() == 1:
      return fn(*arrays, axis_name=None, **options)

    def local(*shards):
      return jax.lax.pmean(fn(*shards, axis_name=DATA_AXIS, **options),
                           DATA_AXIS)

    return jax.shard_map(local, in_specs=tuple(P(DATA_AXIS) for _ in arrays),
                         out_specs=P(), axis_names={DATA_AXIS})(*arrays)

  return wrapped
