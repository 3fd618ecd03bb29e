"""Perspective warp: the image plane turned about its vertical axis.

SRResCycGAN's license-plate study degrades plates by "dimensional
distortion": the plate is seen obliquely, its plane rotated by 30-70 degrees
about the vertical axis. We model that with a pinhole camera:

  * pixel (u, v) (pixel-centre coordinates: u in [0, W-1] along columns,
    v in [0, H-1] along rows, so the image covers [-0.5, W-0.5] x
    [-0.5, H-0.5]) is the 3D point (X, Y, f) with X = u - cx, Y = v - cy,
    (cx, cy) = ((W-1)/2, (H-1)/2): the image lies on the plane Z = f,
    centred on the optical axis, one pixel per unit;
  * the plane turns by theta about the vertical line X = 0, Z = f, with the
    usual right-handed R_y (x right, y down, z forward): (X, 0, 0) goes to
    (X cos theta, 0, f - X sin theta). A positive angle brings the right side
    (u > cx) towards the camera (it gets taller) and the left side away;
  * re-projection with the same focal length f gives
      u' - cx = f X cos theta / (f - X sin theta),
      v' - cy = f Y / (f - X sin theta);
    columns stay vertical lines (X fixed) and only the horizontal centre line
    stays horizontal, the others converge towards a vanishing point;
  * optionally ("fit"), a scale and translation that put the warped
    quadrilateral's bounding box inside the output frame, centred and
    touching it on its tighter axis, so no part of the plate is cropped.

All of it is one 3x3 homography H (source -> destination, H[2, 2] = 1).
`warp_perspective` samples by inverse mapping and bilinear interpolation with
`fill` outside the image, as `cv2.warpPerspective(..., BORDER_CONSTANT)` and
`skimage.transform.warp(..., order=1, mode='constant')` do.
"""
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

_HIGHEST = jax.lax.Precision.HIGHEST


def _matmul(a, b):
  # Full float32 on every backend: TF32 matmuls would move the corners of a
  # 100-pixel image by ~0.1 px.
  return jnp.matmul(a, b, precision=_HIGHEST)


def _translation(tx, ty):
  return np.array([[1.0, 0.0, tx], [0.0, 1.0, ty], [0.0, 0.0, 1.0]],
                  np.float32)


def apply_homography(hmat, points):
  """Maps points through homographies, dividing by the third coordinate.

  Args:
    hmat: [..., 3, 3] homographies.
    points: [P, 2] or [..., P, 2] (x, y) = (column, row) coordinates,
      broadcastable against hmat's leading axes.
  Returns:
    [..., P, 2] float32 mapped points.
  """
  hmat = jnp.asarray(hmat, jnp.float32)
  pts = jnp.asarray(points, jnp.float32)
  x, y = pts[..., 0], pts[..., 1]
  h = [[hmat[..., i, j, None] for j in range(3)] for i in range(3)]
  w = h[2][0] * x + h[2][1] * y + h[2][2]
  xo = (h[0][0] * x + h[0][1] * y + h[0][2]) / w
  yo = (h[1][0] * x + h[1][1] * y + h[1][2]) / w
  return jnp.stack([xo, yo], axis=-1)


def image_corners(height: int, width: int) -> np.ndarray:
  """[4, 2] float32 (x, y) corners of the image extent, pixel-centre coords.

  Order: top-left, top-right, bottom-right, bottom-left. The extent is
  half a pixel beyond the outer pixel centres.
  """
  x0, y0, x1, y1 = -0.5, -0.5, width - 0.5, height - 0.5
  return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], np.float32)


def rotation_homography(angle_deg, height: int, width: int,
                        focal: float = 1.0, fit: bool = True):
  """Homography of the image plane turned about its vertical centre line.

  Args:
    angle_deg: scalar or array of angles in degrees, in (-90, 90); may be
      traced. Positive angles bring the right side towards the camera.
    height, width: static image size H, W.
    focal: focal length f as a multiple of the width, f = focal * W. The
      default 1.0 is a normal lens (horizontal field of view 2 atan(1/2),
      about 53 degrees). Measuring f in widths makes the foreshortening of a
      given angle (the ratio of the two side heights, (2 focal + sin) /
      (2 focal - sin)) independent of the aspect ratio, since a rotation
      about the vertical axis only sees horizontal distances. Must be > 0.5
      so that the whole plane stays in front of the camera at every angle.
    fit: scale and translate so that the warped image extent lies inside the
      output frame [-0.5, W-0.5] x [-0.5, H-0.5], centred, touching it on
      the tighter axis. At angle 0 this is the identity.
  Returns:
    angle_deg.shape + [3, 3] float32, mapping source (u, v, 1) to destination
    pixel coordinates up to scale, normalised so H[..., 2, 2] = 1.
  """
  if isinstance(focal, (int, float)) and not focal > 0.5:
    raise ValueError(f'focal must be > 0.5 (in image widths) so the rotated '
                     f'plane stays in front of the camera; got {focal}.')
  angle = jnp.deg2rad(jnp.asarray(angle_deg, jnp.float32))
  f = jnp.asarray(focal, jnp.float32) * width
  cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
  cos, sin = jnp.cos(angle), jnp.sin(angle)
  zero, one = jnp.zeros_like(angle), jnp.ones_like(angle)
  # In centred coordinates (X, Y), divided through by f:
  # (X, Y, 1) -> (cos X, Y, 1 - sin X / f).
  rot = jnp.stack([
      jnp.stack([cos, zero, zero], -1),
      jnp.stack([zero, one, zero], -1),
      jnp.stack([-sin / f, zero, one], -1)], -2)
  hmat = _matmul(rot, _translation(-cx, -cy))
  if fit:
    quad = apply_homography(hmat, image_corners(height, width))
    lo, hi = jnp.min(quad, axis=-2), jnp.max(quad, axis=-2)  # [..., 2]
    span = hi - lo
    k = jnp.minimum(width / span[..., 0], height / span[..., 1])
    mid = (lo + hi) / 2.0
    scale = jnp.stack([
        jnp.stack([k, zero, -k * mid[..., 0]], -1),
        jnp.stack([zero, k, -k * mid[..., 1]], -1),
        jnp.stack([zero, zero, one], -1)], -2)
    hmat = _matmul(scale, hmat)
  hmat = _matmul(_translation(cx, cy), hmat)
  return hmat / hmat[..., 2:3, 2:3]


def scale_homography(hmat, scale):
  """The same warp expressed in the coordinates of a downscaled image.

  With the pixel-centre convention of area downscaling by an integer factor
  s (pixel i of the LR image covers HR pixels [s i, s i + s)), a point maps
  as x_lr = (x_hr + 0.5) / s - 0.5, i.e. x_lr = A x_hr; the warp H on the HR
  image is A H A^-1 on the LR image.

  Args:
    hmat: [..., 3, 3] source -> destination homographies in HR pixels.
    scale: downscaling factor s (e.g. 4), may be traced.
  Returns:
    [..., 3, 3] float32 homographies in LR pixels, H[..., 2, 2] = 1.
  """
  s = jnp.asarray(scale, jnp.float32)
  t = 0.5 / s - 0.5
  zero, one = jnp.zeros_like(s), jnp.ones_like(s)
  a = jnp.stack([jnp.stack([1 / s, zero, t]), jnp.stack([zero, 1 / s, t]),
                 jnp.stack([zero, zero, one])])
  a_inv = jnp.stack([jnp.stack([s, zero, -t * s]),
                     jnp.stack([zero, s, -t * s]),
                     jnp.stack([zero, zero, one])])
  out = _matmul(_matmul(a, jnp.asarray(hmat, jnp.float32)), a_inv)
  return out / out[..., 2:3, 2:3]


def _inverse(hmat):
  """[..., 3, 3] exact inverse via the adjugate (no LAPACK call)."""
  m = hmat
  cof = lambda i, j: (m[..., (i + 1) % 3, (j + 1) % 3] *
                      m[..., (i + 2) % 3, (j + 2) % 3] -
                      m[..., (i + 1) % 3, (j + 2) % 3] *
                      m[..., (i + 2) % 3, (j + 1) % 3])
  # adj[i, j] = cofactor[j, i].
  adj = jnp.stack([jnp.stack([cof(j, i) for j in range(3)], -1)
                   for i in range(3)], -2)
  det = jnp.sum(m[..., 0, :] * jnp.stack([cof(0, j) for j in range(3)], -1),
                axis=-1)
  return adj / det[..., None, None]


def _bilinear(img, xs, ys, valid, fill):
  """Samples one [H, W, C] image at float (xs, ys) [H', W'], fill outside.

  The image is padded by one pixel of `fill`, so a sample between the border
  pixel and the outside blends the two (zero-padding semantics, as OpenCV's
  BORDER_CONSTANT and skimage's mode='constant'); samples further out read
  only padding.
  """
  h, w, c = img.shape
  pad = jnp.pad(img, ((1, 1), (1, 1), (0, 0)), constant_values=fill)
  flat = pad.reshape((h + 2) * (w + 2), c)
  # Clip before the int cast: far-away (or non-finite) coordinates would
  # overflow int32; everything beyond -1 or the far border is padding anyway.
  xs = jnp.clip(jnp.where(valid, xs, -2.0), -2.0, w + 1.0)
  ys = jnp.clip(jnp.where(valid, ys, -2.0), -2.0, h + 1.0)
  x0, y0 = jnp.floor(xs), jnp.floor(ys)
  fx, fy = (xs - x0)[..., None], (ys - y0)[..., None]
  x0, y0 = x0.astype(jnp.int32), y0.astype(jnp.int32)

  def tap(yi, xi):
    yi = jnp.clip(yi, -1, h) + 1
    xi = jnp.clip(xi, -1, w) + 1
    return flat[yi * (w + 2) + xi]

  top = tap(y0, x0) * (1 - fx) + tap(y0, x0 + 1) * fx
  bottom = tap(y0 + 1, x0) * (1 - fx) + tap(y0 + 1, x0 + 1) * fx
  return top * (1 - fy) + bottom * fy


def warp_perspective(x, homographies, *, fill: float = 0.0):
  """Warps each image by its own homography (inverse mapping, bilinear).

  Args:
    x: [N, H, W, C] float images (any range).
    homographies: [N, 3, 3] source -> destination homographies in pixel
      coordinates (x = column, y = row, pixel centres at integers), as from
      `rotation_homography`.
    fill: value of destination pixels whose source falls outside the image.
  Returns:
    [N, H, W, C] float32: out[n, y, x] = x[n] sampled bilinearly at
    H_n^-1 (x, y, 1), with x[n] padded by `fill`. Destinations that map
    behind the camera (w <= 0 after the inverse, beyond the vanishing line)
    get `fill` too.
  """
  n, h, w, c = x.shape
  if homographies.shape != (n, 3, 3):
    raise ValueError(f'warp_perspective needs homographies of shape '
                     f'[{n}, 3, 3] (one per image); got {homographies.shape}.')
  inv = _inverse(jnp.asarray(homographies, jnp.float32))
  ys, xs = jnp.meshgrid(jnp.arange(h, dtype=jnp.float32),
                        jnp.arange(w, dtype=jnp.float32), indexing='ij')
  hi = inv[:, :, :, None, None]  # [N, 3, 3, 1, 1]
  den = hi[:, 2, 0] * xs + hi[:, 2, 1] * ys + hi[:, 2, 2]  # [N, H, W]
  valid = den > 0
  safe = jnp.where(valid, den, 1.0)
  src_x = (hi[:, 0, 0] * xs + hi[:, 0, 1] * ys + hi[:, 0, 2]) / safe
  src_y = (hi[:, 1, 0] * xs + hi[:, 1, 1] * ys + hi[:, 1, 2]) / safe
  sample = jax.vmap(_bilinear, in_axes=(0, 0, 0, 0, None))
  return sample(x.astype(jnp.float32), src_x, src_y, valid,
                jnp.float32(fill))


def random_perspective(key, x, angle_range: Tuple[float, float] = (30.0, 70.0),
                       *, random_sign: bool = True, focal: float = 1.0,
                       fit: bool = True, fill: float = 0.0):
  """Turns each image's plane by its own random angle about the vertical axis.

  Args:
    key: jax.random key.
    x: [N, H, W, C] float images.
    angle_range: (lo, hi) degrees, 0 <= lo <= hi < 90; the magnitude is
      U(lo, hi) per image (SRResCycGAN: 30-70).
    random_sign: turn left or right with equal probability per image; else
      every angle is positive (right side towards the camera).
    focal, fit: as in `rotation_homography`.
    fill: value outside the warped image.
  Returns:
    (warped [N, H, W, C] float32, homographies [N, 3, 3] float32 in x's
    pixel coordinates). To warp the other image of an aligned pair the same
    way: `warp_perspective(y, homographies)` for y of x's size,
    `scale_homography(homographies, s)` for y s times smaller than x (its LR)
    and `scale_homography(homographies, 1 / s)` for y s times larger (its
    HR). The construction is scale-covariant, so these equal
    `rotation_homography` of the same angles at y's size.
  """
  n, h, w, _ = x.shape
  lo, hi = angle_range
  if isinstance(hi, (int, float)) and not 0 <= lo <= hi < 90:
    raise ValueError(f'angle_range must satisfy 0 <= lo <= hi < 90 degrees '
                     f'(a plane at 90 degrees is seen edge-on); got '
                     f'{angle_range}.')
  k_angle, k_sign = jax.random.split(key)
  angle = jax.random.uniform(k_angle, (n,), jnp.float32, lo, hi)
  if random_sign:
    angle = jnp.where(jax.random.bernoulli(k_sign, 0.5, (n,)), angle, -angle)
  hmats = rotation_homography(angle, h, w, focal=focal, fit=fit)
  return warp_perspective(x, hmats, fill=fill), hmats
