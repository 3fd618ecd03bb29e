"""sr_jax.data.transforms: RGB-permutation and colour-jitter augmentations
(the demo's colour cast and colorwheel failure)."""
import numpy as np

from sr_jax.data import transforms


def test_permute_off_keeps_draws_and_on_permutes_channels():
  image = np.random.default_rng(0).integers(0, 256, (40, 40, 3), np.uint8)
  kw = dict(gt_size=16, use_hflip=True, use_rot=True)
  plain = transforms.RandomPatch(**kw)(image, np.random.default_rng(5))['hr']
  permuted = transforms.RandomPatch(**kw, use_channel_permute=True)(
      image, np.random.default_rng(5))['hr']
  # Same crop and flips; channels are a permutation of the plain patch's.
  assert sorted(permuted.reshape(-1, 3).sum(0)) == sorted(
      plain.reshape(-1, 3).sum(0))
  orders = set()
  for seed in range(40):
    p = transforms.RandomPatch(gt_size=40, use_hflip=False, use_rot=False,
                               use_channel_permute=True)(
                                   image, np.random.default_rng(seed))['hr']
    orders.add(tuple(int(np.argmax([(p[..., 0] == image[..., c]).all()
                                     for c in range(3)])) for _ in [0]))
  assert len(orders) == 3  # Channel 0 comes from each source channel.


def test_paired_permute_keeps_pair_consistent():
  rng = np.random.default_rng(1)
  lr = rng.integers(0, 256, (8, 8, 3), np.uint8)
  hr = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)  # Block-constant.
  out = transforms.PairedRandomPatch(
      gt_size=16, scale=4, use_hflip=True, use_rot=True,
      use_channel_permute=True)({'hr': hr, 'lr': lr}, np.random.default_rng(3))
  np.testing.assert_array_equal(out['hr'][::4, ::4], out['lr'])


def test_colour_matrix_keeps_grey_and_rotates_hues():
  np.testing.assert_allclose(transforms.colour_matrix(0.0, 1.0), np.eye(3),
                             atol=1e-12)
  # A third of a turn about the grey axis is a cyclic channel permutation.
  np.testing.assert_allclose(transforms.colour_matrix(2 * np.pi / 3, 1.0),
                             np.eye(3)[[2, 0, 1]], atol=1e-12)
  grey = np.full(3, 0.4)
  for hue, saturation in ((1.0, 0.0), (2.5, 2.0), (4.0, 0.5)):
    m = transforms.colour_matrix(hue, saturation)
    np.testing.assert_allclose(m @ grey, grey, atol=1e-12)
  # Saturation 0 makes every colour its grey (the channel mean).
  np.testing.assert_allclose(transforms.colour_matrix(1.0, 0.0) @
                             np.array([0.9, 0.3, 0.0]), np.full(3, 0.4))


def test_colour_jitter_saturates_flattens_and_keeps_pairs_consistent():
  image = np.random.default_rng(0).integers(60, 200, (48, 48, 3), np.uint8)
  kw = dict(gt_size=16, use_hflip=True, use_rot=True)
  plain = transforms.RandomPatch(**kw)(image, np.random.default_rng(5))['hr']
  off = transforms.RandomPatch(**kw, color_jitter_prob=0.0)(
      image, np.random.default_rng(5))['hr']
  np.testing.assert_array_equal(plain, off)  # Off: the same draws.
  spread = []
  for seed in range(20):
    p = transforms.RandomPatch(**kw, color_jitter_prob=1.0,
                               color_jitter_saturation=(3.0, 3.0))(
                                   image, np.random.default_rng(seed))['hr']
    spread.append(int((p.astype(int).max(-1) - p.astype(int).min(-1)).max()))
  # Saturation 3 clips channels: max - min reaches 255 (the source < 140).
  assert max(spread) == 255 and (image.astype(int).max(-1)
                                 - image.astype(int).min(-1)).max() < 140
  grey = transforms.RandomPatch(**kw, color_jitter_prob=1.0,
                                color_jitter_saturation=(0.0, 0.0))(
                                    image, np.random.default_rng(1))['hr']
  # Saturation 0: every pixel its grey (within rounding).
  assert np.abs(grey.astype(int) - grey.mean(-1, keepdims=True)).max() <= 1
  rng = np.random.default_rng(1)
  lr = rng.integers(0, 256, (8, 8, 3), np.uint8)
  hr = np.repeat(np.repeat(lr, 4, axis=0), 4, axis=1)  # Block-constant.
  out = transforms.PairedRandomPatch(
      gt_size=16, scale=4, use_hflip=True, use_rot=True,
      color_jitter_prob=1.0, color_jitter_saturation=(0.5, 1.5))(
          {'hr': hr, 'lr': lr}, np.random.default_rng(3))
  np.testing.assert_array_equal(out['hr'][::4, ::4], out['lr'])
