"""sr_jax.checkpoint.integrity: the checksums recorded with a checkpoint find
one flipped bit (an array's or the iterator position's), and
`python -m sr_jax.checkpoints W` lists that checkpoint as corrupt."""
import os

import jax
import numpy as np
import pytest

from sr_jax import checkpoint
from sr_jax.checkpoint import __main__ as checkpoints
from tests.helpers.checkpoints import _flip_a_bit
from tests.helpers.checkpoints import _three_checkpoints
from tests.helpers.checkpoints import _tiny_state


def test_a_flipped_bit_fails_its_checksum_and_the_listing_says_so(
    tmp_path, capsys):
  state = _tiny_state(3)
  record = checkpoint.checksum_record(state, {'next_index': 3})
  flipped = jax.tree.map(lambda x: x, state)
  flipped['params']['w'] = state['params']['w'].copy()
  flipped['params']['w'].view(np.uint32)[5, 7] ^= 1  # One bit.
  with pytest.raises(checkpoint.CorruptCheckpointError,
                     match='params/w'):
    checkpoint.verify(record, flipped, {'next_index': 3})
  with pytest.raises(checkpoint.CorruptCheckpointError, match='iterator'):
    checkpoint.verify(record, state, {'next_index': 4})
  checkpoint.verify(record, state, {'next_index': 3})  # Intact.
  # In a workdir, the listing names the broken checkpoint and exits 1.
  workdir = str(tmp_path / 'run')
  _three_checkpoints(workdir)
  _flip_a_bit(os.path.join(workdir, 'checkpoints', '2'))
  assert checkpoints.main([workdir]) == 1
  out = capsys.readouterr().out
  line = [x for x in out.splitlines() if x.split()[:1] == ['2']][0]
  assert 'CORRUPT' in line, out
  assert '1 corrupt' in out
