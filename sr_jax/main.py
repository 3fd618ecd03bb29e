r"""Entry point:

  python -m sr_jax.main --config=configs/X.py[:variant] --workdir=W

Settings are overridable as --config.a.b=value; the workdir holds
checkpoints (auto-resume), TensorBoard logs and validation image strips.
"""
import os
import re
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TF is imported only for TensorBoard writing; its oneDNN banner is noise.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file(
    'config', None, 'Training configuration file.', lock_config=True)
_WORKDIR = flags.DEFINE_string(
    'workdir', None, 'Directory for checkpoints, logs and images; an existing '
    'run there is resumed.')
_ALLOW_CONFIG_CHANGE = flags.DEFINE_bool(
    'allow_config_change', False, 'Resume a workdir with a config that '
    'differs from its checkpoint\'s (logged in WORKDIR/config_changes.log).')
_DISTRIBUTED = flags.DEFINE_bool(
    'jax_distributed', False, 'Start JAX\'s distributed runtime first '
    '(multi-process GPU clusters, TPU pods): the layout is read from the '
    'cluster (SLURM, TPU pods, ...), or from the flags below. '
    '`python -m sr_jax.distributed --dry-run` prints it.')
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', None, 'HOST:PORT of process 0 (implies '
    '--jax_distributed).')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', None,
                                      'Processes in the run.')
_PROCESS_ID = flags.DEFINE_integer('process_id', None,
                                   'This process\'s rank, 0 .. N-1.')
_LOCAL_DEVICE_IDS = flags.DEFINE_list(
    'local_device_ids', None, 'Devices of this process (default: one per '
    'process under SLURM, else all it sees).')


def _hide_gpus_from_tensorflow():
  """clu's TensorBoard writer imports TF; it must not grab accelerator
  memory."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if _CONFIG.value is None or _WORKDIR.value is None:
    raise app.UsageError('Both --config and --workdir are required, e.g. '
                         '--config=configs/esrgan_fft.py:demo '
                         '--workdir=workdirs/demo')
  if not flags.FLAGS['verbosity'].present:
    # orbax and grain log every checkpoint step at INFO; the console progress
    # lines carry what a user needs. --verbosity=0 brings INFO back.
    logging.set_verbosity(logging.WARNING)
  _hide_gpus_from_tensorflow()
  from sr_jax import distributed  # pylint: disable=g-import-not-at-top
  if _DISTRIBUTED.value or _COORDINATOR.value is not None:
    try:
      distributed.initialize(
          _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
          [int(i) for i in _LOCAL_DEVICE_IDS.value]
          if _LOCAL_DEVICE_IDS.value else None)
    except ValueError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
  from sr_jax import checkpoint  # pylint: disable=g-import-not-at-top
  from sr_jax import io_utils  # pylint: disable=g-import-not-at-top
  from sr_jax import run_lock  # pylint: disable=g-import-not-at-top
  from sr_jax import train  # pylint: disable=g-import-not-at-top
  from sr_jax import weights  # pylint: disable=g-import-not-at-top
  from sr_jax.data import bad_inputs  # pylint: disable=g-import-not-at-top
  try:
    train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                             _ALLOW_CONFIG_CHANGE.value)
  except train.Preempted as e:
    # Saved; the scheduler should requeue (launch/*.sbatch do).
    print(f'\n{e}', file=sys.stderr)
    sys.exit(train.RESUMABLE_EXIT_CODE)
  except KeyboardInterrupt:
    # A second Ctrl-C: the emergency save has run (or said why not).
    print('\nInterrupted; rerun the same command to resume.', file=sys.stderr)
    sys.exit(train.RESUMABLE_EXIT_CODE)
  except train.NonFiniteError as e:
    print(f'\nerror: {e}', file=sys.stderr)
    sys.exit(3)
  except (train.ConfigError, weights.WeightsNotFoundError,
          FileNotFoundError, bad_inputs.TooManyBadFilesError,
          checkpoint.CheckpointMismatchError,
          checkpoint.CheckpointWriteError, checkpoint.CorruptCheckpointError,
          run_lock.WorkdirBusyError) as e:
    # (Too many bad files mid-run: the trainer has saved a checkpoint first.)
    # Problems the user can fix: the message says how; no stack trace.
    print(f'\nerror: {e}', file=sys.stderr)
    sys.exit(2)
  except OSError as e:
    if not io_utils.is_write_failure(e):
      raise
    # A full disk or an unwritable folder while writing logs or images.
    print(f'\nerror: cannot write {e.filename or _WORKDIR.value}: '
          f'{e.strerror}. Free space (or use another --workdir) and rerun '
          'the same command to resume.', file=sys.stderr)
    sys.exit(2)


QUOTES = '\'"'


def _parse_flags(argv):
  """absl's flag parsing, with config mistakes (an unknown field, a value
  of the wrong type) reported in one line and exit code 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(2)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    text = ' '.join(str(e).replace('\\n', ' ').replace('\\', '').split())
    name = re.search(r"'([^']+)'", text)
    hint = re.search(r'Did you mean .*', text)
    hint = hint.group(0).rstrip(QUOTES) if hint else ''
    message = (f'unknown field {name.group(1)!r}. {hint}' if name and hint
               else text)
    print(f'error: bad --config override: {message} (see the config file '
          'for the fields it has).', file=sys.stderr)
    sys.exit(2)


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
