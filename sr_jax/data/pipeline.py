"""Training and validation inputs: patches via grain, HR images for evals.

Usually only HR pixels leave this module: the trainer makes the LR input on
the accelerator from the HR batch (MATLAB bicubic), so the host pipeline
stays cheap: pick an image, crop, flip, batch. Paired sources (an LR folder,
or DIV2K from TFDS with a scale) also yield their own LR patches.

Training sources, by config: `tfds_name` (tfds_source.py), `train_dir` with
`train_lr_dir` (paired.py), `train_dir` alone (folder.py), or nothing (the
embedded samples). Unusable files are handled as bad_inputs.py describes.

Training pipeline (a grain `MapDataset` until the last step, so each element
is addressed by index and the iterator state is just a position):

  source [-> repeat k] -> shuffle (per epoch) -> repeat forever
  -> random_map(crop+augment) -> batch -> [from batch N] to_iter_dataset
  [-> mp_prefetch]   (ResumableBatches: state {'next_index': N})
"""
from collections.abc import Sequence

from absl import logging
import grain
import jax
import ml_collections
import numpy as np

from sr_jax import errors
from sr_jax.data import bad_inputs
from sr_jax.data import folder
from sr_jax.data import image_io
from sr_jax.data import paired
from sr_jax.data import sample_images
from sr_jax.data import tfds_source
from sr_jax.data import transforms


def default_data_config() -> ml_collections.ConfigDict:
  """The `config.data` fields this module reads, with their defaults."""
  return ml_collections.ConfigDict(dict(
      # Folders of HR images (recursive; DIV2K_train_HR works as is).
      # '' uses the embedded scikit-image photos (sample_images.py).
      # Decode cost: a 2K PNG takes ~0.1 s of CPU per visit, for one
      # small crop. For DIV2K/Flickr2K tile the folder once with
      # `python -m sr_jax.data.extract_subimages` (BasicSR practice: 480 px
      # sub-images, cheap to decode) or set cache_images=True if it fits.
      train_dir='',
      val_dir='',
      # Paired training (BasicSR PairedImageDataset): LR images matching
      # train_dir by relative name; batches then also hold 'lr' patches
      # (gt_size // scale). '' = HR only, LR made on the accelerator.
      train_lr_dir='',
      # LR base name from the HR one: '{}x4' for DIV2K_train_LR_bicubic/X4.
      lr_filename_tmpl='{}',
      # Unpaired images of the real LR domain (DSGAN's target domain, e.g.
      # the source images of an NTIRE real-world track): batches then also
      # hold 'real' patches of gt_size // scale cropped from them, drawn
      # independently of 'hr', which the discriminator sees as real.
      real_dir='',
      # A TFDS dataset instead of train_dir, e.g. 'div2k/bicubic_x4',
      # prepared with `tfds build NAME --file_format=array_record` (nothing is
      # downloaded here). Paired (HR + its 'lr') when given a scale.
      tfds_name='',
      tfds_data_dir='',  # '' = TFDS's default (~/tensorflow_datasets).
      tfds_split='train',
      gt_size=128,  # HR patch side P; the LR patch is P // scale.
      use_hflip=True,
      use_rot=True,  # BasicSR 'rotation': random vflip and transpose.
      # Random RGB permutation per patch (transforms.permute_channels). For
      # small or colour-poor sets (the embedded samples: 3 of 8 grey, the
      # rest warm), so the generator also sees blue/green-dominant colours.
      use_channel_permute=False,
      # With this probability, a random hue rotation and a saturation
      # factor from color_jitter_saturation per patch
      # (transforms.jitter_colours): saturated colours (a channel clipped at
      # 0 or 255) that natural photos rarely hold.
      color_jitter_prob=0.0,
      color_jitter_saturation=(0.0, 3.0),
      # 0 reads in the training process; > 0 uses grain worker processes,
      # which read absl flags: `python -m sr_jax.main` and the tools parse
      # them; from a notebook, call absl.flags.FLAGS.mark_as_parsed() first.
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
      # Images with a side below gt_size: 'skip' them (logged), or 'pad'
      # them by mirroring up to gt_size (min_image_size still skips).
      small_image_policy='skip',
      # Unusable training files (0-byte, truncated, not an image, above
      # max_image_pixels) are skipped, logged by name and counted; once they
      # are more than this fraction of the files, the run stops and lists them.
      max_bad_fraction=0.01,
      # Files whose header claims more pixels (W * H) are refused before
      # decoding: decompression bombs (a 1 MB 1-bit PNG can hold 100k x 100k
      # pixels, 30 GB as RGB). 100 MP admits 8K photos (7680x4320 = 33 MP) with
      # room to spare, while one decoded image stays <= 300 MB per reading
      # thread. 0 = no limit.
      max_image_pixels=10000 * 10000,
      # Each image is visited this many times per epoch (BasicSR's
      # dataset_enlarge_ratio): fewer, longer epochs on small folders.
      dataset_repeat=1,
  ))


def _field(data_config: ml_collections.ConfigDict, name: str):
  # Configs written before a field existed keep working with its default.
  return data_config.get(name, default_data_config()[name])


# ----------------------------------------------------------------- training


def _embedded_train_source(
    min_size: int, *, process_index: int, process_count: int
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


def _train_source(
    data_config: ml_collections.ConfigDict,
    *,
    scale: int | None,
    gt_size: int,
    pad_small: bool,
    process_index: int,
    process_count: int,
) -> tuple[Sequence, bool, bool]:
  """(this process's source, whether it is in memory, whether it is paired)."""
  min_image_size = int(_field(data_config, 'min_image_size'))
  # 'pad' handles images below gt_size; min_image_size still skips.
  min_size = min_image_size if pad_small else max(gt_size, min_image_size)
  cache_images = bool(_field(data_config, 'cache_images'))
  max_pixels = int(_field(data_config, 'max_image_pixels'))
  max_bad_fraction = float(_field(data_config, 'max_bad_fraction'))
  if not 0.0 <= max_bad_fraction <= 1.0:
    raise errors.ConfigError(
        f'data.max_bad_fraction must be in [0, 1], got {max_bad_fraction}.')
  shard = dict(process_index=process_index, process_count=process_count)
  train_dir = _field(data_config, 'train_dir')
  lr_dir = _field(data_config, 'train_lr_dir')
  tfds_name = _field(data_config, 'tfds_name')
  if tfds_name:
    if train_dir or lr_dir:
      raise errors.ConfigError(
          f'data.tfds_name={tfds_name!r} and data.train_dir / train_lr_dir '
          'are both set; pick one training source.')
    source = tfds_source.tfds_train_source(
        tfds_name, data_dir=_field(data_config, 'tfds_data_dir'),
        split=_field(data_config, 'tfds_split'), scale=scale,
        min_size=min_size, cache_images=cache_images,
        max_bad_fraction=max_bad_fraction, **shard)
    return source, cache_images, scale is not None
  if lr_dir:
    if not train_dir:
      raise errors.ConfigError(
          'data.train_lr_dir is set but data.train_dir (the HR folder) is '
          'not; paired training needs both.')
    if scale is None:
      raise errors.ConfigError(
          'data.train_lr_dir is set (paired LR/HR training), so '
          'make_train_dataset needs the SR scale: pass scale=config.scale.')
    source = paired.paired_train_source(
        train_dir, lr_dir, scale=scale,
        lr_filename_tmpl=_field(data_config, 'lr_filename_tmpl'),
        min_size=min_size, cache_images=cache_images, max_pixels=max_pixels,
        max_bad_fraction=max_bad_fraction, **shard)
    return source, cache_images, True
  if train_dir:
    source = folder.folder_train_source(
        train_dir, min_size=min_size, cache_images=cache_images,
        max_pixels=max_pixels, max_bad_fraction=max_bad_fraction, **shard)
    return source, cache_images, False
  return _embedded_train_source(min_size, **shard), True, False


def batch_keys(data_config: ml_collections.ConfigDict) -> tuple[str, ...]:
  """The arrays of a training batch: 'hr', 'lr' from paired sources and
  'real' (unpaired real-domain LR patches) with data.real_dir."""
  return (('hr',) + (('lr',) if is_paired(data_config) else ())
          + (('real',) if _field(data_config, 'real_dir') else ()))


def batch_spec(data_config: ml_collections.ConfigDict, batch_size: int,
               scale: int) -> dict:
  """{key: jax.ShapeDtypeStruct} of one training batch of `batch_size`."""
  gt = int(_field(data_config, 'gt_size'))
  sides = {'hr': gt, 'lr': gt // scale, 'real': gt // scale}
  return {k: jax.ShapeDtypeStruct((batch_size, sides[k], sides[k], 3),
                                  np.uint8) for k in batch_keys(data_config)}


def _real_batches(data_config, *, gt_size: int, scale: int | None,
                  batch_size: int, seed: int, process_index: int,
                  process_count: int, flips: dict) -> grain.MapDataset:
  """Endless batches of 'real' LR-domain patches from data.real_dir."""
  real_dir = _field(data_config, 'real_dir')
  if scale is None or gt_size % scale:
    raise errors.ConfigError(
        f'data.real_dir is set: make_train_dataset needs the '
        f'scale (a divisor of gt_size {gt_size}).')
  size = gt_size // scale
  source = folder.folder_train_source(
      real_dir, min_size=size, cache_images=bool(
          _field(data_config, 'cache_images')),
      max_pixels=int(_field(data_config, 'max_image_pixels')),
      max_bad_fraction=float(_field(data_config, 'max_bad_fraction')),
      process_index=process_index, process_count=process_count)
  # Own streams: the real patches are unpaired with the HR ones.
  shuffle_seed, augment_seed = _process_seeds(seed + 7919, process_index)
  return (grain.MapDataset.source(source)
          .shuffle(seed=shuffle_seed)
          .repeat(None)
          .random_map(transforms.RandomPatch(gt_size=size, **flips),
                      seed=augment_seed)
          .batch(batch_size, drop_remainder=True))


def is_paired(data_config: ml_collections.ConfigDict) -> bool:
  """Whether training batches carry their own 'lr' (paired folders or a
  TFDS SR dataset); otherwise LR inputs are made on the device."""
  return bool(_field(data_config, 'train_lr_dir')
              or _field(data_config, 'tfds_name'))


def _checked_sizes(data_config: ml_collections.ConfigDict,
                   global_batch_size: int, process_count: int,
                   scale: int | None) -> tuple[int, int, int]:
  """(this process's batch size, data.gt_size, data.dataset_repeat), each
  checked; ValueError for one make_train_dataset cannot use."""
  if global_batch_size <= 0 or global_batch_size % process_count:
    raise errors.ConfigError(
        f'global_batch_size={global_batch_size} must be a positive multiple '
        f'of the number of processes ({process_count}): each process loads '
        'an equal share of every batch.')
  batch_size = global_batch_size // process_count
  gt_size = int(_field(data_config, 'gt_size'))
  if gt_size <= 0:
    raise errors.ConfigError(f'data.gt_size must be positive, got {gt_size}.')
  if scale is not None and (scale < 1 or gt_size % scale):
    raise errors.ConfigError(
        f'data.gt_size={gt_size} must be a multiple of the scale {scale}.')
  repeat = int(_field(data_config, 'dataset_repeat'))
  if repeat < 1:
    raise errors.ConfigError(f'data.dataset_repeat must be >= 1, got {repeat}.')
  return batch_size, gt_size, repeat


def _augmentations(data_config: ml_collections.ConfigDict) -> dict:
  """The random flips, rotations, channel permutations and colour jitter
  of the config, as RandomPatch / PairedRandomPatch keyword arguments."""
  return dict(use_hflip=bool(_field(data_config, 'use_hflip')),
              use_rot=bool(_field(data_config, 'use_rot')),
              use_channel_permute=bool(
                  _field(data_config, 'use_channel_permute')),
              color_jitter_prob=float(
                  _field(data_config, 'color_jitter_prob')),
              color_jitter_saturation=tuple(
                  float(v) for v in
                  _field(data_config, 'color_jitter_saturation')))


def make_train_dataset(
    data_config: ml_collections.ConfigDict,
    *,
    global_batch_size: int,
    seed: int,
    process_index: int = 0,
    process_count: int = 1,
    scale: int | None = None,
) -> grain.IterDataset:
  """Endless, deterministic stream of augmented patch batches.

  Each epoch visits every image of this process's shard `dataset_repeat`
  times, in an order reshuffled per epoch, taking one random crop per visit.

  Args:
    data_config: see `default_data_config`.
    global_batch_size: batch size summed over all processes.
    seed: same seed, same batches (and same batches after a restore).
    process_index, process_count: this process reads the disjoint shard
      `images[process_index::process_count]`.
    scale: the SR factor. Needed by paired sources (train_lr_dir); makes a
      TFDS source paired; ignored by HR-only folders. None: not paired.

  Returns:
    IterDataset of {'hr': uint8 [B, P, P, 3]} in [0, 255] with
    B = global_batch_size // process_count and P = data_config.gt_size;
    paired sources add 'lr': uint8 [B, P // scale, P // scale, 3], aligned
    with 'hr'; data.real_dir adds 'real' (unpaired, the same shape). Its
    iterator's `get_state()` is a small JSON-serialisable dict; `set_state`
    resumes at exactly the next batch.
  """
  batch_size, gt_size, repeat = _checked_sizes(
      data_config, global_batch_size, process_count, scale)
  pad_small = bad_inputs.check_small_image_policy(
      _field(data_config, 'small_image_policy')) == 'pad'
  source, cache_images, is_paired = _train_source(
      data_config, scale=scale, gt_size=gt_size, pad_small=pad_small,
      process_index=process_index, process_count=process_count)

  shuffle_seed, augment_seed = _process_seeds(seed, process_index)
  flips = _augmentations(data_config)
  if is_paired:
    transform = transforms.PairedRandomPatch(
        gt_size=gt_size, scale=scale, pad=pad_small, **flips)
  else:
    transform = transforms.RandomPatch(
        gt_size=gt_size, pad=pad_small, **flips)
  ds = grain.MapDataset.source(source)
  if repeat > 1:
    # Before the shuffle, which then permutes all k * n visits at once, as
    # BasicSR's sampler does with dataset_enlarge_ratio.
    ds = ds.repeat(repeat)
  ds = (
      ds
      # Shuffle before repeat: grain folds the epoch into the shuffle seed,
      # so every epoch gets a fresh order; random_map after repeat sees the
      # global index, so a revisited image gets a fresh crop too.
      .shuffle(seed=shuffle_seed)
      .repeat(None)
      .random_map(transform, seed=augment_seed)
      # Batching on the MapDataset makes batch i a pure function of i: the
      # same batches in-process and with any number of workers.
      .batch(batch_size, drop_remainder=True))
  if _field(data_config, 'real_dir'):
    real = _real_batches(
        data_config, gt_size=gt_size, scale=scale, batch_size=batch_size,
        seed=seed, process_index=process_index, process_count=process_count,
        flips=flips)
    ds = ds.map_with_index(lambda i, b: {**b, 'real': real[i]['hr']})
  # Threads prefetch whole batches by index, and the iterator state is the
  # index of the next batch to *return*, so prefetching keeps it exact.
  # Cropping cached images is cheap and threads would only fight over the
  # GIL; decoding files (PNG/JPEG release the GIL) is worth overlapping.
  if cache_images:
    read_options = grain.ReadOptions(num_threads=0, prefetch_buffer_size=0)
  else:
    read_options = grain.ReadOptions(num_threads=8, prefetch_buffer_size=8)
  num_workers = int(_field(data_config, 'num_workers'))
  return ResumableBatches(ds, read_options, num_workers)


def next_batch_index(state: dict) -> int:
  """The index of the next batch in an iterator state of this pipeline, or
  of grain's own formats: in-process ({'next_index'}) or with worker
  processes (per-worker positions, which sum to the batches returned)."""
  if 'next_index' in state:
    return int(state['next_index'])
  if 'iterators_in_use_states' in state:
    return sum(next_batch_index(s) for s in state['iterators_in_use_states'])
  raise ValueError(f'Not a data iterator state of sr_jax: {state!r:.200}.')


class ResumableBatches(grain.IterDataset):
  """The batches of a MapDataset, resumable at any batch with any number of
  worker processes.

  Its iterator's state is {'next_index': N}, the index of the next batch it
  returns, whatever `num_workers` is: restoring opens the stream at batch N
  (a slice of the MapDataset, so batch N is the same batch), which is why
  a resume may change data.num_workers. grain's own multi-worker state is
  per worker and only restores with the same worker count.
  """

  def __init__(self, batches: grain.MapDataset,
               read_options: grain.ReadOptions, num_workers: int):
    super().__init__()
    self.batches, self.read_options = batches, read_options
    self.num_workers = num_workers

  def stream(self, start: int) -> grain.IterDataset:
    ds = self.batches[start:].to_iter_dataset(self.read_options)
    if self.num_workers > 0:
      ds = ds.mp_prefetch(
          grain.MultiprocessingOptions(num_workers=self.num_workers))
    return ds

  def __iter__(self) -> '_ResumableIterator':
    return _ResumableIterator(self)

  def __str__(self) -> str:
    return f'ResumableBatches(num_workers={self.num_workers})'


class _ResumableIterator(grain.DatasetIterator):
  """Counts the batches it returns; opens its stream lazily at `start`."""

  def __init__(self, dataset: ResumableBatches):
    super().__init__()
    self._dataset = dataset
    self._start, self._returned, self._it = 0, 0, None

  def __next__(self):
    if self._it is None:
      self._it = iter(self._dataset.stream(self._start))
    batch = next(self._it)
    self._returned += 1
    return batch

  def get_state(self) -> dict:
    return {'next_index': self._start + self._returned}

  def set_state(self, state: dict) -> None:
    self.close()
    self._start, self._returned = next_batch_index(state), 0

  def close(self) -> None:
    if self._it is not None and hasattr(self._it, 'close'):
      self._it.close()
    self._it = None


# --------------------------------------------------------------- validation


def mod_crop(image: np.ndarray, scale: int) -> np.ndarray:
  """Top-left crop to H, W multiples of `scale` (BasicSR `mod_crop`)."""
  height, width = image.shape[:2]
  height, width = height - height % scale, width - width % scale
  if height == 0 or width == 0:
    raise errors.ConfigError(
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
    val_dir: str, max_images: int, max_pixels: int | None
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
  return [(name, image_io.read_image(p, max_pixels))
          for name, p in named_paths]


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
  max_pixels = int(_field(data_config, 'max_image_pixels'))
  for name, image in _named_validation_images(
      _field(data_config, 'val_dir'), max_images, max_pixels):
    if max_size > 0:
      image = center_crop(image, max_size)
    try:
      image = mod_crop(image, scale)
    except ValueError as e:
      raise errors.ConfigError(f'Validation image {name!r}: {e}') from None
    result.append((name, np.ascontiguousarray(image)))
  return result



def load_paired_validation_set(
    hr_dir: str, lr_dir: str, scale: int, lr_filename_tmpl: str = '{}',
    max_images: int = 0, max_pixels: int | None = None,
) -> list[tuple[str, np.ndarray, np.ndarray]]:
  """(name, HR uint8, LR uint8) of an LR folder matched to an HR folder by
  name (`paired.index_pairs`: every HR needs its LR, HR exactly `scale`
  times the LR; the message lists the files that do not match), e.g.
  DIV2K_valid_HR with DIV2K_valid_LR_bicubic/X4 and '{}x4'."""
  pairs, _ = paired.index_pairs(hr_dir, lr_dir, scale=scale,
                                lr_filename_tmpl=lr_filename_tmpl,
                                max_pixels=max_pixels)
  if max_images > 0:
    pairs = pairs[:max_images]
  logging.info('Validation data: %d HR/LR pairs from %s and %s.', len(pairs),
               hr_dir, lr_dir)
  return [(folder.relative_name(p.hr, hr_dir),
           image_io.read_image(p.hr, max_pixels),
           image_io.read_image(p.lr, max_pixels)) for p in pairs]
