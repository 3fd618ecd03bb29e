"""sr_jax.inference.resize: the cubic resize against PyTorch's bicubic."""
import numpy as np

from sr_jax.inference import resize
from tests.helpers.ncnn import needs_models


@needs_models  # As tests/weights/test_ncnn.py, where it was written.
def test_cubic_resize_is_torch_bicubic():
  """An independent reference: PyTorch's bicubic (a = -0.75, clamped edge,
  half-pixel centres, no antialiasing), shrinking and enlarging."""
  import torch
  x = np.random.default_rng(0).random((23, 17, 3), dtype=np.float32)
  for size in ((11, 8), (17, 13), (46, 51)):
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(x.transpose(2, 0, 1).copy())[None], size=size,
        mode='bicubic', align_corners=False)[0].numpy().transpose(1, 2, 0)
    np.testing.assert_allclose(resize.cubic_resize(x, size), ref, atol=2e-6)
