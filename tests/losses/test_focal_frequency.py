"""sr_jax.losses.focal_frequency: the focal frequency loss against numpy
written from Jiang et al.'s equations."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from tests.helpers.losses import _pair

# FFT loss norms.


# Spectral loss.


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
