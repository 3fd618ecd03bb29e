"""The ablation notebooks, executed in a Jupyter kernel in their tiny mode:
with no sweep directory given, each runs the sweep's tiny size itself and
shows the table, loss curves, spectra, crops and perception-distortion
plot. (The upscale notebook runs in test_train.py.)

To keep the suite's time, each runs two of its variants
(SR_JAX_SWEEP_VARIANTS) and the three share one tiny warm-up, trained once
here: the three ablations' warm-ups are the same run (asserted), so a
sweep finds it finished and skips it, as on a rerun. The tiny size runs
shortened (SR_JAX_SWEEP_SET, the notebooks' --set overrides): 40 warm-up
and 10 GAN steps instead of 300 and 100, evaluated on the first 3 of the
ten photos (SR_JAX_SWEEP_MAX_IMAGES).
"""
import glob
import os
import shutil

import nbformat
import pytest

from sr_jax.tools import sweep
from sr_jax.train import config_lib
from sr_jax.train import loop as train
from tests.helpers.repo import execute_notebook
from tests.helpers.repo import notebook_outputs
from tests.helpers.repo import REPO

# notebook: (ablation, two variants, a loss-term scalar each must log).
NOTEBOOKS = {
    'adversarial_ablation.ipynb': ('adversarial', ('ragan', 'ragp'),
                                   'train/l_g_gan'),
    'frequency_losses.ipynb': ('frequency', ('spectral_0.3', 'ffl_0.5'),
                               None),
    'perceptual_losses.ipynb': ('perceptual', ('vgg', 'dists'),
                                'train/l_g_gan'),
}
# The notebooks' overrides for every variant (and the shared warm-up).
SETS = ('psnr.steps=40', 'gan.steps=10')
FREQUENCY_TAGS = {'spectral_0.3': 'train/l_g_spectral',
                  'ffl_0.5': 'train/l_g_focal_frequency'}


def _ablation(name):
  return sweep.load_ablation(os.path.join(REPO, 'configs', 'ablations',
                                          f'{name}.py'))


def test_every_notebook_is_stored_without_outputs():
  paths = sorted(glob.glob(os.path.join(REPO, 'notebooks', '*.ipynb')))
  assert {os.path.basename(p) for p in paths} >= set(NOTEBOOKS)
  for path in paths:
    notebook = nbformat.read(path, as_version=4)
    nbformat.validate(notebook)
    for cell in notebook.cells:
      if cell.cell_type == 'code':
        assert not cell.outputs and cell.execution_count is None, path


@pytest.fixture(scope='module')
def tiny_warmup(tmp_path_factory):
  """The tiny warm-up every ablation shares, trained once."""
  configs = {}
  for ablation, variants, _ in NOTEBOOKS.values():
    module = _ablation(ablation)
    variant_configs = {v: module.get_config(f'{v},tiny') for v in variants}
    for c in variant_configs.values():
      config_lib.apply_overrides(c, sweep.parse_overrides(SETS), '--set ')
    shared = sweep.shared_warmup(variant_configs)
    assert shared == ('psnr',)
    configs[ablation] = {  # Without the (untrained) GAN phase.
        k: v for k, v in next(iter(variant_configs.values())).items()
        if k not in ('gan', 'variant')}
  first = next(iter(configs.values()))
  assert all(c == first for c in configs.values())  # One warm-up for all.
  workdir = str(tmp_path_factory.mktemp('tiny') / sweep.WARMUP)
  config = _ablation('adversarial').get_config('ragan,tiny')
  config_lib.apply_overrides(config, sweep.parse_overrides(SETS), '--set ')
  config_lib.apply_overrides(config, sweep.warmup_overrides(('psnr',)))
  assert config.psnr.steps == 40
  train.train_and_evaluate(config, workdir)
  with open(os.path.join(workdir, sweep.DONE), 'w') as f:
    f.write('trained\n')
  return workdir


@pytest.mark.slow
@pytest.mark.parametrize('notebook', sorted(NOTEBOOKS))
def test_ablation_notebook_runs_its_tiny_sweep(notebook, tiny_warmup,
                                               tmp_path):
  ablation, variants, tag = NOTEBOOKS[notebook]
  sweep_dir = tmp_path / 'sweeps' / f'{ablation}_tiny'
  shutil.copytree(tiny_warmup, sweep_dir / sweep.WARMUP)
  executed = execute_notebook(notebook, {
      'SR_JAX_WORKDIRS': str(tmp_path),
      'SR_JAX_SWEEP_VARIANTS': ','.join(variants),
      'SR_JAX_SWEEP_SET': ' '.join(SETS),
      'SR_JAX_SWEEP_MAX_IMAGES': '3'})
  text = ''.join(o.get('text', '') for o in notebook_outputs(executed,
                                                              'stream'))
  assert 'shared by every variant: finished earlier, skipped.' in text
  assert '2 variants (tiny size), evaluated on photos10' in text
  # The table: the two variants, then the references.
  table = [o['data']['text/markdown'] for o in notebook_outputs(executed)
           if 'text/markdown' in o.get('data', {})]
  assert len(table) == 1
  assert '- Evaluated on the first 3 images of each dataset' in table[0]
  rows = [line.split(' | ')[0] for line in table[0].splitlines()
          if line.startswith('| ') and not line.startswith(('| variant',
                                                            '| ---'))]
  assert rows == ['| ' + v for v in variants] + [
      '| *PSNR warm-up*', '| *bicubic x4*', '| *HR*']
  # Four figures: losses, spectra, crops, perception-distortion.
  images = [o for o in notebook_outputs(executed)
            if 'image/png' in o.get('data', {})]
  assert len(images) == 4
  for variant in variants:
    assert os.path.exists(sweep_dir / variant / sweep.DONE)
    scalars = (sweep_dir / variant / 'scalars.csv').read_text()
    assert (tag or FREQUENCY_TAGS[variant]) in scalars
    assert 'train/l_d' in scalars
    assert os.listdir(sweep_dir / variant / 'best' / 'gan') == ['10']
  assert os.path.exists(sweep_dir / sweep.MANIFEST)
