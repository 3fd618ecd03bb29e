"""sr_jax.metrics.frechet_inception: FID's features of uint8 images against
the PyTorch InceptionV3 (tests/helpers/torch_inception.py), the Frechet
distance against scipy and closed forms, patches."""

import numpy as np
import pytest
import scipy.linalg

from sr_jax.metrics import frechet_inception as fid_lib
from sr_jax.metrics import registry
from tests.helpers.torch_inception import errors
from tests.helpers.torch_inception import torch_features

# ------------------------------------------------- PyTorch reference model --


# The PyTorch Inception and its conversion: tests.helpers.torch_inception's
# fixtures (tests/conftest.py loads them).
pytestmark = pytest.mark.usefixtures('one_torch_thread')


# --------------------------------------------------------------- parity --


@pytest.mark.slow
def test_features_of_uint8_images_of_any_size_match_torch(inception_reference):
  """fid_features (each image resized to 299 by itself, then batched,
  the last batch padded) against the whole PyTorch model, image by image."""
  model, variables = inception_reference
  rng = np.random.default_rng(3)
  images = [rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            for h, w in ((40, 56), (299, 299), (350, 310))]
  ours = fid_lib.fid_features(images, variables, batch_size=2)
  ref = np.concatenate([torch_features(model, (im / 255.0).astype(
      np.float32)[None]) for im in images])
  abs_err, rel_err = errors(ours, ref)
  assert ours.shape == (3, 2048) and ours.dtype == np.float32
  assert rel_err < 1e-4, (abs_err, rel_err)
  # A different batching gives the same features.
  np.testing.assert_allclose(
      fid_lib.fid_features(images[::-1], variables, batch_size=3)[::-1],
      ours, rtol=0, atol=1e-5 * np.abs(ours).max())


# ------------------------------------------------------ Frechet distance --

def fid_scipy(mu1, s1, mu2, s2):
  """The textbook formula with scipy.linalg.sqrtm (pytorch-fid's way)."""
  covmean = scipy.linalg.sqrtm(s1 @ s2)
  diff = mu1 - mu2
  return float(diff @ diff + np.trace(s1) + np.trace(s2)
               - 2 * np.trace(covmean).real)


def fid_scipy_features(fa, fb):
  """fid_scipy of two feature sets, with the covariances restricted to the
  span of the centred features, where both live (exact; sqrtm then runs on
  an (Na + Nb)-sized matrix instead of 2048)."""
  q = np.linalg.qr(np.concatenate([fa - fa.mean(0), fb - fb.mean(0)]).T)[0]
  diff = fa.mean(0) - fb.mean(0)
  sa, sb = np.cov(fa @ q, rowvar=False), np.cov(fb @ q, rowvar=False)
  return fid_scipy(np.zeros(1), sa, np.zeros(1), sb) + float(diff @ diff)


def random_spd(rng, d, n):
  a = rng.standard_normal((n, d))
  return np.cov(a, rowvar=False)


def test_frechet_distance_matches_scipy_sqrtm():
  rng = np.random.default_rng(0)
  d = 64
  for _ in range(3):
    mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
    s1, s2 = random_spd(rng, d, 500), random_spd(rng, d, 300) * 2.0
    ours = fid_lib.frechet_distance(mu1, s1, mu2, s2)
    assert ours == pytest.approx(fid_scipy(mu1, s1, mu2, s2), rel=1e-10)
  # Symmetric, 0 for equal distributions.
  assert fid_lib.frechet_distance(mu2, s2, mu1, s1) == pytest.approx(
      ours, rel=1e-10)
  assert fid_lib.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(
      0, abs=1e-9)


def test_frechet_distance_closed_forms_including_singular():
  rng = np.random.default_rng(1)
  d = 50
  mu1, mu2 = rng.standard_normal(d), rng.standard_normal(d)
  # Diagonal covariances: d^2 = |mu1 - mu2|^2 + sum (sqrt a - sqrt b)^2,
  # also with zero (singular) and tiny variances.
  a, b = rng.uniform(0, 3, d), rng.uniform(0, 3, d)
  a[:10], b[5:15] = 0.0, 1e-14
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert fid_lib.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == \
      pytest.approx(expected, rel=1e-12)
  # Covariances sharing a random eigenbasis: tr sqrt(S1 S2) = sum
  # sqrt(a_i b_i); rank 20 of 50, as with 21 images' features.
  q = np.linalg.qr(rng.standard_normal((d, d)))[0]
  a[20:] = 0.0
  s1, s2 = (q * a) @ q.T, (q * b) @ q.T
  expected = (np.sum((mu1 - mu2) ** 2) + np.sum(a) + np.sum(b)
              - 2 * np.sum(np.sqrt(a * b)))
  # Rounding (~1e-15) in the 30 zero eigenvalues becomes ~3e-8 each under
  # the square root, for any method (scipy's sqrtm: complex, 6e-7 off).
  assert fid_lib.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
      expected, abs=1e-5)


def test_frechet_distance_of_near_singular_sample_covariances():
  """Fewer samples than dimensions (FID on small test sets): both agree
  where sqrtm is well-conditioned enough, after a tiny ridge."""
  rng = np.random.default_rng(2)
  d = 40
  f1, f2 = rng.standard_normal((30, d)), rng.standard_normal((35, d)) + 0.3
  mu1, s1 = fid_lib.statistics(f1)
  mu2, s2 = fid_lib.statistics(f2)
  assert np.linalg.matrix_rank(s1) == 29
  ridge = 1e-6 * np.eye(d)
  ours = fid_lib.frechet_distance(mu1, s1 + ridge, mu2, s2 + ridge)
  assert ours == pytest.approx(
      fid_scipy(mu1, s1 + ridge, mu2, s2 + ridge), rel=1e-6)
  # Without the ridge: finite and continuous.
  assert fid_lib.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(
      ours, rel=1e-3)
  # From the features (exact, low rank) and from the statistics agree.
  assert fid_lib.fid_from_features(f1, f2) == pytest.approx(
      fid_lib.frechet_distance(mu1, s1, mu2, s2), rel=1e-6)
  assert fid_lib.fid_from_features(f1, f2) == pytest.approx(
      fid_scipy_features(f1, f2), rel=1e-6)


def test_fid_from_features_with_more_samples_than_dimensions():
  rng = np.random.default_rng(5)
  f1 = rng.standard_normal((100, 20))
  f2 = rng.standard_normal((120, 20)) * 1.5 + 0.2
  expected = fid_scipy(f1.mean(0), np.cov(f1, rowvar=False), f2.mean(0),
                       np.cov(f2, rowvar=False))
  assert fid_lib.fid_from_features(f1, f2) == pytest.approx(expected,
                                                            rel=1e-10)


def test_frechet_distance_refuses_bad_input():
  with pytest.raises(ValueError, match='shape'):
    fid_lib.frechet_distance(np.zeros(3), np.eye(3), np.zeros(3), np.eye(4))
  with pytest.raises(ValueError, match='non-finite'):
    fid_lib.frechet_distance(np.zeros(2), np.eye(2) * np.nan, np.zeros(2),
                             np.eye(2))
  with pytest.raises(ValueError, match='N >= 2'):
    fid_lib.statistics(np.zeros((1, 2048)))


# --------------------------------------------------------- FID, patches --

def test_patches_are_non_overlapping_and_drop_remainders():
  image = np.arange(10 * 7 * 3, dtype=np.uint8).reshape(10, 7, 3)
  got = list(fid_lib.patches(image, 3))
  assert len(got) == 3 * 2
  np.testing.assert_array_equal(got[0], image[:3, :3])
  np.testing.assert_array_equal(got[1], image[:3, 3:6])
  np.testing.assert_array_equal(got[-1], image[6:9, 3:6])
  with pytest.raises(ValueError, match='8x8 patches from a 10x7'):
    list(fid_lib.patches(image, 8))
  assert fid_lib.metric_name(None) == 'fid'
  assert fid_lib.metric_name(64) == 'fid_patch64'


@pytest.mark.slow
def test_fid_whole_images_and_patches(inception_reference):
  model, variables = inception_reference
  rng = np.random.default_rng(4)
  hr = [rng.integers(0, 256, (64, 96, 3), dtype=np.uint8) for _ in range(3)]
  sr = [np.clip(im.astype(int) + rng.integers(-40, 40, im.shape), 0,
                255).astype(np.uint8) for im in hr]

  def reference_fid(a, b):
    # One PyTorch batch per set (all images have one size).
    fa, fb = (torch_features(model, (np.stack(images) / 255.0).astype(
        np.float32)) for images in (a, b))
    return fid_scipy_features(fa.astype(np.float64), fb.astype(np.float64))

  # batch_size=3 throughout: one compiled shape (also used above).
  whole = fid_lib.fid(sr, hr, variables, batch_size=3)
  assert whole > 0
  assert whole == pytest.approx(reference_fid(sr, hr), rel=1e-4)
  # 48x48 patches: 1 x 2 per image, 6 per set.
  patched = fid_lib.fid(sr, hr, variables, patch_size=48, batch_size=3)
  cut = lambda images: [p for im in images for p in fid_lib.patches(im, 48)]
  assert len(cut(sr)) == 6
  assert patched == pytest.approx(reference_fid(cut(sr), cut(hr)), rel=1e-4)
  assert fid_lib.fid(hr, hr, variables, batch_size=3) == pytest.approx(
      0, abs=1e-6)
  # The registered set metric is whole-image FID (no border crop).
  metric = registry.METRICS.get('fid')
  assert (metric.kind, metric.frozen, metric.higher_is_better) == (
      'set', 'inception_fid', False)
  assert metric.fn(sr, hr, 4, variables=variables) == pytest.approx(
      whole, rel=1e-6)
  with pytest.raises(ValueError, match='>= 2 SR samples'):
    fid_lib.fid(sr[:1], hr, variables)
  with pytest.raises(ValueError, match='uint8 HxWx3'):
    fid_lib.fid([im / 255.0 for im in sr], hr, variables)
