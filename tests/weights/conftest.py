"""Fixtures of the weights tests."""
import pytest

from sr_jax.weights import params_io


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
  """An empty weights cache of the test's own (SR_JAX_CACHE_DIR), and no
  SR_JAX_VGG19_WEIGHTS from the environment; the cache folder."""
  cache = tmp_path / 'cache'
  monkeypatch.setenv(params_io.CACHE_ENV_VAR, str(cache))
  monkeypatch.delenv('SR_JAX_VGG19_WEIGHTS', raising=False)
  return cache
