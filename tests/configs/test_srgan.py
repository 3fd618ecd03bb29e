"""configs/srgan.py is the SRGAN paper's recipe."""
import importlib.util
import os

import pytest

from tests.helpers.repo import REPO


def test_srgan_config_is_the_paper():
  path = os.path.join(REPO, 'configs', 'srgan.py')
  spec = importlib.util.spec_from_file_location('configs_srgan', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  assert config.generator.name == 'srresnet'
  assert config.generator.kwargs.num_block == 16
  assert config.discriminator.name == 'srgan'
  assert config.data.gt_size == 96
  assert config.psnr.losses.to_dict() == {'pixel': {'weight': 1.0,
                                                    'criterion': 'mse'}}
  gan = config.gan.losses
  assert set(gan) == {'perceptual', 'adversarial'}
  assert gan.adversarial.weight == 1e-3
  assert config.gan.adversarial_loss == 'vanilla'
  assert dict(gan.perceptual.layer_weights) == {'relu5_4': 1.0}
  assert gan.perceptual.criterion == 'mse'
  assert gan.perceptual.feature_scale == pytest.approx(1 / 12.75)
