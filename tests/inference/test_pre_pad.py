"""sr_jax.inference.pre_pad: edge pre-padding, and the default pre-pad of
each kind of generator source."""
import jax.numpy as jnp
import numpy as np

from sr_jax.inference import pre_pad
from sr_jax.inference.pre_pad import apply_pre_padded
from sr_jax.weights import files as weight_files
from sr_jax.weights import params_io
from tests.helpers.ncnn import needs_models


def test_pre_pad_shapes_and_identity_for_pointwise_fn():
  lr = jnp.asarray(np.random.default_rng(2).random((1, 6, 5, 3)), jnp.float32)
  up = lambda x: jnp.repeat(jnp.repeat(x, 4, axis=1), 4, axis=2)
  out = apply_pre_padded(up, lr, 4, pad=3)
  assert out.shape == (1, 24, 20, 3)
  np.testing.assert_allclose(out, up(lr))
  np.testing.assert_allclose(apply_pre_padded(up, lr, 4, pad=0), up(lr))


@needs_models  # As tests/weights/test_ncnn.py, where it was written.
def test_default_pre_pad_by_source(tmp_path):
  npz = tmp_path / 'converted.npz'
  weight_files.save_converted(npz, 'srvgg', {'params': {'w': np.zeros(1)}},
                             {}, source='x')
  plain = tmp_path / 'plain.npz'
  params_io.save_params(plain, {'params': {'w': np.zeros(1)}})
  for source, pad in ((dict(weights='a.pth'), 0),
                      (dict(weights='a.safetensors'), 0),
                      (dict(weights='a.param'), 0),
                      (dict(weights=npz), 0),
                      (dict(weights=plain), 8),
                      (dict(weights='a.onnx'), 8),
                      (dict(checkpoint=tmp_path), 8)):
    assert pre_pad.default_pre_pad(**source)[0] == pad, source
