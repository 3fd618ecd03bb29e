"""Per-example training transforms: random crop and BasicSR's augment.

`RandomPatch` turns an HR image into one HR patch; `PairedRandomPatch` turns
an {'hr', 'lr'} pair into aligned HR and LR patches (BasicSR's
`paired_random_crop` followed by `augment` on both). Both are picklable
dataclasses, not closures, so grain can ship them to worker processes, and
both return contiguous copies, never views into a (cached) source image.
"""
import dataclasses

import numpy as np

from sr_jax.data import bad_inputs


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


def _flips(
    patch: np.ndarray, coins: np.ndarray, hflip: bool, rot: bool
) -> np.ndarray:
  do_hflip, do_vflip, do_transpose = coins
  if hflip and do_hflip:
    patch = patch[:, ::-1]
  if rot and do_vflip:
    patch = patch[::-1]
  if rot and do_transpose:
    patch = patch.transpose(1, 0, 2)
  return patch


def augment(
    patch: np.ndarray, rng: np.random.Generator, *, hflip: bool, rot: bool
) -> np.ndarray:
  """BasicSR's `augment`: hflip, vflip, transpose, each with p = 0.5.

  `hflip` enables the horizontal flip, `rot` the vertical flip and the
  transpose; together they reach all 8 rotations/reflections of the square.
  All three coins are always drawn so switching one flag off does not change
  the others' draws for the same seed.
  """
  return _flips(patch, rng.random(3) < 0.5, hflip, rot)


def permute_channels(patches: tuple[np.ndarray, ...], rng: np.random.Generator
                     ) -> tuple[np.ndarray, ...]:
  """One uniformly drawn RGB permutation, applied to every array given.

  Bicubic (and every other) degradation treats the channels alike, so a
  permuted pair is as valid as the original; it turns a set of mostly warm
  (R > G > B) photos into one that also has blue- and green-dominant colours
  (Yoo et al. 2020, "Rethinking data augmentation for image SR": RGB permute).
  Drawn after the crop and flips, so enabling it leaves their draws alone.
  """
  order = rng.permutation(3)
  return tuple(p[..., order] for p in patches)


def colour_matrix(hue: float, saturation: float) -> np.ndarray:
  """[3, 3] RGB map: a rotation by `hue` radians about the grey axis, then
  chroma scaled by `saturation` (grey stays grey; 0 gives grey, > 1 more
  saturated colours)."""
  u = np.full(3, 3 ** -0.5)
  cross = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
  grey = np.outer(u, u)
  rotation = (np.cos(hue) * np.eye(3) + np.sin(hue) * cross
              + (1 - np.cos(hue)) * grey)
  return grey + saturation * (rotation - grey)


def jitter_colours(patches: tuple[np.ndarray, ...], rng: np.random.Generator,
                   saturation: tuple[float, float]
                   ) -> tuple[np.ndarray, ...]:
  """One random hue rotation and saturation factor (uniform in
  `saturation`), applied to every uint8 array given, clipped to [0, 255].

  Natural photos rarely hold saturated colours (a channel at 0 while another
  is near 255): the embedded training photos have no pixel with max - min
  > 200, scikit-image's colorwheel 19% of its pixels and 34% more between
  100 and 200. A generator that never saw such colours maps them wrongly:
  the demo RRDBNet put a cast of +1 to +2.4 levels (mean, per channel) over
  the whole wheel, growing with saturation (rms error 1.8 levels where
  max - min < 30, 7.1 above 200; bicubic 0.5-1.5), 13.9 dB below bicubic.
  Saturating (and clipping) the HR patches shows it those colours. The LR
  is made from the jittered HR on the device, so the pair stays
  consistent; for a paired LR the same per-pixel map is applied to both
  (exact where nothing clips).
  """
  matrix = colour_matrix(rng.uniform(0.0, 2 * np.pi),
                         rng.uniform(*saturation)).astype(np.float32)
  return tuple(
      np.clip(np.rint(p.astype(np.float32) @ matrix.T), 0, 255).astype(
          np.uint8) for p in patches)


@dataclasses.dataclass(frozen=True)
class RandomPatch:
  """grain `random_map` transform: HR image -> {'hr': uint8 [P, P, 3]}.

  With `pad`, an image with a side shorter than P is mirror-padded to P first
  (data.small_image_policy='pad'); otherwise such images must not get here.
  `use_channel_permute` adds a random RGB permutation (`permute_channels`).
  """
  gt_size: int
  use_hflip: bool
  use_rot: bool
  pad: bool = False
  use_channel_permute: bool = False
  color_jitter_prob: float = 0.0
  color_jitter_saturation: tuple[float, float] = (0.0, 3.0)

  def __call__(self, image: np.ndarray, rng: np.random.Generator) -> dict:
    if self.pad:
      image = bad_inputs.pad_to_size(image, self.gt_size, self.gt_size)
    patch = random_crop(image, self.gt_size, rng)
    patch = augment(patch, rng, hflip=self.use_hflip, rot=self.use_rot)
    if self.use_channel_permute:
      patch, = permute_channels((patch,), rng)
    if self.color_jitter_prob and rng.random() < self.color_jitter_prob:
      patch, = jitter_colours((patch,), rng, self.color_jitter_saturation)
    return {'hr': np.ascontiguousarray(patch, dtype=np.uint8)}


@dataclasses.dataclass(frozen=True)
class PairedRandomPatch:
  """grain `random_map` transform for paired data (BasicSR paired crop).

  {'hr': uint8 [s*h, s*w, 3], 'lr': uint8 [h, w, 3]} ->
  {'hr': uint8 [P, P, 3], 'lr': uint8 [P/s, P/s, 3]}: the LR patch at a
  uniform (top, left) of the LR image, the HR patch at (s*top, s*left), and
  the same flips / transpose applied to both, so every LR pixel still sits
  over its s x s HR block. Positions are drawn on the LR grid, as BasicSR
  does, so the HR patch can never start between two LR pixels.
  """
  gt_size: int
  scale: int
  use_hflip: bool
  use_rot: bool
  pad: bool = False
  use_channel_permute: bool = False
  color_jitter_prob: float = 0.0
  color_jitter_saturation: tuple[float, float] = (0.0, 3.0)

  def __call__(self, pair: dict, rng: np.random.Generator) -> dict:
    hr, lr = pair['hr'], pair['lr']
    scale, lq_size = self.scale, self.gt_size // self.scale
    if self.pad:
      # Symmetric padding keeps the pair aligned (see pad_to_size).
      lr = bad_inputs.pad_to_size(lr, lq_size, lq_size)
      hr = bad_inputs.pad_to_size(hr, lq_size * scale, lq_size * scale)
    height, width = lr.shape[:2]
    if hr.shape[:2] != (height * scale, width * scale):
      raise ValueError(
          f'HR {hr.shape[0]}x{hr.shape[1]} is not {scale} x LR '
          f'{height}x{width}.')
    if height < lq_size or width < lq_size:
      raise ValueError(
          f'Cannot crop {lq_size}x{lq_size} from an LR image of '
          f'{height}x{width}.')
    top = rng.integers(0, height - lq_size + 1)
    left = rng.integers(0, width - lq_size + 1)
    lr_patch = lr[top:top + lq_size, left:left + lq_size]
    hr_patch = hr[top * scale:(top + lq_size) * scale,
                  left * scale:(left + lq_size) * scale]
    coins = rng.random(3) < 0.5
    hr_patch = _flips(hr_patch, coins, self.use_hflip, self.use_rot)
    lr_patch = _flips(lr_patch, coins, self.use_hflip, self.use_rot)
    if self.use_channel_permute:
      hr_patch, lr_patch = permute_channels((hr_patch, lr_patch), rng)
    if self.color_jitter_prob and rng.random() < self.color_jitter_prob:
      hr_patch, lr_patch = jitter_colours((hr_patch, lr_patch), rng,
                                          self.color_jitter_saturation)
    return {'hr': np.ascontiguousarray(hr_patch, dtype=np.uint8),
            'lr': np.ascontiguousarray(lr_patch, dtype=np.uint8)}
