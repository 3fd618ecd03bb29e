"""The FID InceptionV3 weights: pytorch-fid's file, fetched and converted.

`pt_inception-2015-12-05-6726825d.pth` is pytorch-fid's port of the
TensorFlow FID graph's weights (inception-2015-12-05); converted once into
`<cache>/inception_fid.npz` (~87 MB, without the 1008-way classifier) for
models.inception.InceptionV3FID and metrics.fid:

  python -m sr_jax.weights fetch inception_fid
  variables = weights.load_frozen('inception_fid')
"""
import jax
import jax.numpy as jnp

from sr_jax.models import inception as inception_lib
from sr_jax.weights.frozen_file import FrozenFile

INCEPTION_FID_URL = ('https://github.com/mseitzer/pytorch-fid/releases/'
                     'download/fid_weights/'
                     'pt_inception-2015-12-05-6726825d.pth')


def _like():
  size = inception_lib.MIN_INPUT_SIZE
  return jax.eval_shape(lambda: inception_lib.InceptionV3FID(
      resize_input=False).init(jax.random.key(0),
                               jnp.zeros((1, size, size, 3))))


# The file name ends in the first 8 hex digits of its SHA-256 (torch hub's
# naming convention, as for torchvision's files).
INCEPTION_FID = FrozenFile(
    name='inception_fid', what='FID InceptionV3 (pytorch-fid)',
    url=INCEPTION_FID_URL, sha256_prefix='6726825d', like=_like)
