"""Frequency losses (FFT norms, Durall's spectral loss, focal frequency loss)
against numpy implementations of their published definitions."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data as skdata

from tests.helpers.repo import load_config
from sr_jax import losses
from sr_jax.train import recipe as recipe_lib
from sr_jax.losses import spectral
from sr_jax.losses import terms
from sr_jax.metrics import spectrum


def _pair(shape=(2, 8, 12, 3), seed=0):
  rng = np.random.default_rng(seed)
  return (rng.random(shape).astype(np.float32),
          rng.random(shape).astype(np.float32))


# FFT loss norms.


def test_fft_l1_is_the_mean_of_real_and_imaginary_differences():
  a, b = _pair()
  fa = np.fft.fft2(a.astype(np.float64), axes=(1, 2)) / np.sqrt(8 * 12)
  fb = np.fft.fft2(b.astype(np.float64), axes=(1, 2)) / np.sqrt(8 * 12)
  stacked = np.stack([(fa - fb).real, (fa - fb).imag])
  expected = np.mean(np.abs(stacked))
  np.testing.assert_allclose(losses.fft_loss(a, b, norm='l1'), expected,
                             rtol=1e-5)
  assert float(losses.fft_loss(a, a, norm='l1')) == 0.0


def test_fft_amplitude_phase_against_numpy():
  a, b = _pair(shape=(2, 6, 9, 3), seed=1)
  fa = np.fft.rfft2(a.astype(np.float64), axes=(1, 2), norm='ortho')
  fb = np.fft.rfft2(b.astype(np.float64), axes=(1, 2), norm='ortho')
  amplitude = np.mean(np.abs(np.abs(fa) - np.abs(fb)))
  d = np.angle(fa) - np.angle(fb)
  wrapped = (d + np.pi) % (2 * np.pi) - np.pi
  phase = np.mean(np.abs(wrapped))
  np.testing.assert_allclose(losses.fft_loss(a, b, norm='amplitude_phase'),
                             0.5 * amplitude + 0.5 * phase, rtol=1e-5)
  # -b: same amplitudes, every phase pi apart -> 0.5 pi exactly.
  np.testing.assert_allclose(losses.fft_loss(-b, b, norm='amplitude_phase'),
                             0.5 * np.pi, rtol=1e-5)
  # 2b: same phases -> half the mean amplitude of b.
  np.testing.assert_allclose(losses.fft_loss(2 * b, b, norm='amplitude_phase'),
                             0.5 * np.mean(np.abs(fb)), rtol=1e-5)


@pytest.mark.slow
def test_fft_norms_have_finite_gradients_at_zero_and_refuse_unknown():
  _, b = _pair(seed=2)
  # ('l2' is kept as it was: its norms' gradients are NaN at exactly 0.)
  for norm in ('l1', 'amplitude_phase'):
    g = jax.grad(lambda x, n=norm: losses.fft_loss(x, b, norm=n))(
        np.zeros_like(b))
    assert np.all(np.isfinite(g)), norm
  with pytest.raises(ValueError, match='amplitude_phase'):
    losses.fft_loss(b, b, norm='l3')
  make = losses.LOSS_TERMS.get('fft')
  with pytest.raises(ValueError, match='norm'):
    make({'norm': 'l3'}, jnp.float32)
  with pytest.raises(ValueError, match='unknown option'):
    make({'alpha': 1}, jnp.float32)


# Spectral loss.


def _photos():
  return np.stack([skdata.astronaut()[:48, :40], skdata.coffee()[:48, :40],
                   skdata.chelsea()[:48, :40]])


def test_spectral_profiles_are_the_metrics():
  photos = _photos()
  got = spectral.spectral_profiles(jnp.asarray(photos / 255.0, jnp.float32))
  for image, profile in zip(photos, np.asarray(got)):
    np.testing.assert_allclose(profile, spectrum.radial_spectrum(image),
                               atol=2e-4)


def test_spectral_loss_is_the_bce_of_the_metrics_spectra():
  hr = _photos()
  sr = np.round((hr.astype(float) + np.roll(hr, 1, 1) + np.roll(hr, 1, 2))
                / 3).astype(np.uint8)
  eps = 1e-6
  bces = []
  for s, h in zip(sr, hr):
    p = np.clip(spectrum.radial_spectrum(s), eps, 1 - eps)
    t = spectrum.radial_spectrum(h)
    bces.append(np.mean(-(t * np.log(p) + (1 - t) * np.log(1 - p))))
  got = losses.spectral_loss(jnp.asarray(sr / 255.0, jnp.float32),
                             jnp.asarray(hr / 255.0, jnp.float32))
  np.testing.assert_allclose(got, np.mean(bces), rtol=1e-3)
  # Differentiable, with finite gradients even for a flat image.
  grad_fn = jax.jit(jax.grad(losses.spectral_loss))
  grad = grad_fn(jnp.asarray(sr / 255.0, jnp.float32),
                 jnp.asarray(hr / 255.0, jnp.float32))
  assert np.all(np.isfinite(grad)) and np.any(np.asarray(grad) != 0)
  flat = jnp.full((1, 16, 16, 3), 0.5)
  grad = grad_fn(flat, jnp.asarray(hr[:1, :16, :16] / 255.0, jnp.float32))
  assert np.all(np.isfinite(grad))


# Focal frequency loss.


def _ffl_reference(pred, target, alpha=1.0, patch_factor=1,
                   ave_spectrum=False, log_matrix=False, batch_matrix=False,
                   return_weight=False):
  """Jiang et al.'s equations, patch by patch and channel by channel."""
  n, height, width, c = pred.shape
  k = patch_factor
  h, w = height // k, width // k

  def spectra(x):
    out = np.zeros((n, k * k, c, h, w), complex)
    for i in range(n):
      for pi in range(k):
        for pj in range(k):
          for ch in range(c):
            patch = x[i, pi * h:(pi + 1) * h, pj * w:(pj + 1) * w, ch]
            out[i, pi * k + pj, ch] = np.fft.fft2(patch) / np.sqrt(h * w)
    return out

  fp, ft = spectra(pred.astype(np.float64)), spectra(target.astype(np.float64))
  if ave_spectrum:
    fp, ft = fp.mean(0, keepdims=True), ft.mean(0, keepdims=True)
  distance = np.abs(fp - ft) ** 2
  weight = np.abs(fp - ft) ** alpha
  if log_matrix:
    weight = np.log(weight + 1)
  with np.errstate(invalid='ignore', divide='ignore'):
    if batch_matrix:
      weight = weight / weight.max()
    else:
      for idx in np.ndindex(weight.shape[:3]):
        weight[idx] = weight[idx] / weight[idx].max()
  weight = np.clip(np.nan_to_num(weight, nan=0.0), 0, 1)
  if return_weight:
    return weight
  return np.mean(weight * distance)


_FFL_CASES = [
    dict(),
    dict(alpha=2.0, patch_factor=2),
    dict(alpha=0.5, log_matrix=True, batch_matrix=True),
    dict(ave_spectrum=True, patch_factor=2, log_matrix=True),
    dict(batch_matrix=True, ave_spectrum=True),
]


@pytest.mark.slow
def test_focal_frequency_loss_against_numpy():
  a, b = _pair(shape=(3, 8, 12, 2), seed=3)
  for options in _FFL_CASES:
    np.testing.assert_allclose(
        losses.focal_frequency_loss(a, b, **options),
        _ffl_reference(a, b, **options), rtol=1e-5, err_msg=str(options))
  # Identical images: weights are 0 / 0 -> 0, the loss 0, no NaN.
  assert float(losses.focal_frequency_loss(a, a)) == 0.0
  with pytest.raises(ValueError, match='divide'):
    losses.focal_frequency_loss(a, b, patch_factor=3)


@pytest.mark.slow
def test_focal_frequency_weight_gets_no_gradient():
  a, b = _pair(shape=(2, 8, 8, 3), seed=4)
  for options in _FFL_CASES:
    weight = jnp.asarray(_ffl_reference(a, b, return_weight=True, **options),
                         jnp.float32)
    k = options.get('patch_factor', 1)

    def fixed_weight(x, k=k, options=options, weight=weight):
      # The same loss with the weight a constant: mean(W |F_p - F_t|^2).
      n, height, width, c = x.shape
      h, w = height // k, width // k

      def spectra(y):
        y = y.reshape(n, k, h, k, w, c).transpose(0, 1, 3, 5, 2, 4)
        return jnp.fft.fft2(y.reshape(n, k * k, c, h, w), norm='ortho')

      fp, ft = spectra(x), spectra(jnp.asarray(b))
      if options.get('ave_spectrum'):
        fp, ft = fp.mean(0, keepdims=True), ft.mean(0, keepdims=True)
      return jnp.mean(weight * jnp.abs(fp - ft) ** 2)

    got = jax.grad(lambda x, o=options: losses.focal_frequency_loss(
        x, b, **o))(jnp.asarray(a))
    want = jax.grad(fixed_weight)(jnp.asarray(a))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-7,
                               err_msg=str(options))


# The terms, from config.


_TERM_CONFIGS = {
    'fft_l1': {'term': 'fft', 'weight': 0.1, 'norm': 'l1'},
    'fft_ap': {'term': 'fft', 'weight': 0.1, 'norm': 'amplitude_phase'},
    'spectral': {'weight': 0.01, 'eps': 1e-5},
    'focal_frequency': {'weight': 1.0, 'alpha': 1.0, 'patch_factor': 2,
                        'ave_spectrum': False, 'log_matrix': True,
                        'batch_matrix': False},
}


@pytest.mark.slow
def test_terms_build_from_config_and_run_jitted():
  built = terms.build_terms(_TERM_CONFIGS, jnp.float32)
  assert [t.term.log_name for t in built] == [
      'fft', 'fft', 'spectral', 'focal_frequency']
  sr, target = (jnp.asarray(x) for x in _pair(shape=(2, 16, 16, 3), seed=5))

  @jax.jit
  def total(sr):
    ctx = losses.LossContext(sr=sr, target=target, real=target, lr=sr,
                             key=jax.random.key(0), aux={},
                             apply=lambda name, x: x)
    return sum(t.weight * t.term.fn(ctx) for t in built)

  value, grad = jax.value_and_grad(total)(sr)
  expected = (
      0.1 * losses.fft_loss(sr, target, norm='l1') +
      0.1 * losses.fft_loss(sr, target, norm='amplitude_phase') +
      0.01 * losses.spectral_loss(sr, target, eps=1e-5) +
      losses.focal_frequency_loss(sr, target, patch_factor=2,
                                  log_matrix=True))
  np.testing.assert_allclose(value, expected, rtol=1e-5)
  assert np.all(np.isfinite(grad))
  with pytest.raises(ValueError, match='focal_frequency.*bogus'):
    terms.build_terms({'focal_frequency': {'bogus': 1}}, jnp.float32)
  with pytest.raises(ValueError, match='ave_spectrum'):
    terms.build_terms({'focal_frequency': {'ave_spectrum': 'yes'}},
                      jnp.float32)


def test_recipe_with_frequency_terms():
  config = load_config('esrgan_fft')
  with config.unlocked():
    config.gan.losses.fft.norm = 'amplitude_phase'
    config.gan.losses.spectral = {'weight': 0.01}
    config.gan.losses.focal_frequency = {'weight': 1.0, 'alpha': 2.0}
  recipe = recipe_lib.build_recipe(config)
  gan = recipe.phases[-1]
  assert {t.term.log_name: t.weight for t in gan.terms} == {
      'pix': 1e-2, 'percep': 1.0, 'fft': 0.1, 'gan': 5e-3,
      'spectral': 0.01, 'focal_frequency': 1.0}
