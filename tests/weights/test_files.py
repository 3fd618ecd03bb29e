"""sr_jax.weights.files: converted files and their metadata, and a pickle
that would run code is refused."""
import numpy as np
from PIL import Image
import pytest

from sr_jax import upscale
from sr_jax import weights
from sr_jax.weights import files


def test_old_npz_without_metadata(tmp_path):
  path = tmp_path / 'old.npz'
  weights.save_params(path, {'params': {'a': {'kernel': np.ones(2)}}})
  assert weights.load_metadata(path) == {}
  assert list(weights.load_params(path)) == ['params']
  with pytest.raises(ValueError, match='no arch metadata'):
    weights.load_converted(path)


class _Hostile:
  """Unpickling it would run code (writes the file `marker`)."""

  def __init__(self, marker):
    self.marker = str(marker)

  def __reduce__(self):
    return (open, (self.marker, 'w'))


def test_a_hostile_pickle_runs_nothing_and_is_named(tmp_path, capsys):
  import torch
  marker = tmp_path / 'pwned'
  path = tmp_path / 'hostile.pth'
  torch.save({'params_ema': {'conv_first.weight': torch.zeros(1)},
              'payload': _Hostile(marker)}, path)
  with pytest.raises(ValueError, match='hostile.pth'):
    files.load_torch_file(path)
  image = tmp_path / 'a.png'
  Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
  assert upscale.main([str(image), '-o', str(tmp_path / 'out'),
                       '--weights', str(path)]) == 2
  assert 'hostile.pth' in capsys.readouterr().err
  assert not marker.exists()
