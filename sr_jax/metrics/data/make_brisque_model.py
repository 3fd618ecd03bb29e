"""Builds brisque_model.npz from the LIVE BRISQUE release's text files.

  python sr_jax/metrics/data/make_brisque_model.py

reads `brisque_release/allmodel` (the libsvm epsilon-SVR, text format) and
`brisque_release/allrange` (the `svm-scale -s` range file), both beside this
script and copied unmodified from the MATLAB release (see NOTICE.md), and
writes the dense float64 arrays sr_jax needs to `brisque_model.npz`. Not
imported by sr_jax; nothing is unpickled.

Arrays written:
  support_vectors  [n_sv, 36]  the support vectors (sparse `index:value`
                               pairs, 1-based, absent indices 0), in the
                               scaled feature space.
  dual_coef        [n_sv]      their coefficients (libsvm's sv_coef).
  rho, gamma       ()          prediction = sum_i coef_i K(x, sv_i) - rho,
                               K(x, y) = exp(-gamma |x - y|^2).
  scale_lower, scale_upper ()  svm-scale's target interval (-1, 1).
  feature_min, feature_max [36] svm-scale's per-feature ranges; a feature
                               with min == max is skipped by svm-scale (it
                               then enters the SVR as 0).
"""
import argparse
import os

import numpy as np

NUM_FEATURES = 36
_HERE = os.path.dirname(os.path.abspath(__file__))


def read_libsvm_model(path: str) -> dict[str, np.ndarray]:
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
    coef[r] = float(tokens[0])  # One coefficient per vector: regression.
    for token in tokens[1:]:
      index, value = token.split(':')
      sv[r, int(index) - 1] = float(value)  # libsvm indices are 1-based.
  return {
      'support_vectors': sv,
      'dual_coef': coef,
      'rho': np.float64(header['rho'][0]),
      'gamma': np.float64(header['gamma'][0]),
  }


def read_svm_scale_range(path: str) -> dict[str, np.ndarray]:
  """Parses an `svm-scale -s` range file (features only, no `y` section).

  Layout: a line `x`, a line `lower upper`, then `index min max` per
  feature (1-based). Every one of the 36 features must be listed.
  """
  with open(path, encoding='ascii') as f:
    lines = [line.split() for line in f.read().splitlines() if line.strip()]
  if lines[0] != ['x']:
    raise ValueError(f'Expected a feature range file, got {lines[0]}.')
  lower, upper = (float(v) for v in lines[1])
  fmin = np.full(NUM_FEATURES, np.nan)
  fmax = np.full(NUM_FEATURES, np.nan)
  for tokens in lines[2:]:
    index, lo, hi = int(tokens[0]), float(tokens[1]), float(tokens[2])
    fmin[index - 1], fmax[index - 1] = lo, hi
  if np.isnan(fmin).any() or np.isnan(fmax).any():
    raise ValueError('The range file does not list all 36 features.')
  return {
      'scale_lower': np.float64(lower),
      'scale_upper': np.float64(upper),
      'feature_min': fmin,
      'feature_max': fmax,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--release_dir',
                      default=os.path.join(_HERE, 'brisque_release'),
                      help='folder holding the release files allmodel and '
                      'allrange')
  parser.add_argument('--out',
                      default=os.path.join(_HERE, 'brisque_model.npz'))
  args = parser.parse_args()
  model = read_libsvm_model(os.path.join(args.release_dir, 'allmodel'))
  model.update(read_svm_scale_range(os.path.join(args.release_dir,
                                                 'allrange')))
  np.savez_compressed(args.out, **model)
  print(f'wrote {args.out}: {model["support_vectors"].shape[0]} support '
        f'vectors, gamma {model["gamma"]}, rho {model["rho"]}, '
        f'scale [{model["scale_lower"]}, {model["scale_upper"]}]')


if __name__ == '__main__':
  main()
