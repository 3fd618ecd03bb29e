"""orbax checkpoints: the latest N for resuming, and the best of each phase.

Layout under the workdir:
  checkpoints/<step>/{state, data, config}  last `keep` steps; auto-resume
  best/<phase>/<step>/{state, config}       per phase, the best by its
                                            validation metric
`state` is the whole TrainState, `data` the grain iterator state (JSON),
`config` the run's config (JSON), so a checkpoint says how it was made, and
`checksums` (JSON) a CRC-32 of every array and of the iterator state, taken
at save and verified on every restore, with whether all arrays were finite
and the validation metrics of that step.

A checkpoint that cannot be read, is incomplete or fails its checksums is
corrupt: on resume it is moved aside to W/corrupt_checkpoints/ (never
deleted) with a warning, and the newest intact one is used instead.
`python -m sr_jax.checkpoints W` (this package's `__main__`) lists every
checkpoint and its status.
Every process must call save/restore (orbax coordinates multi-host writes).
Workdirs of sr_jax before phases (best/<step>/, a TrainState with g_params /
ema_params fields) still load for inference
(`sr_jax.inference.load_generator`, through `load_generator_from_workdir`).

Modules: `manager` (the Checkpointer: save, resume, best of each phase),
`integrity` (checksums, verified restores, the errors), `inspect` (what a
workdir holds: phases, steps, status) and `generators` (a trained generator
out of a workdir, for inference).
"""
from sr_jax.checkpoint.generators import load_generator_from_workdir
from sr_jax.checkpoint.generators import LoadedGenerator
from sr_jax.checkpoint.inspect import CheckpointStatus
from sr_jax.checkpoint.inspect import GENERATOR_WEIGHTS
from sr_jax.checkpoint.inspect import inspect_workdir
from sr_jax.checkpoint.inspect import phase_names
from sr_jax.checkpoint.inspect import phase_of_step
from sr_jax.checkpoint.inspect import run_phases
from sr_jax.checkpoint.inspect import unfinished_saves
from sr_jax.checkpoint.integrity import CheckpointMismatchError
from sr_jax.checkpoint.integrity import CheckpointWriteError
from sr_jax.checkpoint.integrity import checksum_record
from sr_jax.checkpoint.integrity import CORRUPT_DIR
from sr_jax.checkpoint.integrity import CorruptCheckpointError
from sr_jax.checkpoint.integrity import verify
from sr_jax.checkpoint.integrity import WHY_FILE
from sr_jax.checkpoint.manager import abstract_with_sharding
from sr_jax.checkpoint.manager import Checkpointer
from sr_jax.checkpoint.manager import Restored

__all__ = [
    'CORRUPT_DIR',
    'CheckpointMismatchError',
    'CheckpointStatus',
    'CheckpointWriteError',
    'Checkpointer',
    'CorruptCheckpointError',
    'GENERATOR_WEIGHTS',
    'LoadedGenerator',
    'Restored',
    'WHY_FILE',
    'abstract_with_sharding',
    'checksum_record',
    'inspect_workdir',
    'load_generator_from_workdir',
    'phase_names',
    'phase_of_step',
    'run_phases',
    'unfinished_saves',
    'verify',
]
