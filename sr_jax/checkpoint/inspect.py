"""What a workdir holds: its phases, the steps of each manager, the config
a checkpoint was made with, saves a kill left unfinished, and the status of
every checkpoint (`python -m sr_jax.checkpoints W`)."""
import dataclasses
import os
import re

import jax
import ml_collections
import orbax.checkpoint as ocp

from sr_jax.checkpoint.integrity import checksum_record
from sr_jax.checkpoint.integrity import CORRUPT_DIR
from sr_jax.checkpoint.integrity import CorruptCheckpointError
from sr_jax.checkpoint.integrity import ITEM_HANDLERS
from sr_jax.checkpoint.integrity import restore_verified
from sr_jax.checkpoint.integrity import state_metadata
from sr_jax.checkpoint.integrity import WHY_FILE
from sr_jax.utils import io_utils


def unfinished_saves(directory: str) -> list[int]:
  """Steps of the saves in `directory` that never completed (orbax's
  temporary folders, `<step>.orbax-checkpoint-tmp...`)."""
  try:
    root = io_utils.path(directory)
    names = [p.name for p in root.iterdir()] if root.is_dir() else []
  except (OSError, ImportError, ValueError):  # E.g. no gs:// client here.
    return []  # Only a warning depends on it.
  return sorted(int(m.group(1)) for n in names
                if (m := re.match(r'(\d+)\.orbax-checkpoint-tmp', n)))


def phase_names(saved: ml_collections.ConfigDict) -> list[tuple[str, int]]:
  """(phase name, steps) in order of a checkpoint's recorded config
  `saved`, for this and older config layouts."""
  if 'phases' in saved:
    return [(p, int(saved[p]['steps'])) for p in saved.phases]
  return [('psnr', int(saved.psnr.steps)), ('gan', int(saved.gan.steps))]


def phase_of_step(saved: ml_collections.ConfigDict, step: int) -> str:
  """The phase whose last completed step is `step` (the first at 0), in a
  checkpoint's recorded config `saved`."""
  end = 0
  active = [(p, n) for p, n in phase_names(saved) if n > 0]
  for name, steps in active:
    end += steps
    if max(step, 1) <= end:
      return name
  return active[-1][0] if active else 'run'


# A checkpoint's generators: its EMA and its raw (trained) weights.
GENERATOR_WEIGHTS = ('ema', 'raw')


def open_read_only(directory: str) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      directory, options=ocp.CheckpointManagerOptions(read_only=True),
      item_handlers={k: h() for k, h in ITEM_HANDLERS.items()})


def restore_config(manager, step) -> dict:
  return manager.restore(step, args=ocp.args.Composite(
      config=ocp.args.JsonRestore()))['config']


def _newest_config(directory: str) -> tuple[int, ml_collections.ConfigDict
                                            ] | None:
  """(step, config) of the newest checkpoint in `directory`, or None."""
  manager = open_read_only(directory)
  try:
    step = manager.latest_step()
    if step is None:
      return None
    return step, ml_collections.ConfigDict(restore_config(manager, step))
  finally:
    manager.close()


def restore_on_this_host(manager, step, with_data: bool = False
                          ) -> tuple[dict, dict, dict]:
  """(state tree, config, checksum record or {}) of `step` on one local
  device, whatever mesh wrote it (the target is built from the
  checkpoint's own metadata), verified against its checksums (with_data:
  the data-iterator state too)."""
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = jax.tree.map(
      lambda m: jax.ShapeDtypeStruct(m.shape, m.dtype, sharding=device),
      state_metadata(manager, step))
  restored = restore_verified(
      manager, step, abstract,
      items=('config', 'data') if with_data else ('config',))
  return restored['state'], restored['config'], restored.get('checksums', {})


def best_dirs(workdir: str) -> dict[str, str]:
  """{phase: directory} of a workdir's best checkpoints, both layouts."""
  root = os.path.join(workdir, 'best')
  if not io_utils.path(root).is_dir():
    return {}
  entries = [p.name for p in io_utils.path(root).iterdir()]
  if any(re.fullmatch(r'\d+', e) for e in entries):
    # Before phases: one best/<step>/ for the whole run, filed under the
    # phase its step belongs to.
    newest = _newest_config(root)
    if newest is None:
      return {}
    step, config = newest
    return {phase_of_step(config, step): root}
  return {e: os.path.join(root, e) for e in entries
          if io_utils.path(root).joinpath(e).is_dir()}


def directory_of_step(workdir: str, step: int) -> str:
  """The checkpoint folder (latest or a phase's best) that holds `step`."""
  folders = [os.path.join(workdir, 'checkpoints')] + sorted(
      best_dirs(workdir).values())
  for directory in folders:
    if io_utils.path(directory).joinpath(str(step)).is_dir():
      return directory
  have = sorted({int(p.name) for d in folders if io_utils.path(d).is_dir()
                 for p in io_utils.path(d).iterdir() if p.name.isdigit()})
  raise FileNotFoundError(f'No checkpoint of step {step} in {workdir} (has '
                          f'steps {have or "none"}).')


def latest_config(workdir: str, best: dict[str, str]) -> dict:
  for directory in [os.path.join(workdir, 'checkpoints')] + list(
      best.values()):
    if io_utils.path(directory).is_dir() and (
        newest := _newest_config(directory)):
      return newest[1]
  raise FileNotFoundError(workdir)


def run_phases(workdir: str) -> list[str]:
  """The phases (with steps > 0) of the run in `workdir`, in order."""
  workdir = io_utils.workdir_path(workdir)
  config = latest_config(workdir, best_dirs(workdir))
  return [p for p, n in phase_names(config) if n > 0]


@dataclasses.dataclass(frozen=True)
class CheckpointStatus:
  """One checkpoint of a workdir, as `python -m sr_jax.checkpoints` lists."""
  directory: str  # Its folder (checkpoints/, best/<phase>/, corrupt_...).
  step: int | None
  phase: str | None
  problem: str | None  # None: intact (verified, or unverifiable if old).
  verified: bool  # Checked against checksums recorded at save.
  finite: bool | None
  metrics: dict

  @property
  def intact(self) -> bool:
    return self.problem is None


def _inspect_manager(directory: str,
                     resumable: bool) -> list[CheckpointStatus]:
  manager = open_read_only(directory)
  out = []
  try:
    for step in sorted(manager.all_steps()):
      try:
        state, config, record = restore_on_this_host(
            manager, step, with_data=resumable)
      except CorruptCheckpointError as e:
        out.append(CheckpointStatus(directory, step, None, str(e), False,
                                    None, {}))
        continue
      metrics = dict(record.get('metrics', {}))
      if not metrics:
        value = (manager.metrics(step) or {}).get('value')
        metrics = {'value': value} if value is not None else {}
      out.append(CheckpointStatus(
          directory, step, phase_of_step(ml_collections.ConfigDict(config),
                                         step),
          None, bool(record), checksum_record(state)['finite'], metrics))
  finally:
    manager.close()
  return out


def inspect_workdir(workdir: str) -> list[CheckpointStatus]:
  """Every checkpoint of a workdir (resumable ones, the best of each phase,
  and those moved aside as corrupt), each restored and verified."""
  workdir = io_utils.workdir_path(workdir)
  if not io_utils.path(workdir).is_dir():
    raise FileNotFoundError(f'No workdir {workdir}.')
  latest = os.path.join(workdir, 'checkpoints')
  out = []
  for directory in [latest] + sorted(best_dirs(workdir).values()):
    if io_utils.path(directory).is_dir():
      out += _inspect_manager(directory, resumable=directory == latest)
  aside = io_utils.path(workdir) / CORRUPT_DIR
  names = sorted(p.name for p in aside.iterdir()) if aside.is_dir() else []
  for name in names:
    why = aside / name / WHY_FILE
    reason = why.read_text().strip() if why.exists() else 'moved aside'
    step = re.match(r'\d+', name)
    out.append(CheckpointStatus(os.path.join(str(aside), name),
                                int(step.group()) if step else None, None,
                                reason, False, None, {}))
  return out
