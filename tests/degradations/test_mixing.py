"""sr_jax.degradations.mixing: coarse dropout against scipy.ndimage.label and
sample statistics; mixup's lam and partner, recovered from one-hot batches,
against scipy.stats.beta."""
import jax
import numpy as np
import pytest
import scipy.ndimage
import scipy.stats

from sr_jax.degradations import mixing

_coarse_dropout = jax.jit(mixing.coarse_dropout,
                          static_argnames=('num_holes', 'hole_size'))


_mixup = jax.jit(mixing.mixup)


# Coarse dropout.
def test_coarse_dropout_probability_fill_and_area():
  n, h, w, fill = 2000, 16, 16, 0.25
  x = np.random.default_rng(5).uniform(0.5, 1.0, (n, h, w, 2))
  x = x.astype(np.float32)
  out = np.asarray(_coarse_dropout(jax.random.key(6), x, prob=0.3,
                                   num_holes=(1, 4), hole_size=(0.05, 0.25),
                                   fill=fill))
  changed = out != x
  # Holes cover all channels and hold exactly `fill`; the rest is the input.
  np.testing.assert_array_equal(changed[..., 0], changed[..., 1])
  np.testing.assert_array_equal(out[changed], fill)
  np.testing.assert_array_equal(out[~changed], x[~changed])
  area = changed[..., 0].mean((1, 2))
  touched = area > 0
  assert abs(touched.mean() - 0.3) < 0.04  # 4 sigma.
  # Sides are round(U(0.05, 0.25) * 16), i.e. 1 to 4 pixels; 1 to 4 holes.
  assert area[touched].min() >= 1 / (h * w)
  assert area.max() <= 4 * 16 / (h * w)
  assert (area[touched] > 16 / (h * w)).any()  # Several holes do occur.
  assert np.array_equal(out, _coarse_dropout(
      jax.random.key(6), x, prob=0.3, num_holes=(1, 4),
      hole_size=(0.05, 0.25), fill=fill))


def test_coarse_dropout_hole_count_and_positions():
  n, size = 1000, 40
  x = np.ones((n, size, size, 1), np.float32)
  # Holes of exactly 2 x 2 in a large image rarely touch, so the connected
  # components count the holes.
  out = np.asarray(_coarse_dropout(jax.random.key(7), x, prob=1.0,
                                   num_holes=(1, 4), hole_size=(0.05, 0.05)))
  holes = out[..., 0] == 0
  counts = np.array([scipy.ndimage.label(m)[1] for m in holes])
  assert counts.min() >= 1 and counts.max() == 4
  freq = np.bincount(counts, minlength=5)[1:] / n
  np.testing.assert_allclose(freq, 0.25, atol=0.06)
  areas = holes.sum((1, 2))
  assert np.all(areas <= 4 * counts * 4) and np.all(areas % 1 == 0)
  assert np.all(areas[counts == 1] >= 4)
  # Holes reach every row and column, borders included, and never leave the
  # image (a 2 x 2 hole clipped by a border would have area 1 or 2).
  assert holes.any((0, 2)).all() and holes.any((0, 1)).all()
  isolated = areas == 4 * counts
  assert isolated.mean() > 0.9


# Mixup.
def _onehot_batch(n, size, scale, offset):
  eye = np.eye(n, dtype=np.float32)[:, None, None, :]
  return offset + scale * np.broadcast_to(eye, (n, size, size, n))


def _recover(mixed, scale, offset):
  """(lam, partner) per sample from a mixed one-hot batch."""
  v = (np.asarray(mixed)[:, 0, 0, :] - offset) / scale  # [N, N]
  n = v.shape[0]
  lam = v[np.arange(n), np.arange(n)]
  others = v.copy()
  others[np.arange(n), np.arange(n)] = -1
  partner = np.where(lam > 1 - 1e-6, np.arange(n), others.argmax(1))
  return lam, partner


def test_mixup_uses_the_same_lam_and_partner_for_lr_and_hr():
  n = 8
  key = jax.random.key(8)
  lr = _onehot_batch(n, 4, 1.0, 0.0)
  hr = _onehot_batch(n, 12, 0.25, 0.5)
  lr_m, hr_m, lam = _mixup(key, lr, hr, 1.2, 1.0)
  assert lr_m.shape == lr.shape and hr_m.shape == hr.shape
  lam_lr, perm_lr = _recover(lr_m, 1.0, 0.0)
  lam_hr, perm_hr = _recover(hr_m, 0.25, 0.5)
  np.testing.assert_array_equal(perm_lr, perm_hr)
  assert sorted(perm_lr) == list(range(n))  # A permutation.
  assert (perm_lr != np.arange(n)).sum() >= 2
  moved = perm_lr != np.arange(n)
  np.testing.assert_allclose(lam_lr[moved], lam_hr[moved], atol=1e-6)
  np.testing.assert_allclose(lam_lr[moved], np.asarray(lam)[moved], atol=1e-6)
  assert np.all((lam > 0) & (lam < 1))
  # Images: the formula with the recovered partner (same key, same draws).
  rng = np.random.default_rng(9)
  # Same shapes as above: one compilation (Beta sampling compiles slowly).
  lr = rng.uniform(size=lr.shape).astype(np.float32)
  hr = rng.uniform(size=hr.shape).astype(np.float32)
  lr_m, hr_m, lam = _mixup(key, lr, hr, 1.2, 1.0)
  lam = np.asarray(lam)[:, None, None, None]
  np.testing.assert_allclose(lr_m, lam * lr + (1 - lam) * lr[perm_lr],
                             atol=1e-6)
  np.testing.assert_allclose(hr_m, lam * hr + (1 - lam) * hr[perm_lr],
                             atol=1e-6)


@pytest.mark.parametrize('alpha', [1.2, 0.4])
def test_mixup_lam_is_beta_distributed(alpha):
  n = 20000
  lr = np.zeros((n, 2, 2, 1), np.float32)
  hr = np.zeros((n, 4, 4, 1), np.float32)
  _, _, lam = _mixup(jax.random.key(10), lr, hr, alpha, 1.0)
  lam = np.asarray(lam, np.float64)
  assert abs(lam.mean() - 0.5) < 0.01
  np.testing.assert_allclose(lam.var(), 1 / (4 * (2 * alpha + 1)), atol=0.005)
  ks = scipy.stats.kstest(lam, scipy.stats.beta(alpha, alpha).cdf)
  assert ks.pvalue > 1e-3


def test_mixup_probability():
  n = 20000
  rng = np.random.default_rng(11)
  lr = rng.uniform(size=(n, 2, 2, 1)).astype(np.float32)
  hr = rng.uniform(size=(n, 4, 4, 1)).astype(np.float32)
  lr_m, hr_m, lam = _mixup(jax.random.key(12), lr, hr, 1.2, 0.0)
  np.testing.assert_array_equal(lr_m, lr)
  np.testing.assert_array_equal(hr_m, hr)
  np.testing.assert_array_equal(lam, 1.0)
  lr_m, _, lam = _mixup(jax.random.key(12), lr, hr, 1.2, 0.5)
  kept = np.asarray(lam) == 1.0
  assert abs(kept.mean() - 0.5) < 0.02
  np.testing.assert_array_equal(np.asarray(lr_m)[kept], lr[kept])
