"""python -m sr_jax.sweep: every variant trained (a crash does not stop the
others, finished ones are skipped), evaluated and tabulated."""
import copy
import os

import numpy as np
from PIL import Image
import pytest
from skimage import data as skdata

from sr_jax.tools import sweep
from sr_jax.tools import sweep_report
from sr_jax.train import config_lib
from tests.helpers.repo import REPO

_ABLATION = '''
from sr_jax.train import config_lib

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
  assert [line.split(' | ')[0] for line in lines[1:]] == [
      '| ragan', '| rahinge', '| *PSNR warm-up*', '| *bicubic x4*']
  psnr = [line.split(' | ')[1] for line in lines[1:3]]
  assert sum('**' in p for p in psnr) >= 1 and all(
      ('**' in p) or ('<u>' in p) for p in psnr)
  assert 'broken: training failed' in text
  rows = (workdir / 'results.csv').read_text().splitlines()
  assert rows[0] == 'dataset,variant,psnr,ssim,spectrum'
  assert [r.split(',')[1] for r in rows[1:]] == [
      'ragan', 'rahinge', '_warmup', 'bicubic x4']
  values = [float(r.split(',')[2]) for r in rows[1:]]
  assert all(np.isfinite(values))
  # The warm-up (the only phase all variants share) was trained once, and
  # each variant's GAN phase started from its generator.
  assert os.path.exists(workdir / '_warmup' / 'DONE')
  for variant in ('ragan', 'rahinge'):
    steps = {int(line.split(',')[0]) for line in
             (workdir / variant / 'scalars.csv').read_text().splitlines()[1:]}
    assert steps and max(steps) <= 1  # One GAN step (runlocal), no warm-up.
  assert out.out.count(
      '[warm-up] psnr, shared by every variant: training') == 1
  # Rerun: finished variants (and the warm-up) are skipped.
  sweep.main(args + ['--variants=ragan'])
  out = capsys.readouterr().out
  assert 'ragan: finished earlier, skipped.' in out
  assert 'every variant: finished earlier' in out
  # The notebooks' figures, from this sweep.
  result = sweep_report.open_sweep(str(config), str(workdir), run=False)
  assert result.variants == ['ragan', 'rahinge'] and result.scale == 4
  assert set(sweep_report.sr_images(result, 'ragan', 'mini')) == {
      'astronaut', 'coffee'}
  figures = [sweep_report.loss_curves(result, tags=('train/l_g_gan',)),
             sweep_report.spectra(result),
             sweep_report.crop_grid(result, size=16),
             sweep_report.perception_distortion(result,
                                                perception='spectrum')]
  lines = figures[0].axes[0].get_lines()
  assert [line.get_label() for line in lines] == ['ragan', 'rahinge']
  assert len(figures[1].axes[0].get_lines()) == 4  # HR, bicubic, 2 variants
  assert len(figures[2].axes) == 2 * 5  # 2 images x LR bicubic 2 HR
  assert [ax.get_title() for ax in figures[2].axes[:5]] == [
      'LR', 'bicubic', 'ragan', 'rahinge', 'HR']
  texts = [t.get_text() for t in figures[3].axes[0].texts]
  assert texts == ['ragan', 'rahinge', 'PSNR warm-up', 'bicubic x4']


def test_sweep_refuses_bad_arguments_in_one_line(tmp_path, capsys):
  ablation = os.path.join(REPO, 'configs', 'ablations', 'adversarial.py')
  assert sweep.main([f'--config={ablation}', f'--workdir={tmp_path}',
                     '--variants=ragan,nope']) == 2
  assert "--variants ['nope']" in capsys.readouterr().err
  assert sweep.main([f'--config={ablation}', f'--workdir={tmp_path}',
                     '--set', 'gan.adversarial_los=x']) == 2
  err = capsys.readouterr().err
  assert 'no field' in err and 'Did you mean gan.adversarial_loss' in err
  # A value of the wrong type: one line naming the setting, no TypeError.
  assert sweep.main([f'--config={ablation}', f'--workdir={tmp_path}',
                     '--set', 'gan.steps=abc']) == 2
  err = capsys.readouterr().err
  assert err.count('\n') == 1 and err.startswith(
      "error: --set gan.steps='abc': gan.steps must be of type int"), err
  assert not os.listdir(tmp_path)  # Nothing trained.


@pytest.mark.parametrize('ablation', ['adversarial', 'frequency',
                                      'perceptual'])
def test_thesis_ablations_share_their_psnr_warmup(ablation):
  module = sweep.load_ablation(
      os.path.join(REPO, 'configs', 'ablations', f'{ablation}.py'))
  configs = {v: module.get_config(f'{v},tiny') for v in module.VARIANTS}
  assert sweep.shared_warmup(configs) == ('psnr',)
  first = next(iter(configs.values()))
  warmup = copy.deepcopy(first)
  config_lib.apply_overrides(warmup, sweep.warmup_overrides(('psnr',)))
  assert warmup.phases == ('psnr',) and first.phases == ('psnr', 'gan')
  variant = first
  config_lib.apply_overrides(
      variant, sweep.after_warmup_overrides(('psnr',), '/w/_warmup'))
  assert variant.psnr.steps == 0 and variant.gan.steps == 100
  assert variant.generator.init_from == '/w/_warmup'


def test_no_shared_warmup_when_the_warmups_differ():
  module = sweep.load_ablation(
      os.path.join(REPO, 'configs', 'ablations', 'adversarial.py'))
  a, b = module.get_config('ragan,tiny'), module.get_config('ragp,tiny')
  assert sweep.shared_warmup({'a': a, 'b': b}) == ('psnr',)
  b.psnr.optimizers.generator.lr = 1e-4  # A warm-up of its own.
  assert sweep.shared_warmup({'a': a, 'b': b}) == ()
  b = module.get_config('ragp,tiny')
  b.gan.start = 'continue'  # Not started from the warm-up's EMA.
  assert sweep.shared_warmup({'a': a, 'b': b}) == ()
  b = module.get_config('ragp,tiny')
  b.generator.kwargs = dict(b.generator.kwargs, num_block=1)
  assert sweep.shared_warmup({'a': a, 'b': b}) == ()
  assert sweep.shared_warmup({'a': a}) == ()  # One variant: nothing shared.
  # A discriminator warm-up first: only the generator would be carried over.
  for c in (a, b):
    c.d_warmup = config_lib.phase(5, train=('discriminator',))
    c.phases = ('d_warmup', 'psnr', 'gan')
  b.generator.kwargs = dict(a.generator.kwargs)
  assert sweep.shared_warmup({'a': a, 'b': b}) == ()


def test_set_reaches_loss_term_options_and_refuses_unknown_fields():
  module = sweep.load_ablation(
      os.path.join(REPO, 'configs', 'ablations', 'frequency.py'))
  config = module.get_config('none,tiny')
  assert 'norm' not in config.gan.losses.fft
  config_lib.apply_overrides(config, sweep.parse_overrides(
      ['gan.losses.fft.norm=amplitude_phase', 'gan.steps=300']), '--set ')
  assert config.gan.losses.fft.norm == 'amplitude_phase'
  assert config.gan.steps == 300
  with pytest.raises(ValueError, match='Did you mean gan.steps'):
    config_lib.apply_overrides(config, [('gan.stepz', 3)], '--set ')
