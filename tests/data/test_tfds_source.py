"""sr_jax.data.tfds_source: a tiny TFDS dataset prepared offline in tmp_path
gives paired and HR-only batches, survives pickling to grain workers, and a
missing or mis-prepared dataset says which command to run."""
import io
import json
import pickle
import shutil

import numpy as np
from PIL import Image
import pytest

from sr_jax import data
from sr_jax.data import tfds_source
from tests.helpers.data import _config
from tests.helpers.data import _take_batches


def _png_bytes(array):
  buffer = io.BytesIO()
  Image.fromarray(array).save(buffer, format='PNG')
  return io.BytesIO(buffer.getvalue())


def _define_tiny_sr_pairs():
  """A 4-example DIV2K-like TFDS builder ({'hr', 'lr'}, x4), or None.

  Examples are given as PNG bytes, so preparing it needs no TensorFlow.
  HR is the LR upsampled by pixel repetition: paired crops must be exact.
  At module level, as real builders are, so its sources pickle.
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None

  class TinySrPairs(tfds.core.GeneratorBasedBuilder):
    VERSION = tfds.core.Version('1.0.0')
    # No file of checksums: it downloads nothing. (TFDS looks for one next
    # to the builder's module, and for a module of a package, as tests/ is,
    # goes through the importlib_resources backport, absent on Python >= 3.9.)
    code_path = None

    def _info(self):
      return tfds.core.DatasetInfo(
          builder=self, features=tfds.features.FeaturesDict(
              {'hr': tfds.features.Image(), 'lr': tfds.features.Image()}))

    def _split_generators(self, dl_manager):
      del dl_manager
      return {'train': self._generate_examples()}

    def _generate_examples(self):
      rng = np.random.default_rng(1)
      for i in range(4):
        lr = rng.integers(0, 256, (6 + i, 8, 3), dtype=np.uint8)
        hr = np.kron(lr, np.ones((4, 4, 1), np.uint8))
        yield i, {'hr': _png_bytes(hr), 'lr': _png_bytes(lr)}

  TinySrPairs.__qualname__ = 'TinySrPairs'
  return TinySrPairs


TinySrPairs = _define_tiny_sr_pairs()


@pytest.fixture(scope='module')
def tfds_dir(tmp_path_factory):
  """TinySrPairs prepared in array_record, offline, in a tmp folder."""
  if TinySrPairs is None:
    pytest.skip('tensorflow_datasets is not installed')
  root = tmp_path_factory.mktemp('tfds')
  TinySrPairs(data_dir=str(root),
              file_format='array_record').download_and_prepare()
  return root


def _tfds_config(tfds_dir, **overrides):
  return _config(tfds_name='tiny_sr_pairs', tfds_data_dir=str(tfds_dir),
                 **dict(dict(gt_size=16), **overrides))


def test_tfds_source_paired_and_hr_only(tfds_dir):
  it = iter(data.make_train_dataset(_tfds_config(tfds_dir),
                                    global_batch_size=8, seed=0, scale=4))
  for batch in _take_batches(it, 2):
    assert batch['hr'].shape == (8, 16, 16, 3)
    assert batch['lr'].shape == (8, 4, 4, 3)
    np.testing.assert_array_equal(
        batch['hr'], np.kron(batch['lr'], np.ones((1, 4, 4, 1), np.uint8)))
  batch = next(iter(data.make_train_dataset(
      _tfds_config(tfds_dir, cache_images=False), global_batch_size=4,
      seed=0)))
  assert set(batch) == {'hr'} and batch['hr'].shape == (4, 16, 16, 3)
  # grain workers get the source pickled: it must survive the trip.
  heights = []
  for process_index in range(2):
    source = tfds_source.tfds_train_source(
        'tiny_sr_pairs', data_dir=str(tfds_dir), split='train', scale=4,
        min_size=16, cache_images=False, process_index=process_index,
        process_count=2)
    copy = pickle.loads(pickle.dumps(source))
    assert len(copy) == 2
    np.testing.assert_array_equal(copy[1]['lr'], source[1]['lr'])
    heights += [copy[i]['lr'].shape[0] for i in range(2)]
  assert sorted(heights) == [6, 7, 8, 9]  # Disjoint shards, all examples.
  with pytest.raises(ValueError, match='not a x2 pair'):
    data.make_train_dataset(_tfds_config(tfds_dir), global_batch_size=2,
                            seed=0, scale=2)


def test_tfds_errors_say_which_command(tfds_dir, tmp_path):
  empty = tmp_path / 'empty'
  with pytest.raises(
      FileNotFoundError,
      match=(r'not prepared in .*\n  tfds build div2k/bicubic_x4 '
             rf'--data_dir={empty} --file_format=array_record')):
    data.make_train_dataset(
        _config(tfds_name='div2k/bicubic_x4', tfds_data_dir=str(empty)),
        global_batch_size=2, seed=0, scale=4)
  # The same dataset as `tfds build` writes it by default: tfrecord.
  copy = tmp_path / 'tfrecord'
  shutil.copytree(tfds_dir, copy)
  info_path = copy / 'tiny_sr_pairs' / '1.0.0' / 'dataset_info.json'
  info = json.loads(info_path.read_text())
  info['fileFormat'] = 'tfrecord'
  info_path.write_text(json.dumps(info))
  with pytest.raises(ValueError, match=(
      r'prepared as tfrecord(.|\n)*tfds convert_format '
      r'--dataset_version_dir=\S+1.0.0 --out_file_format=array_record'
      r'(.|\n)*tfds build tiny_sr_pairs --data_dir=\S+ '
      r'--file_format=array_record --overwrite')):
    data.make_train_dataset(_tfds_config(copy), global_batch_size=2, seed=0)
  with pytest.raises(ValueError, match='pick one training source'):
    data.make_train_dataset(_tfds_config(tfds_dir, train_dir='/x'),
                            global_batch_size=2, seed=0)
