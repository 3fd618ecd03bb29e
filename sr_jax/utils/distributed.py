r"""Multi-process start-up, and the process layout each rank would use.

  python -m sr_jax.main --jax_distributed ...     (SLURM, TPU pods: auto)
  python -m sr_jax.main --coordinator_address=HOST:PORT --num_processes=N \
      --process_id=I [--local_device_ids=0,1] ...                 (explicit)
  python -m sr_jax.utils.distributed --dry-run [--coordinator_address=...] \
      [-- COMMAND ...]

`initialize` starts JAX's distributed runtime with the layout
`resolve_layout` returns: what was given explicitly, the rest from the
cluster's environment, found by JAX's own detection (SLURM, Open MPI, TPU
pods, ...), so the dry run prints exactly what a real start would use.

Devices per process under SLURM: JAX gives each task the device of its
local rank (local_device_ids=[SLURM_LOCALID]), which is right for one task
per GPU with every GPU of the node visible to each task (what
launch/slurm_multi_gpu.sbatch asks for). When the cluster binds one GPU to
each task instead (CUDA_VISIBLE_DEVICES holds a single GPU), that GPU is
device 0 of the task, and the layout uses it.

CPU-only processes (tests, laptops) talk through gloo collectives.
"""
import dataclasses
import json
import os
import sys
from typing import Any, Sequence

import jax
from jax.experimental import multihost_utils
import numpy as np


@dataclasses.dataclass(frozen=True)
class Layout:
  """What jax.distributed.initialize gets on this rank."""
  coordinator_address: str | None
  num_processes: int | None
  process_id: int | None
  local_device_ids: tuple[int, ...] | None
  cluster: str | None  # The detected environment ('slurm', ...), if any.
  visible_devices: tuple[str, ...] | None  # CUDA_VISIBLE_DEVICES, if set.

  def physical_devices(self) -> str:
    """The accelerators this rank drives, as the node numbers them."""
    if self.local_device_ids is None:
      return ('every visible device' if self.visible_devices is None else
              f'GPU {",".join(self.visible_devices)}')
    visible = self.visible_devices
    return 'GPU ' + ','.join(
        visible[i] if visible is not None and i < len(visible) else str(i)
        for i in self.local_device_ids)

  def describe(self) -> str:
    node = os.environ.get('SLURMD_NODENAME') or os.uname().nodename
    return (f'rank {self.process_id}/{self.num_processes} on {node} '
            f'(cluster: {self.cluster or "none detected"}): coordinator '
            f'{self.coordinator_address}, local_device_ids '
            f'{list(self.local_device_ids) if self.local_device_ids else None}'
            f' -> {self.physical_devices()}')


def _visible_devices() -> tuple[str, ...] | None:
  value = os.environ.get('CUDA_VISIBLE_DEVICES')
  if value is None or not value.strip():
    return None
  return tuple(v.strip() for v in value.split(',') if v.strip())


def _detected_cluster() -> str | None:
  # JAX's cluster detection (private, pinned with jax in requirements.txt):
  # used so that the dry run and a real start resolve the same layout.
  from jax._src import clusters  # pylint: disable=g-import-not-at-top
  env = next((e for e in clusters.ClusterEnv._cluster_types  # pylint: disable=protected-access
              if not e.opt_in_only_method and e.is_env_present()), None)
  return getattr(env, 'name', None) or (env.__name__ if env else None)


def resolve_layout(coordinator_address: str | None = None,
                   num_processes: int | None = None,
                   process_id: int | None = None,
                   local_device_ids: Sequence[int] | None = None) -> Layout:
  """The layout for this rank: the given values, the rest detected."""
  from jax._src import clusters  # pylint: disable=g-import-not-at-top
  given_ids = local_device_ids is not None
  coordinator_address, num_processes, process_id, ids = (
      clusters.ClusterEnv.auto_detect_unset_distributed_params(
          coordinator_address, num_processes, process_id,
          list(local_device_ids) if given_ids else None, None, 300))
  visible = _visible_devices()
  if ids is not None and not given_ids and visible is not None:
    if len(visible) == 1:
      ids = [0]  # The cluster bound one GPU to this task: its device 0.
    elif max(ids) >= len(visible):
      raise ValueError(
          f'This task is local rank {max(ids)} but sees only '
          f'{len(visible)} GPUs (CUDA_VISIBLE_DEVICES={",".join(visible)}). '
          'Run one task per GPU with every GPU of the node visible, or pass '
          '--local_device_ids.')
  return Layout(coordinator_address, num_processes, process_id,
                tuple(ids) if ids is not None else None, _detected_cluster(),
                visible)


def initialize(coordinator_address: str | None = None,
               num_processes: int | None = None,
               process_id: int | None = None,
               local_device_ids: Sequence[int] | None = None) -> Layout:
  """Starts JAX's distributed runtime (before any other JAX call)."""
  layout = resolve_layout(coordinator_address, num_processes, process_id,
                          local_device_ids)
  # CPU devices of different processes need a collectives backend (only the
  # CPU client reads this; GPUs and TPUs use their own).
  jax.config.update('jax_cpu_collectives_implementation', 'gloo')
  kwargs = {}
  if layout.local_device_ids is not None:
    kwargs['local_device_ids'] = list(layout.local_device_ids)
  jax.distributed.initialize(layout.coordinator_address,
                             layout.num_processes, layout.process_id,
                             **kwargs)
  return layout


def any_process(flag: bool) -> bool:
  """True on every process if `flag` is true on any (a collective: every
  process must call it at the same point)."""
  if jax.process_count() == 1:
    return bool(flag)
  flags = multihost_utils.process_allgather(np.asarray(flag, np.int32))
  return bool(np.any(flags))


def allgather_json(value: Any) -> list[Any]:
  """Every process's JSON-serialisable `value`, in process order (a
  collective)."""
  if jax.process_count() == 1:
    return [value]
  data = np.frombuffer(json.dumps(value, sort_keys=True).encode(), np.uint8)
  sizes = multihost_utils.process_allgather(np.asarray(data.size, np.int32))
  padded = np.zeros(int(np.max(sizes)), np.uint8)
  padded[:data.size] = data
  gathered = multihost_utils.process_allgather(padded)
  return [json.loads(bytes(row[:size]).decode())
          for row, size in zip(np.asarray(gathered), np.asarray(sizes))]


def _main(argv: Sequence[str]) -> int:
  """`--dry-run [layout flags] [-- COMMAND...]`: prints this rank's layout
  (and the command it would run)."""
  import argparse  # pylint: disable=g-import-not-at-top
  argv = list(argv)
  command = argv[argv.index('--') + 1:] if '--' in argv else []
  argv = argv[:argv.index('--')] if '--' in argv else argv
  p = argparse.ArgumentParser(
      prog='python -m sr_jax.utils.distributed', allow_abbrev=False,
      description='Print the process layout this rank would start with.')
  p.add_argument('--dry-run', action='store_true', required=True,
                 help='print the layout; start nothing')
  p.add_argument('--coordinator_address')
  p.add_argument('--num_processes', type=int)
  p.add_argument('--process_id', type=int)
  p.add_argument('--local_device_ids',
                 type=lambda s: [int(v) for v in s.split(',') if v])
  args = p.parse_args(argv)
  try:
    layout = resolve_layout(args.coordinator_address, args.num_processes,
                            args.process_id, args.local_device_ids)
  except ValueError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  print(layout.describe() + (f' | would run: {" ".join(command)}'
                             if command else ''), flush=True)
  return 0


if __name__ == '__main__':
  sys.exit(_main(sys.argv[1:]))
