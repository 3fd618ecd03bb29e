"""sr_jax.losses.adversarial: the classic GAN objectives against hand-worked
values, and the relativistic average / centred variants against numpy
formulas.

The references of the variants are written from the papers' formulas
(Jolicoeur-Martineau 2018 and 2019) in float64 numpy, with gradients by the
chain rule by hand, and those gradients are themselves checked by finite
differences.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from sr_jax.losses import adversarial

# Hand-worked logits: mean real 0.5, mean fake -0.875, centre m = -0.1875.
REAL = np.array([1.5, -0.5])
FAKE = np.array([0.25, -2.0])


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


# Per-sample term for the "should look real" set (a) and the "should look
# fake" set (b), with their derivatives, for each family:
#   GAN:   a = -log s(y),       b = -log(1 - s(y))
#   LS:    a = (y - 1)^2,       b = (y + 1)^2
#   hinge: a = max(0, 1 - y),   b = max(0, 1 + y)
FAMILIES = {
    'gan': (lambda y: -np.log(_sigmoid(y)), lambda y: _sigmoid(y) - 1.0,
            lambda y: -np.log(1.0 - _sigmoid(y)), _sigmoid),
    'ls': (lambda y: (y - 1.0)**2, lambda y: 2.0 * (y - 1.0),
           lambda y: (y + 1.0)**2, lambda y: 2.0 * (y + 1.0)),
    'hinge': (lambda y: np.maximum(0.0, 1.0 - y),
              lambda y: -(y < 1.0).astype(np.float64),
              lambda y: np.maximum(0.0, 1.0 + y),
              lambda y: (y > -1.0).astype(np.float64)),
}
VARIANTS = {  # registered name: (centring, family)
    'ragan': ('ra', 'gan'), 'ralsgan': ('ra', 'ls'),
    'rahinge': ('ra', 'hinge'), 'rcgan': ('rc', 'gan'),
    'rclsgan': ('rc', 'ls'), 'rchinge': ('rc', 'hinge'),
}


def _reference(centring, family, real, fake, generator, detach=False):
  """(loss, d loss / d real, d loss / d fake) in float64 numpy.

  D's loss is (mean a(y_r) + mean b(y_f)) / 2; G's swaps the sets:
  (mean a(y_f) + mean b(y_r)) / 2. Ra: y_r = r - mean(f), y_f = f - mean(r).
  Rc: y_r = r - m, y_f = f - m with m = (mean(r) + mean(f)) / 2. `detach`:
  the means are constants (BasicSR's RaGAN discriminator).
  """
  a, da, b, db = FAMILIES[family]
  n, k = len(real), len(fake)
  if centring == 'ra':
    y_r, y_f = real - fake.mean(), fake - real.mean()
  else:
    m = (real.mean() + fake.mean()) / 2
    y_r, y_f = real - m, fake - m
  if generator:  # a on the fakes, b on the reals.
    loss = (a(y_f).mean() + b(y_r).mean()) / 2
    g_yr, g_yf = db(y_r) / n / 2, da(y_f) / k / 2  # dL/dy_r, dL/dy_f.
  else:
    loss = (a(y_r).mean() + b(y_f).mean()) / 2
    g_yr, g_yf = da(y_r) / n / 2, db(y_f) / k / 2
  # Chain rule through the subtracted means.
  if detach:
    d_real, d_fake = g_yr, g_yf
  elif centring == 'ra':  # dy_f/dr_i = -1/n, dy_r/df_j = -1/k.
    d_real = g_yr - g_yf.sum() / n
    d_fake = g_yf - g_yr.sum() / k
  else:  # dm/dr_i = 1/(2n), dm/df_j = 1/(2k).
    total = g_yr.sum() + g_yf.sum()
    d_real = g_yr - total / (2 * n)
    d_fake = g_yf - total / (2 * k)
  return loss, d_real, d_fake


def _finite_difference(fn, x, eps=1e-6):
  grad = np.zeros_like(x)
  for i in range(len(x)):
    step = np.zeros_like(x)
    step[i] = eps
    grad[i] = (fn(x + step) - fn(x - step)) / (2 * eps)
  return grad


def _jax_value_and_grads(loss_fn, real, fake):
  real, fake = jnp.asarray(real, jnp.float32), jnp.asarray(fake, jnp.float32)
  d_real, d_fake = jax.grad(loss_fn, argnums=(0, 1))(real, fake)
  return loss_fn(real, fake), d_real, d_fake


def _logit_sets():
  # Hand-worked pair, plus random logits of unequal set sizes (no hinge kink
  # within 1e-3 of +-1, so finite differences are exact).
  rng = np.random.default_rng(0)
  yield REAL, FAKE
  yield rng.normal(0, 1.5, 5), rng.normal(-0.5, 1.5, 3)


def test_reference_gradients_match_finite_differences():
  # Checks the test's own hand-derived gradients before they are used.
  for variant in VARIANTS.values():
    for generator in (False, True):
      for real, fake in _logit_sets():
        reference = functools.partial(_reference, *variant,
                                      generator=generator)
        _, d_real, d_fake = reference(real, fake)
        np.testing.assert_allclose(
            d_real, _finite_difference(
                lambda r, f=fake, ref=reference: ref(r, f)[0], real),
            atol=1e-7)
        np.testing.assert_allclose(
            d_fake, _finite_difference(
                lambda f, r=real, ref=reference: ref(r, f)[0], fake),
            atol=1e-7)


@pytest.mark.parametrize('name', sorted(VARIANTS))
def test_values_and_gradients_match_formulas(name):
  centring, family = VARIANTS[name]
  objective = losses.get_adversarial_loss(name)
  for generator, loss_fn in ((False, objective.d_loss),
                             (True, objective.g_loss)):
    for real, fake in _logit_sets():
      want = _reference(centring, family, real, fake, generator)
      got = _jax_value_and_grads(loss_fn, real, fake)
      np.testing.assert_allclose(got[0], want[0], rtol=1e-5, atol=1e-6,
                                 err_msg=f'{name} generator={generator}')
      np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-6,
                                 err_msg=f'{name} d/d real')
      np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-6,
                                 err_msg=f'{name} d/d fake')


def test_centred_hand_worked():
  # m = (0.5 - 0.875) / 2 = -0.1875: y_r = (1.6875, -0.3125),
  # y_f = (0.4375, -1.8125).
  real, fake = jnp.array(REAL), jnp.array(FAKE)
  rchinge = losses.get_adversarial_loss('rchinge')
  # D: max(0, 1 - y_r) = (0, 1.3125) -> 0.65625; max(0, 1 + y_f) =
  # (1.4375, 0) -> 0.71875; average 0.6875.
  np.testing.assert_allclose(rchinge.d_loss(real, fake), 0.6875, rtol=1e-6)
  # G: max(0, 1 - y_f) = (0.5625, 2.8125) -> 1.6875; max(0, 1 + y_r) =
  # (2.6875, 0.6875) -> 1.6875.
  np.testing.assert_allclose(rchinge.g_loss(real, fake), 1.6875, rtol=1e-6)
  # dD/dr: -1/2 * 1/2 on the one real inside the margin, and through m each
  # real gets -(sum of dL/dy) / (2n) = -(-0.25 + 0.25) / 4 = 0.
  np.testing.assert_allclose(jax.grad(rchinge.d_loss)(real, fake),
                             [0.0, -0.25], atol=1e-7)
  rclsgan = losses.get_adversarial_loss('rclsgan')
  # D: ((0.6875^2 + 1.3125^2) / 2 + (1.4375^2 + 0.8125^2) / 2) / 2.
  np.testing.assert_allclose(
      rclsgan.d_loss(real, fake),
      ((0.6875**2 + 1.3125**2) / 2 + (1.4375**2 + 0.8125**2) / 2) / 2,
      rtol=1e-6)
  rcgan = losses.get_adversarial_loss('rcgan')
  y_r, y_f = np.array([1.6875, -0.3125]), np.array([0.4375, -1.8125])
  np.testing.assert_allclose(
      rcgan.g_loss(real, fake),
      (-np.mean(np.log(_sigmoid(y_f))) - np.mean(np.log(1 - _sigmoid(y_r))))
      / 2, rtol=1e-6)


def test_two_term_losses_average_their_terms():
  real, fake = jnp.array(REAL), jnp.array(FAKE)
  # Ra: y_r = r + 0.875 = (2.375, 0.375), y_f = f - 0.5 = (-0.25, -2.5).
  ls_real = (1.375**2 + 0.625**2) / 2  # E[(y_r - 1)^2]
  ls_fake = (0.75**2 + 1.5**2) / 2  # E[(y_f + 1)^2]
  ralsgan = losses.get_adversarial_loss('ralsgan')
  np.testing.assert_allclose(ralsgan.d_loss(real, fake),
                             (ls_real + ls_fake) / 2, rtol=1e-6)
  assert not np.isclose(ralsgan.d_loss(real, fake), ls_real + ls_fake)
  # G: E[(y_f - 1)^2] = (1.5625 + 12.25) / 2, E[(y_r + 1)^2] =
  # (11.390625 + 1.890625) / 2.
  np.testing.assert_allclose(
      ralsgan.g_loss(real, fake),
      ((1.5625 + 12.25) / 2 + (11.390625 + 1.890625) / 2) / 2, rtol=1e-6)
  rahinge = losses.get_adversarial_loss('rahinge')
  # D: max(0, 1 - y_r) = (0, 0.625) -> 0.3125; max(0, 1 + y_f) =
  # (0.75, 0) -> 0.375. G: max(0, 1 - y_f) = (1.25, 3.5) -> 2.375;
  # max(0, 1 + y_r) = (3.375, 1.375) -> 2.375.
  np.testing.assert_allclose(rahinge.d_loss(real, fake), (0.3125 + 0.375) / 2,
                             rtol=1e-6)
  np.testing.assert_allclose(rahinge.g_loss(real, fake), (2.375 + 2.375) / 2,
                             rtol=1e-6)
  # Every Ra / Rc objective at real = fake = 0 logits: each term is the same
  # number t (log 2, 1 or 1), and the loss is t, not 2t.
  zeros = jnp.zeros(4)
  for name, per_term in (('ragan', np.log(2.0)), ('ragan_basicsr', np.log(2.0)),
                         ('rcgan', np.log(2.0)), ('ralsgan', 1.0),
                         ('rclsgan', 1.0), ('rahinge', 1.0), ('rchinge', 1.0)):
    objective = losses.get_adversarial_loss(name)
    np.testing.assert_allclose(objective.d_loss(zeros, zeros), per_term,
                               rtol=1e-6, err_msg=name)
    np.testing.assert_allclose(objective.g_loss(zeros, zeros), per_term,
                               rtol=1e-6, err_msg=name)


def test_ragan_basicsr_detaches_means_in_d_only():
  paper = losses.get_adversarial_loss('ragan')
  basicsr = losses.get_adversarial_loss('ragan_basicsr')
  assert not basicsr.gradient_penalty
  assert basicsr.g_loss is paper.g_loss
  for real, fake in _logit_sets():
    got = _jax_value_and_grads(basicsr.d_loss, real, fake)
    want = _reference('ra', 'gan', real, fake, False, detach=True)
    paper_got = _jax_value_and_grads(paper.d_loss, real, fake)
    # Same value as the paper's form.
    np.testing.assert_allclose(got[0], paper_got[0], rtol=1e-6)
    np.testing.assert_allclose(got[0], want[0], rtol=1e-5)
    # Gradients: only the direct terms, 0.5 * (s(y_r) - 1) / n and
    # 0.5 * s(y_f) / k, which differ from the paper form's.
    np.testing.assert_allclose(got[1], want[1], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(got[2], want[2], rtol=1e-5, atol=1e-7)
    assert np.abs(np.asarray(got[1]) - np.asarray(paper_got[1])).max() > 1e-2
    assert np.abs(np.asarray(got[2]) - np.asarray(paper_got[2])).max() > 1e-2
  # By hand on REAL, FAKE: y_r = (2.375, 0.375), y_f = (-0.25, -2.5).
  # Detached dD/dr_i = (s(y_r_i) - 1) / 4; the paper form adds
  # -sum_j s(y_f_j) / 4 / n to every real.
  y_r, y_f = np.array([2.375, 0.375]), np.array([-0.25, -2.5])
  detached = (_sigmoid(y_r) - 1) / 4
  np.testing.assert_allclose(
      jax.grad(basicsr.d_loss)(jnp.array(REAL), jnp.array(FAKE)), detached,
      rtol=1e-5)
  np.testing.assert_allclose(
      jax.grad(paper.d_loss)(jnp.array(REAL), jnp.array(FAKE)),
      detached - _sigmoid(y_f).sum() / 4 / 2, rtol=1e-5)


@pytest.mark.parametrize('name', sorted(adversarial.ADVERSARIAL_LOSSES))
def test_every_objective_takes_n_and_n1_logits(name):
  objective = losses.get_adversarial_loss(name)
  assert callable(objective.d_loss) and callable(objective.g_loss)
  rng = np.random.default_rng(1)
  real = rng.normal(size=6).astype(np.float32)
  fake = rng.normal(size=6).astype(np.float32)
  for loss_fn in (objective.d_loss, objective.g_loss):
    flat = loss_fn(jnp.asarray(real), jnp.asarray(fake))
    column = jax.jit(loss_fn)(jnp.asarray(real[:, None]),
                              jnp.asarray(fake[:, None]))
    assert flat.shape == () and column.shape == ()
    assert flat.dtype == jnp.float32
    np.testing.assert_allclose(column, flat, rtol=1e-6)
    grads = jax.grad(loss_fn, argnums=(0, 1))(jnp.asarray(real[:, None]),
                                              jnp.asarray(fake[:, None]))
    assert grads[0].shape == (6, 1) and grads[1].shape == (6, 1)
  # bfloat16 logits (a bfloat16 critic) are scored in float32.
  assert objective.d_loss(jnp.asarray(real, jnp.bfloat16),
                          jnp.asarray(fake, jnp.bfloat16)).dtype == jnp.float32


def test_registry_names():
  for name in ('rcgan', 'rclsgan', 'rchinge', 'ragan_basicsr'):
    assert name in adversarial.ADVERSARIAL_LOSSES
  with pytest.raises(ValueError, match='rchinge'):
    losses.get_adversarial_loss('rc_hinge')


def test_ragan_hand_worked():
  real = jnp.array([[2.0], [0.0]])
  fake = jnp.array([[-1.0], [1.0]])
  mean_real, mean_fake = 1.0, 0.0
  # L_D = 0.5 * (-E log s(C(r) - E C(f)) - E log(1 - s(C(f) - E C(r)))).
  d = 0.5 * (
      -np.mean([math.log(_sigmoid(r - mean_fake)) for r in (2.0, 0.0)]) -
      np.mean([math.log(1 - _sigmoid(f - mean_real)) for f in (-1.0, 1.0)]))
  g = 0.5 * (
      -np.mean([math.log(1 - _sigmoid(r - mean_fake)) for r in (2.0, 0.0)]) -
      np.mean([math.log(_sigmoid(f - mean_real)) for f in (-1.0, 1.0)]))
  np.testing.assert_allclose(adversarial.ragan_d_loss(real, fake), d, rtol=1e-6)
  np.testing.assert_allclose(adversarial.ragan_g_loss(real, fake), g, rtol=1e-6)
  ragp = losses.get_adversarial_loss('ragp')
  assert ragp.gradient_penalty and ragp.d_loss is adversarial.ragan_d_loss


def test_classic_gans_hand_worked():
  real = jnp.array([1.5, -0.5])
  fake = jnp.array([0.25, -2.0])
  vanilla_d = -np.mean([math.log(_sigmoid(r)) for r in (1.5, -0.5)]) - np.mean(
      [math.log(1 - _sigmoid(f)) for f in (0.25, -2.0)])
  np.testing.assert_allclose(adversarial.vanilla_d_loss(real, fake), vanilla_d,
                             rtol=1e-6)
  np.testing.assert_allclose(
      adversarial.vanilla_g_loss(real, fake),
      -np.mean([math.log(_sigmoid(f)) for f in (0.25, -2.0)]), rtol=1e-6)
  # LSGAN: ((0.5^2 + 1.5^2)/2) + ((0.0625 + 4)/2).
  np.testing.assert_allclose(adversarial.lsgan_d_loss(real, fake),
                             1.25 + 2.03125, rtol=1e-6)
  # Hinge: relu(1-r) = (0, 1.5) -> 0.75; relu(1+f) = (1.25, 0) -> 0.625.
  np.testing.assert_allclose(adversarial.hinge_d_loss(real, fake), 1.375,
                             rtol=1e-6)
  np.testing.assert_allclose(adversarial.wgan_d_loss(real, fake),
                             -0.875 - 0.5, rtol=1e-6)
  # RaLSGAN D: mean fake -0.875, mean real 0.5:
  # (r + 0.875 - 1)^2 = (1.375^2, 0.625^2); (f - 0.5 + 1)^2 = (0.75^2, 1.5^2);
  # the two terms averaged, as every two-term loss does.
  np.testing.assert_allclose(
      adversarial.ralsgan_d_loss(real, fake),
      ((1.375**2 + 0.625**2) / 2 + (0.75**2 + 1.5**2) / 2) / 2, rtol=1e-6)
  with pytest.raises(ValueError, match='ragan'):
    losses.get_adversarial_loss('ragan2')
