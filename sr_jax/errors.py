"""sr_jax's own error types, and the one error boundary of its commands.

Every problem a user can fix (a bad setting, a missing or corrupt file, a
full disk, a busy workdir) is raised as a subclass of `SrJaxError`, whose
message names the file or setting and says what to do. Each command line's
`main` is wrapped in `cli`, which prints such an error as one `error:` line
and returns its `exit_code`; anything else (a bug in sr_jax) keeps its
traceback.

Exit codes of the commands:
  0  done;
  1  done, but something asked for failed (an image, a metric, a check);
  2  an error the message explains (`SrJaxError`, a usage mistake);
  3  training stopped on a non-finite loss or parameter (`NonFiniteError`);
  4  a third signal aborted a save in progress (the previous checkpoint
     stands; `python -m sr_jax.main` only);
  130  interrupted by Ctrl-C (training: twice, and the current step could
       not be saved; the last complete checkpoint stands);
  143  training stopped by SIGTERM / Ctrl-C after saving: rerun to resume.
"""
import errno
import functools
import sys
from typing import Callable


# Training: stopped by SIGTERM / Ctrl-C with every save complete on disk
# (128 + SIGTERM, what a scheduler's requeue logic reads), and a save
# aborted by a third signal (the previous checkpoint stands).
RESUMABLE_EXIT_CODE = 143
ABORTED_EXIT_CODE = 4


class SrJaxError(Exception):
  """A problem the user can fix; the message says where and what to do."""
  exit_code = 2


class UsageError(SrJaxError, ValueError):
  """A command-line flag or a setting is wrong."""


class ConfigError(SrJaxError, ValueError):
  """A setting cannot work: a config field, a module's hyperparameter, or
  an input that does not fit them. Raised by the check that finds it; the
  message names the setting and what to do."""


class CorruptFileError(SrJaxError, ValueError):
  """A file sr_jax reads (weights, an archive) is damaged or truncated; the
  message names it."""


# errno values that mean "this folder cannot take more data": fixable by
# the user (free space, another folder), never worth a stack trace.
WRITE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG,
                          errno.EROFS, errno.EACCES, errno.EPERM,
                          errno.ENOTDIR})


def is_write_failure(error: BaseException) -> bool:
  """An OSError of WRITE_ERRNOS (full disk, quota, file-size limit,
  read-only or unwritable folder)."""
  return isinstance(error, OSError) and error.errno in WRITE_ERRNOS


def one_line(error: BaseException) -> str:
  """The error's message on one line."""
  return ' '.join(str(error).split()) or type(error).__name__


def cannot_write(error: OSError, path: str | None = None,
                 instead: str = 'another folder',
                 then: str = 'rerun') -> str:
  """'cannot write FILE: why.' for an OSError met while writing FILE (the
  file it names, else `path`), with 'Free space (or use INSTEAD) and THEN.'
  when it is a full or unwritable folder (is_write_failure)."""
  hint = (f' Free space (or use {instead}) and {then}.'
          if is_write_failure(error) else '')
  return (f'cannot write {error.filename or path}: '
          f'{error.strerror or one_line(error)}.{hint}')


def message_of(error: BaseException) -> tuple[str, int] | None:
  """(the `error:` line, exit code) for an error a user can fix: an
  SrJaxError, or an OSError about a named file (missing, unwritable, full
  disk); None for anything else (a bug: it keeps its traceback)."""
  if isinstance(error, SrJaxError):
    return one_line(error), error.exit_code
  if isinstance(error, OSError) and error.filename is not None and (
      is_write_failure(error) or isinstance(
          error, (FileNotFoundError, IsADirectoryError, NotADirectoryError))):
    if is_write_failure(error):
      return cannot_write(error), 2
    return (f'cannot read {error.filename}: '
            f'{error.strerror or one_line(error)}.'), 2
  return None


def usage(message: str) -> int:
  """Prints `error: MESSAGE` (a mistake on the command line, said in one
  line) and returns the usage exit code, 2."""
  print(f'error: {message}', file=sys.stderr, flush=True)
  return UsageError.exit_code


def report(error: BaseException) -> int | None:
  """Prints a user-fixable error as one `error:` line; returns its exit
  code, or None if `error` is not one (the caller re-raises it)."""
  found = message_of(error)
  if found is None:
    return None
  print(f'error: {found[0]}', file=sys.stderr, flush=True)
  return found[1]


def cli(main: Callable[..., int]) -> Callable[..., int]:
  """Wraps a command's `main(argv) -> exit code` in the error boundary:
  sr_jax's errors become one line and their exit code, Ctrl-C exits 130
  quietly, and any other exception propagates with its traceback."""

  @functools.wraps(main)
  def wrapped(*args, **kwargs) -> int:
    try:
      return main(*args, **kwargs)
    except KeyboardInterrupt:
      print('\nInterrupted.', file=sys.stderr, flush=True)
      return 130
    except Exception as e:  # pylint: disable=broad-except
      code = report(e)
      if code is None:
        raise
      return code

  return wrapped
