"""Training and validation inputs: HR patches via grain, HR images for evals.

Only HR pixels leave this module. The trainer makes the LR input on the
accelerator from the HR batch (MATLAB bicubic), so the host pipeline stays
cheap: pick an image, crop, flip, batch.

Training pipeline (a grain `MapDataset` until the last step, so each element
is addressed by index and the iterator state is just a position):

  source -> shuffle (per epoch) -> repeat forever -> random_map(crop+augment)
  -> batch -> to_iter_dataset [-> mp_prefetch]
"""
import dataclasses

from absl import flags
from absl import logging
import grain
import ml_collections
import numpy as np

from sr_jax.data import folder
from sr_jax.data import image_io
from sr_jax.data import sample_images


def default_data_config() -> ml_collections.ConfigDict:
  """The `config.data` fields this module reads, with their defaults."""
  return ml_collections.ConfigDict(dict(
      # Folders of HR images (recursive; DIV2K_train_HR works as is).
      # '' uses the embedded scikit-image photos (sample_images.py).
      train_dir='',
      val_dir='',
      gt_size=128,  # HR patch side P; the LR patch is P // scale.
      use_hflip=True,
      use_rot=True,  # BasicSR 'rotation': random vflip and transpose.
      # 0 reads in the training process; > 0 uses grain worker processes.
      num_workers=0,
      # Decode each training image once and keep it in memory. Right for the
      # embedded set and small folders; for DIV2K-sized folders (~6 GB
      # decoded, copied into every worker) set False to decode per access.
      cache_images=True,
      val_max_images=0,  # > 0: only the first N validation images by name.
      val_max_size=0,  # > 0: centre-crop validation images to at most this.
      # Training images with a shorter side below max(gt_size, this) are
      # skipped with a warning naming the file.
      min_image_size=0,
  ))


def _field(data_config: ml_collections.ConfigDict, name: str):
  # Configs written before a field existed keep working with its default.
  return data_config.get(name, default_data_config()[name])


# ------------------------------------------------------------- augmentation


def random_crop(
    image: np.ndarray, size: int, rng: np.random.Generator
) -> np.ndarray:
  """Uniformly placed `size` x `size` crop of uint8 [H, W, 3] (a view)."""
  height, width = image.shape[:2]
  if height < size or width < size:
    raise ValueError(
        f'Cannot crop {size}x{size} from a {height}x{width} image.')
  top = rng.integers(0, height - size + 1)
  left = rng.integers(0, width - size + 1)
  return image[top:top + size, left:left + size]


def augment(
    patch: np.ndarray, rng: np.random.Generator, *, hflip: bool, rot: bool
) -> np.ndarray:
  """BasicSR's `augment`: hflip, vflip, transpose, each with p = 0.5.

  `hflip` enables the horizontal flip, `rot` the vertical flip and the
  transpose; together they reach all 8 rotations/reflections of the square.
  All three coins are always drawn so switching one flag off does not change
  the others' draws for the same seed.
  """
  do_hflip, do_vflip, do_transpose = rng.random(3) < 0.5
  if hflip and do_hflip:
    patch = patch[:, ::-1]
  if rot and do_vflip:
    patch = patch[::-1]
  if rot and do_transpose:
    patch = patch.transpose(1, 0, 2)
  return patch


@dataclasses.dataclass(frozen=True)
class RandomPatch:
  """grain `random_map` transform: HR image -> {'hr': uint8 [P, P, 3]}.

  A picklable class, not a closure, so grain can ship it to worker processes.
  """
  gt_size: int
  use_hflip: bool
  use_rot: bool

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> dict:
    patch = random_crop(image, self.gt_size, rng)
    patch = augment(patch, rng, hflip=self.use_hflip, rot=self.use_rot)
    # Contiguous copy: never hand out views into the (cached) source image.
    return {'hr': np.ascontiguousarray(patch, dtype=np.uint8)}


# ----------------------------------------------------------------- training


def _embedded_train_source(
    min_size: int, process_index: int, process_count: int
) -> list[np.ndarray]:
  named = sample_images.train_images()
  names = [f'skimage.data:{name}' for name, _ in named]
  keep = folder.keep_large_enough(
      names, [img.shape[:2] for _, img in named], min_size,
      'the embedded scikit-image samples')
  shard = folder.shard_for_process(
      [named[i] for i in keep], process_index, process_count,
      'the embedded scikit-image samples')
  logging.info(
      "Training data: train_dir is '', using %d embedded scikit-image photos "
      '(%s); process %d of %d reads %d.', len(keep),
      ', '.join(sample_images.TRAIN_NAMES), process_index, process_count,
      len(shard))
  return [image for _, image in shard]


def _process_seeds(seed: int, process_index: int) -> tuple[int, int]:
  # Independent shuffle and crop streams per process: with the same seed
  # everywhere, process k would crop the same positions as process 0.
  entropy = [int(seed) % 2**63, process_index]
  shuffle_seed, augment_seed = np.random.SeedSequence(entropy).generate_state(2)
  return int(shuffle_seed), int(augment_seed)


def make_train_dataset(
    data_config: ml_collections.ConfigDict,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
) -> grain.IterDataset:
  """Endless, deterministic stream of augmented HR patch batches.

  Each epoch visits every image of this process's shard once, in an order
  reshuffled per epoch, taking one random crop per visit.

  Args:
    data_config: see `default_data_config`.
    global_batch_size: batch size summed over all processes.
    seed: same seed, same batches (and same batches after a restore).
    process_index, process_count: this process reads the disjoint shard
      `images[process_index::process_count]`.

  Returns:
    IterDataset of {'hr': uint8 [B, P, P, 3]} in [0, 255] with
    B = global_batch_size // process_count and P = data_config.gt_size. Its
    iterator's `get_state()` is a small JSON-serialisable dict; `set_state`
    resumes at exactly the next batch.
  """
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise ValueError(
        f'global_batch_size={global_batch_size} must be a positive multiple '
        f'of the number of processes ({process_count}): each process loads '
        'an equal share of every batch.')
  batch_size = global_batch_size // process_count
  gt_size = int(_field(data_config, 'gt_size'))
  if gt_size <= 0:
    raise ValueError(f'data.gt_size must be positive, got {gt_size}.')
  min_size = max(gt_size, int(_field(data_config, 'min_image_size')))
  train_dir = _field(data_config, 'train_dir')
  cache_images = bool(_field(data_config, 'cache_images'))
  if train_dir:
    source = folder.folder_train_source(
        train_dir, min_size=min_size, cache_images=cache_images,
        process_index=process_index, process_count=process_count)
  else:
    source = _embedded_train_source(min_size, process_index, process_count)
    cache_images = True

  shuffle_seed, augment_seed = _process_seeds(seed, process_index)
  transform = RandomPatch(
      gt_size=gt_size,
      use_hflip=bool(_field(data_config, 'use_hflip')),
      use_rot=bool(_field(data_config, 'use_rot')))
  ds = (
      grain.MapDataset.source(source)
      # Shuffle before repeat: grain folds the epoch into the shuffle seed,
      # so every epoch gets a fresh order; random_map after repeat sees the
      # global index, so a revisited image gets a fresh crop too.
      .shuffle(seed=shuffle_seed)
      .repeat(None)
      .random_map(transform, seed=augment_seed)
      # Batching on the MapDataset makes batch i a pure function of i: the
      # same batches in-process and with any number of workers.
      .batch(batch_size, drop_remainder=True))
  # Threads prefetch whole batches by index, and the iterator state is the
  # index of the next batch to *return*, so prefetching keeps it exact.
  # Cropping cached images is cheap and threads would only fight over the
  # GIL; decoding files (PNG/JPEG release the GIL) is worth overlapping.
  if cache_images:
    read_options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
  else:
    read_options = grain.ReadOptions(num_threads=8, prefetch_buffer_size=8)
  iter_ds = ds.to_iter_dataset(read_options)
  num_workers = int(_field(data_config, 'num_workers'))
  if num_workers > 0:
    if not flags.FLAGS.is_parsed():
      # grain's workers read absl flags (with defaults); outside `app.run`
      # (notebooks, pytest) that raises UnparsedFlagAccessError mid-stream.
      flags.FLAGS.mark_as_parsed()
    iter_ds = iter_ds.mp_prefetch(
        grain.MultiprocessingOptions(num_workers=num_workers))
  return iter_ds


# --------------------------------------------------------------- validation


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
  """Top-left crop to H, W multiples of `scale` (BasicSR `mod_crop`)."""
  height, width = image.shape[:2]
  height, width = height - height % scale, width - width % scale
  if height == 0 or width == 0:
    raise ValueError(
        f'Image of {image.shape[0]}x{image.shape[1]} is smaller than the '
        f'scale {scale}.')
  return image[:height, :width]


def center_crop(image: np.ndarray, max_size: int) -> np.ndarray:
  """Centre crop so that neither side exceeds `max_size`."""
  height, width = image.shape[:2]
  new_h, new_w = min(height, max_size), min(width, max_size)
  top, left = (height - new_h) // 2, (width - new_w) // 2
  return image[top:top + new_h, left:left + new_w]


def _named_validation_images(
    val_dir: str, max_images: int
) -> list[tuple[str, np.ndarray]]:
  if not val_dir:
    logging.info(
        "Validation data: val_dir is '', using the held-out embedded "
        'scikit-image photos (%s).', ', '.join(sample_images.VALIDATION_NAMES))
    named = sample_images.validation_images()
    return named[:max_images] if max_images > 0 else named
  paths = image_io.list_images(val_dir)
  named_paths = sorted((folder.relative_name(p, val_dir), p) for p in paths)
  if max_images > 0:
    named_paths = named_paths[:max_images]
  logging.info('Validation data: %d images from %s.', len(named_paths),
               val_dir)
  # Decode only what is kept: val_max_images exists to make evals cheap.
  return [(name, image_io.read_image(p)) for name, p in named_paths]


def load_validation_set(
    data_config: ml_collections.ConfigDict, scale: int
) -> list[tuple[str, np.ndarray]]:
  """HR validation images, ready to be downscaled by `scale`.

  Args:
    data_config: reads val_dir, val_max_images, val_max_size.
    scale: SR factor; H and W of every returned image are multiples of it.

  Returns:
    List of (name, uint8 [H, W, 3] in [0, 255]) sorted by name. Names are
    paths relative to val_dir without extension ('0801' for 0801.png).
  """
  max_images = int(_field(data_config, 'val_max_images'))
  max_size = int(_field(data_config, 'val_max_size'))
  result = []
  for name, image in _named_validation_images(
      _field(data_config, 'val_dir'), max_images):
    if max_size > 0:
      image = center_crop(image, max_size)
    try:
      image = mod_crop(image, scale)
    except ValueError as e:
      raise ValueError(f'Validation image {name!r}: {e}') from None
    result.append((name, np.ascontiguousarray(image)))
  return result

