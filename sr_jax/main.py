r"""Entry point:

  python -m sr_jax.main --config=configs/X.py[:variant] --workdir=W

Settings are overridable as --config.a.b=value; the workdir holds
checkpoints (auto-resume), TensorBoard logs and validation image strips.
"""
import os
import signal
import sys

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
# TF is imported only for TensorBoard writing; its oneDNN banner is noise.
os.environ.setdefault('TF_ENABLE_ONEDNN_OPTS', '0')

from absl import app  # pylint: disable=g-import-not-at-top
from absl import flags
from absl import logging
from ml_collections import config_flags

from sr_jax.train import config_lib  # pylint: disable=g-import-not-at-top
from sr_jax import errors  # pylint: disable=g-import-not-at-top

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
    '`python -m sr_jax.utils.distributed --dry-run` prints it.')
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
  from sr_jax.utils import distributed  # pylint: disable=g-import-not-at-top
  if _DISTRIBUTED.value or _COORDINATOR.value is not None:
    try:
      distributed.initialize(
          _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
          [int(i) for i in _LOCAL_DEVICE_IDS.value]
          if _LOCAL_DEVICE_IDS.value else None)
    except ValueError as e:
      print(f'error: {e}', file=sys.stderr)
      sys.exit(2)
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top
  # Outside the training loop (while starting, and once every save is on
  # disk) SIGTERM stops the process with the resumable code at once; the
  # loop installs its own handler that saves first.
  signal.signal(signal.SIGTERM, _exit_resumable)
  try:
    try:
      train.train_and_evaluate(_CONFIG.value, _WORKDIR.value,
                               _ALLOW_CONFIG_CHANGE.value)
    finally:
      # Every save is on disk (or failed and is reported below): a SIGTERM
      # from now on must not turn the exit code into a kill. Python resets
      # handlers to the default as it shuts down (which, with JAX's and
      # grain's threads, takes a while), but leaves an ignored signal
      # ignored.
      signal.signal(signal.SIGTERM, signal.SIG_IGN)
  except train.Preempted as e:
    # Saved; the scheduler should requeue (launch/*.sbatch do).
    print(f'\n{e}', file=sys.stderr)
    sys.exit(train.RESUMABLE_EXIT_CODE)
  except KeyboardInterrupt as e:
    # A second Ctrl-C: the emergency save has run (or said why not).
    if getattr(e, 'sr_jax_saved', False):
      print('\nInterrupted; rerun the same command to resume.',
            file=sys.stderr)
      sys.exit(train.RESUMABLE_EXIT_CODE)
    print('\nInterrupted before the current step was saved; rerun the same '
          'command to resume from the last complete checkpoint.',
          file=sys.stderr)
    sys.exit(130)
  except errors.SrJaxError as e:
    # Problems the user can fix (a bad setting, a corrupt or missing file,
    # a full disk, a busy workdir): the message says how; no stack trace.
    # (Too many bad files mid-run: the trainer has saved a checkpoint first.)
    print(f'\nerror: {errors.one_line(e)}', file=sys.stderr)
    sys.exit(e.exit_code)
  except FileNotFoundError as e:
    print(f'\nerror: {errors.one_line(e)}', file=sys.stderr)
    sys.exit(2)
  except OSError as e:
    if not errors.is_write_failure(e):
      raise
    # A full disk or an unwritable folder while writing logs or images.
    message = errors.cannot_write(e, _WORKDIR.value,
                                  instead='another --workdir',
                                  then='rerun the same command to resume')
    print(f'\nerror: {message}', file=sys.stderr)
    sys.exit(2)


def _exit_resumable(signum, frame):
  del signum, frame
  print('\nSIGTERM received outside the training loop: nothing is being '
        'saved; rerun the same command to resume.', file=sys.stderr,
        flush=True)
  raise SystemExit(errors.RESUMABLE_EXIT_CODE)


def _config_arg(argv) -> str:
  """The --config value as given ('configs/x.py:variant')."""
  for i, arg in enumerate(argv):
    if arg.startswith('--config='):
      return arg.split('=', 1)[1]
    if arg == '--config' and i + 1 < len(argv):
      return argv[i + 1]
  return ''


def _bad_override(argv) -> str | None:
  """What is wrong with the first --config.a.b=v override that cannot be
  set on the config file's config: the field's full path and the closest
  existing one, or the type it must have. (absl keeps no config after a
  failed override, so the file is loaded again here.)"""
  try:
    _, overrides = config_lib.split_config_overrides(argv)
    loaded = config_lib.load_config_file(_config_arg(argv))
  except Exception:  # pylint: disable=broad-except
    return None  # The generic message below then.
  try:
    config_lib.apply_overrides(loaded, overrides)
  except errors.UsageError as e:
    return str(e)
  return None


def _missing_config_file(argv) -> str:
  """Which config file could not be read, and the ones next to it."""
  return config_lib.missing_config_file(_config_arg(argv))


def _parse_flags(argv):
  """absl's flag parsing, with config mistakes (a missing file, an unknown
  variant or field, a value of the wrong type) reported in one line and
  exit code 2."""
  try:
    parsed = flags.FLAGS(argv)
  except flags.Error as e:
    text = str(e)
    if 'Traceback (most recent call last)' in text:
      # Raised by the config file's get_config (e.g. an unknown variant):
      # its own message, without the traceback absl folds into the text.
      lines = [line for line in text.splitlines() if line.strip()]
      text = f'--config={_config_arg(argv)}: {lines[-1].strip()}'
    print(f'error: {errors.one_line(text)}', file=sys.stderr)
    sys.exit(2)
  except (AttributeError, KeyError, TypeError, ValueError) as e:
    message = _bad_override(argv) or (
        f'bad --config override: {errors.one_line(e)} (see the config file '
        'for the fields it has).')
    print(f'error: {message}', file=sys.stderr)
    sys.exit(2)
  path = _config_arg(argv).split(':', 1)[0]
  if path and not os.path.isfile(path):
    # config_flags only fails when the config is first used, with ten
    # chained tracebacks.
    print(f'error: {_missing_config_file(argv)}', file=sys.stderr)
    sys.exit(2)
  return parsed


if __name__ == '__main__':
  app.run(main, flags_parser=_parse_flags)
