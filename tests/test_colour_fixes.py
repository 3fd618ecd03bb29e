"""RGB-permutation augmentation and edge pre-padding (the demo's colour
cast and edge line)."""
import jax.numpy as jnp
import numpy as np

from sr_jax.data import transforms
from sr_jax.inference.pre_pad import apply_pre_padded


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


def test_pre_pad_shapes_and_identity_for_pointwise_fn():
  lr = jnp.asarray(np.random.default_rng(2).random((1, 6, 5, 3)), jnp.float32)
  up = lambda x: jnp.repeat(jnp.repeat(x, 4, axis=1), 4, axis=2)
  out = apply_pre_padded(up, lr, 4, pad=3)
  assert out.shape == (1, 24, 20, 3)
  np.testing.assert_allclose(out, up(lr))
  np.testing.assert_allclose(apply_pre_padded(up, lr, 4, pad=0), up(lr))
