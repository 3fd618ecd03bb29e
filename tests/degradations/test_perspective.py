"""sr_jax.degradations.perspective: the perspective warp against independent
references.

References: a hand-written numpy pinhole camera (explicit 3D points, rotation
matrix, projection) for the homography; skimage.transform.warp for the
bilinear warp; blob centroids for "the warp goes where the homography says";
box downscaling for `scale_homography`.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
import skimage.transform

from sr_jax.degradations import perspective

_warp = jax.jit(perspective.warp_perspective)
_random_perspective = jax.jit(
    perspective.random_perspective,
    static_argnames=('angle_range', 'random_sign', 'fit'))


def _corners(h, w):
  """The image extent's corners TL, TR, BR, BL as (x, y), pixel centres."""
  return np.array([[-0.5, -0.5], [w - 0.5, -0.5], [w - 0.5, h - 0.5],
                   [-0.5, h - 0.5]])


def _camera_by_hand(points, angle_deg, h, w, focal, fit):
  """Rotates the image plane in 3D and re-projects it, in float64 numpy."""
  cx, cy, f = (w - 1) / 2, (h - 1) / 2, focal * w
  t = math.radians(angle_deg)
  rot_y = np.array([[math.cos(t), 0, math.sin(t)], [0, 1, 0],
                    [-math.sin(t), 0, math.cos(t)]])
  pivot = np.array([0.0, 0.0, f])

  def project(pts):
    xyz = np.stack([pts[:, 0] - cx, pts[:, 1] - cy,
                    np.full(len(pts), f)], axis=1)
    xyz = (xyz - pivot) @ rot_y.T + pivot
    assert np.all(xyz[:, 2] > 0)  # In front of the camera.
    return f * xyz[:, :2] / xyz[:, 2:]

  out = project(np.asarray(points, np.float64))
  if fit:
    quad = project(_corners(h, w))
    lo, hi = quad.min(0), quad.max(0)
    k = min(w / (hi[0] - lo[0]), h / (hi[1] - lo[1]))
    out = k * (out - (lo + hi) / 2)
  return out + [cx, cy]


def _apply_np(hmat, pts):
  hom = np.concatenate([pts, np.ones((len(pts), 1))], 1) @ np.asarray(
      hmat, np.float64).T
  return hom[:, :2] / hom[:, 2:]


def _psnr(a, b):
  return 10 * np.log10(1.0 / np.mean((np.asarray(a) - np.asarray(b))**2))


def _box_down(x, s):
  n, h, w, c = x.shape
  return np.asarray(x).reshape(n, h // s, s, w // s, s, c).mean((2, 4))


def _astronaut(h, w):
  img = skimage.transform.resize(skimage.data.astronaut(), (h, w),
                                 anti_aliasing=True)
  return img.astype(np.float32)


def _smooth(h, w):
  y, x = np.mgrid[:h, :w] / 16.0
  img = (0.5 + 0.25 * np.sin(1.3 * x + 0.5) * np.cos(0.9 * y) +
         0.2 * np.cos(0.7 * x - y))
  return img[..., None].astype(np.float32)


def _angle_from_homography(hmat, h, w, focal=1.0):
  """Recovers the angle from the ratio of the right and left side heights.

  Heights scale as f / (f -+ sin * W / 2) on the two sides (the fit scales
  both alike), so r = right / left = (f + sin W/2) / (f - sin W/2).
  """
  q = _apply_np(hmat, _corners(h, w))
  r = (q[2, 1] - q[1, 1]) / (q[3, 1] - q[0, 1])
  f = focal * w
  return math.degrees(math.asin(2 * f * (r - 1) / (w * (r + 1))))


# Homography.
@pytest.mark.parametrize('angle, h, w, focal, fit', [
    (30.0, 32, 48, 1.0, True), (-70.0, 32, 48, 1.0, True),
    (55.0, 40, 24, 0.7, True), (45.0, 32, 48, 1.0, False),
    (-20.0, 17, 33, 2.5, False)])
def test_rotation_homography_matches_3d_camera(angle, h, w, focal, fit):
  hmat = perspective.rotation_homography(angle, h, w, focal=focal, fit=fit)
  assert hmat.shape == (3, 3) and hmat.dtype == jnp.float32
  rng = np.random.default_rng(0)
  pts = np.concatenate([_corners(h, w),
                        rng.uniform(0, 1, (20, 2)) * [w - 1, h - 1]])
  ref = _camera_by_hand(pts, angle, h, w, focal, fit)
  np.testing.assert_allclose(_apply_np(hmat, pts), ref, atol=2e-3)
  np.testing.assert_allclose(perspective.apply_homography(hmat, pts), ref,
                             atol=2e-3)


def test_rotation_homography_geometry():
  h, w = 32, 48
  np.testing.assert_allclose(perspective.rotation_homography(0.0, h, w),
                             np.eye(3), atol=1e-6)
  np.testing.assert_allclose(
      perspective.rotation_homography(0.0, h, w, fit=False), np.eye(3),
      atol=1e-6)
  hmats = perspective.rotation_homography(jnp.array([40.0, -40.0]), h, w)
  assert hmats.shape == (2, 3, 3)
  q = _apply_np(hmats[0], _corners(h, w))  # TL, TR, BR, BL
  # Columns stay vertical; the receding left side (positive angle) shrinks.
  np.testing.assert_allclose(q[0, 0], q[3, 0], atol=1e-4)
  np.testing.assert_allclose(q[1, 0], q[2, 0], atol=1e-4)
  assert q[3, 1] - q[0, 1] < 0.8 * (q[2, 1] - q[1, 1])
  # Fitted: inside the frame, centred, touching it on one axis.
  lo, hi = q.min(0), q.max(0)
  assert np.all(lo >= -0.5 - 1e-4) and np.all(hi <= [w - 0.5 + 1e-4,
                                                      h - 0.5 + 1e-4])
  np.testing.assert_allclose((lo + hi) / 2, [(w - 1) / 2, (h - 1) / 2],
                             atol=1e-4)
  assert np.isclose(hi - lo, [w, h], atol=1e-3).any()
  # Turning the other way is the mirror image: H(-a) = M H(a) M, M the flip.
  flip = np.array([[-1.0, 0, w - 1], [0, 1, 0], [0, 0, 1]])
  mirrored = flip @ np.asarray(hmats[0], np.float64) @ flip
  np.testing.assert_allclose(hmats[1], mirrored / mirrored[2, 2], atol=1e-5)
  with pytest.raises(ValueError, match='focal'):
    perspective.rotation_homography(30.0, h, w, focal=0.4)


# Warp.
def test_warp_moves_corner_blobs_where_the_homography_says():
  h, w, inset = 48, 64, 8
  centres = [(inset, inset), (w - 1 - inset, inset),
             (w - 1 - inset, h - 1 - inset), (inset, h - 1 - inset)]
  img = np.zeros((h, w, 1), np.float32)
  for x, y in centres:
    img[y - 1:y + 2, x - 1:x + 2] = 1.0
  angles = jnp.array([30.0, -45.0, 55.0, -70.0])
  hmats = perspective.rotation_homography(angles, h, w)
  out = np.asarray(_warp(np.repeat(img[None], 4, 0), hmats))[..., 0]
  yy, xx = np.mgrid[:h, :w]
  for n in range(4):
    for x, y in centres:
      want = _apply_np(hmats[n], np.array([[x, y]], np.float64))[0]
      # The warp keeps left/right and top/bottom, so each blob stays in its
      # own quadrant of the output.
      quadrant = ((xx < w / 2) == (x < w / 2)) & ((yy < h / 2) == (y < h / 2))
      m = out[n] * quadrant
      assert m.sum() > 0.3, (n, x, y)
      got = np.array([(m * xx).sum(), (m * yy).sum()]) / m.sum()
      np.testing.assert_allclose(got, want, atol=0.5)


def test_warp_matches_skimage():
  h, w, fill = 40, 56, 0.2
  img = _astronaut(h, w)
  hmats = perspective.rotation_homography(jnp.array([45.0, -65.0]), h, w)
  # Also a general homography (shear, perspective in y), not just ours.
  general = np.array([[0.9, 0.1, 3.0], [-0.05, 1.1, -2.0], [4e-4, 2e-3, 1.0]],
                     np.float32)
  hmats = jnp.concatenate([hmats, general[None]])
  out = np.asarray(_warp(np.repeat(img[None], 3, 0), hmats, fill=fill))
  assert out.dtype == np.float32
  for n in range(3):
    # skimage maps (col, row) = (x, y), and warp wants the output -> input
    # map, which is the transform's inverse.
    tform = skimage.transform.ProjectiveTransform(
        matrix=np.asarray(hmats[n], np.float64))
    ref = skimage.transform.warp(img.astype(np.float64), tform.inverse,
                                 order=1, mode='constant', cval=fill,
                                 preserve_range=True, clip=False)
    np.testing.assert_allclose(out[n], ref, atol=1e-4)
  assert np.mean(out[0] == np.float32(fill)) > 0.2  # Both sides blank.


# scale_homography.
def test_scale_homography_is_the_pixel_centre_conjugate():
  hmat = perspective.rotation_homography(50.0, 64, 96)
  scaled = np.asarray(perspective.scale_homography(hmat, 4), np.float64)
  rng = np.random.default_rng(1)
  hr_pts = rng.uniform(-0.5, 95.5, (30, 2))
  to_lr = lambda p: (p + 0.5) / 4 - 0.5
  np.testing.assert_allclose(_apply_np(scaled, to_lr(hr_pts)),
                             to_lr(_apply_np(hmat, hr_pts)), atol=1e-4)
  # The camera model is scale-covariant: the LR-size homography is the same.
  np.testing.assert_allclose(
      scaled, perspective.rotation_homography(50.0, 16, 24), atol=1e-5)
  np.testing.assert_allclose(perspective.scale_homography(scaled, 0.25), hmat,
                             atol=1e-4, rtol=1e-5)


def test_warp_then_downscale_equals_downscale_then_scaled_warp():
  h, w, s = 64, 96, 4
  hr = np.repeat(_smooth(h, w)[None], 2, 0)
  hmats = perspective.rotation_homography(jnp.array([40.0, -65.0]), h, w)
  lr_hmats = perspective.scale_homography(hmats, s)
  a = _box_down(_warp(hr, hmats), s)
  b = np.asarray(_warp(_box_down(hr, s), lr_hmats))
  # Where both are wholly inside the warped image; the quadrilateral's edges
  # are blended with fill differently at the two resolutions.
  cover = np.minimum(_box_down(_warp(np.ones_like(hr), hmats), s),
                     np.asarray(_warp(np.ones_like(a), lr_hmats))) > 0.999
  assert cover.mean() > 0.1
  assert _psnr(a[cover], b[cover]) > 35
  assert _psnr(a, b) > 30
  # Ignoring the half-pixel shift of the pixel-centre convention is worse.
  naive = np.diag([1 / s, 1 / s, 1.0]) @ np.asarray(hmats) @ np.diag(
      [s, s, 1.0])
  c = np.asarray(_warp(_box_down(hr, s), naive.astype(np.float32)))
  assert _psnr(a[cover], c[cover]) < _psnr(a[cover], b[cover]) - 3


# random_perspective.
@pytest.mark.slow
def test_random_perspective_angles_and_alignment():
  n, h, w = 16, 24, 40
  x = np.random.default_rng(2).uniform(size=(n, h, w, 3)).astype(np.float32)
  key = jax.random.key(3)
  warped, hmats = _random_perspective(key, x, (30.0, 70.0))
  assert warped.shape == x.shape and hmats.shape == (n, 3, 3)
  angles = np.array([_angle_from_homography(m, h, w) for m in hmats])
  assert np.all((np.abs(angles) > 30 - 1e-2) & (np.abs(angles) < 70 + 1e-2))
  assert (angles > 0).any() and (angles < 0).any()
  assert len(np.unique(np.round(angles, 3))) == n
  # The returned homographies are what was applied.
  np.testing.assert_allclose(
      hmats, perspective.rotation_homography(angles, h, w), atol=2e-4)
  np.testing.assert_allclose(warped, _warp(x, hmats), atol=1e-6)
  again, again_h = _random_perspective(key, x, (30.0, 70.0))
  np.testing.assert_array_equal(warped, again)
  np.testing.assert_array_equal(hmats, again_h)
  _, other = _random_perspective(jax.random.key(4), x, (30.0, 70.0))
  assert not np.allclose(other, hmats)
  _, right = _random_perspective(key, x, (10.0, 20.0), random_sign=False)
  angles = np.array([_angle_from_homography(m, h, w) for m in right])
  assert np.all((angles > 10 - 1e-2) & (angles < 20 + 1e-2))
