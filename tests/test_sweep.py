"""python -m sr_jax.sweep: every variant trained (a crash does not stop the
others, finished ones are skipped), evaluated and tabulated."""
import os

import numpy as np
from PIL import Image
import pytest
from skimage import data as skdata

from conftest import REPO
from sr_jax import sweep

_ABLATION = '''
from sr_jax import config_lib

VARIANTS = {'ragan': 'ragan', 'broken': 'no_such_loss', 'rahinge': 'rahinge'}


def get_config(arg=None):
  name, size = config_lib.split_ablation_arg(arg, VARIANTS)
  config = config_lib.base_config()
  config.gan.adversarial_loss = VARIANTS[name]
  config.discriminator.kwargs.use_bn = False
  return config_lib.ablation_size(config, size)
'''


@pytest.mark.slow
def test_sweep_trains_evaluates_and_tabulates(tmp_path, random_vgg19_weights,
                                              capsys):
  config = tmp_path / 'ablation.py'
  config.write_text(_ABLATION)
  hr = tmp_path / 'hr'
  hr.mkdir()
  for name in ('astronaut', 'coffee'):
    Image.fromarray(getattr(skdata, name)()[:48, :64]).save(hr / f'{name}.png')
  workdir = tmp_path / 'sweep'
  args = [f'--config={config}', f'--workdir={workdir}', '--size=runlocal',
          '--set', f'frozen.vgg19={random_vgg19_weights}',
          f'--datasets=mini={hr}', '--metrics=psnr,ssim,spectrum']
  assert sweep.main(args) == 1  # 'broken' failed, the others went on.
  out = capsys.readouterr()
  assert 'broken failed' in out.err
  assert os.path.exists(workdir / 'broken' / 'sweep_error.txt')
  for variant in ('ragan', 'rahinge'):
    assert os.path.exists(workdir / variant / 'DONE')
  text = (workdir / 'results.md').read_text()
  lines = [line for line in text.splitlines()
           if line.startswith('| ') and not line.startswith('| ---')]
  assert lines[0] == '| variant | PSNR ↑ | SSIM ↑ | SPECTRUM ↓ |'
  assert [line.split(' | ')[0] for line in lines[1:]] == ['| ragan',
                                                          '| rahinge']
  psnr = [line.split(' | ')[1] for line in lines[1:]]
  assert sum('**' in p for p in psnr) >= 1 and all(
      ('**' in p) or ('<u>' in p) for p in psnr)
  assert 'broken: training failed' in text
  rows = (workdir / 'results.csv').read_text().splitlines()
  assert rows[0] == 'dataset,variant,psnr,ssim,spectrum'
  assert len(rows) == 3
  values = [float(r.split(',')[2]) for r in rows[1:]]
  assert all(np.isfinite(values))
  # Rerun: finished variants are skipped.
  sweep.main(args + ['--variants=ragan'])
  assert 'ragan: finished earlier, skipped.' in capsys.readouterr().out


def test_sweep_refuses_bad_arguments_in_one_line(tmp_path, capsys):
  ablation = os.path.join(REPO, 'configs', 'ablations', 'adversarial.py')
  assert sweep.main([f'--config={ablation}', f'--workdir={tmp_path}',
                     '--variants=ragan,nope']) == 2
  assert "--variants ['nope']" in capsys.readouterr().err
  assert sweep.main([f'--config={ablation}', f'--workdir={tmp_path}',
                     '--set', 'gan.adversarial_los=x']) == 2
  err = capsys.readouterr().err
  assert 'no such field' in err and 'gan.adversarial_loss' in err
  assert not os.listdir(tmp_path)  # Nothing trained.
