"""Run by tests/utils/test_distributed.py: one process of a 2-process CPU
run, or the single-process reference run.

  python tests/utils/multiprocess_check.py worker --process_id=I --port=P \
      --workdir=W --data=D --vgg=V --out=O
  python tests/utils/multiprocess_check.py reference --workdir=W --data=D \
      --vgg=V --out=O

A worker starts JAX's distributed runtime with sr_jax.utils.distributed (CPU,
gloo collectives, coordinator on 127.0.0.1), then trains configs/
esrgan_fft.py:runlocal (1 PSNR + 2 GAN steps; RaGAN, no VGG19) through
train.train_and_evaluate, unchanged, in two legs: process 1 sends itself
SIGTERM while fetching the batch of step 2, so both processes must stop
after step 2 (saved; train.Preempted), then both resume to step 3. It
records, in O/process_I.npz / .json:
  - every batch its data iterator gave the trainer (`hr`, in order);
  - the batches a fresh iterator of its shard gives (what an uninterrupted
    run reads: the resumed leg must continue it);
  - the step each leg ended at, and how;
  - the files it opened for writing under the workdir (an audit hook);
  - the final parameters.
The reference run trains the same config in one process on the global
batches of the two shards (process 0's rows, then process 1's), made by
the same data pipeline.
"""
import argparse
import json
import os
import signal
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)

STEPS = 3
PREEMPT_AT_FETCH = 2  # Process 1's SIGTERM, while fetching step 2's batch.


def _config(data_dir, vgg):
  from tests.helpers.repo import load_config  # pylint: disable=g-import-not-at-top
  config = load_config('esrgan_fft')
  config.psnr.steps = 1
  config.gan.steps = 2
  config.batch_size = 4
  config.data.train_dir = data_dir
  config.frozen.vgg19 = vgg
  # VGG19's compile would double the test's time, the gradient penalty's
  # add a third: the terms that meet across processes are the FFT (per
  # sample, on each shard) and L1, and the batch-coupled RaGAN.
  config.gan.losses.perceptual.weight = 0.0
  config.gan.adversarial_loss = 'ragan'
  config.eval_every = 100  # At the end of each leg.
  return config


class _Recording:
  """Wraps the trainer's iterator; keeps every batch it hands out, and
  sends SIGTERM to this process at fetch number `kill_at`."""

  def __init__(self, iterator, seen, kill_at=None):
    self._it, self._seen, self._kill_at = iterator, seen, kill_at

  def __iter__(self):
    return self

  def __next__(self):
    batch = next(self._it)
    self._seen.append(np.asarray(batch['hr']).copy())
    if len(self._seen) == self._kill_at:
      os.kill(os.getpid(), signal.SIGTERM)
    return batch

  def get_state(self):
    return self._it.get_state()

  def set_state(self, state):
    self._it.set_state(state)


class _Replay:
  """Global batches, replayed (the reference run)."""

  def __init__(self, batches):
    self._batches, self._i = batches, 0

  def __iter__(self):
    return self

  def __next__(self):
    self._i += 1
    return {'hr': self._batches[self._i - 1]}

  def get_state(self):
    return {'i': self._i}

  def set_state(self, state):
    self._i = state['i']


def _audit_writes(workdir, log):
  """Records the paths under `workdir` opened for writing, created or
  renamed by Python code in this process."""
  root = os.path.realpath(workdir)
  write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT

  def note(path):
    if isinstance(path, (str, bytes, os.PathLike)):
      path = os.path.realpath(os.fsdecode(path))
      if path.startswith(root + os.sep):
        log.add(os.path.relpath(path, root))

  def hook(event, args):
    if event == 'open':
      path, mode, flags = args
      if (mode and any(c in mode for c in 'wax+')) or (
          isinstance(flags, int) and flags & write_flags):
        note(path)
    elif event in ('os.rename', 'os.replace'):
      note(args[1])
    elif event == 'os.mkdir':
      note(args[0])

  sys.addaudithook(hook)


def _params(state):
  import jax  # pylint: disable=g-import-not-at-top

  def host(x):
    if not x.is_fully_addressable:
      x = x.addressable_data(0)
    return np.asarray(x)
  flat = jax.tree_util.tree_flatten_with_path(state.params)[0]
  return {jax.tree_util.keystr(p): host(x) for p, x in flat}


def main():
  p = argparse.ArgumentParser()
  p.add_argument('mode', choices=('worker', 'reference'))
  p.add_argument('--process_id', type=int, default=0)
  p.add_argument('--num_processes', type=int, default=2)
  p.add_argument('--port', type=int, default=0)
  p.add_argument('--workdir', required=True)
  p.add_argument('--data', required=True)
  p.add_argument('--vgg', required=True)
  p.add_argument('--out', required=True)
  p.add_argument('--log', action='store_true', help='absl INFO logging')
  args = p.parse_args()
  if args.log:
    from absl import logging  # pylint: disable=g-import-not-at-top
    logging.set_verbosity(logging.INFO)

  from sr_jax.utils import distributed  # pylint: disable=g-import-not-at-top
  if args.mode == 'worker':
    distributed.initialize(f'127.0.0.1:{args.port}', args.num_processes,
                           args.process_id)
  import jax  # pylint: disable=g-import-not-at-top

  from sr_jax import data  # pylint: disable=g-import-not-at-top
  from sr_jax.train import loop as train  # pylint: disable=g-import-not-at-top

  make_dataset = data.make_train_dataset
  config = _config(args.data, args.vgg)

  def shard(index):
    it = iter(make_dataset(
        config.data, global_batch_size=config.batch_size, seed=config.seed,
        process_index=index, process_count=args.num_processes,
        scale=config.scale))
    return [np.asarray(next(it)['hr']) for _ in range(STEPS)]

  seen, writes, legs = [], set(), []
  if args.mode == 'worker':
    assert jax.process_count() == args.num_processes, jax.process_count()
    assert jax.process_index() == args.process_id
    expected = shard(jax.process_index())  # An uninterrupted run's.
    kill_at = PREEMPT_AT_FETCH if jax.process_index() == 1 else None
    data.make_train_dataset = lambda *a, **k: _Recording(
        iter(make_dataset(*a, **k)), seen, kill_at)
    _audit_writes(args.workdir, writes)
  else:
    shards = [shard(i) for i in range(args.num_processes)]
    batches = [np.concatenate([s[k] for s in shards]) for k in range(STEPS)]
    data.make_train_dataset = lambda *a, **k: _Replay(batches)
    expected = []

  while not legs or legs[-1]['how'] == 'preempted' and len(legs) < 3:
    try:
      state = train.train_and_evaluate(_config(args.data, args.vgg),
                                       args.workdir)
      legs.append({'how': 'finished', 'step': int(jax.device_get(
          state.step))})
    except train.Preempted as e:
      legs.append({'how': 'preempted', 'step': e.step,
                   'message': str(e)})
    except BaseException as e:
      import traceback  # pylint: disable=g-import-not-at-top
      while e.__context__ is not None:  # What the last error replaced.
        e = e.__context__
        traceback.print_exception(e)
      raise
    print(f'leg: {legs[-1]}', flush=True)

  os.makedirs(args.out, exist_ok=True)
  name = f'process_{jax.process_index()}' if args.mode == 'worker' else (
      'reference')
  np.savez(os.path.join(args.out, name + '.npz'), seen=np.stack(seen)
           if seen else np.zeros(0), expected=np.stack(expected) if expected
           else np.zeros(0), **{f'param{k}': v
                                for k, v in _params(state).items()})
  with open(os.path.join(args.out, name + '.json'), 'w') as f:
    json.dump({'writes': sorted(writes), 'legs': legs,
               'process_count': jax.process_count()}, f)
  print(f'{name}: done', flush=True)


if __name__ == '__main__':
  main()
