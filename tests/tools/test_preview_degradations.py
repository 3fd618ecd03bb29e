"""python -m sr_jax.tools.preview_degradations: one picture per pipeline."""
import pytest

from tests.helpers.repo import run_python


@pytest.mark.slow  # As every test of tests/test_main.py, where it was.
def test_degradation_preview_writes_one_picture_per_pipeline(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  result = run_python(
      ['-m', 'sr_jax.tools.preview_degradations', f'--out_dir={tmp_path}',
       '--pipelines=bicubic,srrescgan,denoise', '--size=64', '--samples=2'])
  assert result.returncode == 0, result.stdout + result.stderr
  for name in ('bicubic', 'srrescgan', 'denoise'):
    with Image.open(tmp_path / f'{name}.png') as picture:
      assert picture.size == (128, 128)  # 2 draws of HR | LR, 64 px each
