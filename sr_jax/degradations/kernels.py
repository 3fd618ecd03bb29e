"""Blur kernels of Real-ESRGAN's degradation model, as pure JAX functions.

Real-ESRGAN (Wang et al. 2021, sec. 3.2) blurs with a kernel drawn from six
Gaussian-like families (isotropic / anisotropic Gaussian, generalized
Gaussian, plateau-shaped) or, with some probability, a circular low-pass
("sinc") kernel that imitates ringing. BasicSR builds them in numpy
(`basicsr/data/degradations.py`); here every kernel is a jnp function whose
scalar parameters may be traced, so sampling happens inside `jax.jit`.

Conventions (the same as BasicSR's `mesh_grid`):
  * kernels are [ksize, ksize] float32 with a static odd `ksize`, centred on
    pixel (ksize // 2, ksize // 2), and sum to 1;
  * `kernel[row, col]` sits at offset d = (x, y) = (col - c, row - c): x runs
    along columns (width), y along rows (height);
  * covariance Sigma = R diag(sigma_x^2, sigma_y^2) R^T with
    R = [[cos theta, -sin theta], [sin theta, cos theta]], theta in radians.
    So sum(k * x^2) = Sigma[0, 0], sum(k * x * y) = Sigma[0, 1] (up to
    truncation and sampling, negligible for sigma >= 1 and a wide kernel).

Random kernel size. Real-ESRGAN draws the size from {7, 9, ..., 21} per
image, which would make shapes dynamic. We keep one static `ksize` (21 in
Real-ESRGAN) and emulate a smaller size k by zeroing the kernel outside the
central k x k window and renormalising (`mask_kernel_support`, which accepts a
traced k). This is exactly what BasicSR does after sampling (it zero-pads
every kernel to 21 x 21), since the kernel values are the same function
sampled at the same offsets; `pad_kernel` does the static zero-padding.
"""
import math
from typing import Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

FAMILIES = ('iso', 'aniso', 'generalized_iso', 'generalized_aniso',
            'plateau_iso', 'plateau_aniso')

# Nodes of the trapezoid rule for Bessel's integral in `_bessel_j1`. The rule
# is exact up to aliased terms J_{1 +- k M}(z), negligible (< 1e-10) while
# |z| < ~0.75 M, i.e. omega_c * r < 190: any ksize up to ~85 at omega_c = pi.
_J1_NODES = 256


def _check_ksize(ksize: int) -> None:
  if not isinstance(ksize, (int, np.integer)) or ksize < 1 or ksize % 2 == 0:
    raise ValueError(f'ksize must be a positive odd Python int (the kernel '
                     'needs a centre pixel and a static shape), got '
                     f'{ksize!r}.')


def _grid(ksize: int) -> Tuple[np.ndarray, np.ndarray]:
  """(x, y) offsets from the centre, each [ksize, ksize] float32 (x is the
  column)."""
  ax = np.arange(ksize, dtype=np.float32) - (ksize // 2)
  y, x = np.meshgrid(ax, ax, indexing='ij')
  return x, y


def _normalize(k):
  return (k / jnp.sum(k)).astype(jnp.float32)


def mahalanobis_sq(ksize: int, sigma_x, sigma_y, theta):
  """d^T Sigma^-1 d on the kernel grid: [ksize, ksize] float32, >= 0.

  Sigma^-1 = R diag(1/sx^2, 1/sy^2) R^T, so the form is (u/sx)^2 + (v/sy)^2
  with (u, v) = R^T d, the offset in the kernel's principal axes. Writing it
  that way avoids a 2x2 inverse of traced values.
  """
  _check_ksize(ksize)
  x, y = _grid(ksize)
  c, s = jnp.cos(theta), jnp.sin(theta)
  u = c * x + s * y
  v = -s * x + c * y
  return jnp.square(u / sigma_x) + jnp.square(v / sigma_y)


def gaussian_kernel(ksize: int, sigma_x, sigma_y, theta):
  """Bivariate Gaussian exp(-0.5 d^T Sigma^-1 d), normalised.

  Args:
    ksize: static odd kernel size.
    sigma_x, sigma_y: std along the kernel's principal axes, in pixels, > 0
      (scalars, may be traced). sigma_x == sigma_y gives an isotropic kernel.
    theta: rotation of the principal axes in radians.
  Returns:
    [ksize, ksize] float32 summing to 1.
  """
  return _normalize(jnp.exp(-0.5 * mahalanobis_sq(ksize, sigma_x, sigma_y,
                                                  theta)))


def generalized_gaussian_kernel(ksize: int, sigma_x, sigma_y, theta, beta):
  """Generalized Gaussian exp(-0.5 (d^T Sigma^-1 d)^beta), normalised.

  beta = 1 is the Gaussian; beta < 1 gives heavier tails, beta > 1 a flatter
  top and sharper fall-off (Real-ESRGAN eq. 2; BasicSR raises the quadratic
  form, not its square root, to beta, and so do we).
  Returns [ksize, ksize] float32 summing to 1.
  """
  q = mahalanobis_sq(ksize, sigma_x, sigma_y, theta)
  return _normalize(jnp.exp(-0.5 * jnp.power(q, beta)))


def plateau_kernel(ksize: int, sigma_x, sigma_y, theta, beta):
  """Plateau-shaped kernel 1 / (1 + (d^T Sigma^-1 d)^beta), normalised.

  Real-ESRGAN's plateau distribution (sec. 3.2, BasicSR
  `bivariate_plateau`); polynomial tails, so much wider than a Gaussian.
  Returns [ksize, ksize] float32 summing to 1.
  """
  q = mahalanobis_sq(ksize, sigma_x, sigma_y, theta)
  return _normalize(1.0 / (jnp.power(q, beta) + 1.0))


def _bessel_j1(z):
  """Bessel function J1 of real z (any shape), float32, abs error < 1e-6.

  Bessel's integral J1(z) = 1/(2 pi) int_0^{2 pi} cos(t - z sin t) dt has a
  smooth periodic integrand, so the M-node trapezoid rule converges
  geometrically (its error is the aliased J_{1 +- kM}(z)). Measured against
  scipy.special.j1 for 0 <= z <= 100: < 9e-7, the residue being float32
  rounding of z sin t. We did not rely on `jax.scipy.special.bessel_jn`,
  whose fixed-length recurrence we have not checked at large z.
  """
  t = jnp.asarray(2.0 * np.pi * np.arange(_J1_NODES) / _J1_NODES, jnp.float32)
  z = jnp.asarray(z, jnp.float32)
  return jnp.mean(jnp.cos(t - z[..., None] * jnp.sin(t)), axis=-1)


def sinc_kernel(ksize: int, omega_c, normalize: bool = True):
  """Circular low-pass ("2D sinc", jinc) kernel with cutoff omega_c.

  k(r) = omega_c J1(omega_c r) / (2 pi r), k(0) = omega_c^2 / (4 pi): the
  ideal low-pass with a disc of radius omega_c (rad/pixel) in the frequency
  domain (BasicSR `circular_lowpass_kernel`). Real-ESRGAN samples omega_c in
  [pi/3, pi] (ksize < 13) or [pi/5, pi], producing ringing and overshoot.

  Args:
    ksize: static odd kernel size.
    omega_c: cutoff in radians per pixel, (0, pi] (scalar, may be traced).
    normalize: divide by the sum (True, the kernel used for filtering); False
      returns the raw samples of the formula above (for testing).
  Returns:
    [ksize, ksize] float32, radially symmetric.
  """
  _check_ksize(ksize)
  x, y = _grid(ksize)
  r = np.sqrt(x * x + y * y)
  safe_r = np.where(r == 0, 1.0, r).astype(np.float32)
  k = omega_c * _bessel_j1(omega_c * safe_r) / (2.0 * np.pi * safe_r)
  k = jnp.where(r == 0, jnp.square(omega_c) / (4.0 * np.pi), k)
  return _normalize(k) if normalize else k.astype(jnp.float32)


def pad_kernel(kernel, ksize: int):
  """Zero-pads a [k, k] kernel (k odd, static) to [ksize, ksize], centred."""
  _check_ksize(ksize)
  k = kernel.shape[-1]
  if kernel.shape[-2:] != (k, k) or k % 2 == 0 or k > ksize:
    raise ValueError(f'pad_kernel needs a square odd kernel no larger than '
                     f'{ksize}, got shape {kernel.shape}.')
  p = (ksize - k) // 2
  pad = [(0, 0)] * (kernel.ndim - 2) + [(p, p), (p, p)]
  return jnp.pad(kernel, pad)


def mask_kernel_support(kernel, size):
  """Keeps the central size x size window of `kernel` and renormalises.

  Equals building the kernel at `size` and zero-padding it (`pad_kernel`),
  but `size` may be traced, so Real-ESRGAN's random kernel size (odd, 7..21)
  can be drawn per sample inside `jax.jit`.
  Args:
    kernel: [ksize, ksize] float, ksize odd.
    size: odd int scalar <= ksize (may be traced).
  Returns:
    [ksize, ksize] float32 summing to 1.
  """
  ksize = kernel.shape[-1]
  _check_ksize(ksize)
  x, y = _grid(ksize)
  half = (size - 1) // 2
  inside = (jnp.abs(x) <= half) & (jnp.abs(y) <= half)
  return _normalize(jnp.where(inside, kernel, 0.0))


def _uniform(key, lo_hi):
  lo, hi = lo_hi
  return jax.random.uniform(key, (), jnp.float32, lo, hi)


def _sample_beta(key, beta_range):
  """BasicSR's beta draw: U(beta_lo, 1) or U(1, beta_hi) with prob 1/2 each.

  That puts half the mass on each side of the Gaussian (beta = 1) however
  asymmetric the range is (Real-ESRGAN: generalized [0.5, 4]). We keep
  BasicSR's quirk for ranges above 1: with Real-ESRGAN's plateau range [1, 2]
  the "below" draw is U(1, 1), so beta is exactly 1 half of the time.
  """
  lo, hi = beta_range
  k_side, k_val = jax.random.split(key)
  u = jax.random.uniform(k_val, (), jnp.float32)
  below = lo + (1.0 - lo) * u
  above = 1.0 + (hi - 1.0) * u
  return jnp.where(jax.random.bernoulli(k_side, 0.5), below, above)


def random_mixed_kernel(key, ksize: int, kernel_list: Sequence[str],
                        kernel_prob: Sequence[float],
                        sigma_x_range: Tuple[float, float],
                        sigma_y_range: Tuple[float, float],
                        rotation_range: Tuple[float, float] = (-math.pi,
                                                               math.pi),
                        betag_range: Tuple[float, float] = (0.5, 8.0),
                        betap_range: Tuple[float, float] = (0.5, 8.0)):
  """One kernel from a randomly chosen family, BasicSR `random_mixed_kernels`.

  Args:
    key: jax.random key.
    ksize: static odd kernel size.
    kernel_list: family names from FAMILIES (static).
    kernel_prob: probability of each entry of kernel_list (static, sums to 1).
    sigma_x_range, sigma_y_range: uniform ranges of the stds, in pixels.
      Isotropic families draw sigma_x and set sigma_y = sigma_x, theta = 0.
    rotation_range: uniform range of theta, radians (anisotropic only).
    betag_range, betap_range: beta ranges of the generalized and plateau
      families, drawn as in `_sample_beta`.
  Returns:
    [ksize, ksize] float32 summing to 1.
  BasicSR's optional multiplicative kernel noise (noise_range) is not
  implemented; Real-ESRGAN leaves it off.
  """
  _check_ksize(ksize)
  unknown = [name for name in kernel_list if name not in FAMILIES]
  if unknown or len(kernel_list) != len(kernel_prob) or not kernel_list:
    raise ValueError(f'kernel_list must be non-empty names from {FAMILIES} '
                     f'with one probability each; got {list(kernel_list)} '
                     f'and {list(kernel_prob)}.')

  def make_branch(name):
    iso = name.endswith('_iso') or name == 'iso'

    def branch(keys):
      k_sx, k_sy, k_theta, k_beta = keys
      sigma_x = _uniform(k_sx, sigma_x_range)
      if iso:
        sigma_y, theta = sigma_x, jnp.float32(0.0)
      else:
        sigma_y = _uniform(k_sy, sigma_y_range)
        theta = _uniform(k_theta, rotation_range)
      if name.startswith('generalized'):
        return generalized_gaussian_kernel(
            ksize, sigma_x, sigma_y, theta, _sample_beta(k_beta, betag_range))
      if name.startswith('plateau'):
        return plateau_kernel(ksize, sigma_x, sigma_y, theta,
                              _sample_beta(k_beta, betap_range))
      return gaussian_kernel(ksize, sigma_x, sigma_y, theta)

    return branch

  k_family, k_params = jax.random.split(key)
  p = jnp.asarray(kernel_prob, jnp.float32)
  index = jax.random.choice(k_family, len(kernel_list), p=p / jnp.sum(p))
  keys = tuple(jax.random.split(k_params, 4))
  return jax.lax.switch(index, [make_branch(n) for n in kernel_list], keys)


def random_kernels(key, n: int, ksize: int, *args, **kwargs):
  """`n` independent `random_mixed_kernel`s: [n, ksize, ksize] float32.

  Extra arguments are those of `random_mixed_kernel` after `ksize`. Under
  vmap `lax.switch` evaluates every family and selects, which costs
  len(kernel_list) tiny kernels per sample: negligible next to the blur.
  """
  return jax.vmap(
      lambda k: random_mixed_kernel(k, ksize, *args, **kwargs))(
          jax.random.split(key, n))


def random_sinc_kernels(key, n: int, ksize: int,
                        omega_range: Tuple[float, float]):
  """`n` sinc kernels with omega_c ~ U(omega_range): [n, ksize, ksize]."""
  omegas = jax.random.uniform(key, (n,), jnp.float32, *omega_range)
  return jax.vmap(lambda w: sinc_kernel(ksize, w))(omegas)
