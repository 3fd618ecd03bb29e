"""sr_jax.models.inception: FID's InceptionV3 trunk against pytorch-fid's on
random weights, and its resize against torch's interpolate."""
import jax
import numpy as np
import pytest
import torch

from sr_jax.models import inception
from tests.helpers.torch_inception import errors
from tests.helpers.torch_inception import rand_images
from tests.helpers.torch_inception import torch_features

F = torch.nn.functional


# The PyTorch Inception and its conversion: tests.helpers.torch_inception's
# fixtures (tests/conftest.py loads them).
pytestmark = pytest.mark.usefixtures('one_torch_thread')


@pytest.mark.slow
def test_trunk_matches_torch_on_small_inputs(inception_reference):
  model, variables = inception_reference
  # The smallest input the trunk takes (75) and a non-square one, without
  # the resize to 299.
  model.resize_input = False
  try:
    for shape in ((2, 75, 75, 3), (1, 83, 101, 3)):
      x = rand_images(shape, seed=shape[1])
      ref = torch_features(model, x)
      ours = jax.jit(inception.InceptionV3FID(resize_input=False).apply)(
          variables, x)
      abs_err, rel_err = errors(ours, ref)
      assert ref.shape == (shape[0], 2048) and ref.std() > 0.05
      assert rel_err < 1e-4, (abs_err, rel_err)
  finally:
    model.resize_input = True


@pytest.mark.parametrize('h,w', [(20, 33), (300, 299), (512, 384),
                                 (299, 299), (1, 7)])
def test_resize_matches_torch_interpolate(h, w):
  x = rand_images((2, h, w, 3), seed=h * w)
  with torch.no_grad():
    ref = F.interpolate(torch.from_numpy(x.transpose(0, 3, 1, 2)),
                        size=(299, 299), mode='bilinear',
                        align_corners=False).numpy().transpose(0, 2, 3, 1)
  ours = np.asarray(inception.resize_bilinear(x, 299))
  np.testing.assert_allclose(ours, ref, rtol=0, atol=2e-6)
