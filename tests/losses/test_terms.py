"""sr_jax.losses.terms: loss terms built from the config run jitted, and the
contract every registered term keeps (a new one is checked with no test to
edit)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import losses
from sr_jax import weights
from sr_jax.losses import terms
from tests.helpers.losses import _pair

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


def _loss_context():
  keys = jax.random.split(jax.random.key(0), 4)
  image = lambda k: jax.random.uniform(k, (2, 16, 16, 3))
  sr, target, real = image(keys[0]), image(keys[1]), image(keys[2])
  # Scale 1, so that any network of the run (identity here) maps an image
  # to the LR's shape.
  return losses.LossContext(
      sr=sr, target=target, real=real, lr=(sr + target) / 2, key=keys[3],
      aux={}, apply=lambda network, x: x,
      critic=lambda x, which='discriminator': jnp.mean(x, axis=(1, 2, 3))[
          :, None],
      adversarial=losses.get_adversarial_loss('vanilla'))


@pytest.mark.parametrize('name', losses.LOSS_TERMS.names())
def test_loss_term_contract(name):
  term = losses.LOSS_TERMS.get(name)({}, jnp.float32)  # Default options.
  assert isinstance(term, losses.LossTerm) and term.log_name
  for network in term.frozen:  # Loadable by name.
    weights.FROZEN_NETWORKS.get(network.name)
  if term.frozen:
    return  # Pretrained networks: checked in their own tests.
  context = _loss_context()
  value = jax.jit(lambda: term.fn(context))()
  assert value.shape == () and value.dtype == jnp.float32
  assert bool(jnp.isfinite(value))
