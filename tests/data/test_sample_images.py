"""sr_jax.data.sample_images: the embedded default photos, training and
validation disjoint."""
import numpy as np

from sr_jax import data
from sr_jax.data import sample_images


def test_embedded_default_train_and_validation_are_disjoint():
  cfg = data.default_data_config()
  assert cfg.train_dir == '' and cfg.val_dir == ''
  assert not set(sample_images.TRAIN_NAMES) & set(
      sample_images.VALIDATION_NAMES)

  cfg.gt_size = 64
  batch = next(iter(data.make_train_dataset(cfg, global_batch_size=4,
                                            seed=0)))
  assert batch['hr'].shape == (4, 64, 64, 3) and batch['hr'].dtype == np.uint8
  assert batch['hr'].std() > 5  # Real photo content, not a blank array.

  val = data.load_validation_set(cfg, 4)
  assert [name for name, _ in val] == sorted(sample_images.VALIDATION_NAMES)
  train = sample_images.train_images()
  for _, image in val + train:
    assert image.dtype == np.uint8 and image.ndim == 3
    assert image.shape[-1] == 3
  for _, image in val:
    assert image.shape[0] % 4 == 0 and image.shape[1] % 4 == 0
    # Held out for real: no training image holds the same pixels.
    for _, train_image in train:
      assert not (image.shape == train_image.shape
                  and np.array_equal(image, train_image))
