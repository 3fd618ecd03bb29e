"""sr_jax.models.vgg19: layer selection, input normalisation, layer names."""
import jax.numpy as jnp
import numpy as np
import pytest

from sr_jax import models
from tests.helpers.models import abstract_variables
from tests.helpers.models import count
from tests.helpers.models import image
from tests.helpers.models import random_variables


def test_vgg19_layer_selection_and_depth():
  model = models.VGG19(layers=('conv1_2', 'relu1_2', 'pool1', 'relu2_1'))
  variables = random_variables(model, 1, 11, 13, 3)
  # Only as deep as needed: conv1_1, conv1_2, conv2_1.
  assert sorted(variables['params']) == ['conv1_1', 'conv1_2', 'conv2_1']
  feats = model.apply(variables, image(2, 11, 13, 3))
  assert sorted(feats) == ['conv1_2', 'pool1', 'relu1_2', 'relu2_1']
  conv, relu = np.asarray(feats['conv1_2']), np.asarray(feats['relu1_2'])
  assert conv.shape == (2, 11, 13, 64) and (conv < 0).any()
  np.testing.assert_array_equal(relu, np.maximum(conv, 0))
  # 2x2 max-pool with floor, as torch.nn.MaxPool2d(2, 2).
  pooled = relu[:, :10, :12].reshape(2, 5, 2, 6, 2, 64).max(axis=(2, 4))
  np.testing.assert_array_equal(np.asarray(feats['pool1']), pooled)
  assert feats['relu2_1'].shape == (2, 5, 6, 128)


def test_vgg19_input_normalisation():
  model = models.VGG19(layers=('conv1_1',))
  model_pm1 = models.VGG19(layers=('conv1_1',), range_norm=True)
  raw = models.VGG19(layers=('conv1_1',), use_input_norm=False)
  variables = random_variables(model, 1, 5, 5, 3)
  x = image(1, 5, 5, 3)
  normalised = ((x - jnp.array([0.485, 0.456, 0.406]))
                / jnp.array([0.229, 0.224, 0.225]))
  a = model.apply(variables, x)['conv1_1']
  np.testing.assert_allclose(a,
                             model_pm1.apply(variables, 2 * x - 1)['conv1_1'],
                             rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(a, raw.apply(variables, normalised)['conv1_1'],
                             rtol=1e-5, atol=1e-5)


def test_vgg19_all_layers_and_unknown_names():
  variables = abstract_variables(models.VGG19(layers=('pool5',)), 1, 32, 32, 3)
  assert count(variables['params']) == 20_024_384  # torchvision's features.
  with pytest.raises(ValueError, match='relu5_4'):  # Lists the valid names.
    models.VGG19(layers=('conv5_5',))
  with pytest.raises(ValueError, match='sequence'):
    models.VGG19(layers='conv5_4')
