"""inference.load_generator: the one loader, and `W:phase` as every command
spells a workdir's phase (the checkpoint reading itself is tested with real
runs in test_train.py, test_interpolate.py and test_faults.py)."""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
from PIL import Image
import pytest

from sr_jax import checkpoint
from sr_jax import inference
from sr_jax import models
from sr_jax import upscale
from sr_jax.inference import generator_loading
from sr_jax.weights import params_io
from tests.helpers.runs import save_tiny_run


def test_split_source_takes_a_phase_only_where_the_path_does_not_exist(
    tmp_path):
  assert inference.split_source('runs/a:gan') == ('runs/a', 'gan')
  assert inference.split_source(tmp_path) == (str(tmp_path), None)
  odd = tmp_path / 'w:gan'  # A folder whose name has a colon: the folder.
  odd.mkdir()
  assert inference.split_source(odd) == (str(odd), None)
  for spec in ('runs/a:', 'runs/a:2x', ':gan', 'x4.pth'):
    assert inference.split_source(spec) == (spec, None), spec


@pytest.fixture()
def fake_run(monkeypatch, tmp_path):
  """A workdir whose checkpoint reader is recorded, not run: each call's
  (which, phase, step); 'best' raises like a run that never validated
  when `no_best` is set."""
  calls, state = [], {'no_best': False}
  module = models.get_generator('srvgg', scale=2, **models.SRVGGNetCompact
                                .TINY_KWARGS)
  variables = jax.jit(module.init)(jax.random.key(0),
                                   jnp.zeros((1, 8, 8, 3)))

  def reader(workdir, which='best', phase=None, step=None):
    calls.append((workdir, which, phase, step))
    if (which == 'best' and state['no_best'] and phase is None
        and step is None):
      raise FileNotFoundError(f'No best checkpoints in {workdir}/best')
    return checkpoint.LoadedGenerator(
        module, variables, ml_collections.ConfigDict({'scale': 2}), 7,
        phase or 'gan', f'{workdir}/checkpoints')

  monkeypatch.setattr(generator_loading.checkpoint_lib,
                      'load_generator_from_workdir', reader)
  workdir = tmp_path / 'run'
  workdir.mkdir()
  return str(workdir), calls, state


def test_a_workdir_phase_is_spelt_w_colon_phase_everywhere(fake_run):
  workdir, calls, _ = fake_run
  loaded = inference.load_generator(f'{workdir}:psnr')
  assert calls == [(workdir, 'best', 'psnr', None)]
  assert loaded.scale == 2 and loaded.arch == 'srvgg'
  assert loaded.source == workdir and loaded.run.step == 7
  # The upscale / export / evaluate loader takes the same spelling.
  module, variables, scale = inference.load_generator_for_inference(
      checkpoint=f'{workdir}:psnr')
  assert calls[-1] == (workdir, 'best', 'psnr', None) and scale == 2
  out = module.apply(variables, np.zeros((1, 4, 6, 3), np.float32))
  assert out.shape == (1, 8, 12, 3)
  with pytest.raises(ValueError, match="names phase 'psnr'"):
    inference.load_generator(f'{workdir}:psnr', phase='gan')


def test_final_is_the_best_checkpoint_else_the_newest(fake_run):
  workdir, calls, state = fake_run
  inference.load_generator(workdir)
  assert calls == [(workdir, 'best', None, None)]
  state['no_best'] = True
  calls.clear()
  inference.load_generator(workdir)
  assert calls == [(workdir, 'best', None, None),
                   (workdir, 'latest', None, None)]
  calls.clear()
  with pytest.raises(FileNotFoundError, match='No best checkpoints'):
    inference.load_generator(workdir, which='best')
  inference.load_generator(workdir, step=3)
  assert calls[-1] == (workdir, 'best', None, 3)


def test_a_weights_file_takes_no_phase_and_a_kind_is_checked(fake_run,
                                                             tmp_path):
  workdir, _, _ = fake_run
  with pytest.raises(ValueError, match='--phase / --step pick a checkpoint'):
    inference.load_generator(tmp_path / 'x4.npz', phase='gan')
  with pytest.raises(ValueError, match='which='):
    inference.load_generator(workdir, which='newest')
  with pytest.raises(ValueError, match="trained a 'srvgg' generator, not a "
                     "'dsgan' one"):
    inference.load_generator_of(workdir, 'dsgan', '--dsgan')
  with pytest.raises(FileNotFoundError, match='neither a workdir nor'):
    inference.load_generator_of(str(tmp_path / 'none'), 'dsgan', '--dsgan')


def test_a_checkpoint_that_is_not_a_run_is_read_as_a_workdir(tmp_path):
  """--checkpoint goes to the workdir reader even when the folder is
  missing, so the message is about a run, not about a weights file."""
  missing = str(tmp_path / 'no_run_here')
  with pytest.raises(FileNotFoundError, match='No best checkpoints in .*'
                     'no_run_here/best'):
    inference.load_generator_for_inference(checkpoint=missing)
  with pytest.raises(FileNotFoundError, match='No best checkpoints in .*'
                     'no_run_here/best'):
    inference.load_generator_for_inference(checkpoint=f'{missing}:gan')


def torch_rrdbnet(torch, nf=8, nb=1, gc=4):
  """BasicSR's RRDBNet x4 (ESRGAN), written from the paper / BasicSR."""
  tnn, F = torch.nn, torch.nn.functional

  class RDB(tnn.Module):

    def __init__(self):
      super().__init__()
      for i in range(1, 5):
        setattr(self, f'conv{i}', tnn.Conv2d(nf + (i - 1) * gc, gc, 3, 1, 1))
      self.conv5 = tnn.Conv2d(nf + 4 * gc, nf, 3, 1, 1)

    def forward(self, x):
      feats = [x]
      for i in range(1, 5):
        conv = getattr(self, f'conv{i}')
        feats.append(F.leaky_relu(conv(torch.cat(feats, 1)), 0.2))
      return self.conv5(torch.cat(feats, 1)) * 0.2 + x

  class RRDB(tnn.Module):

    def __init__(self):
      super().__init__()
      self.rdb1, self.rdb2, self.rdb3 = RDB(), RDB(), RDB()

    def forward(self, x):
      return self.rdb3(self.rdb2(self.rdb1(x))) * 0.2 + x

  class Net(tnn.Module):

    def __init__(self):
      super().__init__()
      self.conv_first = tnn.Conv2d(3, nf, 3, 1, 1)
      self.body = tnn.Sequential(*[RRDB() for _ in range(nb)])
      self.conv_body = tnn.Conv2d(nf, nf, 3, 1, 1)
      self.conv_up1 = tnn.Conv2d(nf, nf, 3, 1, 1)
      self.conv_up2 = tnn.Conv2d(nf, nf, 3, 1, 1)
      self.conv_hr = tnn.Conv2d(nf, nf, 3, 1, 1)
      self.conv_last = tnn.Conv2d(nf, 3, 3, 1, 1)

    def forward(self, x):
      feat = self.conv_first(x)
      feat = feat + self.conv_body(self.body(feat))
      for conv in (self.conv_up1, self.conv_up2):
        up = F.interpolate(feat, scale_factor=2, mode='nearest')
        feat = F.leaky_relu(conv(up), 0.2)
      return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2))

  return Net()


def test_load_pth_and_npz_match_torch(tmp_path):
  import torch
  torch.manual_seed(0)
  net = torch_rrdbnet(torch).eval()
  x = torch.rand(1, 3, 11, 13)
  with torch.no_grad():
    ref = net(x).numpy().transpose(0, 2, 3, 1)
  pth = tmp_path / 'rrdb.pth'
  torch.save({'params_ema': net.state_dict()}, pth)
  x_nhwc = x.numpy().transpose(0, 2, 3, 1)

  module, variables, scale = generator_loading.load_generator_for_inference(
      weights=pth)  # Arch detected from the key names.
  assert (scale, module.num_feat, module.num_block) == (4, 8, 1)
  out = np.asarray(jax.jit(module.apply)(variables, x_nhwc))
  assert np.abs(out - ref).max() / np.abs(ref).max() < 1e-4

  npz = tmp_path / 'plain.npz'  # No metadata: --arch needed.
  params_io.save_params(npz, variables)
  with pytest.raises(ValueError, match='--arch'):
    generator_loading.load_generator_for_inference(weights=npz)
  module2, variables2, scale2 = generator_loading.load_generator_for_inference(
      weights=npz, arch='rrdbnet', dtype='bfloat16')
  assert scale2 == 4 and module2.dtype == jnp.bfloat16
  out2 = np.asarray(jax.jit(module2.apply)(variables2, x_nhwc))
  assert np.abs(out2 - ref).max() / np.abs(ref).max() < 3e-2  # bfloat16

  with pytest.raises(ValueError, match='does not fit'):
    generator_loading.load_generator_for_inference(
        weights=npz, arch='rrdbnet', model_kwargs={'scale': 2})
  with pytest.raises(FileNotFoundError, match='sr_jax.convert'):
    generator_loading.load_generator_for_inference(weights=tmp_path / 'no.npz')


@pytest.mark.slow
def test_load_from_a_training_checkpoint(tmp_path, capsys):
  """--checkpoint WORKDIR: the EMA generator of a (tiny, untrained) run."""
  workdir = str(tmp_path / 'run')
  state = save_tiny_run(workdir)
  module, variables, scale = generator_loading.load_generator_for_inference(
      checkpoint=workdir, dtype='bfloat16')
  assert scale == 2 and module.dtype == jnp.bfloat16
  for x, y in zip(jax.tree.leaves(variables['params']),
                  jax.tree.leaves(state.ema_params['generator'])):
    np.testing.assert_array_equal(x, y)  # The EMA weights, not g_params.
  Image.fromarray(np.zeros((6, 5, 3), np.uint8)).save(tmp_path / 'a.png')
  assert upscale.main([str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'),
                       '--checkpoint', workdir]) == 0
  with Image.open(tmp_path / 'o' / 'a_out.png') as img:
    assert img.size == (10, 12)
  assert upscale.main([str(tmp_path / 'a.png'), '-o', str(tmp_path / 'o'),
                       '--checkpoint', workdir, '--which', 'latest']) == 2
  assert 'No finished checkpoint' in capsys.readouterr().err
