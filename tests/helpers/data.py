"""Images, folders, data configs and batches for the sr_jax.data tests."""
import os

import numpy as np
from PIL import Image

from sr_jax import data


def _write_png(path, array):
  os.makedirs(os.path.dirname(path), exist_ok=True)
  Image.fromarray(array).save(path)


def _config(train_dir='', **overrides):
  cfg = data.default_data_config()
  cfg.train_dir = str(train_dir)
  cfg.update(overrides)
  return cfg


def _take(iterator, n):
  """The HR patches of the next n batches."""
  return [next(iterator)['hr'] for _ in range(n)]


def _image_ids(batch):
  """Which colour_dir image each patch came from (its constant red / 10)."""
  assert (batch == batch[:, :1, :1]).all(), 'patch is not one colour'
  return set((batch[:, 0, 0, 0] // 10).tolist())


def _coord_image(height, width, marker=7):
  """uint8 [H, W, 3]: channel 0 = row, 1 = column, 2 = `marker`.

  H, W <= 256 so coordinates fit in uint8; a crop then tells where it came
  from and which flips/transposes were applied.
  """
  rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing='ij')
  return np.stack([rows, cols, np.full_like(rows, marker)], -1).astype(
      np.uint8)


def _box_down(hr, scale):
  """LR made the way the tests' LR folders are: s x s means, rounded."""
  h, w = hr.shape[0] // scale, hr.shape[1] // scale
  blocks = hr.reshape(h, scale, w, scale, 3).astype(np.float64)
  return np.round(blocks.mean(axis=(1, 3))).astype(np.uint8)


def _take_batches(iterator, n):
  """The next n batches, whole."""
  return [next(iterator) for _ in range(n)]


def _avg_pool(hr_batch, scale):
  """torch's box filter, independent of the numpy one that made the LR."""
  import torch
  x = torch.from_numpy(hr_batch.astype(np.float64)).permute(0, 3, 1, 2)
  pooled = torch.nn.functional.avg_pool2d(x, scale)
  return pooled.permute(0, 2, 3, 1).numpy()
