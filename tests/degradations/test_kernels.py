"""sr_jax.degradations.kernels: blur kernels against independent references.

References: closed-form moments of a Gaussian, scipy.special.j1 for the sinc
kernel, and the sample covariance of random kernels.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.special

from sr_jax.degradations import kernels


def _cov(sx, sy, theta):
  r = np.array([[math.cos(theta), -math.sin(theta)],
                [math.sin(theta), math.cos(theta)]])
  return r @ np.diag([sx**2, sy**2]) @ r.T


def _moments(k):
  """Second moments [[E x^2, E xy], [E xy, E y^2]] of a kernel, x = column."""
  k = np.asarray(k, np.float64)
  c = k.shape[0] // 2
  y, x = np.mgrid[-c:c + 1, -c:c + 1]
  xx, yy, xy = (k * x * x).sum(), (k * y * y).sum(), (k * x * y).sum()
  return np.array([[xx, xy], [xy, yy]])


# Kernels.
@pytest.mark.parametrize('make', [
    lambda: kernels.gaussian_kernel(21, 2.0, 0.7, 0.4),
    lambda: kernels.generalized_gaussian_kernel(21, 3.0, 1.0, -1.0, 0.5),
    lambda: kernels.generalized_gaussian_kernel(7, 1.0, 2.0, 2.0, 4.0),
    lambda: kernels.plateau_kernel(21, 1.5, 2.5, 0.3, 1.7),
    lambda: kernels.sinc_kernel(21, math.pi / 4),
    lambda: kernels.sinc_kernel(9, math.pi),
])
def test_kernels_are_float32_and_sum_to_one(make):
  k = make()
  assert k.dtype == jnp.float32 and k.shape[0] == k.shape[1]
  np.testing.assert_allclose(float(jnp.sum(k)), 1.0, atol=1e-5)


@pytest.mark.parametrize('sx, sy, theta', [(1.0, 1.0, 0.0), (3.0, 1.2, 0.5),
                                           (1.5, 4.0, -2.1), (2.0, 1.0, 1.57)])
def test_gaussian_second_moments_match_covariance(sx, sy, theta):
  k = kernels.gaussian_kernel(41, sx, sy, theta)
  np.testing.assert_allclose(_moments(k), _cov(sx, sy, theta), atol=1e-3,
                             rtol=1e-3)
  # Centred: first moments vanish.
  c = np.arange(41) - 20
  assert abs(float((np.asarray(k).sum(0) * c).sum())) < 1e-5


def test_isotropic_gaussian_is_rotation_invariant():
  ref = kernels.gaussian_kernel(15, 2.0, 2.0, 0.0)
  for theta in (0.3, 1.0, 2.5):
    np.testing.assert_allclose(kernels.gaussian_kernel(15, 2.0, 2.0, theta),
                               ref, atol=1e-7)
  np.testing.assert_allclose(ref, ref.T, atol=1e-7)
  np.testing.assert_allclose(ref, ref[::-1], atol=1e-7)


def test_generalized_with_beta_one_is_gaussian_and_plateau_is_wider():
  args = (21, 2.0, 1.0, 0.7)
  np.testing.assert_allclose(
      kernels.generalized_gaussian_kernel(*args, 1.0),
      kernels.gaussian_kernel(*args), atol=1e-7)
  # Plateau at beta = 1 is a Cauchy-like kernel: far heavier tails.
  g = _moments(kernels.gaussian_kernel(*args))
  p = _moments(kernels.plateau_kernel(*args, 1.0))
  assert np.trace(p) > 3 * np.trace(g)


def test_kernels_accept_traced_parameters():
  f = jax.jit(lambda sx, sy, t, b: kernels.generalized_gaussian_kernel(
      11, sx, sy, t, b))
  np.testing.assert_allclose(
      f(2.0, 1.0, 0.3, 1.5),
      kernels.generalized_gaussian_kernel(11, 2.0, 1.0, 0.3, 1.5), atol=1e-7)
  with pytest.raises(ValueError, match='odd'):
    kernels.gaussian_kernel(10, 1.0, 1.0, 0.0)


@pytest.mark.parametrize('ksize, omega', [(21, math.pi / 3), (13, 2.0),
                                          (41, math.pi)])
def test_sinc_kernel_matches_scipy_j1(ksize, omega):
  raw = np.asarray(kernels.sinc_kernel(ksize, omega, normalize=False),
                   np.float64)
  c = ksize // 2
  y, x = np.mgrid[-c:c + 1, -c:c + 1]
  r = np.hypot(x, y)
  with np.errstate(invalid='ignore', divide='ignore'):
    ref = omega * scipy.special.j1(omega * r) / (2 * np.pi * r)
  ref[c, c] = omega**2 / (4 * np.pi)
  np.testing.assert_allclose(raw, ref, atol=2e-7)
  k = np.asarray(kernels.sinc_kernel(ksize, omega))
  np.testing.assert_allclose(k, ref / ref.sum(), atol=1e-6)
  # Radially symmetric, peak at the centre.
  np.testing.assert_allclose(k, k.T, atol=1e-7)
  np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
  assert k.argmax() == c * ksize + c


def test_pad_and_mask_emulate_a_smaller_kernel():
  small = kernels.plateau_kernel(7, 2.0, 1.0, 0.5, 1.5)
  padded = kernels.pad_kernel(small, 21)
  assert padded.shape == (21, 21)
  np.testing.assert_allclose(padded[7:14, 7:14], small, atol=0)
  big = kernels.plateau_kernel(21, 2.0, 1.0, 0.5, 1.5)
  masked = jax.jit(kernels.mask_kernel_support)(big, jnp.int32(7))
  np.testing.assert_allclose(masked, padded, atol=1e-7)


# Random kernels.
_RANGES = dict(sigma_x_range=(1.0, 3.0), sigma_y_range=(1.5, 2.5),
               rotation_range=(-math.pi, math.pi), betag_range=(0.5, 4.0),
               betap_range=(1.0, 2.0))


@functools.partial(jax.jit, static_argnums=(1, 2, 3))
def _one_family(key, name, n=16, ksize=41):
  return kernels.random_kernels(key, n, ksize, [name], [1.0], **_RANGES)


def test_random_iso_and_aniso_gaussians_have_covariance_in_range():
  iso = np.asarray(_one_family(jax.random.key(0), 'iso'))
  for k in iso:
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    m = _moments(k)
    assert abs(m[0, 1]) < 1e-5 and abs(m[0, 0] - m[1, 1]) < 1e-5
    assert 1.0 - 1e-3 <= math.sqrt(m[0, 0]) <= 3.0 + 1e-3
  aniso = np.asarray(_one_family(jax.random.key(1), 'aniso'))
  n_asym = 0
  for k in aniso:
    # Eigenvalues of the covariance are sigma_x^2 and sigma_y^2.
    ev = np.linalg.eigvalsh(_moments(k))
    lo, hi = np.sqrt(ev)
    assert 1.0 - 1e-3 <= lo and hi <= 3.0 + 1e-3
    assert (1.5 - 1e-3 <= lo <= 2.5 + 1e-3) or (1.5 - 1e-3 <= hi <= 2.5 + 1e-3)
    n_asym += np.abs(k - k.T).max() > 1e-4
  assert n_asym >= 12  # anisotropic kernels are (almost always) not symmetric


@pytest.mark.parametrize('name', ['generalized_iso', 'plateau_iso'])
def test_random_isotropic_families_are_symmetric(name):
  for k in np.asarray(_one_family(jax.random.key(2), name, ksize=21)):
    np.testing.assert_allclose(k, k.T, atol=1e-7)
    np.testing.assert_allclose(k, k[::-1], atol=1e-7)
    np.testing.assert_allclose(k.sum(), 1.0, atol=1e-5)


@pytest.mark.parametrize('name', ['generalized_aniso', 'plateau_aniso'])
def test_random_anisotropic_families_are_point_symmetric(name):
  ks = np.asarray(_one_family(jax.random.key(3), name, ksize=21))
  for k in ks:
    np.testing.assert_allclose(k, k[::-1, ::-1], atol=1e-7)
    np.testing.assert_allclose(k.sum(), 1.0, atol=1e-5)
  assert max(np.abs(k - k.T).max() for k in ks) > 1e-3


@pytest.mark.slow
def test_random_mixed_kernel_is_jittable_deterministic_and_mixes():
  args = (21, kernels.FAMILIES, [1 / 6] * 6)
  f = jax.jit(lambda key: kernels.random_mixed_kernel(key, *args, **_RANGES))
  a, b = f(jax.random.key(7)), f(jax.random.key(7))
  np.testing.assert_array_equal(a, b)
  assert np.abs(np.asarray(f(jax.random.key(8)) - a)).max() > 1e-4
  ks = jax.jit(lambda key: kernels.random_kernels(key, 32, *args,
                                                  **_RANGES))(jax.random.key(9))
  assert ks.shape == (32, 21, 21)
  ks = np.asarray(ks)
  n_sym = sum(np.abs(k - k.T).max() < 1e-7 for k in ks)
  assert 4 <= n_sym <= 28  # about half are isotropic families
  np.testing.assert_allclose(ks.sum((1, 2)), 1.0, atol=1e-5)


def test_random_mixed_kernel_rejects_unknown_family():
  with pytest.raises(ValueError, match='kernel_list'):
    kernels.random_mixed_kernel(jax.random.key(0), 21, ['gauss'], [1.0],
                                **_RANGES)
